"""Encoders phi_z of the BCE + DDCSAD system: log-mel crop [frames, mels] -> embedding z.

* :func:`build_resnet38` — the ResNet38 of PANNs (Kong et al., 2020, ref. [18] of the paper) as the
  feature extractor, followed by global average pooling over time and frequency (Sec. IV-A: "Global
  average pooling, which averages in frequency and time information, was used as the aggregator").
  Randomly initialised: PANNs' AudioSet weights cannot be downloaded here, and the paper does not say it
  used them.
* :func:`build_light_encoder` — a small CNN with the same interface, for ``--quick`` runs on a CPU
  (not in the paper).

Both are functional ``keras.Model`` objects made of stock Keras layers (they save and load as
``.keras`` files) and take ``[batch, frames, mels]`` inputs (a trailing channel axis of 1 is also
accepted).

ResNet38 as built here (PANNs layout, our reading of it)
-------------------------------------------------------
``bn0`` batch normalisation per mel bin -> ConvBlock(1 -> 64) (two 3x3 conv + BN + ReLU, 2x2 average
pool) -> dropout 0.2 -> ResNet basic blocks [3, 4, 6, 3] with 64, 128, 256, 512 channels (the first block
of stages 2-4 downsamples with a 2x2 average pool, the shortcut with average pool + 1x1 conv + BN;
dropout 0.1 inside each block; the last BN of each block starts with gamma = 0, "zero-init residual") ->
2x2 average pool -> dropout 0.2 -> ConvBlock(512 -> 2048) without pooling -> dropout 0.2 -> global
average pooling -> z (2048-d). Convolutions have no bias and Glorot-uniform weights; batch
normalisations use PyTorch's momentum 0.1 (Keras ``momentum=0.9``) and epsilon 1e-5.

Differences from PANNs' ResNet38 (all deliberate):

* PANNs' head is left out: its ``max over time + mean over time`` pooling, ``fc1`` (2048 -> 2048, ReLU)
  and ``fc_audioset`` (2048 -> 527). The paper replaces them by global average pooling and its own
  linear layer (in :class:`ddcsad.model.DDCSADModel`).
* No waveform front end and no SpecAugment: inputs are pre-computed 128-bin log-mels (the paper's
  features) instead of PANNs' 64-bin log-mels, so ``bn0`` has 128 (gamma, beta) pairs, not 64.

Parameter count (:func:`count_parameters`, measured): with 128 mel bins, 68,507,200 trainable parameters
(conv kernels and BN gamma/beta: the figure comparable to a PyTorch parameter count) plus 25,600
non-trainable BN moving statistics (68,532,800 in all). With PANNs' 64 mel bins the trainable count is
68,507,072; adding PANNs' head (fc1 4,196,352 + fc_audioset 1,079,823 = 5,276,175) gives 73,783,247,
PANNs' published "73.7 M" for ResNet38 — a check that the trunk matches.
"""
from __future__ import annotations

import keras
from keras import layers

from asdcore.errors import ASDError

_BN = dict(momentum=0.9, epsilon=1e-5)
RESNET38_LAYERS = (3, 4, 6, 3)
"""Basic blocks per stage of ResNet38 (PANNs)."""
RESNET38_WIDTHS = (64, 128, 256, 512)
"""Channels per stage of ResNet38 (PANNs)."""


def _input(input_shape, min_size: int, who: str):
    """Input layer and a [B, T, F, 1] view of it; checks the shape."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3 and shape[-1] == 1:
        shape2 = shape[:2]
    elif len(shape) == 2:
        shape2 = shape
    else:
        raise ASDError(
            f"ddcsad/backbones.py: {who} wants input_shape (frames, mels) or (frames, mels, 1), got {input_shape}"
        )
    if min(shape2) < min_size:
        raise ASDError(
            f"ddcsad/backbones.py: {who} needs at least {min_size} frames and mel bins, got {shape2}; "
            "use longer crops or more mel bins"
        )
    inp = keras.Input(shape=shape, name="logmel")
    x = inp if len(shape) == 3 else layers.Reshape(shape2 + (1,), name="add_channel")(inp)
    return inp, x


def _conv_bn_relu(x, filters, name, kernel=3):
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn", **_BN)(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _conv_block(x, filters, name, pool=(2, 2)):
    """PANNs ConvBlock: (3x3 conv, BN, ReLU) x 2, then average pooling (none when ``pool`` is None)."""
    x = _conv_bn_relu(x, filters, f"{name}_1")
    x = _conv_bn_relu(x, filters, f"{name}_2")
    if pool is not None:
        x = layers.AveragePooling2D(pool, name=f"{name}_pool")(x)
    return x


def _basic_block(x, planes, stride, name):
    """PANNs _ResnetBasicBlock: downsampling by 2x2 average pooling before the first 3x3 conv."""
    in_planes = x.shape[-1]
    shortcut = x
    out = layers.AveragePooling2D(2, name=f"{name}_pool")(x) if stride == 2 else x
    out = layers.Conv2D(planes, 3, padding="same", use_bias=False, name=f"{name}_conv1")(out)
    out = layers.BatchNormalization(name=f"{name}_bn1", **_BN)(out)
    out = layers.ReLU(name=f"{name}_relu1")(out)
    out = layers.Dropout(0.1, name=f"{name}_drop")(out)
    out = layers.Conv2D(planes, 3, padding="same", use_bias=False, name=f"{name}_conv2")(out)
    out = layers.BatchNormalization(name=f"{name}_bn2", gamma_initializer="zeros", **_BN)(out)
    if stride != 1 or in_planes != planes:
        if stride == 2:
            shortcut = layers.AveragePooling2D(2, name=f"{name}_down_pool")(shortcut)
        shortcut = layers.Conv2D(planes, 1, use_bias=False, name=f"{name}_down_conv")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_down_bn", **_BN)(shortcut)
    out = layers.Add(name=f"{name}_add")([out, shortcut])
    return layers.ReLU(name=f"{name}_relu2")(out)


def build_resnet38(input_shape=(256, 128), name: str = "resnet38") -> keras.Model:
    """PANNs ResNet38 feature extractor + global average pooling: [B, frames, mels] -> z [B, 2048].

    Parameters
    ----------
    input_shape : tuple
        (frames, mels) of one crop, e.g. (256, 128) (Sec. IV-A: 128 log-mel bins, 256-frame crops).
        Both must be at least 32 (the network halves them five times).
    name : str

    Returns
    -------
    keras.Model
        Randomly initialised (no pretrained weights: they cannot be downloaded here).
    """
    inp, x = _input(input_shape, 32, "build_resnet38")
    x = layers.BatchNormalization(axis=2, name="bn0", **_BN)(x)  # per mel bin, like PANNs' bn0
    x = _conv_block(x, 64, "conv_block1", pool=(2, 2))
    x = layers.Dropout(0.2, name="conv_block1_drop")(x)
    for stage, (blocks, planes) in enumerate(zip(RESNET38_LAYERS, RESNET38_WIDTHS), start=1):
        for b in range(blocks):
            stride = 2 if (stage > 1 and b == 0) else 1
            x = _basic_block(x, planes, stride, f"layer{stage}_{b}")
    x = layers.AveragePooling2D(2, name="resnet_pool")(x)
    x = layers.Dropout(0.2, name="resnet_drop")(x)
    x = _conv_block(x, 2048, "conv_block_after1", pool=None)
    x = layers.Dropout(0.2, name="conv_block_after1_drop")(x)
    z = layers.GlobalAveragePooling2D(name="global_average_pooling")(x)
    return keras.Model(inp, z, name=name)


def build_light_encoder(
    input_shape=(256, 128), channels=(16, 32, 64, 128), dropout: float = 0.1, name: str = "light_encoder"
) -> keras.Model:
    """A small CNN encoder for ``--quick`` runs on a CPU (not the paper's network).

    Per-mel-bin batch normalisation of the input (like ResNet38's bn0), then for each entry of
    ``channels`` a 3x3 conv (no bias) + BN + ReLU + 2x2 average pooling, dropout, and global average
    pooling: z has ``channels[-1]`` dimensions. With the defaults and (256, 128) inputs: about 100 k
    parameters.

    Parameters
    ----------
    input_shape : tuple
        (frames, mels); both at least 2 ** len(channels).
    channels : sequence of int
    dropout : float
        Dropout rate before the pooling (0 disables it).
    name : str
    """
    channels = tuple(int(c) for c in channels)
    if not channels:
        raise ASDError("ddcsad/backbones.py: build_light_encoder needs at least one entry in channels")
    inp, x = _input(input_shape, 2 ** len(channels), "build_light_encoder")
    x = layers.BatchNormalization(axis=2, name="bn0", **_BN)(x)
    for i, c in enumerate(channels, start=1):
        x = _conv_bn_relu(x, c, f"block{i}")
        x = layers.AveragePooling2D(2, name=f"block{i}_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="drop")(x)
    z = layers.GlobalAveragePooling2D(name="global_average_pooling")(x)
    return keras.Model(inp, z, name=name)


def count_parameters(model: keras.Model) -> dict:
    """``{"trainable": ..., "non_trainable": ..., "total": ...}`` numbers of scalars of a model."""
    trainable = sum(_size(v) for v in model.trainable_weights)
    non_trainable = sum(_size(v) for v in model.non_trainable_weights)
    return {"trainable": trainable, "non_trainable": non_trainable, "total": trainable + non_trainable}


def _size(v) -> int:
    n = 1
    for s in v.shape:
        n *= int(s)
    return n


__all__ = ["build_resnet38", "build_light_encoder", "count_parameters", "RESNET38_LAYERS", "RESNET38_WIDTHS"]
