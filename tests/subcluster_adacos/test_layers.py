"""Sub-cluster AdaCos, AdaCos and Mixup layers against independent numpy computations.

Equations: paper eqs. (1)-(4) and (9); the scale rule of REFERENCE.md Sec. 4 (max-logit rescaling).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402  (tests only: gradients through the layer)

from asdcore.errors import ASDError  # noqa: E402
from subcluster_adacos import AdaCos, Mixup, SubClusterAdaCos, nearest_median, normalized_centers  # noqa: E402
from subcluster_adacos.layers import SoftTargetCrossEntropy  # noqa: E402

pytestmark = pytest.mark.portable  # also run under KERAS_BACKEND=jax / torch (README, tests/backends/)
tensorflow_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.GradientTape; tests/backends/test_portable_layers.py checks these gradients on every back-end",
)

EPS = 1e-7  # keras.config.epsilon(), the clip before arccos


# ---------------------------------------------------------------- numpy references
def np_cosines(x, w):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    w = w / np.linalg.norm(w, axis=0, keepdims=True)
    return x @ w


def np_median_nearest(v):
    return np.percentile(np.asarray(v, dtype=np.float64), 50, method="nearest")


def np_grouped_softmax(cos, s, n_classes, n_sub):
    """Paper eq. (9) in float64 (log-sum-exp form)."""
    logits = s * cos
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return p.reshape(len(cos), n_classes, n_sub).sum(axis=2)


def np_mixed_angles(cos, labels, n_sub, mode):
    theta = np.arccos(np.clip(cos, -1 + EPS, 1 - EPS))
    out = np.zeros(len(cos))
    for i in range(len(cos)):
        for j in range(labels.shape[1]):
            for l in range(n_sub):
                out[i] += labels[i, j] * theta[i, j * n_sub + l]
        if mode == "reference":
            out[i] *= np.count_nonzero(labels[i])
        else:
            out[i] /= n_sub
    return out


def np_subcluster_scale(cos, labels, s_old, n_sub, mode):
    logits = s_old * cos
    f_max = logits.max()
    b_avg = np.mean(np.sum(np.exp(logits - f_max), axis=1))
    theta_med = np_median_nearest(np_mixed_angles(cos, labels, n_sub, mode))
    return (f_max + np.log(b_avg)) / np.cos(min(np.pi / 4, theta_med))


def np_adacos_scale(cos, labels, s_old):
    b = 0.0
    for i in range(len(cos)):
        for k in range(cos.shape[1]):
            if labels[i, k] < 1:
                b += np.exp(s_old * cos[i, k])
    b /= len(cos)
    theta = np.arccos(np.clip(cos, -1 + EPS, 1 - EPS))
    true = theta[np.arange(len(cos)), labels.argmax(axis=1)]
    return np.log(b) / np.cos(min(np.pi / 4, np_median_nearest(true)))


# ---------------------------------------------------------------- data helpers
def make_problem(n, n_classes, n_sub, dim=8, spread=0.3, seed=0):
    """Centres of each class close together; embeddings near a centre of their class (small angles)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_classes, dim))
    centers = np.zeros((dim, n_classes * n_sub))
    for j in range(n_classes):
        for l in range(n_sub):
            centers[:, j * n_sub + l] = base[j] + 0.15 * rng.normal(size=dim)
    cls = rng.integers(0, n_classes, size=n)
    x = np.stack([base[c] + spread * rng.normal(size=dim) for c in cls]) * rng.uniform(0.5, 3, size=(n, 1))
    onehot = np.eye(n_classes)[cls]
    return x.astype("float32"), centers.astype("float32"), onehot.astype("float32")


def mix(x, y, lam):
    lam_x = lam.reshape(-1, *([1] * (x.ndim - 1)))
    return lam_x * x + (1 - lam_x) * x[::-1], lam[:, None] * y + (1 - lam[:, None]) * y[::-1]


def built_layer(cls, centers, n_classes, **kwargs):
    layer = cls(n_classes, **kwargs)
    layer.build([(None, centers.shape[0]), (None, n_classes)])
    layer.centers.assign(centers)
    return layer


# ---------------------------------------------------------------- median rule
@pytest.mark.parametrize("n, index", [(1, 0), (2, 0), (4, 2), (5, 2), (6, 2), (7, 3), (8, 4), (10, 4), (64, 32)])
def test_nearest_median_takes_documented_element(n, index):
    values = np.random.default_rng(n).permutation(np.arange(n, dtype="float32") * 1.5)
    got = float(nearest_median(keras.ops.convert_to_tensor(values)))
    assert got == np.sort(values)[index] == np_median_nearest(values)


# ---------------------------------------------------------------- SubClusterAdaCos
@pytest.mark.parametrize("n_classes, n_sub", [(41, 1), (41, 64), (2, 1), (5, 3)])
def test_initial_scale(n_classes, n_sub):
    layer = SubClusterAdaCos(n_classes, n_subclusters=n_sub)
    layer.build([(None, 16), (None, n_classes)])
    assert float(layer.scale) == pytest.approx(np.sqrt(2) * np.log(n_classes * n_sub - 1), rel=1e-6)
    assert tuple(layer.centers.shape) == (16, n_classes * n_sub)
    assert not layer.scale.trainable and layer.centers.trainable
    assert len(layer.trainable_weights) == 1


def test_centers_glorot_uniform_range():
    layer = SubClusterAdaCos(10, n_subclusters=4)
    layer.build([(None, 32), (None, 10)])
    w = keras.ops.convert_to_numpy(layer.centers)
    limit = np.sqrt(6 / (32 + 40))
    assert np.all(np.abs(w) <= limit) and w.std() > limit / 3


@pytest.mark.parametrize("mode", ["reference", "corrected"])
@pytest.mark.parametrize("n_sub", [1, 4])
@pytest.mark.parametrize("mixed", [False, True])
@pytest.mark.parametrize("n", [8, 7])
def test_scale_update_and_probabilities_match_numpy(mode, n_sub, mixed, n):
    n_classes = 5
    x, centers, y = make_problem(n, n_classes, n_sub, seed=n_sub + 10 * n)
    if mixed:
        lam = np.random.default_rng(3).uniform(size=n).astype("float32")
        x, y = mix(x, y, lam)
    layer = built_layer(SubClusterAdaCos, centers, n_classes, n_subclusters=n_sub, angle_mode=mode)
    s_old = float(layer.scale)
    cos = np_cosines(x.astype(np.float64), centers.astype(np.float64))
    s_new = np_subcluster_scale(cos, y.astype(np.float64), s_old, n_sub, mode)

    probs = keras.ops.convert_to_numpy(layer([x, y], training=True))
    assert float(layer.scale) == pytest.approx(s_new, rel=2e-5)
    np.testing.assert_allclose(probs, np_grouped_softmax(cos, s_new, n_classes, n_sub), atol=2e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    # the next batch starts from the stored scale
    s_next = np_subcluster_scale(cos, y.astype(np.float64), float(layer.scale), n_sub, mode)
    layer([x, y], training=True)
    assert float(layer.scale) == pytest.approx(s_next, rel=2e-5)


def test_median_below_clamp_is_what_decides_the_scale():
    """Angles below π/4: the chosen median element (not the clamp) sets the scale."""
    x, centers, y = make_problem(8, 4, 1, spread=0.1, seed=1)
    cos = np_cosines(x.astype(np.float64), centers.astype(np.float64))
    angles = np_mixed_angles(cos, y, 1, "corrected")
    assert np_median_nearest(angles) < np.pi / 4
    layer = built_layer(SubClusterAdaCos, centers, 4, angle_mode="corrected")
    s_old = float(layer.scale)
    layer([x, y], training=True)
    logits = s_old * cos
    num = logits.max() + np.log(np.exp(logits - logits.max()).sum(1).mean())
    assert float(layer.scale) == pytest.approx(num / np.cos(np.sort(angles)[4]), rel=2e-5)
    assert float(layer.scale) != pytest.approx(num / np.cos(np.sort(angles)[3]), rel=1e-3)


def test_reference_mode_count_factor_and_modes_differ():
    n_classes, n_sub, n = 4, 2, 6
    x, centers, y = make_problem(n, n_classes, n_sub, spread=0.05, seed=5)
    y = np.eye(n_classes, dtype="float32")[[0, 1, 2, 2, 1, 3]]
    lam = np.full(n, 0.7, dtype="float32")
    xm, ym = mix(x, y, lam)
    counts = np.count_nonzero(ym, axis=1)
    assert set(counts) == {1, 2}  # samples 2 and 3 mix the same class
    cos = np_cosines(xm.astype(np.float64), centers.astype(np.float64))
    ref = SubClusterAdaCos(n_classes, n_subclusters=n_sub, angle_mode="reference")
    cor = SubClusterAdaCos(n_classes, n_subclusters=n_sub, angle_mode="corrected")
    a_ref = keras.ops.convert_to_numpy(ref.mixed_angles(keras.ops.convert_to_tensor(cos, "float32"), ym))
    a_cor = keras.ops.convert_to_numpy(cor.mixed_angles(keras.ops.convert_to_tensor(cos, "float32"), ym))
    np.testing.assert_allclose(a_ref, np_mixed_angles(cos, ym, n_sub, "reference"), rtol=1e-5)
    np.testing.assert_allclose(a_cor, np_mixed_angles(cos, ym, n_sub, "corrected"), rtol=1e-5)
    np.testing.assert_allclose(a_ref, a_cor * n_sub * counts, rtol=1e-5)


def test_scale_fixed_at_inference_and_labels_optional():
    n_classes, n_sub = 5, 3
    x, centers, y = make_problem(6, n_classes, n_sub)
    layer = built_layer(SubClusterAdaCos, centers, n_classes, n_subclusters=n_sub)
    s0 = float(layer.scale)
    cos = np_cosines(x.astype(np.float64), centers.astype(np.float64))
    expected = np_grouped_softmax(cos, s0, n_classes, n_sub)
    for out in (layer([x, y], training=False), layer([x, y]), layer(x), layer([x], training=False)):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(out), expected, atol=2e-6)
    assert float(layer.scale) == s0
    with pytest.raises(ASDError):
        layer(x, training=True)


@tensorflow_only
@pytest.mark.parametrize("cls", [SubClusterAdaCos, AdaCos])
@pytest.mark.parametrize("training", [False, True])
def test_finite_outputs_and_gradients_with_huge_scale(cls, training):
    n_classes = 4
    kwargs = {"n_subclusters": 3} if cls is SubClusterAdaCos else {}
    n_cols = n_classes * kwargs.get("n_subclusters", 1)
    x, centers, y = make_problem(6, n_classes, n_cols // n_classes)
    x[0] = centers[:, 0]  # cos = 1 exactly: arccos needs the clip
    x[1] = -centers[:, 1]  # cos = -1
    x[2] = 0.0  # zero embedding
    layer = built_layer(cls, centers, n_classes, **kwargs)
    layer.scale.assign(1e4)
    xt = tf.Variable(x)
    with tf.GradientTape(persistent=True) as tape:
        p = layer([xt, y], training=training)
        loss = keras.ops.mean(keras.losses.categorical_crossentropy(y, p))
    assert np.all(np.isfinite(p.numpy())) and np.isfinite(float(loss))
    np.testing.assert_allclose(p.numpy().sum(axis=1), 1.0, atol=1e-5)
    for g in (tape.gradient(loss, xt), tape.gradient(loss, layer.centers)):
        assert g is not None and np.all(np.isfinite(g.numpy()))
    assert np.isfinite(float(layer.scale))
    if not training:
        assert float(layer.scale) == 1e4
        expected = np_grouped_softmax(np_cosines(x[3:].astype(np.float64), centers.astype(np.float64)), 1e4,
                                      n_classes, n_cols // n_classes)
        np.testing.assert_allclose(p.numpy()[3:], expected, atol=1e-5)


@tensorflow_only
def test_scale_update_not_differentiated():
    """The loss gradient equals the one with the new scale used as a constant."""
    n_classes, n_sub = 3, 2
    x, centers, y = make_problem(5, n_classes, n_sub)
    layer = built_layer(SubClusterAdaCos, centers, n_classes, n_subclusters=n_sub)
    xt = tf.Variable(x)
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.losses.categorical_crossentropy(y, layer([xt, y], training=True)))
    g_train = tape.gradient(loss, xt).numpy()
    with tf.GradientTape() as tape:  # same scale, inference path (scale is a constant there)
        loss2 = keras.ops.mean(keras.losses.categorical_crossentropy(y, layer([xt, y], training=False)))
    np.testing.assert_allclose(float(loss), float(loss2), rtol=1e-6)
    np.testing.assert_allclose(g_train, tape.gradient(loss2, xt).numpy(), rtol=1e-4, atol=1e-7)


def test_normalized_centers():
    n_classes, n_sub = 3, 4
    _, centers, _ = make_problem(2, n_classes, n_sub)
    layer = built_layer(SubClusterAdaCos, centers, n_classes, n_subclusters=n_sub)
    got = normalized_centers(layer)
    assert got.shape == (n_classes, n_sub, centers.shape[0])
    for j in range(n_classes):
        for l in range(n_sub):
            col = centers[:, j * n_sub + l].astype(np.float64)
            np.testing.assert_allclose(got[j, l], col / np.sqrt(np.sum(col**2)), rtol=1e-6)
    np.testing.assert_allclose(layer.normalized_centers(), got)


def test_bad_arguments():
    with pytest.raises(ASDError):
        SubClusterAdaCos(5, angle_mode="paper")
    with pytest.raises(ASDError):
        SubClusterAdaCos(1)
    with pytest.raises(ASDError):
        SubClusterAdaCos(5).build([(None, 8), (None, 4)])
    with pytest.raises(ASDError):
        Mixup(probability=1.5)


def test_config_round_trip():
    layer = SubClusterAdaCos(7, n_subclusters=2, angle_mode="corrected", trainable_centers=False, name="h")
    clone = SubClusterAdaCos.from_config(layer.get_config())
    assert (clone.n_classes, clone.n_subclusters, clone.angle_mode, clone.trainable_centers) == (7, 2, "corrected",
                                                                                                 False)
    clone.build([(None, 4), (None, 7)])
    assert not clone.centers.trainable
    a = AdaCos.from_config(AdaCos(6).get_config())
    assert a.n_classes == 6 and a.n_subclusters == 1
    m = Mixup.from_config(Mixup(0.3, seed=4).get_config())
    assert m.probability == 0.3 and m.seed == 4


# ---------------------------------------------------------------- AdaCos
@pytest.mark.parametrize("mixed", [False, True])
def test_adacos_matches_numpy(mixed):
    n_classes, n = 6, 9
    x, centers, y = make_problem(n, n_classes, 1, seed=7)
    if mixed:
        x, y = mix(x, y, np.random.default_rng(1).uniform(size=n).astype("float32"))
    layer = built_layer(AdaCos, centers, n_classes)
    s0 = float(layer.scale)
    assert s0 == pytest.approx(np.sqrt(2) * np.log(n_classes - 1), rel=1e-6)
    cos = np_cosines(x.astype(np.float64), centers.astype(np.float64))
    probs = keras.ops.convert_to_numpy(layer([x, y], training=False))
    np.testing.assert_allclose(probs, np_grouped_softmax(cos, s0, n_classes, 1), atol=2e-6)
    assert float(layer.scale) == s0
    s_new = np_adacos_scale(cos, y.astype(np.float64), s0)
    probs = keras.ops.convert_to_numpy(layer([x, y], training=True))
    assert float(layer.scale) == pytest.approx(s_new, rel=2e-5)
    np.testing.assert_allclose(probs, np_grouped_softmax(cos, s_new, n_classes, 1), atol=2e-5)


def test_adacos_differs_from_subcluster_rule():
    x, centers, y = make_problem(8, 4, 1, seed=2)
    a = built_layer(AdaCos, centers, 4)
    b = built_layer(SubClusterAdaCos, centers, 4)
    a([x, y], training=True)
    b([x, y], training=True)
    assert abs(float(a.scale) - float(b.scale)) > 1e-3


# ---------------------------------------------------------------- Mixup
def test_mixup_per_sample_lambda_reversed_partner_same_lambda_for_labels():
    n = 9
    x = np.eye(n, dtype="float32")  # sample i = e_i, so λ_i can be read back
    y = np.eye(4, dtype="float32")[np.arange(n) % 4]
    xm, ym = Mixup(seed=3)([x, y], training=True)
    xm, ym = keras.ops.convert_to_numpy(xm), keras.ops.convert_to_numpy(ym)
    lam = np.diag(xm).copy()
    mid = n // 2
    assert lam[mid] == pytest.approx(1.0)  # the middle sample is its own partner
    lam[mid] = xm[mid, mid]
    others = [i for i in range(n) if i != mid]
    for i in others:
        assert xm[i, n - 1 - i] == pytest.approx(1 - lam[i], abs=1e-6)
    assert np.all((lam[others] > 0) & (lam[others] < 1))
    assert len(np.unique(np.round(lam[others], 6))) == len(others)  # one λ per sample
    np.testing.assert_allclose(xm.sum(axis=1), 1.0, atol=1e-6)
    expected_y = lam[:, None] * y + (1 - lam[:, None]) * y[::-1]
    np.testing.assert_allclose(ym, expected_y, atol=1e-6)


def test_mixup_broadcasts_over_feature_axes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5, 3)).astype("float32")
    y = np.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2]]
    xm, ym = Mixup(seed=1)([x, y], training=True)
    xm, ym = keras.ops.convert_to_numpy(xm), keras.ops.convert_to_numpy(ym)
    # recover λ_i from the labels of a pair with different classes, check every feature uses it
    for i in range(6):
        j = 5 - i
        lam = ym[i, np.argmax(y[i])] if np.argmax(y[i]) != np.argmax(y[j]) else None
        if lam is not None:
            np.testing.assert_allclose(xm[i], lam * x[i] + (1 - lam) * x[j], atol=1e-5)


def test_mixup_identity_at_inference_and_probability():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2)).astype("float32")
    y = np.eye(2, dtype="float32")[rng.integers(0, 2, 400)]
    for out in (Mixup()([x, y], training=False), Mixup()([x, y]), Mixup(probability=0.0)([x, y], training=True)):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(out[0]), x)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(out[1]), y)
    xm = keras.ops.convert_to_numpy(Mixup(probability=0.5, seed=2)([x, y], training=True)[0])
    unchanged = np.mean(np.all(xm == x, axis=1))
    assert 0.35 < unchanged < 0.65
    xs = np.zeros((1000, 1), "float32")
    xs[:500] = 1.0
    lam = keras.ops.convert_to_numpy(Mixup(seed=6)([xs, np.ones((1000, 1), "float32")], training=True)[0])[:500, 0]
    assert abs(lam.mean() - 0.5) < 0.05 and abs(np.mean(lam < 0.25) - 0.25) < 0.05  # U(0, 1)


def test_mixup_max_label_rule():
    """label_rule="max" (some versions of the author's DCASE 2022 code): y_mixed = max(λ y_i, (1-λ) y_partner)
    element-wise, with the λ_i read back from the features (sample i = e_i)."""
    n = 8
    x = np.eye(n, dtype="float32")
    y = np.eye(3, dtype="float32")[[0, 1, 2, 0, 0, 2, 1, 0]]
    xm, ym = Mixup(seed=5, label_rule="max")([x, y], training=True)
    xm, ym = keras.ops.convert_to_numpy(xm), keras.ops.convert_to_numpy(ym)
    lam = np.diag(xm)[:, None]
    np.testing.assert_allclose(ym, np.maximum(lam * y, (1 - lam) * y[::-1]), atol=1e-6)
    assert np.any(ym.sum(axis=1) < 0.99)  # unlike linear mixing, the labels need not sum to one
    assert Mixup.from_config(Mixup(label_rule="max").get_config()).label_rule == "max"
    with pytest.raises(ASDError, match="label_rule"):
        Mixup(label_rule="min")


# ---------------------------------------------------------------- loss layer
def test_soft_target_cross_entropy_matches_numpy():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=5).astype("float32")
    labels = np.eye(4, dtype="float32")[[0, 1, 2, 3, 1]]
    targets = 0.6 * labels + 0.4 * labels[::-1]
    w = np.array([1.0, 2.0, 0.5, 3.0])
    layer = SoftTargetCrossEntropy(class_weights=w)
    out = layer([p, targets, labels])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), p)
    ce = -np.sum(targets * np.log(p), axis=1)
    expected = np.mean(ce * w[labels.argmax(1)])
    assert float(layer.losses[0]) == pytest.approx(expected, rel=1e-5)


def test_heads_and_loss_compute_in_float32_under_mixed_precision():
    import keras

    from subcluster_adacos.layers import AdaCos, SoftTargetCrossEntropy, SubClusterAdaCos

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        dense = keras.layers.Dense(4)
        assert dense.compute_dtype == "bfloat16"
        for layer in (SubClusterAdaCos(3, n_subclusters=2), AdaCos(3), SoftTargetCrossEntropy()):
            assert layer.compute_dtype == "float32" and layer.variable_dtype == "float32"
        head = SubClusterAdaCos(3, n_subclusters=2)
        x = keras.ops.cast(keras.random.normal((5, 4), seed=1), "bfloat16")
        y = keras.ops.one_hot(keras.ops.array([0, 1, 2, 0, 1]), 3)
        out = head([x, y], training=True)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.sum(out, axis=-1)), 1.0, rtol=1e-6)
    finally:
        keras.config.set_dtype_policy(previous)
