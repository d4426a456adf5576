"""The binary classification model with class centroids (Kuroyanagi et al., Sec. III and IV-A).

``DDCSADModel`` = encoder phi_z (feature extractor + global average pooling -> z) + one linear layer
(z -> logit, p = sigmoid(logit) = posterior of "normal"), trained with any of the five losses of
Table II (``"bce"``, ``"dsad"``, ``"ddcsad"``, ``"bce+dsad"``, ``"bce+ddcsad"``; eqs. 1-4 in
:mod:`ddcsad.losses`).

Backend
-------
The losses (:mod:`ddcsad.losses`) use ``keras.ops`` only; Keras 3 custom training steps are back-end
specific, so ``train_step`` has one body per back-end with the same arithmetic: TensorFlow
(``tf.GradientTape``, two ``optimizer.apply``) and JAX (Keras' stateless API: the loss of the variables'
values under a ``keras.StatelessScope``, ``jax.value_and_grad``, two ``optimizer.stateless_apply``; Keras'
JAX trainer carries both optimizers' state as one :class:`OptimizerPair`). On the PyTorch back-end,
constructing (or loading) a ``DDCSADModel`` raises ``ASDError`` naming the back-end
(:func:`require_supported_backend`) instead of failing inside ``fit``.

Labels
------
Training batches are ``(x, y)`` with ``x`` [B, frames, mels] log-mel crops and ``y`` [B] integer codes:
``NORMAL`` = +1 (normal clip of the target machine ID), ``OUTLIER`` = -1 (clip of another ID or machine
type: pseudo-anomaly), ``ANOMALY`` = -2 (real anomalous clip of the target ID). Real anomalies are
labelled members of the paper's set X~ with y~ = -1: they take the log(1 - p) BCE term like outliers,
are weighted by eta in the DSAD/DDCSAD terms like the normal clips (eqs. 2-3 weight the whole labelled
set) and are left out of the outlier centroid c_n ("the centroid of the ... outlier data"). Label them
``OUTLIER`` instead to count them as plain outliers. Sample weights, if a dataset yields them, are
ignored.

Centroids
---------
``c_p`` (mean z of the normal clips) and ``c_n`` (mean z of the outlier clips) are non-trainable
variables, computed by :meth:`DDCSADModel.update_centroids` over the whole training set with the network
in inference mode (``training=False``: BN moving statistics, no dropout). They are computed first from
the randomly initialised network (Sec. III) and then recomputed at the end of every epoch by the
:class:`CentroidUpdate` callback, so the centroids used at inference match the final network. With the
DSAD variants the single centroid c = c_p is, by default (``dsad_centroid="fixed"``), computed once
from the random network and then kept, as Deep SAD does (Sec. II-B: "centroid c is not updated") and as
Sec. IV-B implies ("... which is achieved by making the centroids updatable" — the DDCSAD novelty);
``dsad_centroid="every_epoch"`` updates it like DDCSAD's. The BCE variant uses no centroid.

Batch normalisation of the first centroids
------------------------------------------
A randomly initialised network in inference mode normalises with the *initial* moving statistics
(mean 0, variance 1), not with the statistics of the data; its embeddings then live on another scale
than the training-mode embeddings the loss sees (measured on the quick synthetic set: norms ~1-2 against
~18). Deep SVDD / Deep SAD compute their centre in evaluation mode *after* a pre-training that has set
the BN statistics; the paper skips pre-training (Sec. III, IV-A), so before the first centroids
:meth:`DDCSADModel.calibrate_batch_norm` sets every BN layer's moving mean and variance to the average of
its training-mode batch statistics over a few training batches (same composition as training; nothing
trainable changes, and the moving statistics are then overwritten by training's own updates). The
first centroids are thus the mean inference-mode embeddings of a network whose BN uses the data's
statistics: the space of the training-mode embeddings (``CentroidUpdate(..., calibration=...)``;
``calibration=None`` keeps the initial statistics, the behaviour before this fix).

Epochs
------
The paper counts iterations (4000, Sec. IV-A) and updates the centroids "at each epoch". Here an epoch
is one Keras epoch of ``model.fit(..., steps_per_epoch=S, epochs=E)``; the data pipeline chooses S
(:func:`ddcsad.data.steps_per_epoch`: by default one pass over the normal clips at their batch share,
~1000 / 32 ~ 32 iterations, as the authors' public sampler; the option ``epoch="dataset"`` gives one pass
over the unit's whole training set at the batch size, about 400 iterations for a DCASE 2020 MIMII ID)
and E = ceil(4000 / S); the experiment stops after exactly 4000 iterations (the last epoch may be short).

Optimisation
------------
Adam for the encoder (1e-4) and Adam for the linear layer (1e-3), both halved every 1000 iterations
(``ExponentialDecay(decay_rate=0.5, staircase=True)``): two optimizers, each built on its own variable
group in :meth:`DDCSADModel.compile`. Each optimizer's step counter counts the iterations. In the
variants without BCE the linear layer is not in the loss and is not updated (the paper: "only varied the
loss function and presence of the full connection layer"); ``p`` from ``predict`` is then meaningless
and the score should use the distance only.

Fine-tuning with real anomalies (Sec. IV-C): load or keep the trained model, call :meth:`compile` again
(fresh Adam states, the schedule restarts at 1e-4 / 1e-3; the paper does not say otherwise) and train
for 2000 iterations with batches of 32 normal : 31 outlier : 1 anomaly.
"""
from __future__ import annotations

import math
import warnings

import keras
import numpy as np
from keras import layers, ops

from asdcore.errors import ASDError
from ddcsad import losses as L

ENCODER_LEARNING_RATE = 1e-4
"""Adam learning rate of the feature extractor (Sec. IV-A)."""
HEAD_LEARNING_RATE = 1e-3
"""Adam learning rate of the linear ("full connection") layer (Sec. IV-A)."""
HALVE_EVERY = 1000
"""The learning rates are multiplied by 0.5 after every 1000 iterations (Sec. IV-A)."""
TOTAL_ITERATIONS = 4000
"""Training iterations without anomalies (Sec. IV-A)."""
ADAM_EPSILON = 1e-8
"""Adam's epsilon: Kingma and Ba's value ([19] of the paper), also PyTorch's (Keras: 1e-7)."""
FINETUNE_ITERATIONS = 2000
"""Iterations when fine-tuning with real anomalies, from the model trained without them (Sec. IV-C)."""
DSAD_CENTROID_POLICIES = ("fixed", "every_epoch")


def halving_schedule(initial_learning_rate: float, halve_every: int = HALVE_EVERY):
    """lr(step) = initial * 0.5 ** floor(step / halve_every), a Keras learning-rate schedule."""
    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=float(initial_learning_rate),
        decay_steps=int(halve_every),
        decay_rate=0.5,
        staircase=True,
    )


def epochs_for_iterations(iterations: int, steps_per_epoch: int) -> int:
    """Number of Keras epochs of ``steps_per_epoch`` iterations that reach ``iterations`` (rounded up)."""
    return int(math.ceil(iterations / max(1, int(steps_per_epoch))))


SUPPORTED_BACKENDS = ("tensorflow", "jax")


def require_supported_backend(what: str) -> None:
    """Raise ``ASDError`` naming the active Keras back-end unless ``train_step`` has a body for it
    (TensorFlow or JAX); on PyTorch Keras would call the step with another trainer's signature and fail
    obscurely. The losses in :mod:`ddcsad.losses` run on any back-end."""
    backend = keras.backend.backend()
    if backend not in SUPPORTED_BACKENDS:
        raise ASDError(
            f"ddcsad/model.py: {what} needs the TensorFlow or JAX back-end (its two-optimizer train_step is "
            f"written for those) but Keras runs on {backend!r}; set KERAS_BACKEND=tensorflow or jax, or use "
            "ddcsad.losses (any back-end) in a training step of your own"
        )


@keras.saving.register_keras_serializable(package="ddcsad")
class OptimizerPair(keras.optimizers.Optimizer):
    """The encoder's and the linear layer's optimizers seen as one by Keras' JAX trainer.

    The JAX trainer passes ``model.optimizer.variables`` through the compiled step as part of its state and
    writes them back after each epoch; with this pair as ``model.optimizer`` that state holds both Adam
    states (``first``'s variables, then ``second``'s). :meth:`DDCSADModel.train_step` splits it and applies
    each optimizer to its own variable group (``stateless_apply``); ``iterations`` and ``learning_rate``
    are ``first``'s. Only used on JAX; TensorFlow's step applies the two optimizers directly.
    """

    def __init__(self, first, second, name="optimizer_pair", **kwargs):
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.first = first
        self.second = second
        self.built = bool(first.built and second.built)

    @property
    def variables(self):
        return list(self.first.variables) + list(self.second.variables)

    @property
    def iterations(self):
        return self.first.iterations

    @property
    def learning_rate(self):
        return self.first.learning_rate

    def build(self, variables):  # both are built by DDCSADModel.compile, each on its own group
        self.built = True

    def split(self, values):
        """``(first's, second's)`` parts of a list aligned with :attr:`variables`."""
        k = len(self.first.variables)
        return list(values[:k]), list(values[k:])


@keras.saving.register_keras_serializable(package="ddcsad")
class DDCSADModel(keras.Model):
    """Encoder + linear layer trained with BCE, DSAD, DDCSAD or their multi-task sums (eqs. 1-4).

    Parameters
    ----------
    encoder : keras.Model
        Maps a batch of inputs to embeddings z [B, D] (e.g. :func:`ddcsad.backbones.build_resnet38`).
    variant : str
        One of ``"bce"``, ``"dsad"``, ``"ddcsad"``, ``"bce+dsad"``, ``"bce+ddcsad"`` (default, eq. 4).
    lam : float
        lambda of eq. (4) (default 1.0).
    eta : float
        Weight of the labelled set (normal clips, real anomalies) in eqs. (2)-(3) (default 2.0).
    epsilon : float
        Added to squared distances before inverting them (default 1e-6).
    dsad_centroid : str
        ``"fixed"`` (default): the DSAD centroid is computed once, from the randomly initialised
        network, and kept. ``"every_epoch"``: recomputed every epoch like DDCSAD's.

    Attributes
    ----------
    head : keras.layers.Dense
        The linear layer z -> logit.
    c_p, c_n : keras.Variable
        Centroids of the normal and of the outlier clips (non-trainable).
    centroid_updates : keras.Variable
        How many times :meth:`update_centroids` has run.
    encoder_optimizer, head_optimizer : keras.optimizers.Adam
        Created by :meth:`compile`.
    """

    def __init__(
        self,
        encoder,
        variant: str = "bce+ddcsad",
        lam: float = L.DEFAULT_LAMBDA,
        eta: float = L.DEFAULT_ETA,
        epsilon: float = L.DEFAULT_EPSILON,
        dsad_centroid: str = "fixed",
        **kwargs,
    ):
        require_supported_backend("DDCSADModel")
        super().__init__(**kwargs)
        self.variant = L.check_variant(variant)
        if dsad_centroid not in DSAD_CENTROID_POLICIES:
            raise ASDError(
                f"ddcsad/model.py: dsad_centroid={dsad_centroid!r} is unknown; use one of {DSAD_CENTROID_POLICIES}"
            )
        if not (lam > 0 and eta > 0 and epsilon >= 0):
            raise ASDError(
                f"ddcsad/model.py: need lam > 0, eta > 0, epsilon >= 0 (got {lam}, {eta}, {epsilon}); fix the settings"
            )
        self.lam = float(lam)
        self.eta = float(eta)
        self.epsilon = float(epsilon)
        self.dsad_centroid = dsad_centroid
        try:
            out_shape = encoder.output_shape
        except (AttributeError, ValueError) as err:
            raise ASDError(
                "ddcsad/model.py: the encoder must be a built keras.Model with one output z [B, D]; "
                f"build it with keras.Input ({err})"
            ) from err
        if not isinstance(out_shape, tuple) or len(out_shape) != 2 or out_shape[-1] is None:
            raise ASDError(f"ddcsad/model.py: encoder output must be [batch, D], got {out_shape}; end it with pooling")
        self.embedding_dim = int(out_shape[-1])
        self.encoder = encoder
        # the head (logit, sigmoid) and everything after it stay float32 under a mixed precision policy
        # (--precision): the encoder's output z is cast to float32 before the head, the distances and losses
        self.head = layers.Dense(1, name="linear", dtype="float32")
        self.head.build((None, self.embedding_dim))
        self.c_p = self.add_weight(
            shape=(self.embedding_dim,), initializer="zeros", trainable=False, name="c_p"
        )
        self.c_n = self.add_weight(
            shape=(self.embedding_dim,), initializer="zeros", trainable=False, name="c_n"
        )
        self.centroid_updates = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False, name="centroid_updates"
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.bce_tracker = keras.metrics.Mean(name="bce")
        self.centroid_tracker = keras.metrics.Mean(name="centroid_loss")
        self._embed_fn = None
        self.built = True

    # ------------------------------------------------------------------ properties
    @property
    def uses_bce(self) -> bool:
        """True when the loss has the BCE term (the linear layer is trained)."""
        return L.uses_bce(self.variant)

    @property
    def centroid_term(self):
        """``"dsad"``, ``"ddcsad"`` or None."""
        return L.centroid_term(self.variant)

    @property
    def refresh_centroids_each_epoch(self) -> bool:
        """Whether :class:`CentroidUpdate` recomputes the centroids at the end of every epoch."""
        term = self.centroid_term
        if term == "ddcsad":
            return True
        if term == "dsad":
            return self.dsad_centroid == "every_epoch"
        return False

    @property
    def metrics(self):
        return [self.loss_tracker, self.bce_tracker, self.centroid_tracker]

    # ------------------------------------------------------------------ compile / fit
    def compile(
        self,
        encoder_learning_rate: float = ENCODER_LEARNING_RATE,
        head_learning_rate: float = HEAD_LEARNING_RATE,
        halve_every: int = HALVE_EVERY,
        adam_epsilon: float = ADAM_EPSILON,
        **kwargs,
    ):
        """Create the two Adam optimizers (encoder, linear layer) with halving schedules.

        Parameters
        ----------
        encoder_learning_rate, head_learning_rate : float
            Initial learning rates (paper: 1e-4 and 1e-3).
        halve_every : int
            Both rates are halved after every ``halve_every`` iterations (paper: 1000).
        adam_epsilon : float
            Adam's epsilon: 1e-8, the value of the Adam paper the authors cite ([19]) and of their
            framework, PyTorch (Keras' default is 1e-7).
        **kwargs
            Passed to ``keras.Model.compile`` (e.g. ``run_eagerly``, ``jit_compile``); ``optimizer``,
            ``loss`` and ``metrics`` are not accepted (the model has its own).
        """
        for key in ("optimizer", "loss", "metrics"):
            if kwargs.pop(key, None) is not None:
                raise ASDError(
                    f"ddcsad/model.py: DDCSADModel.compile takes no {key!r}; set the learning rates instead"
                )
        if self.encoder.dtype_policy.name == "mixed_float16":
            # float16 gradients underflow without loss scaling, which the two-optimizer train_step does not do
            raise ASDError("ddcsad: --precision mixed_float16 is not supported (its train step has no loss "
                           "scaling); use --precision mixed_bfloat16 or float32")
        self.compile_settings = {
            "encoder_learning_rate": float(encoder_learning_rate),
            "head_learning_rate": float(head_learning_rate),
            "halve_every": int(halve_every),
            "adam_epsilon": float(adam_epsilon),
        }
        self.encoder_optimizer = keras.optimizers.Adam(
            learning_rate=halving_schedule(encoder_learning_rate, halve_every), epsilon=adam_epsilon,
            name="adam_encoder"
        )
        self.head_optimizer = keras.optimizers.Adam(
            learning_rate=halving_schedule(head_learning_rate, halve_every), epsilon=adam_epsilon,
            name="adam_linear"
        )
        self.encoder_optimizer.build(self.encoder.trainable_variables)
        self.head_optimizer.build(self.head.trainable_variables)
        # Keras keeps one optimizer in `self.optimizer` (its step counter drives callbacks). On TensorFlow it
        # is the encoder's, already built, so Keras does not build it again on all variables; on JAX the
        # pair of both, whose variables Keras' stateless trainer carries through the compiled step.
        optimizer = self.encoder_optimizer
        if keras.backend.backend() == "jax":
            optimizer = OptimizerPair(self.encoder_optimizer, self.head_optimizer)
        super().compile(optimizer=optimizer, **kwargs)

    def get_compile_config(self):
        """Not saved: recompile a loaded model (fresh optimizers)."""
        return None

    def learning_rates(self) -> dict:
        """Current learning rates ``{"encoder": float, "linear": float}`` (after :meth:`compile`)."""
        self._require_compiled()
        return {
            "encoder": float(ops.convert_to_numpy(self.encoder_optimizer.learning_rate)),
            "linear": float(ops.convert_to_numpy(self.head_optimizer.learning_rate)),
        }

    def _require_compiled(self):
        if getattr(self, "encoder_optimizer", None) is None:
            raise ASDError("ddcsad/model.py: the model is not compiled; call model.compile() first")

    def fit(self, *args, callbacks=None, **kwargs):
        """``keras.Model.fit``; refuses to start with never-computed centroids when the loss needs them.

        Pass ``callbacks=[CentroidUpdate(train_data)]`` (or call :meth:`update_centroids` first).
        """
        self._require_compiled()
        has_updater = any(isinstance(cb, CentroidUpdate) for cb in (callbacks or []))
        if self.centroid_term and not has_updater and int(ops.convert_to_numpy(self.centroid_updates)) == 0:
            raise ASDError(
                f"ddcsad/model.py: loss {self.variant!r} needs centroids; pass callbacks=[CentroidUpdate(train_data)] "
                "or call model.update_centroids(train_data) before fit"
            )
        return super().fit(*args, callbacks=callbacks, **kwargs)

    # ------------------------------------------------------------------ forward / steps
    def call(self, x, training=False):
        """``{"logit": z of the linear layer [B], "p": sigmoid(logit) [B], "distance": ||z - c_p||^2 [B],
        "embedding": z [B, D]}``.

        ``p`` is float32 and saturates (p == 1.0 for logits above ~17); scores use ``1 - p`` computed
        from the logit instead (:func:`ddcsad.scoring.one_minus_p`).
        """
        z = self._z(x, training)
        logit = ops.reshape(self.head(z), (-1,))
        return {"logit": logit, "p": ops.sigmoid(logit), "distance": L.squared_distance(z, self.c_p), "embedding": z}

    def _z(self, x, training):
        """The encoder's embedding z as float32 (the encoder may compute in 16 bits under --precision)."""
        return ops.cast(self.encoder(x, training=training), "float32")

    def _loss_parts(self, x, y, training):
        z = self._z(x, training)
        logit = ops.reshape(self.head(z), (-1,)) if self.uses_bce else None
        parts = L.loss_components(
            logit,
            z,
            y,
            self.c_p,
            self.c_n,
            variant=self.variant,
            lam=self.lam,
            eta=self.eta,
            epsilon=self.epsilon,
            from_logits=True,
        )
        return parts

    def _unpack(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ASDError("ddcsad/model.py: training data must yield (x, y) with y in {+1, -1, -2}; add the labels")
        return x, y

    def train_step(self, *args):
        """One iteration: loss of ``self.variant`` on the batch, one Adam step per variable group.

        TensorFlow calls it with ``(data)``; JAX with ``(state, data)`` and takes ``(logs, state)`` back."""
        if keras.backend.backend() == "jax":
            return self._train_step_jax(*args)
        return self._train_step_tensorflow(*args)

    def test_step(self, *args):
        """The same loss in inference mode (no dropout, BN moving statistics), no update."""
        if keras.backend.backend() == "jax":
            return self._test_step_jax(*args)
        x, y = self._unpack(args[0])
        return self._track(self._loss_parts(x, y, training=False))

    def _trained_groups(self):
        """Positions in ``self.trainable_variables`` of the encoder's and (with BCE) the linear layer's."""
        position = {id(v): i for i, v in enumerate(self.trainable_variables)}
        encoder = [position[id(v)] for v in self.encoder.trainable_variables]
        head = [position[id(v)] for v in self.head.trainable_variables] if self.uses_bce else []
        return encoder, head

    def _total_loss(self, x, y, training):
        parts = self._loss_parts(x, y, training=training)
        total = parts["loss"]
        extra = list(self.encoder.losses) + (list(self.head.losses) if self.uses_bce else [])
        for term in extra:
            total = total + term
        return total, parts

    def _train_step_tensorflow(self, data):
        import tensorflow as tf

        x, y = self._unpack(data)
        encoder_vars = list(self.encoder.trainable_variables)
        head_vars = list(self.head.trainable_variables) if self.uses_bce else []
        with tf.GradientTape() as tape:
            total, parts = self._total_loss(x, y, training=True)
        grads = tape.gradient(total, encoder_vars + head_vars)
        self.encoder_optimizer.apply(grads[: len(encoder_vars)], encoder_vars)
        if head_vars:
            self.head_optimizer.apply(grads[len(encoder_vars):], head_vars)
        return self._track(parts)

    def _stateless_loss(self, trainable, non_trainable, x, y, training):
        """``(total, (parts, new non-trainable values))`` of the variables' values ``trainable`` /
        ``non_trainable``: the TensorFlow step's loss under a ``keras.StatelessScope`` (BN statistics,
        dropout seeds and the centroids read from the given values; their updates returned)."""
        refs = self.non_trainable_variables
        mapping = list(zip(self.trainable_variables, trainable)) + list(zip(refs, non_trainable))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            total, parts = self._total_loss(x, y, training=training)
        updated = [scope.get_current_value(v) for v in refs]
        return total, (parts, [old if new is None else new for old, new in zip(non_trainable, updated)])

    def _stateless_track(self, metrics_values, parts):
        """:meth:`_track` on the metrics' values ``metrics_values``: ``(logs, new values)``."""
        refs = self.metrics_variables
        with keras.StatelessScope(state_mapping=list(zip(refs, metrics_values))) as scope:
            logs = self._track(parts)
        updated = [scope.get_current_value(v) for v in refs]
        return logs, [old if new is None else new for old, new in zip(metrics_values, updated)]

    def _train_step_jax(self, state, data):
        import jax

        trainable, non_trainable, optimizer_values, metrics_values = state
        x, y = self._unpack(data)
        (_, (parts, non_trainable)), grads = jax.value_and_grad(self._stateless_loss, has_aux=True)(
            list(trainable), non_trainable, x, y, True)
        trainable = list(trainable)
        encoder_state, head_state = self.optimizer.split(optimizer_values)
        for group, optimizer, opt_state in ((0, self.encoder_optimizer, encoder_state),
                                            (1, self.head_optimizer, head_state)):
            positions = self._trained_groups()[group]
            if not positions:
                continue
            new_values, new_state = optimizer.stateless_apply(opt_state, [grads[i] for i in positions],
                                                              [trainable[i] for i in positions])
            for i, value in zip(positions, new_values):
                trainable[i] = value
            if group == 0:
                encoder_state = new_state
            else:
                head_state = new_state
        logs, metrics_values = self._stateless_track(metrics_values, parts)
        return logs, (trainable, non_trainable, list(encoder_state) + list(head_state), metrics_values)

    def _test_step_jax(self, state, data):
        trainable, non_trainable, metrics_values = state
        x, y = self._unpack(data)
        _, (parts, non_trainable) = self._stateless_loss(trainable, non_trainable, x, y, False)
        logs, metrics_values = self._stateless_track(metrics_values, parts)
        return logs, (trainable, non_trainable, metrics_values)

    def _track(self, parts):
        self.loss_tracker.update_state(parts["loss"])
        self.bce_tracker.update_state(parts["bce"])
        self.centroid_tracker.update_state(parts["centroid"])
        return {m.name: m.result() for m in self.metrics}

    # ------------------------------------------------------------------ centroids
    def embed(self, x, batch_size: int = 64) -> np.ndarray:
        """Embeddings z [n, D] of an array of inputs, inference mode."""
        x = np.asarray(x)
        out = [self._embed_batch(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(out, axis=0) if out else np.zeros((0, self.embedding_dim), np.float32)

    def _embed_batch(self, x) -> np.ndarray:
        if self._embed_fn is None:
            from asdcore.keras_utils import compiled_inference

            self._embed_fn = compiled_inference(self.encoder)
        return self._embed_fn(x)

    def _iter_batches(self, data, batch_size):
        if isinstance(data, (tuple, list)) and len(data) == 2:
            x, y = np.asarray(data[0]), np.asarray(data[1])
            if len(x) != len(y):
                raise ASDError(
                    f"ddcsad/model.py: update_centroids got {len(x)} inputs but {len(y)} labels; pass matching arrays"
                )
            for i in range(0, len(x), batch_size):
                yield x[i : i + batch_size], y[i : i + batch_size]
        elif hasattr(data, "__iter__") and not isinstance(data, (str, bytes, np.ndarray, tuple, list)):
            for element in data:
                if not isinstance(element, (tuple, list)) or len(element) < 2:
                    raise ASDError("ddcsad/model.py: update_centroids needs a dataset of (x, y); add the labels")
                yield element[0], np.asarray(element[1])
        else:
            raise ASDError(
                "ddcsad/model.py: update_centroids takes a finite dataset of (x, y) batches (tf.data or any "
                "iterable, e.g. ddcsad.data.centroid_dataset) or a tuple (x, y) of arrays"
            )

    def batch_norm_layers(self) -> list:
        """Every ``BatchNormalization`` layer of the encoder (nested models included)."""
        return [layer for layer in self.encoder._flatten_layers(include_self=False, recursive=True)
                if isinstance(layer, layers.BatchNormalization)]

    def calibrate_batch_norm(self, batches, n_batches: int) -> int:
        """Set the BN moving statistics to the mean training-mode batch statistics of ``n_batches`` batches.

        Each batch runs through the encoder in training mode (batch statistics, dropout: what the loss
        sees); for batch k (0-based) every BN layer's momentum is set to k / (k + 1), so that after the
        last batch its moving mean and variance equal the average over the batches of its batch mean and
        batch variance. Momenta are restored afterwards; no trainable variable changes.

        Parameters
        ----------
        batches : iterable
            Yields ``(x, y)`` batches or ``x`` arrays, e.g. :class:`ddcsad.data.BalancedBatches`.
        n_batches : int
            How many batches to average (at least 1).

        Returns
        -------
        int
            Batches used.
        """
        bns = self.batch_norm_layers()
        if not bns or n_batches < 1:
            return 0
        momenta = [bn.momentum for bn in bns]
        used = 0
        try:
            for element in batches:
                x = element[0] if isinstance(element, (tuple, list)) else element
                for bn in bns:
                    bn.momentum = used / (used + 1.0)
                self.encoder(ops.convert_to_tensor(np.asarray(x, np.float32)), training=True)
                used += 1
                if used >= n_batches:
                    break
        finally:
            for bn, m in zip(bns, momenta):
                bn.momentum = m
        return used

    def update_centroids(self, data, batch_size: int = 64) -> dict:
        """Recompute c_p and c_n as mean embeddings over the whole training set (Sec. III).

        c_p = mean z over the clips labelled ``NORMAL`` (+1); c_n = mean z over the clips labelled
        ``OUTLIER`` (-1). Clips labelled ``ANOMALY`` (-2) enter neither. Embeddings are computed in
        inference mode.

        Parameters
        ----------
        data : iterable or tuple
            A **finite** dataset (``tf.data`` or any iterable) of ``(x, y)`` batches (one pass over the training set, not the repeated
            balanced training stream) or a tuple ``(x, y)`` of arrays.
        batch_size : int
            Batch size when ``data`` is a tuple of arrays.

        Returns
        -------
        dict
            ``c_p``, ``c_n`` (numpy), ``n_normal``, ``n_outlier`` and ``distances``: the mean squared
            distances of the normal and of the outlier embeddings to the new c_p and c_n
            (:func:`centroid_distances`; what eqs. 2-3 pull and push).
        """
        sum_p = np.zeros(self.embedding_dim, np.float64)
        sum_n = np.zeros(self.embedding_dim, np.float64)
        sq_p = sq_n = 0.0  # sums of ||z||^2 (the mean distances to the new centroids, below)
        n_p = n_n = 0
        for x, y in self._iter_batches(data, int(batch_size)):
            y = y.reshape(-1)
            bad = set(np.unique(y).tolist()) - {L.NORMAL, L.OUTLIER, L.ANOMALY}
            if bad:
                raise ASDError(
                    f"ddcsad/model.py: unknown label codes {sorted(bad)}; use +1 normal, -1 outlier, -2 anomaly"
                )
            z = self._embed_batch(x).astype(np.float64)
            normal, outlier = y == L.NORMAL, y == L.OUTLIER
            sum_p += z[normal].sum(axis=0)
            sum_n += z[outlier].sum(axis=0)
            sq_p += float(np.sum(z[normal] ** 2))
            sq_n += float(np.sum(z[outlier] ** 2))
            n_p += int(normal.sum())
            n_n += int(outlier.sum())
        if n_p == 0:
            raise ASDError(
                "ddcsad/model.py: update_centroids found no normal clips (label +1); check the training data"
            )
        c_p = sum_p / n_p
        self.c_p.assign(c_p.astype(np.float32))
        if n_n:
            c_n = sum_n / n_n
            self.c_n.assign(c_n.astype(np.float32))
        elif self.centroid_term == "ddcsad":
            raise ASDError("ddcsad/model.py: DDCSAD needs outlier clips (label -1) to compute c_n; add outliers")
        else:
            warnings.warn("ddcsad: no outlier clips; c_n left unchanged", stacklevel=2)
            c_n = np.asarray(ops.convert_to_numpy(self.c_n), np.float64)
        self.centroid_updates.assign(self.centroid_updates + 1)
        distances = centroid_distances(sum_p, sq_p, n_p, sum_n, sq_n, n_n, c_p, c_n)
        return {"c_p": c_p, "c_n": c_n, "n_normal": n_p, "n_outlier": n_n, "distances": distances}

    # ------------------------------------------------------------------ saving
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "variant": self.variant,
            "lam": self.lam,
            "eta": self.eta,
            "epsilon": self.epsilon,
            "dsad_centroid": self.dsad_centroid,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        return cls(encoder=encoder, **config)


def weights_nbytes(model) -> int:
    """Bytes of the model's variables (weights, BN statistics, centroids): the size of its weights file
    written by :func:`save_model_weights`, give or take a few kB of names. No optimizer state."""
    return int(sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights))


def weights_file_bytes(model) -> int:
    """Upper bound of the size of a :func:`save_model_weights` file: the values plus 256 bytes of name
    and header per variable and 1 kB for the archive (ResNet38: ~274.2 MB)."""
    return weights_nbytes(model) + 256 * len(model.weights) + 1024


def save_model_weights(model, path) -> None:
    """Write the model's variables only (no optimizer state, no graph) to ``path`` (``.npz``), atomically.

    ``keras.Model.save`` and ``save_weights`` also store both Adam states of :class:`DDCSADModel` (its
    ``encoder_optimizer`` / ``head_optimizer`` are tracked attributes): three times the size. Rebuild
    the model with the same settings and call :func:`load_model_weights`.
    """
    from asdcore.atomic_io import atomic_save_npz

    values = {f"{i:05d}|{v.path}": np.asarray(ops.convert_to_numpy(v)) for i, v in enumerate(model.weights)}
    atomic_save_npz(path, overwrite=True, **values)  # a unit trained again writes its weights again


def load_model_weights(model, path) -> None:
    """Load a file of :func:`save_model_weights` into a model built with the same settings."""
    with np.load(path) as stored:
        keys = sorted(stored.files)
        if len(keys) != len(model.weights):
            raise ASDError(f"ddcsad/model.py: {path} holds {len(keys)} variables, the model has "
                           f"{len(model.weights)}; build the model with the settings it was saved with")
        for key, v in zip(keys, model.weights):
            value = stored[key]
            if tuple(value.shape) != tuple(v.shape):
                raise ASDError(f"ddcsad/model.py: {path}: {key.split('|', 1)[1]} has shape {value.shape}, the "
                               f"model's {v.path} {tuple(v.shape)}; build the model with the saved settings")
            v.assign(value)


def centroid_distances(sum_p, sq_p, n_p, sum_n, sq_n, n_n, c_p, c_n) -> dict:
    """Mean squared distances ``mean ||z - c||^2`` of the normal (p) and outlier (n) embeddings to c_p and
    c_n, from one pass's sums: with m = sum z / n and q = sum ||z||^2 / n of a group,
    ``mean ||z - c||^2 = q - 2 <c, m> + ||c||^2`` (no second pass over the training set).

    Returns ``{"dist_normal_cp", "dist_normal_cn", "dist_outlier_cp", "dist_outlier_cn"}`` (NaN for a group
    without clips)."""
    out = {}
    for group, total, squares, n in (("normal", sum_p, sq_p, n_p), ("outlier", sum_n, sq_n, n_n)):
        for name, c in (("cp", c_p), ("cn", c_n)):
            if n == 0:
                out[f"dist_{group}_{name}"] = float("nan")
                continue
            c = np.asarray(c, np.float64)
            out[f"dist_{group}_{name}"] = float(squares / n - 2.0 * c @ (np.asarray(total) / n) + c @ c)
    return out


class CentroidUpdate(keras.callbacks.Callback):
    """Compute the centroids before training (if never computed) and after every ``every`` epochs.

    Parameters
    ----------
    data : tf.data.Dataset or tuple
        The whole training set, finite, as for :meth:`DDCSADModel.update_centroids`.
    batch_size : int
        Batch size when ``data`` is a tuple of arrays.
    every : int
        Recompute after every ``every`` epochs (paper: 1). Only when the model's loss asks for it
        (:attr:`DDCSADModel.refresh_centroids_each_epoch`).
    calibration : iterable, optional
        Training batches (``(x, y)``, e.g. :class:`ddcsad.data.BalancedBatches`) used by
        :meth:`DDCSADModel.calibrate_batch_norm` before the first centroids (module docstring). None:
        the first centroids use the network's current BN statistics (initial ones for a new network).
    calibration_batches : int
        Batches averaged (default 10).

    After each update at an epoch's end the mean squared distances of the normal and the outlier
    embeddings to c_p and c_n (:func:`centroid_distances`) go into the epoch logs as ``dist_normal_cp``,
    ``dist_normal_cn``, ``dist_outlier_cp``, ``dist_outlier_cn`` (hence into the CSV log and TensorBoard).
    """

    def __init__(self, data, batch_size: int = 64, every: int = 1, calibration=None, calibration_batches: int = 10):
        super().__init__()
        self.data = data
        self.batch_size = int(batch_size)
        self.every = max(1, int(every))
        self.calibration = calibration
        self.calibration_batches = int(calibration_batches)
        self.calibrated_with = 0

    def on_train_begin(self, logs=None):
        model = self.model
        if model.centroid_term and int(ops.convert_to_numpy(model.centroid_updates)) == 0:
            if self.calibration is not None:
                self.calibrated_with = model.calibrate_batch_norm(self.calibration, self.calibration_batches)
            model.update_centroids(self.data, batch_size=self.batch_size)

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        if model.refresh_centroids_each_epoch and (epoch + 1) % self.every == 0:
            found = model.update_centroids(self.data, batch_size=self.batch_size)
            if logs is not None:  # into the CSV log and TensorBoard (asdcore.keras_utils)
                logs.update(found["distances"])


__all__ = [
    "require_supported_backend",
    "OptimizerPair",
    "DDCSADModel",
    "CentroidUpdate",
    "centroid_distances",
    "weights_nbytes",
    "weights_file_bytes",
    "save_model_weights",
    "load_model_weights",
    "halving_schedule",
    "epochs_for_iterations",
    "ENCODER_LEARNING_RATE",
    "HEAD_LEARNING_RATE",
    "HALVE_EVERY",
    "TOTAL_ITERATIONS",
    "FINETUNE_ITERATIONS",
    "DSAD_CENTROID_POLICIES",
]
