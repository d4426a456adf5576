"""The layers and losses on whichever Keras back-end runs the tests (TensorFlow, JAX or PyTorch).

Run by the default suite on TensorFlow and by ``KERAS_BACKEND=jax python -m pytest -q -m portable`` (and
the same with ``torch``, see ``test_torch_run.py``). What the TensorFlow-only tests of
``tests/subcluster_adacos/test_layers.py`` check with ``tf.GradientTape`` is checked here with each
back-end's own automatic differentiation, against central finite differences of numpy formulas of the
papers (sub-cluster AdaCos eq. (9), DDCSAD eq. (3)); the scale update inside a compiled ``model.fit``
(``jax.jit`` on JAX) is checked against the numpy scale rule of REFERENCE.md Sec. 4.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import ops  # noqa: E402

from asdcore.errors import ASDError  # noqa: E402
from ddcsad import losses as L  # noqa: E402
from subcluster_adacos import AdaCos, Mixup, SoftTargetCrossEntropy, SubClusterAdaCos  # noqa: E402

pytestmark = pytest.mark.portable

BACKEND = keras.backend.backend()
EPS = 1e-7  # keras.config.epsilon(): the clip before arccos


# ---------------------------------------------------------------- numpy oracles (float64)
def np_cosines(x, w):
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    return x @ (w / np.linalg.norm(w, axis=0, keepdims=True))


def np_probabilities(cos, s, n_classes, n_sub):
    """Paper eq. (9): softmax of s cos over the C*S columns, summed over each class's S columns."""
    logits = s * cos - (s * cos).max(axis=1, keepdims=True)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return p.reshape(len(cos), n_classes, n_sub).sum(axis=2)


def np_cross_entropy(x, centers, s, y, n_sub):
    """Mean categorical cross-entropy of the eq. (9) probabilities (no clip needed at these scales)."""
    p = np_probabilities(np_cosines(x, centers), s, y.shape[1], n_sub)
    return float(np.mean(-np.sum(y * np.log(p), axis=1)))


def np_subcluster_scale(cos, y, s_old, n_sub):
    """Max-logit rescaling, "reference" angles, one-hot labels (REFERENCE.md Sec. 4)."""
    logits = s_old * cos
    f_max = logits.max()
    b_avg = np.mean(np.exp(logits - f_max).sum(axis=1))
    theta = np.arccos(np.clip(cos, -1 + EPS, 1 - EPS))
    angles = (np.repeat(y, n_sub, axis=1) * theta).sum(axis=1) * np.count_nonzero(y, axis=1)
    theta_med = np.percentile(angles, 50, method="nearest")
    return (f_max + np.log(b_avg)) / np.cos(min(np.pi / 4, theta_med))


def central_differences(f, arrays, h=1e-5):
    """d f / d a for every entry of every array in ``arrays`` (float64), by central differences."""
    grads = []
    for k, a in enumerate(arrays):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus = [b.copy() for b in arrays]
            minus = [b.copy() for b in arrays]
            plus[k][idx] += h
            minus[k][idx] -= h
            g[idx] = (f(*plus) - f(*minus)) / (2 * h)
        grads.append(g)
    return grads


# ---------------------------------------------------------------- the back-end's own autodiff
def value_and_grads(fn, *arrays):
    """``fn(*tensors)`` and its gradient w.r.t. every argument, with the running back-end's autodiff."""
    args = [ops.convert_to_tensor(np.asarray(a, dtype="float32")) for a in arrays]
    if BACKEND == "jax":
        import jax

        value, grads = jax.value_and_grad(fn, argnums=tuple(range(len(args))))(*args)
    elif BACKEND == "torch":
        args = [a.detach().requires_grad_(True) for a in args]
        value = fn(*args)
        value.backward()
        grads = [a.grad for a in args]
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(args)
            value = fn(*args)
        grads = tape.gradient(value, args)
    else:  # pragma: no cover - numpy/openvino back-ends have no gradients
        pytest.skip(f"back-end {BACKEND!r} has no automatic differentiation")
    return float(ops.convert_to_numpy(value)), [ops.convert_to_numpy(g) for g in grads]


def problem(n=6, dim=5, n_classes=3, n_sub=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    centers = rng.normal(size=(dim, n_classes * n_sub))
    y = np.eye(n_classes)[rng.integers(0, n_classes, size=n)]
    return x, centers, y


def head(cls, n_classes, n_sub, dim, scale=None):
    layer = cls(n_classes, n_subclusters=n_sub) if cls is SubClusterAdaCos else cls(n_classes)
    layer.build([(None, dim), (None, n_classes)])
    if scale is not None:
        layer.scale.assign(scale)
    return layer


def head_loss(layer, y, training):
    """Loss as a pure function of (embeddings, centres): ``stateless_call`` works on every back-end and
    takes the scale update of a training call into its returned state instead of a variable."""
    scale = [v.value for v in layer.non_trainable_variables]
    labels = ops.convert_to_tensor(np.asarray(y, dtype="float32"))

    def loss(x, centers):
        p, _ = layer.stateless_call([centers], scale, [x, labels], training=training)
        return ops.mean(keras.losses.categorical_crossentropy(labels, p))

    return loss


# ---------------------------------------------------------------- gradients
def test_gradients_at_inference_match_finite_differences_of_eq9():
    x, centers, y = problem()
    layer = head(SubClusterAdaCos, 3, 2, x.shape[1], scale=4.0)
    value, (g_x, g_c) = value_and_grads(head_loss(layer, y, training=False), x, centers)
    assert value == pytest.approx(np_cross_entropy(x, centers, 4.0, y, 2), rel=1e-5)
    fd_x, fd_c = central_differences(lambda a, c: np_cross_entropy(a, c, 4.0, y, 2), [x, centers])
    np.testing.assert_allclose(g_x, fd_x, rtol=2e-3, atol=2e-5)
    np.testing.assert_allclose(g_c, fd_c, rtol=2e-3, atol=2e-5)


def test_training_gradient_treats_the_new_scale_as_a_constant():
    """In training the scale is updated first and used without gradient (stop_gradient): the gradient is
    the finite-difference gradient of eq. (9) with s fixed at the numpy s_new of this batch."""
    x, centers, y = problem(n=7, seed=1)
    layer = head(SubClusterAdaCos, 3, 2, x.shape[1])
    s_new = np_subcluster_scale(np_cosines(x, centers), y, float(layer.scale), 2)
    value, (g_x, g_c) = value_and_grads(head_loss(layer, y, training=True), x, centers)
    assert value == pytest.approx(np_cross_entropy(x, centers, s_new, y, 2), rel=1e-4)
    fd_x, fd_c = central_differences(lambda a, c: np_cross_entropy(a, c, s_new, y, 2), [x, centers])
    np.testing.assert_allclose(g_x, fd_x, rtol=2e-3, atol=2e-5)
    np.testing.assert_allclose(g_c, fd_c, rtol=2e-3, atol=2e-5)


@pytest.mark.parametrize("cls", [SubClusterAdaCos, AdaCos])
@pytest.mark.parametrize("training", [False, True])
def test_finite_loss_and_gradients_with_huge_scale_and_degenerate_embeddings(cls, training):
    x, centers, y = problem(n_sub=3 if cls is SubClusterAdaCos else 1, seed=2)
    x[0] = centers[:, 0]  # cos = 1: arccos needs the clip
    x[1] = -centers[:, 1]  # cos = -1
    x[2] = 0.0  # zero embedding
    layer = head(cls, 3, 3 if cls is SubClusterAdaCos else 1, x.shape[1], scale=1e4)
    value, grads = value_and_grads(head_loss(layer, y, training=training), x, centers)
    assert np.isfinite(value)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_ddcsad_loss_gradient_matches_finite_differences_of_eq3():
    rng = np.random.default_rng(4)
    codes = np.array([L.NORMAL, L.NORMAL, L.OUTLIER, L.OUTLIER, L.ANOMALY])
    z, c_p, c_n = rng.normal(size=(5, 3)), rng.normal(size=3), rng.normal(size=3) + 1.0
    eta = 2.0

    def np_eq3(zz):
        d_p = np.sum((zz - c_p) ** 2, axis=1)
        d_n = np.sum((zz - c_n) ** 2, axis=1)
        y = np.where(codes > 0, 1.0, -1.0)
        w = np.where(codes == L.OUTLIER, 1.0, eta)
        return float(np.mean(w * (d_p**y + d_n ** (-y))))

    value, (g_z,) = value_and_grads(lambda t: L.ddcsad_loss(t, codes, c_p, c_n, eta=eta, epsilon=0.0), z)
    assert value == pytest.approx(np_eq3(z), rel=1e-5)
    np.testing.assert_allclose(g_z, central_differences(np_eq3, [z])[0], rtol=2e-3, atol=2e-5)


# ---------------------------------------------------------------- inside model.fit (compiled)
def functional_model(n_classes, n_sub, dim, mixup_seed=None):
    x_in, y_in = keras.Input((dim,), name="features"), keras.Input((n_classes,), name="labels")
    x, y = (x_in, y_in) if mixup_seed is None else Mixup(seed=mixup_seed)([x_in, y_in])
    emb = keras.layers.Dense(8, name="embed")(x)
    p = SubClusterAdaCos(n_classes, n_subclusters=n_sub, name="head")([emb, y])
    p = SoftTargetCrossEntropy(name="ce")([p, y, y_in])
    return keras.Model([x_in, y_in], p)


def test_scale_update_inside_compiled_fit_matches_numpy():
    """One full-batch ``fit`` step with learning rate 0: the stored scale is the numpy s_new of the
    batch (state written from inside the compiled step) and the logged loss is eq. (9)'s cross-entropy
    with that s_new; a second step starts from the stored scale."""
    n_classes, n_sub, dim, n = 4, 2, 6, 16
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, dim)).astype("float32")
    y = np.eye(n_classes, dtype="float32")[rng.integers(0, n_classes, size=n)]
    model = functional_model(n_classes, n_sub, dim)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))
    w, b = (ops.convert_to_numpy(v).astype(np.float64) for v in model.get_layer("embed").weights)
    layer = model.get_layer("head")
    centers = ops.convert_to_numpy(layer.centers).astype(np.float64)
    cos = np_cosines(x @ w + b, centers)
    s = float(layer.scale)
    for _ in range(2):
        s = np_subcluster_scale(cos, y, s, n_sub)
        history = model.fit([x, y], batch_size=n, epochs=1, shuffle=False, verbose=0)
        assert float(layer.scale) == pytest.approx(s, rel=2e-5)
        p = np_probabilities(cos, s, n_classes, n_sub)
        assert history.history["loss"][0] == pytest.approx(np.mean(-np.sum(y * np.log(p), axis=1)), rel=1e-4)


def test_fit_with_mixup_trains_and_predict_ignores_labels():
    n_classes, dim, n = 3, 5, 24
    rng = np.random.default_rng(6)
    cls = rng.integers(0, n_classes, size=n)
    x = (rng.normal(size=(n, dim)) + 3 * np.eye(n_classes, dim)[cls]).astype("float32")
    y = np.eye(n_classes, dtype="float32")[cls]
    model = functional_model(n_classes, 2, dim, mixup_seed=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit([x, y], batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert float(model.get_layer("head").scale) != pytest.approx(np.sqrt(2) * np.log(n_classes * 2 - 1))
    p1 = model.predict([x, y], verbose=0)
    p2 = model.predict([x, np.zeros_like(y)], verbose=0)  # inference: no mixup, labels unused
    np.testing.assert_allclose(p1, p2, atol=1e-6)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------- what is TensorFlow-only says so
def test_ddcsad_model_refuses_other_backends_with_a_clear_error(monkeypatch):
    from ddcsad.model import DDCSADModel

    if BACKEND != "torch":  # its train_step has TensorFlow and JAX bodies; the real check runs under torch
        monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ASDError, match="ddcsad/model.py: DDCSADModel needs the TensorFlow or JAX back-end.*'torch'"):
        DDCSADModel(encoder)
