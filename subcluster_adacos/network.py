"""The modified ResNet of paper Table I and the training model around it (Wilkinghoff, 2021, Sec. IV-B).

Layout (public-code details restated in REFERENCE.md Sec. 4); output sizes for a 313 x 128 log-mel input:

=====================  ===========================================================  ==============
block                  layers                                                       output
=====================  ===========================================================  ==============
input                  log-mel (time, mel), a channel axis is added                 313 x 128
stem                   Conv 7x7/2 'same' (16) -> LeakyReLU(0.1) -> BN               157 x 64 x 16
                       MaxPool 3x3/2 'valid'                                        78 x 31 x 16
stage 1                2 residual units, 16 filters                                 78 x 31 x 16
stage 2                down-sampling unit + plain unit, 32 filters                  39 x 16 x 32
stage 3                down-sampling unit + plain unit, 64 filters                  20 x 8 x 64
stage 4                down-sampling unit + plain unit, 128 filters                 10 x 4 x 128
max pooling            MaxPool (10 x 1) 'same'                                      1 x 4 x 128
flatten                                                                             512
dense (representation) Dense 128, linear = the embedding                            128
head                   sub-cluster AdaCos / AdaCos / softmax                        41
=====================  ===========================================================  ==============

A residual unit is pre-activation: ``r = conv3x3(BN(LeakyReLU(conv3x3(LeakyReLU(x)))))``; the output
is ``BN(shortcut(x) + r)``. In a down-sampling unit the first 3x3 conv has stride 2 and the shortcut is
MaxPool 2x2 'same' followed by a 1x1 conv; in a plain unit the shortcut is the identity. Every conv
(including the 1x1 shortcut convs) and the embedding kernel carry an L2 penalty (1e-5 by default,
Keras' ``L2(l) = l * sum(w**2)``); BatchNormalization uses Keras defaults (momentum 0.99, eps 1e-3), computed by
TensorFlow's fused kernel (:class:`~subcluster_adacos.layers.FusedBatchNormalization`, a speed change only).

Parameter count (measured by ``tests/subcluster_adacos/test_network.py``, C = 41 classes)
------------------------------------------------------------------------------------------
* Embedding network: 768,896 weights in all, of which 1,952 are BatchNormalization moving means and
  variances (non-trainable), i.e. 766,944 trainable.
* S = 1: + 128 * 41 = 5,248 centres -> **772,192 trainable**, exactly the paper's number; 774,144 weights
  with the BN statistics, 774,145 with the non-trainable scale.
* S = 64: + 128 * 41 * 64 = 335,872 centres -> **1,102,816 trainable**, exactly the paper's number
  (1,104,769 weights in all).

So the paper counts trainable parameters only; the only "difference" is the 1,952 BN moving statistics
and the scalar scale, which are not trainable. The count holds for the 313-frame input only: the
flatten size, hence the embedding kernel, follows the input length (``input_shape``), e.g. for crops.

Training model
--------------
:func:`build_training_model` takes ``[features, labels]`` and outputs the class probabilities. Mixup is
applied inside the model to the features and the labels (training only, as in the public code), and
the categorical cross-entropy against the mixed labels (optionally class-weighted by the unmixed label)
is attached by a :class:`~subcluster_adacos.layers.SoftTargetCrossEntropy` layer. Compile it with an
optimizer and no loss, and fit on ``[features, one_hot_labels]`` (no ``y`` needed)::

    model = build_training_model(41, 16, class_weights=weights)
    model.compile(optimizer=keras.optimizers.Adam())
    model.fit([x, y_onehot], batch_size=64, epochs=400)
    embed = embedding_model(model)          # the shared embedding network, features -> 128-d
"""

import keras
from keras import layers

from asdcore.errors import ASDError
from subcluster_adacos.layers import AdaCos, FusedBatchNormalization, Mixup, SoftTargetCrossEntropy, SubClusterAdaCos

__all__ = [
    "build_embedding_model",
    "build_training_model",
    "build_multi_head_training_model",
    "embedding_model",
    "head_layer",
    "head_names",
    "SplitColumns",
    "LOSSES",
]

LOSSES = ("subcluster_adacos", "adacos", "softmax")

EMBEDDING_MODEL_NAME = "embedding_model"
HEAD_NAME = "head"


def _conv(filters, kernel, strides, l2, name):
    return layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
        name=name,
    )


def _residual_unit(x, filters, downsample, l2, name):
    """Pre-activation residual unit (see the module docstring); returns its output tensor."""
    r = layers.LeakyReLU(negative_slope=0.1, name=f"{name}_act1")(x)
    r = _conv(filters, 3, 2 if downsample else 1, l2, f"{name}_conv1")(r)
    r = layers.LeakyReLU(negative_slope=0.1, name=f"{name}_act2")(r)
    r = FusedBatchNormalization(name=f"{name}_bn1")(r)
    r = _conv(filters, 3, 1, l2, f"{name}_conv2")(r)
    if downsample:
        x = layers.MaxPooling2D((2, 2), padding="same", name=f"{name}_shortcut_pool")(x)
        x = _conv(filters, 1, 1, l2, f"{name}_shortcut_conv")(x)
    x = layers.Add(name=f"{name}_add")([x, r])
    return FusedBatchNormalization(name=f"{name}_out")(x)


def build_embedding_model(input_shape=(313, 128), embedding_dim=128, l2=1e-5, name=EMBEDDING_MODEL_NAME):
    """Modified ResNet of paper Table I: log-mel features -> linear embedding.

    Parameters
    ----------
    input_shape : tuple, default (313, 128)
        ``(frames, mel_bins)`` (a channel axis is added) or ``(frames, mel_bins, 1)``. The number of frames
        is a parameter so that crops can be used; it must be static.
    embedding_dim : int, default 128
    l2 : float, default 1e-5
        L2 factor on every conv kernel and on the embedding kernel (0 disables it).
    name : str

    Returns
    -------
    keras.Model
        Input ``features`` of shape (batch, *input_shape), output ``embedding`` (batch, embedding_dim).
        Stage outputs are the layers ``stem_conv``, ``stem_pool``, ``stage1_unit2_out``,
        ``stage2_unit2_out``, ``stage3_unit2_out``, ``stage4_unit2_out``, ``time_pool``, ``flatten``.
    """
    input_shape = tuple(int(d) if d is not None else None for d in input_shape)
    if len(input_shape) not in (2, 3) or any(d is None or d < 1 for d in input_shape) or (
        len(input_shape) == 3 and input_shape[2] != 1
    ):
        raise ASDError(
            f"subcluster_adacos/network.py: input_shape must be (frames, mel_bins) or (frames, mel_bins, 1) "
            f"with static sizes, got {input_shape}; e.g. (313, 128)"
        )
    features = keras.Input(shape=input_shape, name="features")
    x = features
    if len(input_shape) == 2:
        x = layers.Reshape(input_shape + (1,), name="add_channel")(x)
    x = _conv(16, 7, 2, l2, "stem_conv")(x)
    x = layers.LeakyReLU(negative_slope=0.1, name="stem_act")(x)
    x = FusedBatchNormalization(name="stem_bn")(x)
    x = layers.MaxPooling2D((3, 3), strides=2, padding="valid", name="stem_pool")(x)
    for stage, filters in enumerate((16, 32, 64, 128), start=1):
        for unit in (1, 2):
            x = _residual_unit(x, filters, downsample=(stage > 1 and unit == 1), l2=l2,
                               name=f"stage{stage}_unit{unit}")
    x = layers.MaxPooling2D((10, 1), padding="same", name="time_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    embedding = layers.Dense(
        embedding_dim,
        activation=None,
        kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
        name="embedding",
    )(x)
    return keras.Model(features, embedding, name=name)


def build_training_model(
    n_classes,
    n_subclusters=1,
    loss="subcluster_adacos",
    mixup=True,
    angle_mode="reference",
    input_shape=(313, 128),
    embedding_dim=128,
    l2=1e-5,
    class_weights=None,
    mixup_probability=1.0,
    seed=None,
    name="subcluster_adacos_training",
    mixup_labels="linear",
):
    """Training model ``[features, labels] -> class probabilities`` with mixup and the loss inside.

    Parameters
    ----------
    n_classes : int
        Number of classes (41 machine IDs for DCASE 2020).
    n_subclusters : int, default 1
        Sub-clusters per class (only for ``loss="subcluster_adacos"``; must be 1 otherwise).
    loss : {"subcluster_adacos", "adacos", "softmax"}
        Head: :class:`SubClusterAdaCos` (paper), standard :class:`AdaCos` (Table III), or a plain
        ``Dense(n_classes, softmax)`` on the embedding.
    mixup : bool, default True
        Mix features and labels inside the model during training (:class:`Mixup`).
    angle_mode : {"reference", "corrected"}
        Passed to :class:`SubClusterAdaCos`.
    input_shape, embedding_dim, l2
        Passed to :func:`build_embedding_model`.
    class_weights : sequence of float or None
        Per-class loss weights applied through the unmixed label (e.g. "balanced" weights).
    mixup_probability : float, default 1.0
    seed : int or None
        Seed of the mixup random generator.
    name : str
    mixup_labels : {"linear", "max"}, default "linear"
        How :class:`Mixup` mixes the labels (``label_rule``).

    Returns
    -------
    keras.Model
        Inputs ``features`` (batch, *input_shape) and ``labels`` (batch, n_classes) one-hot; output the
        class probabilities (batch, n_classes). Layers: ``mixup`` (if any), ``embedding_model`` (the
        nested network of :func:`build_embedding_model`), ``head``, ``loss``. The loss is added by the
        ``loss`` layer: compile with an optimizer only.
    """
    if loss not in LOSSES:
        raise ASDError(f"subcluster_adacos/network.py: loss must be one of {LOSSES}, got {loss!r}; "
                       "use 'subcluster_adacos'")
    if loss != "subcluster_adacos" and int(n_subclusters) != 1:
        raise ASDError(f"subcluster_adacos/network.py: loss={loss!r} has no sub-clusters, got "
                       f"n_subclusters={n_subclusters}; use n_subclusters=1 or loss='subcluster_adacos'")
    if class_weights is not None and len(class_weights) != int(n_classes):
        raise ASDError(f"subcluster_adacos/network.py: {len(class_weights)} class weights for {n_classes} "
                       "classes; give one weight per class")
    embedder = build_embedding_model(input_shape, embedding_dim=embedding_dim, l2=l2)
    features = keras.Input(shape=embedder.input_shape[1:], name="features")
    labels = keras.Input(shape=(int(n_classes),), name="labels")
    x, targets = features, labels
    if mixup:
        mix = Mixup(probability=mixup_probability, seed=seed, label_rule=mixup_labels, name="mixup")
        x, targets = mix([features, labels])
    embedding = embedder(x)
    if loss == "subcluster_adacos":
        head = SubClusterAdaCos(n_classes, n_subclusters=n_subclusters, angle_mode=angle_mode, name=HEAD_NAME)
        probabilities = head([embedding, targets])
    elif loss == "adacos":
        probabilities = AdaCos(n_classes, name=HEAD_NAME)([embedding, targets])
    else:
        probabilities = layers.Dense(int(n_classes), activation="softmax", name=HEAD_NAME)(embedding)
    probabilities = SoftTargetCrossEntropy(class_weights=class_weights, name="loss")(
        [probabilities, targets, labels]
    )
    return keras.Model([features, labels], probabilities, name=name)


def embedding_model(training_model):
    """A model ``features -> embedding`` that needs no labels, taken from a training model whose labels are
    an input (for mixup and the head).

    The model shares its layers and weights with ``training_model`` (training it further changes both);
    call ``predict`` on features alone, save it as ``.keras``, or use it as a layer.

    - A model of :func:`build_training_model` (or any model with a nested ``keras.Model`` layer named
      ``embedding_model``, e.g. ``build_embedding_model()`` called inside your own model): that nested
      network itself.
    - Any other functional model with a head (a :class:`~subcluster_adacos.layers.SubClusterAdaCos` or
      :class:`~subcluster_adacos.layers.AdaCos` layer, or a layer named ``head``): the layers from the first
      input (the features) to the head's embedding input, with every
      :class:`~subcluster_adacos.layers.Mixup` layer passing the features through unchanged (as it does at
      inference), so that the labels input is no longer needed.

    Raises :class:`~asdcore.errors.ASDError` (one line) when the model has neither.
    """
    try:
        nested = training_model.get_layer(EMBEDDING_MODEL_NAME)
    except ValueError:
        nested = None
    if isinstance(nested, keras.Model):
        return nested
    return _embedding_path(training_model)


def _is_head(layer) -> bool:
    return isinstance(layer, (SubClusterAdaCos, AdaCos)) or layer.name == HEAD_NAME


def _embedding_path(training_model):
    """The generic case of :func:`embedding_model`: re-call the model's own layers on new inputs (Keras'
    ``clone_model`` with the layers themselves, not copies), Mixup replaced by the identity; the head's
    first input in that graph is the embedding."""
    if not any(_is_head(layer) for layer in getattr(training_model, "layers", [])):
        raise ASDError(f"subcluster_adacos/network.py: model {getattr(training_model, 'name', training_model)!r} "
                       "has no head (a SubClusterAdaCos or AdaCos layer, or a layer named 'head') and no nested "
                       f"'{EMBEDDING_MODEL_NAME}'; pass the training model, built with the keras functional API")
    found = {}

    def call(layer, *args, **kwargs):
        if isinstance(layer, Mixup):  # inference: features and labels pass through unchanged
            return args[0]
        if _is_head(layer) and "embedding" not in found:
            inputs = args[0]
            found["embedding"] = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        return layer(*args, **kwargs)

    inputs = [keras.Input(shape=x.shape[1:], dtype=x.dtype, name=x.name) for x in training_model.inputs]
    keras.models.clone_model(training_model, input_tensors=inputs, clone_function=lambda layer: layer,
                             call_function=call)
    try:
        return keras.Model(inputs[0], found["embedding"], name=EMBEDDING_MODEL_NAME)
    except (KeyError, ValueError) as error:
        raise ASDError(f"subcluster_adacos/network.py: the embedding of model {training_model.name!r} depends on "
                       f"more than its first input (the features) ({error}); put the layers from the features "
                       "to the head in one keras.Model and call that inside the training model") from None


def head_layer(training_model):
    """The head layer (``SubClusterAdaCos``, ``AdaCos`` or ``Dense``) of a training model."""
    try:
        return training_model.get_layer(HEAD_NAME)
    except ValueError:
        raise ASDError(f"subcluster_adacos/network.py: model {training_model.name!r} has no '{HEAD_NAME}' "
                       "layer; pass a model built by build_training_model") from None


# --- several sub-cluster AdaCos heads on one embedding (Wilkinghoff 2021, Sec. 2.3 and Table 1) ----------

@keras.saving.register_keras_serializable(package="subcluster_adacos")
class SplitColumns(layers.Layer):
    """Split the last axis into consecutive blocks: ``(batch, sum(sizes)) -> [(batch, sizes[0]), ...]``.

    Lets one :class:`~subcluster_adacos.layers.Mixup` layer mix several label sets with the same λ: the
    label sets are concatenated, mixed, and split again.

    Parameters
    ----------
    sizes : sequence of int
        Width of each block, in order.
    """

    def __init__(self, sizes, **kwargs):
        super().__init__(**kwargs)
        self.sizes = [int(s) for s in sizes]
        if not self.sizes or min(self.sizes) < 1:
            raise ASDError(f"subcluster_adacos/network.py: SplitColumns sizes must be positive, got {sizes}")

    def call(self, inputs):
        out, start = [], 0
        for size in self.sizes:
            out.append(inputs[..., start:start + size])
            start += size
        return out

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[:-1]) + (size,) for size in self.sizes]

    def get_config(self):
        config = super().get_config()
        config["sizes"] = list(self.sizes)
        return config


def head_names(n_heads):
    """Layer names of the heads of :func:`build_multi_head_training_model`: ``head``, ``head_1``, ...

    The first head keeps the name ``head`` so :func:`head_layer` and the scale monitor find it.
    """
    return [HEAD_NAME] + [f"{HEAD_NAME}_{i}" for i in range(1, int(n_heads))]


def _label_input_names(n_heads):
    return ["labels"] + [f"labels_{i}" for i in range(1, int(n_heads))]


def build_multi_head_training_model(
    n_classes,
    n_subclusters=1,
    mixup=True,
    angle_mode="reference",
    input_shape=(313, 128),
    embedding_dim=128,
    l2=1e-5,
    class_weights=None,
    loss_weights=None,
    mixup_probability=1.0,
    seed=None,
    name="multi_head_training",
    mixup_labels="linear",
):
    """One embedding network with one :class:`SubClusterAdaCos` head per label set (Wilkinghoff 2021).

    The 2021 system (paper Sec. 2.3, Table 1) trains the modified ResNet with two sub-cluster AdaCos
    losses of equal weight, one over the 42 sections and one over the 199 attribute classes. One
    :class:`Mixup` layer mixes the features and *all* label sets with the same per-sample λ (the label
    sets are concatenated, mixed and split by :class:`SplitColumns`); each head gets the same mixed
    embedding and its own mixed labels, and its own :class:`SoftTargetCrossEntropy` adds its loss. Keras
    sums the added losses, so the training loss is ``Σ_h w_h * CE_h``.

    Parameters
    ----------
    n_classes : sequence of int
        Classes of each head, e.g. ``(42, 199)``.
    n_subclusters : int
        Sub-clusters per class, the same ``S`` in every head (paper Sec. 2.5).
    mixup, angle_mode, input_shape, embedding_dim, l2, mixup_probability, seed, mixup_labels
        As in :func:`build_training_model`.
    class_weights : sequence of (sequence of float or None), optional
        Per head, per-class weights applied through the unmixed labels.
    loss_weights : sequence of float, optional
        Weight of each head's loss (default: all 1, the paper's equal weights). Folded into the class
        weights of that head's :class:`SoftTargetCrossEntropy`.
    name : str

    Returns
    -------
    keras.Model
        Inputs ``features`` and ``labels``, ``labels_1``, ... (one-hot, one per head); outputs the class
        probabilities of each head (a list). Layers: ``mixup``, ``split_labels``, ``embedding_model``,
        ``head``, ``head_1``, ... (see :func:`head_names`), ``loss``, ``loss_1``, ... Compile with an
        optimizer only.
    """
    n_classes = [int(c) for c in n_classes]
    n_heads = len(n_classes)
    if n_heads < 1:
        raise ASDError("subcluster_adacos/network.py: give the number of classes of at least one head")
    class_weights = [None] * n_heads if class_weights is None else list(class_weights)
    loss_weights = [1.0] * n_heads if loss_weights is None else [float(w) for w in loss_weights]
    if len(class_weights) != n_heads or len(loss_weights) != n_heads:
        raise ASDError(f"subcluster_adacos/network.py: {n_heads} heads but {len(class_weights)} class-weight "
                       f"sets and {len(loss_weights)} loss weights; give one of each per head")
    embedder = build_embedding_model(input_shape, embedding_dim=embedding_dim, l2=l2)
    features = keras.Input(shape=embedder.input_shape[1:], name="features")
    labels = [keras.Input(shape=(c,), name=n) for c, n in zip(n_classes, _label_input_names(n_heads))]
    x, targets = features, list(labels)
    if mixup:
        joined = labels[0] if n_heads == 1 else layers.Concatenate(axis=-1, name="join_labels")(labels)
        mix = Mixup(probability=mixup_probability, seed=seed, label_rule=mixup_labels, name="mixup")
        x, mixed = mix([features, joined])
        targets = [mixed] if n_heads == 1 else SplitColumns(n_classes, name="split_labels")(mixed)
    embedding = embedder(x)
    outputs = []
    for i, (c, head_name) in enumerate(zip(n_classes, head_names(n_heads))):
        weights = class_weights[i]
        if weights is not None and len(weights) != c:
            raise ASDError(f"subcluster_adacos/network.py: head {i} has {c} classes but {len(weights)} class "
                           "weights; give one weight per class")
        if loss_weights[i] != 1.0:
            weights = [loss_weights[i]] * c if weights is None else [loss_weights[i] * float(w) for w in weights]
        head = SubClusterAdaCos(c, n_subclusters=n_subclusters, angle_mode=angle_mode, name=head_name)
        probabilities = head([embedding, targets[i]])
        loss_name = "loss" if i == 0 else f"loss_{i}"
        outputs.append(SoftTargetCrossEntropy(class_weights=weights, name=loss_name)(
            [probabilities, targets[i], labels[i]]))
    return keras.Model([features] + labels, outputs, name=name)
