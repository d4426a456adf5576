"""What the two networks of Fujimura et al. share in training: 4 s crops, a direct validation loss, and a
cache of compiled networks. The networks' own training functions are
:func:`smoothing.autoencoder.train_autoencoder` (a_G) and :func:`smoothing.serial_oe.train_serial_oe` (f_D),
the one path the ``smoothing`` command trains through.

Paper IV-A: "The minibatch included 16 [AE] / 128 [SerialOE] of the 4-second segments"; at inference
"seven 4-second segments with 75 % overlapping". Training therefore draws one random 4 s crop of every
training clip per epoch (a new crop each epoch); validation uses the centre crop of each clip.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from asdcore.errors import ASDError

__all__ = ["crop_frames", "check_clips", "crop_starts", "take_crops", "centre_crop", "ModelCache",
           "direct_validation", "history_frame", "standardize_features"]


def _err(message: str) -> ASDError:
    return ASDError(f"smoothing/training.py: {message}")


def crop_frames(seconds: float, sr: int, hop: int) -> int:
    """Frames of a centred STFT of ``seconds`` of audio: ``1 + samples // hop``."""
    return 1 + int(round(seconds * sr)) // int(hop)


def check_clips(clips, crop: int, what: str):
    """``clips`` as float32 ``[clips, frames, bins]`` with at least ``crop`` frames, or a one-line error.

    A :class:`asdcore.clip_sources.ClipSource` (clips read by batch) is checked by its shape and returned
    as it is (nothing read)."""
    from asdcore.clip_sources import ClipSource

    x = clips if isinstance(clips, ClipSource) else np.asarray(clips, dtype=np.float32)
    if x.ndim != 3:
        raise _err(f"{what} must be [clips, frames, bins], got shape {x.shape}")
    if x.shape[1] < int(crop):
        raise _err(f"{what} have {x.shape[1]} frames, fewer than one {crop}-frame crop; lower segment_seconds "
                   "or use longer clips (protocol clip_seconds)")
    return x


def crop_starts(n: int, frames: int, crop: int, rng: np.random.Generator) -> np.ndarray:
    """The first frame of one random ``crop``-frame crop of each of ``n`` clips of ``frames`` frames,
    uniform over ``0 .. frames - crop``; the host trainers cut them with :func:`take_crops`, a trainer
    gathering its crops on the accelerator gathers the same starts there."""
    return rng.integers(0, int(frames) - int(crop) + 1, size=int(n))


def take_crops(clips: np.ndarray, starts, crop: int) -> np.ndarray:
    """Clip ``k``'s ``crop`` frames from frame ``starts[k]`` on (NumPy)."""
    starts = np.asarray(starts)
    return clips[np.arange(len(clips))[:, None], starts[:, None] + np.arange(int(crop))[None, :]]


def centre_crop(clips: np.ndarray, crop: int) -> np.ndarray:
    """The middle ``crop`` frames of every clip (validation)."""
    start = (clips.shape[1] - int(crop)) // 2
    return clips[:, start:start + int(crop)]


class ModelCache:
    """Compiled networks reused from one machine type to the next.

    Tracing and compiling a Keras training step takes several seconds on a CPU, far longer than the
    training itself in quick runs. A network of the same architecture and schedule is therefore compiled
    once; for every later machine type its weights are replaced by a fresh random initialisation (a new
    model built under the type's seed, exactly as a new model would start) and the optimizer's state
    (iteration count, moments) is set back to its initial values. The result equals training a new model
    (tested).
    """

    def __init__(self):
        self._models = {}

    def get(self, key, build, compile_fn):
        fresh = build()
        if key not in self._models:
            compile_fn(fresh)
            fresh.optimizer.build(fresh.trainable_variables)
            self._models[key] = (fresh, [np.array(v.numpy()) for v in fresh.optimizer.variables])
            return fresh
        model, initial = self._models[key]
        # every variable, including the random-seed states of the dropout layers (not in get_weights)
        if len(model.variables) != len(fresh.variables):
            raise _err("ModelCache: a rebuilt network has other variables than the cached one")
        for variable, value in zip(model.variables, fresh.variables):
            variable.assign(value)
        for variable, value in zip(model.optimizer.variables, initial):
            variable.assign(value)
        return model


def direct_validation(loss_fn, every: int, epochs: int):
    """A Keras callback computing ``loss_fn()`` by direct model calls (no traced test function to compile)
    every ``every`` epochs (0: never) and after the last; values in ``.values`` and in the epoch logs as
    ``val_loss``. The paper does not say it picked epochs by validation, so the loss is only logged."""
    import keras

    class DirectValidation(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.values = {}

        def on_epoch_end(self, epoch, logs=None):
            if (int(every) > 0 and (epoch + 1) % int(every) == 0) or epoch + 1 == int(epochs):
                self.values[epoch + 1] = float(loss_fn())
                if logs is not None:
                    logs["val_loss"] = self.values[epoch + 1]

    return DirectValidation()


def history_frame(history, validation) -> pd.DataFrame:
    """Keras history as a table: ``epoch``, the training losses, ``val_loss`` (NaN where not computed)."""
    frame = pd.DataFrame({k: v for k, v in history.history.items() if k != "val_loss"})
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    frame["val_loss"] = frame["epoch"].map(validation.values)
    return frame


def standardize_features(features: np.ndarray, std: np.ndarray, mel_config) -> np.ndarray:
    """Features of the clips scaled to unit waveform variance (paper IV-A, "we standardized its amplitude"; in
    place when ``features`` is writable, else into a new array): the mel power scales by ``std ** -power``;
    in dB that is a shift of ``-10 * power * log10(std)``. Exact because the mean (DC) lies outside the
    50-7800 Hz band of both front ends."""
    std = np.where(std > 0, std, 1.0)
    if not features.flags.writeable:
        features = np.array(features)
    if mel_config.log:
        features -= (10.0 * mel_config.power * np.log10(std)).astype(np.float32)[:, None, None]
    else:
        features /= (std ** mel_config.power).astype(np.float32)[:, None, None]
    return features
