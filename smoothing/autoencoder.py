"""The generative scorer a_G of Fujimura et al.: the dense autoencoder of the DCASE baseline.

Paper, section IV-A: "a ten-layer fully connected network [1]" on "the five adjacent frames of the log
Mel power spectrogram with a window size of 64 ms, a hop size of 32 ms, and 128 Mel-spaced frequency bins
in the range of 50 Hz to 7800 Hz", trained "for 1,500 epochs using the Adam optimizer with a fixed
learning rate of 0.001", "the minibatch included 16 of the 4-second segments". Anomaly score: eq. (2),
the mean squared reconstruction error; "we divided the original 10-second signal into seven 4-second
segments with 75 % overlapping and calculated the final anomaly score by averaging the score of each
segment".

Network (DCASE 2020 and 2021 task 2 baselines, ``keras_model.py`` of
github.com/y-kawagu/dcase2021_task2_baseline_ae, the same model as the 2020 baseline): input 640
(5 frames x 128 mel bins), four Dense(128) + BatchNormalization + ReLU blocks, a Dense(8) + BN + ReLU
bottleneck, four Dense(128) + BN + ReLU blocks, a linear Dense(640) output: ten Dense layers, MSE loss.
The baseline itself trains 100 epochs with batches of 512 frame vectors (``baseline.yaml``); the paper's
settings (1500 epochs, batches of 16 segments) are the defaults here.

Training (:func:`train_autoencoder`, the one path the ``smoothing`` command uses) takes the log-mel
features of whole clips and draws one random 4 s crop per clip per epoch (:class:`CropBatches`; off
TensorFlow, when the clips fit the accelerator, gathered there: :meth:`CropBatches.on_device`); scoring
takes the stacked frames of each clip's seven crops, ``[clips, segments, vectors, 640]``.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import layers

from asdcore.errors import ASDError

__all__ = ["AEConfig", "build_autoencoder", "train_autoencoder", "anomaly_score_ae", "score_clips", "CropBatches"]


def _err(message: str) -> ASDError:
    return ASDError(f"smoothing/autoencoder.py: {message}")


@dataclasses.dataclass(frozen=True)
class AEConfig:
    """Features and training of a_G; defaults = Fujimura et al. section IV-A.

    Attributes
    ----------
    sr : int
        Sample rate (DCASE 2021: 16 kHz).
    n_fft, hop_length : int
        64 ms window (1024) and 32 ms hop (512) at 16 kHz (paper IV-A).
    n_mels, fmin, fmax : int, float, float
        128 mel bins in 50-7800 Hz (paper IV-A).
    n_frames : int
        Frames stacked into one input vector (5: input 5 x 128 = 640; paper IV-A, DCASE baseline).
    segment_seconds, n_segments : float, int
        Seven 4 s crops per 10 s clip, 75 % overlap (paper IV-A).
    hidden_units, bottleneck_units, n_hidden_layers : int
        DCASE baseline: 128-unit layers, four on each side of an 8-unit bottleneck.
    epochs : int
        1500 (paper IV-A).
    learning_rate : float
        Adam, fixed 0.001 (paper IV-A).
    batch_segments : int
        16 four-second segments per batch (paper IV-A); every frame vector of those segments is in it.
    """

    sr: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 50.0
    fmax: float = 7800.0
    n_frames: int = 5
    segment_seconds: float = 4.0
    n_segments: int = 7
    hidden_units: int = 128
    bottleneck_units: int = 8
    n_hidden_layers: int = 4
    epochs: int = 1500
    learning_rate: float = 1e-3
    batch_segments: int = 16

    @property
    def input_dim(self) -> int:
        return self.n_frames * self.n_mels

    def logmel_config(self):
        """The matching :class:`asdcore.features.LogMelConfig` (applied to each 4 s segment).

        ``10 log10`` of the mel power spectrum as the DCASE baseline computes it (librosa defaults:
        periodic Hann window, Slaney-normalised mel filters, centred reflect-padded frames, floor at
        machine epsilon); all frames kept (the segments are cut from the waveform first).
        """
        from asdcore.features import LogMelConfig

        return LogMelConfig(sr=self.sr, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels,
                            fmin=self.fmin, fmax=self.fmax, window="hann", power=2.0, log=True,
                            floor=float(np.finfo(np.float64).eps), n_frames=None)


def build_autoencoder(input_dim: int = 640, hidden_units: int = 128, bottleneck_units: int = 8,
                      n_hidden_layers: int = 4, learning_rate: float | None = 1e-3, jit_compile="auto"):
    """The DCASE baseline dense autoencoder (ten Dense layers).

    Parameters
    ----------
    input_dim : int
        Size of a stacked frame vector (5 x 128 = 640).
    hidden_units, bottleneck_units, n_hidden_layers : int
        128, 8 and 4 in the baseline.
    learning_rate : float or None
        When given, the model is compiled with Adam at this rate and MSE loss (eq. 1); None leaves it
        uncompiled.
    jit_compile : "auto" or bool
        Passed to ``Model.compile`` (False skips XLA compilation: quicker start for tiny runs).

    Returns
    -------
    keras.Model mapping (batch, input_dim) to (batch, input_dim).
    """
    x = inputs = keras.Input(shape=(int(input_dim),), name="stacked_frames")
    widths = [hidden_units] * n_hidden_layers + [bottleneck_units] + [hidden_units] * n_hidden_layers
    for i, width in enumerate(widths):
        x = layers.Dense(width, name=f"dense_{i}")(x)
        x = layers.BatchNormalization(name=f"bn_{i}")(x)
        x = layers.Activation("relu", name=f"relu_{i}")(x)
    outputs = layers.Dense(int(input_dim), name=f"dense_{len(widths)}")(x)
    model = keras.Model(inputs, outputs, name="dcase_baseline_autoencoder")
    if learning_rate is not None:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mean_squared_error",
                      jit_compile=jit_compile)
    return model


def _as_segments(stacked, what):
    """[..., vectors, dim] -> [segments, vectors, dim] float32."""
    x = np.asarray(stacked, dtype=np.float32)
    if x.ndim < 3:
        raise _err(f"{what} must have shape [segments, vectors, dim] or [clips, segments, vectors, dim], got "
                   f"{x.shape}; stack frames per 4 s segment with asdcore.features.stack_frames")
    if x.shape[-2] == 0 or x.size == 0:
        raise _err(f"{what} is empty (shape {x.shape}); segments shorter than 5 frames give no vectors")
    if not np.all(np.isfinite(x)):
        raise _err(f"{what} contains NaN or infinite values; check the log-mel floor")
    return x.reshape((-1,) + x.shape[-2:])


class CropBatches(keras.utils.PyDataset):
    """Autoencoder batches of 4 s segments (paper IV-A: "the minibatch included 16 of the 4-second
    segments"): ``batch_segments`` clips per batch, one random crop of ``crop`` frames from each (a new crop
    every epoch), and every stacked ``context``-frame vector of those crops, as input and target.

    Parameters
    ----------
    clips : array [clips, frames, bins]
        Log-mel features of the training clips.
    crop : int
        Frames of one 4 s segment (:func:`smoothing.training.crop_frames`).
    context : int
        Frames stacked into one input vector (5).
    batch_segments : int
        16 (paper).
    shuffle : bool, seed : int
        Clip order reshuffled every epoch; crops drawn from a generator seeded with ``seed``.
    """

    def __init__(self, clips, crop, context=5, batch_segments=16, shuffle=True, seed=0, **kwargs):
        super().__init__(**kwargs)
        from smoothing.training import check_clips

        self.clips = check_clips(clips, crop, "autoencoder training clips")
        if not np.all(np.isfinite(self.clips)):
            raise _err("autoencoder training clips contain NaN or infinite values; check the log-mel floor")
        self.crop, self.context = int(crop), int(context)
        if self.crop < self.context:
            raise _err(f"a {self.crop}-frame crop holds no {self.context}-frame vector; lengthen segment_seconds")
        self.batch_segments = int(batch_segments)
        if self.batch_segments < 1:
            raise _err(f"batch_segments must be >= 1, got {batch_segments}")
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(len(self.clips)) if shuffle else np.arange(len(self.clips))
        self.device = None  # the clips on the accelerator after on_device()

    def __len__(self):
        return int(np.ceil(len(self.clips) / self.batch_segments))

    def on_device(self) -> bool:
        """Copy the training clips onto the accelerator once when ``ASD_DEVICE_DATA`` says so
        (:func:`asdcore.input_pipeline.place_features`); every later batch's stacked frames are then
        gathered there (one gather) from the same random draws (:meth:`draw`). Returns whether they were
        placed."""
        from asdcore.input_pipeline import place_features

        self.device = place_features(self.clips, what="autoencoder training features")
        return self.device is not None

    def draw(self, index):
        """Batch ``index``'s clips (ascending) and the first frame of each one's crop, drawn from the batch
        generator."""
        from smoothing.training import crop_starts

        rows = np.sort(self._order[index * self.batch_segments:(index + 1) * self.batch_segments])
        return rows, crop_starts(len(rows), self.clips.shape[1], self.crop, self._rng)

    def __getitem__(self, index):
        rows, starts = self.draw(index)
        width = self.context * self.clips.shape[2]
        if self.device is not None:
            x = self.device.stacked_crops(rows, starts, self.crop, self.context)
            x = keras.ops.reshape(x, (-1, width))
        else:
            from asdcore.features import stack_frames
            from smoothing.training import take_crops

            x = stack_frames(take_crops(self.clips[rows], starts, self.crop), self.context).reshape(-1, width)
        return x, x

    def on_epoch_end(self):
        if self.shuffle:
            self._order = self._rng.permutation(len(self.clips))


def train_autoencoder(fit_clips, val_clips=None, config: AEConfig = AEConfig(), seed: int = 0,
                      validate_every: int = 0, jit_compile="auto", cache=None, verbose=0,
                      folder=None):
    """Train a_G on random 4 s crops of the normal training clips of one machine type (eq. 1, paper IV-A).

    Parameters
    ----------
    fit_clips : array [clips, frames, bins]
        Log-mel features of the clips that train (paper: 85 % of the source clips and two target clips per
        section).
    val_clips : array [clips, frames, bins], optional
        The other training clips; their centre-crop reconstruction error is logged as ``val_loss``.
    config : AEConfig
        Network, epochs (1500), Adam at 0.001, 16 segments per batch (paper IV-A).
    seed : int
        Seeds Keras (initial weights) and the batches (order and crops).
    validate_every : int
        Epochs between validation losses (0: after the last epoch only).
    jit_compile : "auto" or bool
        Keras ``jit_compile`` (False saves the XLA compilation on CPU quick runs).
    cache : smoothing.training.ModelCache, optional
        Reuse a compiled network of the same configuration (re-initialised under ``seed``).
    folder : path, optional
        The unit folder: ``training_log.csv`` and ``tensorboard/`` (:func:`asdcore.keras_utils.training_callbacks`).

    Returns
    -------
    (model, history DataFrame with ``epoch, loss, val_loss``)
    """
    from asdcore.features import stack_frames
    from asdcore.keras_utils import training_callbacks
    from smoothing.training import ModelCache, centre_crop, crop_frames, direct_validation, history_frame

    crop = crop_frames(config.segment_seconds, config.sr, config.hop_length)
    keras.utils.set_random_seed(int(seed))
    batches = CropBatches(fit_clips, crop, config.n_frames, config.batch_segments, seed=int(seed))
    batches.on_device()  # the clips on the accelerator when they fit (ASD_DEVICE_DATA; never on TensorFlow)
    if batches.clips.shape[2] * config.n_frames != config.input_dim:
        raise _err(f"clips have {batches.clips.shape[2]} mel bins, the autoencoder expects {config.n_mels}")

    def build():
        return build_autoencoder(config.input_dim, config.hidden_units, config.bottleneck_units,
                                 config.n_hidden_layers, learning_rate=None)

    def compile_fn(model):
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
                      loss="mean_squared_error", jit_compile=jit_compile)

    model = (cache or ModelCache()).get(("ae", config, jit_compile), build, compile_fn)
    val = None
    if val_clips is not None and len(val_clips):
        val_clips = np.asarray(val_clips, dtype=np.float32)
        val = stack_frames(centre_crop(val_clips, crop), config.n_frames).reshape(-1, config.input_dim)

    def val_loss():
        if val is None:
            return np.nan
        recon = np.concatenate([keras.ops.convert_to_numpy(model(val[i:i + 8192], training=False))
                                for i in range(0, len(val), 8192)])
        return np.mean((val.astype(np.float64) - recon) ** 2)

    validation = direct_validation(val_loss, validate_every, config.epochs)
    callbacks = training_callbacks(folder, extra=[validation])  # CSV log, TensorBoard, lr, progress
    history = model.fit(batches, epochs=config.epochs, callbacks=callbacks, verbose=verbose)
    return model, history_frame(history, validation)


def anomaly_score_ae(model, stacked_segments, return_segments: bool = False, batch_size: int = 8192):
    """a_G of each clip: eq. (2) per 4 s segment, averaged over the clip's segments.

    Parameters
    ----------
    model : keras.Model
        The trained autoencoder.
    stacked_segments : array [clips, segments, vectors, dim]
        Stacked frames of each clip's seven 4 s crops.
    return_segments : bool
        Also return the per-segment scores [clips, segments].

    Returns
    -------
    scores : array (clips,) -- mean over segments of the mean squared error over the segment's frame
        vectors and dimensions (eq. 2 with D = dim, averaged over vectors).
    """
    x = np.asarray(stacked_segments, dtype=np.float32)
    if x.ndim != 4:
        raise _err(f"stacked_segments must have shape [clips, segments, vectors, dim], got {x.shape}; "
                   "add a segment axis of length 1 for unsegmented clips")
    _as_segments(x, "stacked_segments")  # validation
    n_clips, n_seg, n_vec, dim = x.shape
    flat = x.reshape(-1, dim)
    # Direct calls in chunks (inference mode): no tf.function tracing, so cheap for small sets too.
    recon = np.concatenate([
        np.asarray(keras.ops.convert_to_numpy(model(flat[i:i + batch_size], training=False)), dtype=np.float64)
        for i in range(0, len(flat), batch_size)
    ])
    err = np.mean((flat.astype(np.float64) - recon) ** 2, axis=1)  # per vector: (1/D)||psi - f_G(psi)||^2
    per_segment = err.reshape(n_clips, n_seg, n_vec).mean(axis=2)
    scores = per_segment.mean(axis=1)
    return (scores, per_segment) if return_segments else scores


def score_clips(model, clips, config: AEConfig, chunk: int = 32):
    """a_G of every clip (the mean over its ``n_segments`` evenly spaced 4 s crops, paper IV-A) and of every
    crop: ``(clips,), (clips, n_segments)``."""
    from asdcore.features import crops, stack_frames
    from smoothing.training import crop_frames

    crop = crop_frames(config.segment_seconds, config.sr, config.hop_length)
    per_segment = []
    for start in range(0, len(clips), chunk):
        segments = crops(clips[start:start + chunk], config.n_segments, crop)
        n, s = segments.shape[:2]
        stacked = stack_frames(segments.reshape((n * s,) + segments.shape[2:]), config.n_frames)
        _, seg = anomaly_score_ae(model, stacked.reshape((n, s) + stacked.shape[1:]), return_segments=True)
        per_segment.append(seg)
    per_segment = np.concatenate(per_segment)
    return per_segment.mean(axis=1), per_segment
