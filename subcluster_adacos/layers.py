"""Keras 3 layers of sub-cluster AdaCos (Wilkinghoff, 2021): the loss head, standard AdaCos and mixup.

Every layer uses ``keras.ops`` / ``keras.random`` only, so it runs on the TensorFlow, JAX and PyTorch
back-ends, and is registered for ``.keras`` serialisation under the package name ``subcluster_adacos``.

Notation (paper Sec. III, REFERENCE.md Sec. 4): ``C`` classes, ``S`` sub-clusters per class, centres
``W_k`` (k = 0 .. C*S-1; the columns ``j*S .. j*S+S-1`` belong to class ``j``),
``cos θ_ik = <x_i, W_k> / (|x_i| |W_k|)``.

Layers
------
SubClusterAdaCos
    The proposed head: adaptive scale updated with the max-logit rescaling (paper eqs. (5)-(8), restated
    in REFERENCE.md Sec. 4) and the probabilities of paper eq. (9).
AdaCos
    The original adaptive-scale cosine softmax of Zhang et al. (2019), used for the "standard AdaCos" rows
    of paper Table III.
Mixup
    Mixup as in the public code: lambda ~ U(0, 1) per sample, partner = the batch reversed.
SoftTargetCrossEntropy
    A pass-through layer that attaches the categorical cross-entropy against the (mixed-up) soft labels
    as a model loss, with optional per-class weights. It lets a functional model that mixes inside
    itself be trained with plain ``model.fit`` although the mixed labels never leave the model.

The median used for the adaptive scales
---------------------------------------
The public code takes the median with ``tfp.stats.percentile(x, q=50)``, whose default interpolation is
``"nearest"``: it sorts the ``n`` values in ascending order and takes the element at 0-based index
``round((n - 1) / 2)``, where ``round`` is ``tf.round``, i.e. rounds halves to even. Hence:

* odd ``n``: the exact middle element, index ``(n - 1) / 2``;
* even ``n = 2m``: ``(n - 1) / 2 = m - 1/2`` lies half-way, and the even one of ``m - 1`` and ``m`` is
  taken: the upper middle element (index ``m``) when ``m`` is even (n = 4, 8, ..., 64: index 32 of 64),
  the lower middle element (index ``m - 1``) when ``m`` is odd (n = 2, 6, 10, ...).

:func:`nearest_median` implements exactly this with ``keras.ops.sort`` and integer arithmetic.
"""

import math

import keras
import numpy as np
from keras import ops

import asdcore.optimizers  # noqa: F401  registers FusedAdam, the optimizer saved with the training models
from asdcore.errors import ASDError
from asdcore.fused_batchnorm import FusedBatchNormalization as _CoreFusedBatchNormalization

__all__ = [
    "SubClusterAdaCos",
    "AdaCos",
    "Mixup",
    "SoftTargetCrossEntropy",
    "nearest_median",
    "nearest_median_index",
    "normalized_centers",
    "initial_scale",
    "FusedBatchNormalization",
]

ANGLE_MODES = ("reference", "corrected")


def initial_scale(n_columns):
    """Initial adaptive scale ``sqrt(2) * ln(n_columns - 1)`` (AdaCos fixed scale; ``n_columns = C*S``).

    Parameters
    ----------
    n_columns : int
        Number of cosine logits, ``C * S`` (``C`` for standard AdaCos).

    Returns
    -------
    float
    """
    if n_columns < 2:
        raise ASDError(
            f"subcluster_adacos/layers.py: need at least 2 centres (classes * sub-clusters), got {n_columns}; "
            "use n_classes >= 2"
        )
    return math.sqrt(2.0) * math.log(n_columns - 1)


def nearest_median_index(n):
    """0-based index of the element that ``tfp.stats.percentile(x, 50, interpolation="nearest")`` takes.

    ``round_half_to_even((n - 1) / 2)`` written with integer arithmetic, so it works for Python ints and
    for dynamic (tensor) batch sizes alike: ``n // 2 - ((n + 1) % 2) * ((n // 2) % 2)``.

    Parameters
    ----------
    n : int or integer tensor
        Number of values (the batch size).

    Returns
    -------
    int or integer tensor
    """
    half = n // 2
    return half - ((n + 1) % 2) * (half % 2)


def nearest_median(values):
    """Median of a 1-D tensor by the "nearest" rule of the public code (see the module docstring).

    Parameters
    ----------
    values : tensor, shape (n,)

    Returns
    -------
    scalar tensor
        The element of the ascending sort at :func:`nearest_median_index` ``(n)``.
    """
    n = ops.shape(values)[0]
    return ops.take(ops.sort(values), nearest_median_index(n))


def _l2_normalize(x, axis):
    """``x / sqrt(max(sum(x**2), 1e-12))`` along ``axis`` (the convention of ``tf.nn.l2_normalize``)."""
    squared = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(squared, 1e-12))


def _split_inputs(inputs):
    """Return ``(embeddings, labels_or_None)`` from ``[embeddings, labels]``, ``[embeddings]`` or a tensor."""
    if isinstance(inputs, (list, tuple)):
        if len(inputs) == 1:
            return inputs[0], None
        if len(inputs) == 2:
            return inputs[0], inputs[1]
        raise ASDError(
            f"subcluster_adacos/layers.py: expected [embeddings, labels], got {len(inputs)} inputs; "
            "call the layer as layer([embeddings, labels])"
        )
    return inputs, None


def _split_shapes(input_shape):
    """Return ``(embedding_shape, label_shape_or_None)`` from what ``build`` receives."""
    if isinstance(input_shape, (list, tuple)) and len(input_shape) > 0 and isinstance(
        input_shape[0], (list, tuple)
    ):
        return tuple(input_shape[0]), (tuple(input_shape[1]) if len(input_shape) > 1 else None)
    return tuple(input_shape), None


class _CosineHead(keras.layers.Layer):
    """Shared parts of the cosine heads: centres, scale, cosines, stable grouped softmax."""

    def __init__(
        self,
        n_classes,
        n_subclusters=1,
        trainable_centers=True,
        centers_initializer="glorot_uniform",
        centers_regularizer=None,
        **kwargs,
    ):
        # The adaptive scale, the cosines and the softmax stay float32 under a mixed-precision policy
        # (--precision): s * cos reaches ~1e2 and the max-logit rescaling needs float32's range and digits.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if int(n_classes) < 2:
            raise ASDError(
                f"subcluster_adacos/layers.py: n_classes must be >= 2, got {n_classes}; "
                "a cosine softmax needs at least two classes"
            )
        if int(n_subclusters) < 1:
            raise ASDError(
                f"subcluster_adacos/layers.py: n_subclusters must be >= 1, got {n_subclusters}; use 1, 2, 4, ..."
            )
        self.n_classes = int(n_classes)
        self.n_subclusters = int(n_subclusters)
        self.trainable_centers = bool(trainable_centers)
        self.centers_initializer = keras.initializers.get(centers_initializer)
        self.centers_regularizer = keras.regularizers.get(centers_regularizer)
        self.initial_scale = initial_scale(self.n_classes * self.n_subclusters)

    # ------------------------------------------------------------------ build
    def build(self, input_shape):
        embedding_shape, label_shape = _split_shapes(input_shape)
        dim = embedding_shape[-1]
        if dim is None:
            raise ASDError(
                "subcluster_adacos/layers.py: the embedding dimension must be known when the layer is built; "
                "give the embedding input a static last dimension"
            )
        if label_shape is not None and label_shape[-1] is not None and label_shape[-1] != self.n_classes:
            raise ASDError(
                f"subcluster_adacos/layers.py: labels have {label_shape[-1]} columns but n_classes is "
                f"{self.n_classes}; pass one-hot or mixed labels of shape (batch, n_classes)"
            )
        self.embedding_dim = int(dim)
        self.centers = self.add_weight(
            name="centers",
            shape=(self.embedding_dim, self.n_classes * self.n_subclusters),
            initializer=self.centers_initializer,
            regularizer=self.centers_regularizer,
            trainable=self.trainable_centers,
            autocast=False,
        )
        self.scale = self.add_weight(
            name="scale",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_scale),
            trainable=False,
            autocast=False,
            aggregation="mean",
        )

    # ------------------------------------------------------------- helpers
    def _cosines(self, embeddings):
        """``cos θ`` of shape (batch, C*S), float32."""
        x = _l2_normalize(ops.cast(embeddings, "float32"), axis=-1)
        w = _l2_normalize(ops.cast(self.centers, "float32"), axis=0)
        return ops.matmul(x, w)

    @staticmethod
    def _angles(cosines):
        """``θ = arccos(clip(cos θ, -1 + eps, 1 - eps))`` (the clip keeps arccos and its gradient finite)."""
        eps = keras.config.epsilon()
        return ops.arccos(ops.clip(cosines, -1.0 + eps, 1.0 - eps))

    def call(self, inputs, training=None):
        """Probabilities per class; in training the scale is first updated by the subclass's
        ``updated_scale`` and the new scale is used for this same batch."""
        embeddings, labels = _split_inputs(inputs)
        cosines = self._cosines(embeddings)
        if training:
            labels = self._check_labels(labels)
            scale = self.updated_scale(cosines, labels, ops.convert_to_tensor(self.scale))
            self.scale.assign(scale)
        else:
            scale = ops.convert_to_tensor(self.scale)
        return self._grouped_probabilities(cosines, scale)

    def _grouped_probabilities(self, cosines, scale):
        """Paper eq. (9): softmax of ``scale * cos`` over all C*S columns, summed over each class's columns.

        The row maximum is subtracted before ``exp`` so the result stays finite for any scale.
        """
        logits = scale * cosines
        logits = logits - ops.max(logits, axis=-1, keepdims=True)
        e = ops.exp(logits)
        p = e / ops.sum(e, axis=-1, keepdims=True)
        if self.n_subclusters == 1:
            return p
        p = ops.reshape(p, (-1, self.n_classes, self.n_subclusters))
        return ops.sum(p, axis=-1)

    def _check_labels(self, labels):
        if labels is None:
            raise ASDError(
                f"subcluster_adacos/layers.py: {type(self).__name__} needs labels in training to update its "
                "scale; call it as layer([embeddings, labels], training=True)"
            )
        return ops.cast(labels, "float32")

    def compute_output_shape(self, input_shape):
        embedding_shape, _ = _split_shapes(input_shape)
        return (embedding_shape[0], self.n_classes)

    def normalized_centers(self):
        """Learned centres, L2-normalised, grouped per class (e.g. GMM ``means_init``).

        Returns
        -------
        np.ndarray, shape (n_classes, n_subclusters, embedding_dim), float64
            ``out[j, l]`` is column ``j*S + l`` of ``centers`` divided by its Euclidean norm.
        """
        return normalized_centers(self)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_classes": self.n_classes,
                "n_subclusters": self.n_subclusters,
                "trainable_centers": self.trainable_centers,
                "centers_initializer": keras.initializers.serialize(self.centers_initializer),
                "centers_regularizer": keras.regularizers.serialize(self.centers_regularizer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="subcluster_adacos")
class SubClusterAdaCos(_CosineHead):
    """Sub-cluster AdaCos head (paper Sec. III-B, eq. (9); scale rule restated in REFERENCE.md Sec. 4).

    Called as ``layer([embeddings, labels], training=...)``; returns per-class probabilities of shape
    (batch, n_classes). At inference (``training`` false) the labels are ignored and may be omitted
    (``layer(embeddings)`` or ``layer([embeddings])``), and the scale does not change.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C`` (41 machine IDs for DCASE 2020).
    n_subclusters : int, default 1
        Sub-clusters per class ``S``.
    angle_mode : {"reference", "corrected"}, default "reference"
        How the per-sample "mixed-up angle" entering the median ``θ_med`` is formed from the angles
        ``θ_ik`` and the (mixed) label ``y_i`` repeated ``S`` times per class (``ỹ_ik = y_{i, k // S}``):

        * ``"reference"`` (public code, which produced the published numbers):
          ``θ_i = (Σ_k ỹ_ik θ_ik) * #{j : y_ij != 0}`` -- the label-weighted sum over all sub-cluster
          angles of the sample's classes, times the number of non-zero entries of the mixed label (1 for a
          one-hot label or a mix of two samples of the same class, 2 for a mix of two classes). The author
          later agreed the factor looks like an error; for S >= 2 it makes ``θ_med`` exceed π/4 almost
          always, so the clamp ``min(π/4, θ_med)`` decides.
        * ``"corrected"``: ``θ_i = (Σ_k ỹ_ik θ_ik) / S`` -- the label-weighted mean sub-cluster angle
          (no count factor).
    trainable_centers : bool, default True
        Whether the centres are trained (they are in the 2020 code).
    centers_initializer : initializer, default "glorot_uniform"
    centers_regularizer : regularizer or None, default None

    Attributes
    ----------
    centers : keras.Variable, shape (embedding_dim, C*S)
        Columns ``j*S .. j*S+S-1`` belong to class ``j``.
    scale : keras.Variable, scalar, non-trainable
        Starts at ``sqrt(2) * ln(C*S - 1)``.

    Notes
    -----
    In training, for every batch and before the logits are formed, with ``s_old`` the current scale:

    * ``f_max = max_{i,k} s_old cos θ_ik`` (over the batch and all C*S columns);
    * ``B_avg = mean_i Σ_k exp(s_old cos θ_ik - f_max)`` over ALL C*S columns (the sample's own class
      included, mixed-up samples counted like any other);
    * ``θ_med`` = median over the batch of the mixed-up angles (``angle_mode``), "nearest" rule (see the
      module docstring: for an even batch of size 2m the element at sorted index m if m is even, m-1 if
      m is odd; batch 64 -> index 32);
    * ``s_new = (f_max + ln B_avg) / cos(min(π/4, θ_med))``, computed without gradient
      (``stop_gradient``), stored in ``scale`` and used for the same batch.

    Probabilities (eq. (9)): ``P_ij = Σ_{l in M(j)} exp(s cos θ_il) / Σ_k exp(s cos θ_ik)``, with the row
    maximum subtracted inside the softmax (finite for any scale); ``cos θ`` is clipped to
    ``[-1 + eps, 1 - eps]`` only before ``arccos``. The public code adds ``1e-7`` to ``s_new``; that
    negligible constant is left out here.
    """

    def __init__(self, n_classes, n_subclusters=1, angle_mode="reference", trainable_centers=True, **kwargs):
        if angle_mode not in ANGLE_MODES:
            raise ASDError(
                f"subcluster_adacos/layers.py: angle_mode must be one of {ANGLE_MODES}, got {angle_mode!r}; "
                "use 'reference' (public code) or 'corrected'"
            )
        super().__init__(n_classes, n_subclusters=n_subclusters, trainable_centers=trainable_centers, **kwargs)
        self.angle_mode = angle_mode

    def mixed_angles(self, cosines, labels):
        """Per-sample mixed-up angle ``θ_i`` of shape (batch,) for the current ``angle_mode``."""
        theta = self._angles(cosines)
        repeated = ops.repeat(labels, self.n_subclusters, axis=-1)
        weighted = ops.sum(repeated * theta, axis=-1)
        if self.angle_mode == "reference":
            n_nonzero = ops.sum(ops.cast(ops.not_equal(labels, 0.0), "float32"), axis=-1)
            return weighted * n_nonzero
        return weighted / float(self.n_subclusters)

    def updated_scale(self, cosines, labels, old_scale):
        """``s_new`` of the max-logit rescaling (see the class Notes); no gradient flows through it."""
        cosines = ops.stop_gradient(cosines)
        logits = old_scale * cosines
        f_max = ops.max(logits)
        b_avg = ops.mean(ops.sum(ops.exp(logits - f_max), axis=-1))
        theta_med = nearest_median(self.mixed_angles(cosines, labels))
        new_scale = (f_max + ops.log(b_avg)) / ops.cos(ops.minimum(math.pi / 4.0, theta_med))
        return ops.stop_gradient(new_scale)

    def get_config(self):
        config = super().get_config()
        config["angle_mode"] = self.angle_mode
        return config


@keras.saving.register_keras_serializable(package="subcluster_adacos")
class AdaCos(_CosineHead):
    """Standard AdaCos of Zhang et al. (CVPR 2019), the "standard AdaCos" rows of paper Table III.

    ``P_ij = softmax_j(s cos θ_ij)`` (paper eq. (1)). The scale starts at ``sqrt(2) * ln(C - 1)`` and,
    in training, is set every batch to the AdaCos dynamic scale (paper eqs. (2)-(3))
    ``s_new = ln(B_avg) / cos(min(π/4, θ_med))`` with

    * ``B_avg = mean_i Σ_{k non-corresponding} exp(s_old cos θ_ik)``;
    * ``θ_med`` = median over the batch of the true-class angle ``θ_{i, y_i}``.

    With one-hot labels "non-corresponding" is ``k != y_i``. The paper calls standard AdaCos with mixup
    ill-defined and the 2020 public code has none; for mixed (soft) labels the non-corresponding classes are
    those whose label entry is below 1 (for a two-class mix: every class; a commented-out line of the
    author's DCASE 2022 code uses the same mask, ``y < 1``) and the "true" class is the arg-max of the label. The median uses the same
    "nearest" rule as :class:`SubClusterAdaCos`. ``ln B_avg`` is computed as ``m + ln(mean_i Σ exp(... - m))``
    with ``m`` the largest non-corresponding logit, which is the same number without overflow.
    Called like :class:`SubClusterAdaCos`; ``n_subclusters`` is always 1.
    """

    def __init__(self, n_classes, trainable_centers=True, **kwargs):
        kwargs.pop("n_subclusters", None)
        super().__init__(n_classes, n_subclusters=1, trainable_centers=trainable_centers, **kwargs)

    def updated_scale(self, cosines, labels, old_scale):
        """AdaCos ``s_new`` (see the class docstring); no gradient flows through it."""
        cosines = ops.stop_gradient(cosines)
        logits = old_scale * cosines
        mask = ops.less(labels, 1.0)
        very_negative = ops.full_like(logits, -1e30)
        masked = ops.where(mask, logits, very_negative)
        m = ops.max(masked)
        b_sum = ops.sum(ops.where(mask, ops.exp(masked - m), ops.zeros_like(logits)), axis=-1)
        log_b_avg = m + ops.log(ops.mean(b_sum))
        theta = self._angles(cosines)
        true_class = ops.expand_dims(ops.argmax(labels, axis=-1), -1)
        theta_true = ops.squeeze(ops.take_along_axis(theta, true_class, axis=-1), -1)
        theta_med = nearest_median(theta_true)
        return ops.stop_gradient(log_b_avg / ops.cos(ops.minimum(math.pi / 4.0, theta_med)))

    def get_config(self):
        config = super().get_config()
        config.pop("n_subclusters", None)
        return config


@keras.saving.register_keras_serializable(package="subcluster_adacos")
class Mixup(keras.layers.Layer):
    """Mixup of inputs and labels inside the model, as in the public code (paper eq. (4)).

    Called as ``Mixup()([x, y], training=...)``; returns ``[x_mixed, y_mixed]``. In training, each sample
    ``i`` of a batch of ``n`` gets ``λ_i ~ U(0, 1)`` and the partner ``n - 1 - i`` (the batch reversed):
    ``x_mixed_i = λ_i x_i + (1 - λ_i) x_{n-1-i}`` and the same with the same ``λ_i`` for the labels.
    With ``probability < 1`` each sample is mixed with that probability and otherwise passed unchanged
    (λ_i = 1). At inference the inputs are returned unchanged.

    Parameters
    ----------
    probability : float in [0, 1], default 1.0
        Probability that a sample is mixed (the 2020 code uses 1: every training sample is mixed).
    seed : int or None
        Seed of the layer's ``keras.random.SeedGenerator``.
    label_rule : {"linear", "max"}, default "linear"
        Mixed labels: ``λ_i y_i + (1 - λ_i) y_{n-1-i}`` (2020 paper eq. (4), the 2020 public code's final
        version) or the element-wise ``max(λ_i y_i, (1 - λ_i) y_{n-1-i})`` (every commit of the author's
        DCASE 2022 code, the default of the 2021 system; the two labels then no longer sum to 1).
    """

    LABEL_RULES = ("linear", "max")

    def __init__(self, probability=1.0, seed=None, label_rule="linear", **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(probability) <= 1.0:
            raise ASDError(
                f"subcluster_adacos/layers.py: Mixup probability must be in [0, 1], got {probability}; "
                "use 1.0 to mix every sample"
            )
        if label_rule not in self.LABEL_RULES:
            raise ASDError(f"subcluster_adacos/layers.py: Mixup label_rule must be 'linear' or 'max', "
                           f"got {label_rule!r}")
        self.probability = float(probability)
        self.seed = seed
        self.label_rule = label_rule
        self.seed_generator = keras.random.SeedGenerator(seed)

    def mixing_weights(self, n):
        """Per-sample λ of shape (n,): U(0, 1), set to 1 where a sample is not mixed."""
        lam = keras.random.uniform((n,), seed=self.seed_generator)
        if self.probability < 1.0:
            mixed = ops.cast(
                ops.less(keras.random.uniform((n,), seed=self.seed_generator), self.probability), "float32"
            )
            lam = mixed * lam + (1.0 - mixed)
        return lam

    @staticmethod
    def _mix(t, lam):
        lam = ops.cast(ops.reshape(lam, (-1,) + (1,) * (len(t.shape) - 1)), t.dtype)
        return lam * t + (1.0 - lam) * ops.flip(t, axis=0)

    def call(self, inputs, training=None):
        x, y = inputs
        if not training or self.probability == 0.0:
            return [x, y]
        dtype = keras.backend.standardize_dtype(x.dtype)
        if "float" not in dtype:
            dtype = "float32"
            x = ops.cast(x, dtype)
        y = ops.cast(y, dtype)
        lam = self.mixing_weights(ops.shape(x)[0])
        if self.label_rule == "max":
            lam_y = ops.cast(ops.reshape(lam, (-1, 1)), y.dtype)
            return [self._mix(x, lam), ops.maximum(lam_y * y, (1.0 - lam_y) * ops.flip(y, axis=0))]
        return [self._mix(x, lam), self._mix(y, lam)]

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[0]), tuple(input_shape[1])]

    def get_config(self):
        config = super().get_config()
        config.update({"probability": self.probability, "seed": self.seed, "label_rule": self.label_rule})
        return config


@keras.saving.register_keras_serializable(package="subcluster_adacos")
class SoftTargetCrossEntropy(keras.layers.Layer):
    """Pass-through layer adding the categorical cross-entropy against soft targets as a model loss.

    Called as ``layer([probabilities, targets, original_labels])`` and returns ``probabilities``
    unchanged. Adds ``mean_i w_i * CE(targets_i, probabilities_i)`` via ``add_loss`` where
    ``CE`` is ``keras.losses.categorical_crossentropy`` (probabilities clipped to [eps, 1 - eps]) and
    ``w_i = Σ_j class_weights[j] * original_labels_ij`` (for one-hot labels: the weight of the sample's
    class, as Keras' ``fit(class_weight=...)`` does with the unmixed labels of the public code), or 1
    without class weights.

    Parameters
    ----------
    class_weights : sequence of float or None
        One weight per class (e.g. scikit-learn's "balanced" weights).
    """

    def __init__(self, class_weights=None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # the loss in float32 under mixed precision
        super().__init__(**kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in np.ravel(class_weights)]

    def call(self, inputs):
        probabilities, targets, labels = inputs
        ce = keras.losses.categorical_crossentropy(ops.cast(targets, probabilities.dtype), probabilities)
        if self.class_weights is not None:
            w = ops.convert_to_tensor(np.asarray(self.class_weights, dtype="float32"))
            ce = ce * ops.sum(ops.cast(labels, "float32") * w, axis=-1)
        self.add_loss(ops.mean(ce))
        return probabilities

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config["class_weights"] = self.class_weights
        return config


@keras.saving.register_keras_serializable(package="subcluster_adacos")
class FusedBatchNormalization(_CoreFusedBatchNormalization):
    """:class:`asdcore.fused_batchnorm.FusedBatchNormalization` under the name the sub-cluster AdaCos networks
    are saved with (``subcluster_adacos>FusedBatchNormalization``): Keras' ``BatchNormalization`` computed with
    TensorFlow's fused kernel (a speed change only; see the core module)."""


def normalized_centers(layer):
    """Learned centres of a cosine head, L2-normalised, grouped per class.

    Parameters
    ----------
    layer : SubClusterAdaCos or AdaCos (built)

    Returns
    -------
    np.ndarray, shape (n_classes, n_subclusters, embedding_dim), float64
        ``out[j]`` holds the ``S`` normalised centres of class ``j`` (columns ``j*S .. j*S+S-1``); use
        ``out[j]`` as ``means_init`` of class ``j``'s GMM on L2-normalised embeddings.
    """
    if not getattr(layer, "built", False) or not hasattr(layer, "centers"):
        raise ASDError(
            "subcluster_adacos/layers.py: normalized_centers needs a built SubClusterAdaCos or AdaCos layer; "
            "build or load the model first"
        )
    w = np.asarray(keras.ops.convert_to_numpy(layer.centers), dtype=np.float64).T
    w = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
    return w.reshape(layer.n_classes, layer.n_subclusters, -1)
