"""The discriminative feature extractor f_D (SerialOE) of Fujimura et al., and the SerialOE comparison system.

Paper, section II-B and IV-A. f_D: "EfficientNet B0, global average pooling, and two nonlinear
transformations, and it outputted a 128-dimensional feature"; heads g_mac (target machine vs
pseudo-anomalous sounds of other machine types) and g_id (the sections, one-vs-rest) are linear; the loss
is eq. (3)-(6):

    L = L_machine + lambda_id * L_id,   lambda_id = 5,
    L_machine = 1/M   sum_m       BCE(t_m^mac,   sigma(g_mac(f_D(psi(x_m))))),                   (4)
    L_id      = 1/(MC) sum_m sum_c BCE(t_m,c^id,  sigma(g_id(f_D(psi(x_m))))_c),                 (6)

with BCE(p, q) = -(p log q + (1 - p) log(1 - q)) (eq. 5 is printed without the minus sign). Mixup, AdamW,
the OneCycleLR schedule peaking at 1e-3, 150 epochs, batches of 128 four-second segments, half target
machine and half other machine types. Input: mel spectrogram, 128 ms window, 16 ms hop, 224 bins,
50-7800 Hz. The SerialOE comparison system scores with a GMM on f_D (Table I: clusters and data per type).

Choices where the paper is silent (each an option; the public SerialOE code of Kuroyanagi et al.,
github.com/ibkuroyagi/Serial-OE, is the nearest reference and guided the defaults):

- **Pretrained weights from a file, never downloaded.** The paper's EfficientNet-B0 starts from the
  Noisy Student ImageNet weights ([17]; timm ``tf_efficientnet_b0_ns`` in the public code). Nothing is
  downloaded at run time: ``weights`` names a Keras weights file of ``keras.applications.EfficientNetB0
  (include_top=False)`` (``*.weights.h5``, made once on a machine with internet access, see the docs);
  without it (default) the backbone starts from random weights and every run says so in its outputs.
  Expect lower numbers than the paper's then.
- **Input**: one channel (Keras' EfficientNet accepts it with ``weights=None``; the public code repeats
  the mel spectrogram to three identical channels only to fit the pretrained stem). Keras' EfficientNet
  rescales its input by 1/255 internally; a ``Rescaling(255)`` in front cancels it so that the stem sees
  the features as given, like timm's model, which has no built-in preprocessing. Mel magnitude
  (power 1), no log, HTK mel scale without filter normalisation, as torchaudio's ``MelSpectrogram`` in the
  public code (:meth:`SerialOEConfig.logmel_config`).
- **"Two nonlinear transformations"** = the public code's neck: Dropout(0.3), Dense(128), BatchNorm,
  PReLU, Dense(128) (the embedding, linear).
- **g_mac**: ``mac_head="linear"`` (default, paper: "linear transformations") = Dense(1) on the
  embedding; ``"norm"`` = Dense(1) on the mean squared embedding, as in the public code. g_id: Dense(C)
  without bias (public code).
- **L_id for pseudo-anomalies**: their section target is all zeros (they belong to no section; public
  config ``use_neg_product_as_zero``); eq. (6) is averaged over the whole batch.
- **Mixup** (Zhang et al.): every sample mixed with a random partner of the same batch, lambda ~
  Beta(0.2, 0.2) per sample (public config ``mixup_alpha: 0.2``), inputs and both targets mixed
  linearly. Applied to the mel features (the public code mixes waveforms). Whether a batch is mixed at
  all follows the public trainer (``mixup_schedule="ramp"``): with probability
  ``0.5 (1 - cos(min(pi, 2 pi t / T)))`` at step t of T, rising from 0 to 1 over the first half of
  training, then every batch; ``"always"`` mixes every batch.
- **Neck layers as the public code's framework builds them**: PyTorch's ``PReLU`` starts with slope
  0.25 (Keras' with 0) and its ``BatchNorm1d`` keeps 90 % of the running statistics per step with
  epsilon 1e-5 (Keras: momentum 0.99, epsilon 1e-3); ``prelu_alpha``, ``neck_bn_momentum`` and
  ``neck_bn_epsilon`` take PyTorch's values. EfficientNet-B0's own batch normalisation already matches
  timm's ``tf_efficientnet_b0_ns`` (momentum 0.99, epsilon 1e-3 in Keras terms).
- **AdamW** weight decay 0, as the public SerialOE configuration (``optimizer_params: weight_decay: 0``);
  PyTorch's AdamW default would be 0.01 (this project's default before issue 11).
- **No stochastic depth.** Keras' ``EfficientNetB0`` drops whole residual branches during training
  (``drop_connect_rate`` 0.2, growing with depth); the public code builds the backbone with
  ``timm.create_model(name, pretrained, in_chans)``, whose ``drop_path_rate`` is 0. Default 0 here
  (``drop_connect_rate``; the blocks' drop rates are scaled from Keras' 0.2 schedule).
- **Training** (:func:`train_serial_oe`, the one path the ``smoothing`` command uses): one random 4 s crop
  of every target clip per epoch and of the other types' clips drawn into its batch, then mixup; the
  validation loss (eq. 3 without mixup on centre crops) is computed in batches of ``batch_size``, so a
  24-40 GB GPU holds it. Off TensorFlow, when the clips fit the accelerator (``ASD_DEVICE_DATA``,
  :mod:`asdcore.input_pipeline`), they are copied there once and every batch is gathered and mixed there
  from the same random draws (:meth:`OEBatches.on_device`).
- **OneCycleLR**: see :class:`OneCycleSchedule` (PyTorch defaults, which the authors' PyTorch code most
  likely used). PyTorch also cycles Adam's beta_1 between 0.85 and 0.95 by default; Keras optimizers take
  a fixed beta_1, so that part is not reproduced (beta_1 = 0.9).
"""
from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
from keras import layers, ops

from asdcore.errors import ASDError
from asdcore.fused_batchnorm import FusedBatchNormalization

__all__ = [
    "SerialOEConfig",
    "OneCycleSchedule",
    "SpectrogramToImage",
    "MeanSquare",
    "build_serial_oe",
    "compile_serial_oe",
    "OEBatches",
    "mixup",
    "train_serial_oe",
    "serial_oe_loss",
    "embed",
    "embed_clips",
    "SerialOEScorer",
    "BACKBONES",
]

BACKBONES = ("efficientnet_b0", "light")
#: Where the smoothing command reads SerialOE's clips from (:attr:`SerialOEConfig.input`).
INPUTS = ("store", "waveform")
MIXUP_SCHEDULES = ("ramp", "always")
_PACKAGE = "smoothing"


def _err(message: str) -> ASDError:
    return ASDError(f"smoothing/serial_oe.py: {message}")


@dataclasses.dataclass(frozen=True)
class SerialOEConfig:
    """Features, network and training of f_D; defaults = Fujimura et al. section IV-A.

    Attributes
    ----------
    sr, n_fft, hop_length : int
        16 kHz; 128 ms window (2048) and 16 ms hop (256) (paper IV-A).
    n_mels, fmin, fmax : int, float, float
        224 mel bins in 50-7800 Hz (paper IV-A).
    segment_seconds, n_segments : float, int
        4 s segments; seven per 10 s clip at inference (paper IV-A).
    backbone : {"efficientnet_b0", "light"}
        EfficientNet-B0 (paper) or a small CNN for CPU quick runs.
    embedding_dim : int
        128 (paper IV-A).
    dropout : float
        Before the neck (public SerialOE code: 0.3).
    mac_head : {"linear", "norm"}
        See the module notes.
    lambda_id : float
        5 (paper IV-A).
    mixup_alpha : float
        Beta(alpha, alpha) mixing weights; 0 disables mixup (public SerialOE config: 0.2).
    epochs : int
        150 (paper IV-A).
    batch_size : int
        128 segments, half target machine, half other machine types (paper IV-A).
    max_lr, pct_start, div_factor, final_div_factor : float
        One-cycle schedule peaking at 1e-3 (paper IV-A) with PyTorch's OneCycleLR defaults.
    weight_decay : float
        AdamW decoupled weight decay: 0 (public SerialOE config; not stated in the paper).
    drop_connect_rate : float
        EfficientNet-B0 stochastic depth: 0 (the public code's timm backbone; Keras' default is 0.2).
    weights : str or None
        A Keras weights file of EfficientNet-B0 without its top (ImageNet Noisy Student, as the paper);
        None = random initialisation (labelled in every output). Never downloaded.
    mixup_schedule : {"ramp", "always"}
        Probability that a batch is mixed: rising over the first half of training (public trainer) or 1.
    prelu_alpha, neck_bn_momentum, neck_bn_epsilon : float
        The neck's PReLU initial slope and batch normalisation, PyTorch's defaults (0.25, 0.9, 1e-5).
    input : {"store", "waveform"}
        Where the ``smoothing`` command reads the training and scoring clips from (not a paper setting;
        the same numbers either way): "store" (default) = the memory-mapped feature store, read batch by
        batch; "waveform" = the mel spectrograms computed from the recordings for every batch (no store on
        disk; slower, see README "Running at paper scale").
    """

    sr: int = 16000
    n_fft: int = 2048
    hop_length: int = 256
    n_mels: int = 224
    fmin: float = 50.0
    fmax: float = 7800.0
    segment_seconds: float = 4.0
    n_segments: int = 7
    backbone: str = "efficientnet_b0"
    embedding_dim: int = 128
    dropout: float = 0.3
    mac_head: str = "linear"
    lambda_id: float = 5.0
    mixup_alpha: float = 0.2
    epochs: int = 150
    batch_size: int = 128
    max_lr: float = 1e-3
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    weight_decay: float = 0.0
    drop_connect_rate: float = 0.0
    input: str = "store"
    weights: str | None = None
    mixup_schedule: str = "ramp"
    prelu_alpha: float = 0.25
    neck_bn_momentum: float = 0.9
    neck_bn_epsilon: float = 1e-5

    def __post_init__(self):
        if self.input not in INPUTS:
            raise _err(f"serial_oe input must be one of {INPUTS} (in --config), got {self.input!r}")
        if self.mixup_schedule not in MIXUP_SCHEDULES:
            raise _err(f"serial_oe mixup_schedule must be one of {MIXUP_SCHEDULES}, got {self.mixup_schedule!r}")
        if self.weights is not None:
            import os

            if self.backbone != "efficientnet_b0":
                raise _err("serial_oe weights: a weights file is for the efficientnet_b0 backbone; remove it "
                           "or set backbone: efficientnet_b0")
            if not os.path.isfile(os.path.expanduser(str(self.weights))):
                raise _err(f"serial_oe weights: {self.weights} is not a file; give the path of an EfficientNet-B0 "
                           "weights file (see the docs: how to make one), or remove the key")

    def logmel_config(self):
        """The matching :class:`asdcore.features.LogMelConfig` (applied to each 4 s segment): mel
        magnitude without log, HTK mel scale, no filter normalisation, periodic Hann window, centred
        reflect-padded frames (torchaudio ``MelSpectrogram`` as in the public SerialOE code; its
        ``normalized=True`` only scales every value by one constant, left out)."""
        from asdcore.features import LogMelConfig

        return LogMelConfig(sr=self.sr, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels,
                            fmin=self.fmin, fmax=self.fmax, window="hann", power=1.0, log=False,
                            n_frames=None, mel_norm=None, htk=True)


# --------------------------------------------------------------------------------------------- schedule
@keras.saving.register_keras_serializable(package=_PACKAGE)
class OneCycleSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle learning rate (Smith and Topin 2019), PyTorch ``OneCycleLR`` two-phase shape.

    With ``initial = max_lr / div_factor``, ``final = initial / final_div_factor``,
    ``e1 = pct_start * total_steps - 1`` and ``e2 = total_steps - 1``, the rate at optimizer step ``t``
    (0-based, the number of updates already made) is

    - ``t <= e1``: ``anneal(initial, max_lr, t / e1)`` (warm-up),
    - ``t >  e1``: ``anneal(max_lr, final, (t - e1) / (e2 - e1))`` (annealing),

    with ``anneal(a, b, p) = b + (a - b) / 2 * (1 + cos(pi p))`` ("cos") or ``a + (b - a) p`` ("linear");
    ``t`` is clipped to ``[0, e2]``. Defaults are PyTorch's (pct_start 0.3, div_factor 25,
    final_div_factor 1e4, cosine), so with max_lr = 1e-3 the rate starts at 4e-5, peaks at 1e-3 at step
    0.3 T - 1 and ends at 4e-9 at step T - 1. The paper names OneCycleLR with a learning rate of 0.001 and
    its authors' code is PyTorch, hence these defaults.
    """

    def __init__(self, max_lr, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4,
                 anneal="cos"):
        if not max_lr > 0 or not div_factor > 0 or not final_div_factor > 0:
            raise _err("OneCycleSchedule: max_lr, div_factor and final_div_factor must be > 0")
        if int(total_steps) < 1:
            raise _err(f"OneCycleSchedule: total_steps must be >= 1, got {total_steps}")
        if not 0.0 < pct_start < 1.0:
            raise _err(f"OneCycleSchedule: pct_start must be in (0, 1), got {pct_start}")
        if anneal not in ("cos", "linear"):
            raise _err(f"OneCycleSchedule: anneal must be 'cos' or 'linear', got {anneal!r}")
        self.max_lr = float(max_lr)
        self.total_steps = int(total_steps)
        self.pct_start = float(pct_start)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)
        self.anneal = anneal

    @property
    def initial_lr(self):
        return self.max_lr / self.div_factor

    @property
    def final_lr(self):
        return self.initial_lr / self.final_div_factor

    @property
    def peak_step(self):
        """The (fractional) step where the rate is max_lr: pct_start * total_steps - 1 (at least 0)."""
        return max(self.pct_start * self.total_steps - 1.0, 0.0)

    def _anneal(self, start, end, pct):
        if self.anneal == "cos":
            # the same as end + (start - end) (1 + cos(pi p)) / 2, written as a convex combination with
            # weights cos^2(pi p / 2) and sin^2(pi p / 2): no cancellation in float32 at either end
            half = 0.5 * math.pi * pct
            return start * ops.square(ops.cos(half)) + end * ops.square(ops.sin(half))
        return start + (end - start) * pct

    def __call__(self, step):
        e1 = self.peak_step
        e2 = float(self.total_steps - 1)
        t = ops.clip(ops.cast(step, "float32"), 0.0, e2)
        up = self._anneal(self.initial_lr, self.max_lr, t / max(e1, 1e-12))
        down = self._anneal(self.max_lr, self.final_lr, (t - e1) / max(e2 - e1, 1e-12))
        return ops.where(t <= e1, up, down)

    def get_config(self):
        return {"max_lr": self.max_lr, "total_steps": self.total_steps, "pct_start": self.pct_start,
                "div_factor": self.div_factor, "final_div_factor": self.final_div_factor, "anneal": self.anneal}


# ------------------------------------------------------------------------------------------------ layers
@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpectrogramToImage(layers.Layer):
    """(batch, frames, bins) -> (batch, bins, frames, channels): mel bins as image rows, frames as columns,
    the single spectrogram repeated ``channels`` times (1 by default)."""

    def __init__(self, channels=1, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)

    def call(self, inputs):
        x = ops.expand_dims(ops.transpose(inputs, (0, 2, 1)), -1)
        if self.channels > 1:
            x = ops.repeat(x, self.channels, axis=-1)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2], input_shape[1], self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MeanSquare(layers.Layer):
    """(batch, dim) -> (batch, 1): mean of the squared entries (the public SerialOE code's g_mac input)."""

    def call(self, inputs):
        return ops.mean(ops.square(inputs), axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


def _light_backbone(x):
    """A small CNN for CPU quick runs: four Conv3x3-BN-ReLU-MaxPool2 blocks (16-32-64-128 filters) and
    global average pooling. Not in the paper. Batch normalisation by TensorFlow's fused kernel
    (:class:`asdcore.fused_batchnorm.FusedBatchNormalization`: Keras' layer, fewer saved tensors; issue 13)."""
    for i, filters in enumerate((16, 32, 64, 128)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"light_conv{i}")(x)
        x = FusedBatchNormalization(name=f"light_bn{i}")(x)
        x = layers.Activation("relu", name=f"light_relu{i}")(x)
        x = layers.MaxPooling2D(2, padding="same", name=f"light_pool{i}")(x)
    return layers.GlobalAveragePooling2D(name="global_pool")(x)


#: Keras' EfficientNet-B0 stochastic-depth rate (``drop_connect_rate`` of ``EfficientNet``).
_KERAS_DROP_CONNECT = 0.2


def _set_drop_connect(net, rate):
    """Set EfficientNet's stochastic depth to ``rate``: each block's drop layer (``block*_drop``, a Dropout
    with noise shape (batch, 1, 1, 1)) keeps its depth-proportional share of the schedule, scaled from
    Keras' fixed 0.2 to ``rate`` (0 = none, as timm's default in the public SerialOE code)."""
    if not 0.0 <= float(rate) < 1.0:
        raise _err(f"drop_connect_rate must lie in [0, 1), got {rate}")
    for layer in net.layers:
        if isinstance(layer, layers.Dropout) and layer.name.startswith("block") and layer.name.endswith("_drop"):
            layer.rate = float(layer.rate) * float(rate) / _KERAS_DROP_CONNECT


def build_serial_oe(n_sections, input_shape, backbone="efficientnet_b0", embedding_dim=128, dropout=0.3,
                    mac_head="linear", channels=1, drop_connect_rate=0.0, weights=None, prelu_alpha=0.25,
                    neck_bn_momentum=0.9, neck_bn_epsilon=1e-5):
    """f_D with its heads g_mac and g_id.

    Parameters
    ----------
    n_sections : int
        C of eq. (6): sections of the target machine type (DCASE 2021: 6, or 3 on one part).
    input_shape : tuple (frames, bins)
        One 4 s segment of mel features in the project's layout (e.g. (251, 224)).
    backbone : {"efficientnet_b0", "light"}
        ``keras.applications.EfficientNetB0(include_top=False, weights=None, pooling="avg")`` (no
        pretrained weights can be downloaded), or the small CNN of :func:`_light_backbone`.
    embedding_dim, dropout, mac_head, channels, drop_connect_rate, prelu_alpha, neck_bn_momentum,
    neck_bn_epsilon :
        See :class:`SerialOEConfig` and :class:`SpectrogramToImage`.
    weights : str, optional
        A Keras weights file of ``EfficientNetB0(include_top=False)`` loaded into the backbone (three input
        channels: the spectrogram is repeated, as the public code does for its pretrained stem).

    Returns
    -------
    keras.Model (uncompiled): input (batch, frames, bins); outputs ``{"mac": (batch, 1), "id": (batch, C)}``
    (logits). The embedding f_D is the output of the layer named "embedding" (see :func:`embed`).
    """
    if backbone not in BACKBONES:
        raise _err(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    if mac_head not in ("linear", "norm"):
        raise _err(f"mac_head must be 'linear' or 'norm', got {mac_head!r}")
    if int(n_sections) < 1:
        raise _err(f"n_sections must be >= 1, got {n_sections}")
    if len(tuple(input_shape)) != 2:
        raise _err(f"input_shape must be (frames, bins), got {input_shape}")
    frames, bins = tuple(input_shape)

    if weights is not None:
        channels = 3
    inputs = keras.Input(shape=(frames, bins), name="mel")
    x = SpectrogramToImage(channels=channels, name="to_image")(inputs)
    if backbone == "efficientnet_b0":
        x = layers.Rescaling(255.0, name="cancel_keras_rescaling")(x)
        net = keras.applications.EfficientNetB0(include_top=False, weights=None,
                                                input_shape=(bins, frames, channels), pooling="avg")
        if weights is not None:
            try:
                net.load_weights(str(weights))
            except (ValueError, OSError, KeyError) as error:
                raise _err(f"serial_oe weights: {weights} does not hold the weights of Keras' EfficientNetB0 "
                           f"without its top ({str(error).splitlines()[0][:120]}); make the file as the docs "
                           "say") from None
        _set_drop_connect(net, drop_connect_rate)
        x = net(x)
    else:
        x = _light_backbone(x)
    x = layers.Dropout(dropout, name="neck_dropout")(x)
    x = layers.Dense(embedding_dim, name="neck_dense")(x)
    x = layers.BatchNormalization(momentum=neck_bn_momentum, epsilon=neck_bn_epsilon, name="neck_bn")(x)
    x = layers.PReLU(alpha_initializer=keras.initializers.Constant(prelu_alpha), name="neck_prelu")(x)
    # the embedding f_D (handed to the back-ends), the heads g_mac / g_id and with them the losses stay
    # float32 under a mixed precision policy (--precision); the backbone and the neck compute in 16 bits
    emb = layers.Dense(embedding_dim, name="embedding", dtype="float32")(x)
    mac_in = MeanSquare(name="mean_square", dtype="float32")(emb) if mac_head == "norm" else emb
    mac = layers.Dense(1, name="g_mac", dtype="float32")(mac_in)
    ident = layers.Dense(int(n_sections), use_bias=False, name="g_id", dtype="float32")(emb)
    return keras.Model(inputs, {"mac": mac, "id": ident}, name=f"serial_oe_{backbone}")


def compile_serial_oe(model, total_steps, config: SerialOEConfig = SerialOEConfig()):
    """Compile with eq. (3): BCE(mac) + lambda_id * BCE(id) on logits, AdamW with the one-cycle schedule.

    ``total_steps`` = epochs x batches per epoch (the schedule's length).
    """
    schedule = OneCycleSchedule(config.max_lr, total_steps, pct_start=config.pct_start,
                                div_factor=config.div_factor, final_div_factor=config.final_div_factor)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay),
        loss={"mac": keras.losses.BinaryCrossentropy(from_logits=True),
              "id": keras.losses.BinaryCrossentropy(from_logits=True)},
        loss_weights={"mac": 1.0, "id": float(config.lambda_id)},
    )
    return model


# -------------------------------------------------------------------------------------------------- data
class OEBatches(keras.utils.PyDataset):
    """Outlier-exposure batches: half target-machine segments (t_mac = 1, one-hot section), half segments
    of other machine types (t_mac = 0, all-zero section target), then mixup.

    An epoch visits every target segment once (shuffled); the other half of each batch is drawn at random
    from the other machine types (without replacement within a batch).

    Parameters
    ----------
    x_target : array [n_t, frames, bins] or asdcore.clip_sources.ClipSource
        An array is used as it is (a float32 memory map is not copied); a clip source (the memory-mapped
        feature store, or mel spectrograms computed from the recordings) is read batch by batch, so only
        the clips of one batch are in memory.
    sections : int array [n_t], values in [0, n_sections)
    x_other : array [n_o, frames, bins] or ClipSource
    n_sections : int
    batch_size : int
        Total per batch; ``batch_size // 2`` target segments (the last batch of an epoch may hold fewer)
        and as many others.
    mixup_alpha : float
        0 disables mixup (validation).
    shuffle : bool, seed : int
    crop : int, optional
        When given, the arrays hold whole clips and every sample of a batch is one random crop of ``crop``
        frames of its clip (a new crop every time; paper IV-A: batches of 4 s segments), taken before
        mixup.
    mixup_schedule : {"always", "ramp"}, epochs : int
        "ramp": batch ``i`` of epoch ``e`` (step ``t = e * len(self) + i`` of ``T = epochs * len(self)``) is
        mixed with probability ``0.5 (1 - cos(min(pi, 2 pi t / T)))`` (the public SerialOE trainer);
        "always": every batch.

    Every random choice is drawn on the host (:meth:`draw`); after :meth:`on_device` the batch is gathered
    from a copy of the clips on the accelerator (a device tensor), otherwise read from the sources (NumPy).
    Both give the same batch.
    """

    def __init__(self, x_target, sections, x_other, n_sections, batch_size=128, mixup_alpha=0.2,
                 shuffle=True, seed=0, crop=None, mixup_schedule="always", epochs=1, **kwargs):
        super().__init__(**kwargs)
        from asdcore.clip_sources import as_clip_source

        self.x_target = as_clip_source(x_target)
        self.x_other = as_clip_source(x_other)
        if crop is not None:
            from smoothing.training import check_clips

            check_clips(self.x_target, crop, "SerialOE target clips")
            check_clips(self.x_other, crop, "SerialOE clips of the other machine types")
        self.crop = None if crop is None else int(crop)
        sections = np.asarray(sections)
        if self.x_target.ndim != 3 or self.x_other.ndim != 3 or self.x_target.shape[1:] != self.x_other.shape[1:]:
            raise _err(f"x_target and x_other must be [n, frames, bins] with equal frames and bins, got "
                       f"{self.x_target.shape} and {self.x_other.shape}")
        if len(self.x_target) == 0 or len(self.x_other) == 0:
            raise _err("SerialOE training needs segments of the target machine type and of other machine types")
        if sections.shape != (len(self.x_target),) or not np.issubdtype(sections.dtype, np.integer):
            raise _err(f"sections must be integer section indices, one per target segment ({len(self.x_target)})")
        if sections.min() < 0 or sections.max() >= int(n_sections):
            raise _err(f"section indices must lie in [0, {n_sections}); map section names to indices first")
        if int(batch_size) < 2:
            raise _err(f"batch_size must be >= 2 (half target, half other), got {batch_size}")
        self.n_sections = int(n_sections)
        self.sections = sections.astype(np.int64)
        self.half = int(batch_size) // 2
        self.mixup_alpha = float(mixup_alpha)
        if mixup_schedule not in MIXUP_SCHEDULES:
            raise _err(f"mixup_schedule must be one of {MIXUP_SCHEDULES}, got {mixup_schedule!r}")
        self.mixup_schedule = mixup_schedule
        self.epochs = max(1, int(epochs))
        self.epoch = 0
        self.shuffle = shuffle
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(self.x_target))
        if shuffle:
            self._rng.shuffle(self._order)
        self.device = None  # (DeviceFeatures, positions of the target and other clips) after on_device()

    def __len__(self):
        return int(np.ceil(len(self.x_target) / self.half))

    def on_device(self) -> bool:
        """Copy the target and other clips onto the accelerator once when ``ASD_DEVICE_DATA`` says so
        (:func:`asdcore.input_pipeline.place_clips`: one copy of the union of their store rows, shared with
        the next machine type); every later batch is then gathered and mixed there, from the same random
        draws (:meth:`draw`). Returns whether they were placed."""
        from asdcore.input_pipeline import place_clips

        self.device = place_clips([self.x_target, self.x_other], what="SerialOE training features")
        return self.device is not None

    def draw(self, index):
        """The random choices of batch ``index``: ``(target positions, other positions, crop starts or None,
        (lambda, partner) or None)``, drawn from the batch generator in this order (other clips, crop starts,
        whether to mix, the mixing weights, the partners), whichever path then gathers the batch."""
        rows = self._order[index * self.half:(index + 1) * self.half]
        # A fixed per-batch generator when not shuffling keeps validation batches identical every epoch.
        rng = self._rng if self.shuffle else np.random.default_rng((self.seed, index))
        n_other = min(len(rows), len(self.x_other))
        other = rng.choice(len(self.x_other), size=n_other, replace=False)
        n = len(rows) + n_other
        starts = None
        if self.crop is not None:
            from smoothing.training import crop_starts

            starts = crop_starts(n, self.x_target.shape[1], self.crop, rng)
        mix = None
        if self.mixup_alpha > 0 and rng.random() < self.mixup_probability(index):
            lam = rng.beta(self.mixup_alpha, self.mixup_alpha, size=n).astype(np.float32)
            mix = (lam, rng.permutation(n))
        return rows, other, starts, mix

    def __getitem__(self, index):
        rows, other, starts, mix = self.draw(index)
        if self.device is not None:  # gathered on the accelerator (one gather of frames or clips)
            device, (target_positions, other_positions) = self.device
            positions = np.concatenate([target_positions[rows], other_positions[other]])
            x = device.take(positions) if starts is None else device.crops(positions, starts, self.crop)
        else:
            x = np.concatenate([self.x_target.read(rows), self.x_other.read(other)])
            if starts is not None:
                from smoothing.training import take_crops

                x = take_crops(x, starts, self.crop)
        t_mac = np.concatenate([np.ones(len(rows)), np.zeros(len(other))])[:, None].astype(np.float32)
        t_id = np.zeros((len(t_mac), self.n_sections), dtype=np.float32)
        t_id[np.arange(len(rows)), self.sections[rows]] = 1.0
        if mix is not None:
            lam, partner = mix
            x = mixup(x, lam, partner)
            t_mac = lam[:, None] * t_mac + (1 - lam[:, None]) * t_mac[partner]
            t_id = lam[:, None] * t_id + (1 - lam[:, None]) * t_id[partner]
        return x, {"mac": t_mac, "id": t_id}

    def mixup_probability(self, index) -> float:
        """Probability that batch ``index`` of the current epoch is mixed (class docstring)."""
        if self.mixup_schedule == "always":
            return 1.0
        step, total = self.epoch * len(self) + int(index), self.epochs * len(self)
        return 0.5 * (1.0 - math.cos(min(math.pi, 2.0 * math.pi * step / total)))

    def on_epoch_end(self):
        self.epoch += 1
        if self.shuffle:
            self._rng.shuffle(self._order)


def mixup(x, lam, partner):
    """Mixup of a batch (Zhang et al.): sample ``k`` becomes ``lam[k] x[k] + (1 - lam[k]) x[partner[k]]``, in
    float32; ``x`` a NumPy array or a tensor on the accelerator (the same arithmetic there)."""
    w = np.asarray(lam, np.float32)[:, None, None]
    if isinstance(x, np.ndarray):
        return w * x + (1 - w) * x[partner]
    other = ops.take(x, ops.convert_to_tensor(np.asarray(partner, np.int32)), axis=0)
    return ops.convert_to_tensor(w) * x + ops.convert_to_tensor(1 - w) * other


def serial_oe_loss(model, x, t_mac, t_id, lambda_id=5.0, batch_size=128) -> float:
    """Eq. (3) of ``x`` against the targets, in inference mode, computed in batches of ``batch_size``
    (whole-set calls would send every validation crop through EfficientNet-B0 at once).

    Per batch the logits are converted to NumPy; the means of eq. (4) and (6) are taken over all samples.
    """
    x = np.asarray(x, dtype=np.float32)
    mac = np.concatenate([keras.ops.convert_to_numpy(model(x[i:i + batch_size], training=False)["mac"])
                          for i in range(0, len(x), int(batch_size))]).astype(np.float64)
    ident = np.concatenate([keras.ops.convert_to_numpy(model(x[i:i + batch_size], training=False)["id"])
                            for i in range(0, len(x), int(batch_size))]).astype(np.float64)
    return _bce_logits(np.asarray(t_mac, np.float64), mac) + float(lambda_id) * _bce_logits(
        np.asarray(t_id, np.float64), ident)


def _bce_logits(target, logits) -> float:
    """Mean binary cross-entropy on logits (eq. 5 with the sign of a loss), numerically stable."""
    return float(np.mean(np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))))


def train_serial_oe(x_target, sections, x_other, n_sections, config: SerialOEConfig = SerialOEConfig(),
                    val=None, seed=0, validate_every=0, jit_compile="auto", cache=None, verbose=0,
                    folder=None):
    """Train f_D of one machine type with eq. (3), the other machine types as pseudo-anomalies (paper IV-A).

    Parameters
    ----------
    x_target : array [clips, frames, bins] or asdcore.clip_sources.ClipSource
        Mel features of the target type's training clips (85 % of the source clips, two target clips);
        a clip source is read batch by batch (see :class:`OEBatches`).
    sections : int array [clips]
        Section index of each target clip.
    x_other : array [clips, frames, bins] or ClipSource
        Training clips of the other machine types.
    n_sections : int
    config : SerialOEConfig
    val : tuple (x_target, sections, x_other), optional
        Arrays or clip sources; their centre crops are read in chunks and kept (40 % of the clips' size).
        Validation clips: eq. (3) on their centre crops, without mixup, with as many clips of other types
        (drawn with ``seed``) as target clips; logged as ``val_loss``.
    seed : int
        Seeds Keras (initial weights), the batches, crops and mixup.
    validate_every : int
        Epochs between validation losses (0: after the last epoch only).
    jit_compile : "auto" or bool
    cache : smoothing.training.ModelCache, optional
        Reuse a compiled network of the same configuration and schedule (re-initialised under ``seed``).
    folder : path, optional
        The unit folder: ``training_log.csv`` and ``tensorboard/`` (:func:`asdcore.keras_utils.training_callbacks`).

    Returns
    -------
    (model, history DataFrame with ``epoch``, the losses, ``val_loss``)
    """
    from asdcore.keras_utils import training_callbacks
    from smoothing.training import ModelCache, crop_frames, direct_validation, history_frame

    crop = crop_frames(config.segment_seconds, config.sr, config.hop_length)
    keras.utils.set_random_seed(int(seed))
    batches = OEBatches(x_target, sections, x_other, n_sections, config.batch_size, config.mixup_alpha,
                        shuffle=True, seed=int(seed), crop=crop, mixup_schedule=config.mixup_schedule,
                        epochs=config.epochs)
    batches.on_device()  # the clips on the accelerator when they fit (ASD_DEVICE_DATA; never on TensorFlow)
    total_steps = config.epochs * len(batches)
    bins = batches.x_target.shape[2]

    def build():
        return build_serial_oe(n_sections, (crop, bins), backbone=config.backbone,
                               embedding_dim=config.embedding_dim, dropout=config.dropout,
                               mac_head=config.mac_head, drop_connect_rate=config.drop_connect_rate,
                               weights=config.weights, prelu_alpha=config.prelu_alpha,
                               neck_bn_momentum=config.neck_bn_momentum, neck_bn_epsilon=config.neck_bn_epsilon)

    def compile_fn(model):
        compile_serial_oe(model, total_steps, config)  # the one-cycle schedule spans this many steps
        if not jit_compile:
            model.jit_compile = False

    key = ("serial_oe", config, int(n_sections), bins, total_steps, jit_compile)
    model = (cache or ModelCache()).get(key, build, compile_fn)
    loss_fn = lambda: np.nan  # noqa: E731
    if val is not None and len(val[0]) and len(val[2]):
        from asdcore.clip_sources import as_clip_source

        val_target, val_other = as_clip_source(val[0]), as_clip_source(val[2])
        val_sections = np.asarray(val[1])
        rng = np.random.default_rng(int(seed))
        n_other = min(len(val_other), len(val_target))
        other = np.sort(rng.choice(len(val_other), n_other, replace=False))
        x = np.concatenate([_centre_crops(val_target, np.arange(len(val_target)), crop),
                            _centre_crops(val_other, other, crop)])
        t_mac = np.r_[np.ones(len(val_target)), np.zeros(n_other)][:, None]
        t_id = np.zeros((len(x), int(n_sections)))
        t_id[np.arange(len(val_target)), val_sections] = 1.0

        def loss_fn():
            return serial_oe_loss(model, x, t_mac, t_id, config.lambda_id, config.batch_size)

    validation = direct_validation(loss_fn, validate_every, config.epochs)
    callbacks = training_callbacks(folder, extra=[validation])  # CSV log, TensorBoard, lr, progress
    history = model.fit(batches, epochs=config.epochs, callbacks=callbacks, verbose=verbose)
    return model, history_frame(history, validation)


def _centre_crops(clips, positions, crop, chunk=256) -> np.ndarray:
    """The centre crop of the clips at ``positions`` of ``clips`` (a clip source), read ``chunk`` at a time."""
    from smoothing.training import centre_crop

    parts = [centre_crop(clips.read(positions[s:s + chunk]), crop) for s in range(0, len(positions), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, crop) + tuple(clips.shape[2:]), np.float32)


def embed(model, x, batch_size=64):
    """f_D: the 128-dimensional embedding of each segment.

    ``x``: [n, frames, bins] -> [n, dim]; or [clips, segments, frames, bins] -> [clips, segments, dim].
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (3, 4):
        raise _err(f"embed expects [n, frames, bins] or [clips, segments, frames, bins], got {x.shape}")
    lead = x.shape[:-2]
    extractor = keras.Model(model.input, model.get_layer("embedding").output)
    flat = x.reshape((-1,) + x.shape[-2:])
    if len(flat) == 0:
        raise _err("embed got no segments; pass at least one [frames, bins] segment")
    # Direct calls in inference mode (dropout off, BatchNorm moving statistics), batch by batch.
    out = np.concatenate([keras.ops.convert_to_numpy(extractor(flat[i:i + batch_size], training=False))
                          for i in range(0, len(flat), batch_size)])
    return out.reshape(lead + (out.shape[-1],))


# ------------------------------------------------------------------------------------- SerialOE scoring
class SerialOEScorer:
    """The SerialOE comparison system: a GMM h on f_D of the normal training segments; anomaly score =
    negative log-likelihood (paper II-B), averaged over a clip's segments (IV-A).

    Parameters
    ----------
    n_components : int
        GMM clusters (Table I: 2-32 per machine type).
    covariance_type : str
        "full" (not stated in the paper; scikit-learn's default).
    reg_covar : float
        scikit-learn's default 1e-6 (not stated in the paper).
    normalize : bool
        L2-normalise embeddings first (default False: the paper fits h on f_D itself).
    random_state : int

    Notes
    -----
    Built on :class:`asdcore.backends.GMMBackend` with ``score="loglik"`` (weighted mixture likelihood).
    Which training clips (source only or all, Table I) is the caller's choice.
    """

    def __init__(self, n_components=1, covariance_type="full", reg_covar=1e-6, normalize=False, random_state=0):
        from asdcore.backends import GMMBackend

        self.backend = GMMBackend(n_components=n_components, covariance_type=covariance_type,
                                  reg_covar=reg_covar, score="loglik", normalize=normalize,
                                  random_state=random_state)

    def fit(self, embeddings):
        """Fit on training embeddings [n, dim] or [clips, segments, dim] (all segments pooled)."""
        e = np.asarray(embeddings, dtype=np.float64)
        if e.ndim not in (2, 3):
            raise _err(f"training embeddings must be [n, dim] or [clips, segments, dim], got {e.shape}")
        self.backend.fit(e.reshape(-1, e.shape[-1]))
        return self

    def score(self, embeddings):
        """Scores: [clips, dim] -> (clips,); [clips, segments, dim] -> mean over segments, (clips,)."""
        e = np.asarray(embeddings, dtype=np.float64)
        if e.ndim not in (2, 3):
            raise _err(f"test embeddings must be [clips, dim] or [clips, segments, dim], got {e.shape}")
        s = self.backend.score(e.reshape(-1, e.shape[-1]))
        return s.reshape(e.shape[:-1]).mean(axis=1) if e.ndim == 3 else s


def embed_clips(model, clips, config: SerialOEConfig, chunk: int = 64, batch_size: int = 64) -> np.ndarray:
    """f_D of every evenly spaced 4 s crop of every clip: ``(clips, n_segments, embedding_dim)``.

    ``clips``: an array or a :class:`asdcore.clip_sources.ClipSource`, read ``chunk`` clips at a time;
    ``batch_size`` crops per forward pass (64: the activations of 256 crops of 251 x 224 took ~5 GB on a
    CPU)."""
    from asdcore.features import crops
    from smoothing.training import crop_frames

    crop = crop_frames(config.segment_seconds, config.sr, config.hop_length)
    return np.concatenate([embed(model, crops(clips[s:s + chunk], config.n_segments, crop), batch_size=batch_size)
                           for s in range(0, len(clips), chunk)])


def _serial_oe_grid(table, emb, fit, test, protocol, seed, log) -> tuple[dict, list]:
    """SerialOE scores of every test clip for every (data, clusters): a GMM per section on f_D of the
    section's training clips (all their 4 s crops)."""
    from asdcore.selection import unit_keys

    source = (table["domain"] == "source").to_numpy()
    keys = unit_keys(table)
    smallest = min(int((fit & (keys == key) & (source if data == "source" else True)).sum())
                   for key in np.unique(keys[test]) for data in protocol.gmm_datas) * emb.shape[1]
    clusters = [int(c) for c in protocol.gmm_clusters if int(c) <= smallest]
    if not clusters:
        raise ASDError(f"SerialOE's GMM: a section has only {smallest} training crops, fewer than "
                       f"{min(protocol.gmm_clusters)} clusters; lower gmm_clusters in --config")
    if len(clusters) < len(protocol.gmm_clusters):
        log.warning("GMM clusters %s dropped: a section has only %d training crops",
                    [c for c in protocol.gmm_clusters if int(c) > smallest], smallest)
    grid = {(data, c): np.full(len(table), np.nan) for data in protocol.gmm_datas for c in clusters}
    from asdcore.backends import fit_progress

    for key in fit_progress(np.unique(keys[test]), "SerialOE GMMs"):
        rows = test & (keys == key)
        for data in protocol.gmm_datas:
            train = fit & (keys == key) & (source if data == "source" else True)
            for c in clusters:
                scorer = SerialOEScorer(n_components=c, covariance_type=protocol.gmm_covariance,
                                        reg_covar=protocol.gmm_reg_covar, random_state=seed)
                grid[(data, c)][rows] = scorer.fit(emb[train]).score(emb[rows])
    return grid, clusters
