"""Losses of Kuroyanagi et al. (eqs. 1-4) against numpy written straight from the paper's formulas."""
import numpy as np
import pytest
from keras import ops

from asdcore.errors import ASDError
from ddcsad import losses as L

pytestmark = pytest.mark.portable  # also run under KERAS_BACKEND=jax / torch (README, tests/backends/)

# ---------------------------------------------------------------------------- numpy, from the paper
# Label codes: +1 normal (labelled set, y~ = +1), -1 outlier (outlier set, y = -1),
# -2 real anomaly (labelled set, y~ = -1).


def paper_sets(codes):
    codes = np.asarray(codes)
    outlier = codes == -1
    labelled = ~outlier
    y = np.where(codes > 0, 1, -1)  # y for the outlier set, y~ for the labelled set
    return outlier, labelled, y


def np_bce(p, codes):
    """Eq. (1): -1/(N+M) {sum_i log(1-p_i) + sum_j [u(y~_j) log p~_j + (1-u(y~_j)) log(1-p~_j)]}."""
    outlier, labelled, y = paper_sets(codes)
    u = (y > 0).astype(float)
    s = np.sum(np.log(1 - p[outlier]))
    s += np.sum(u[labelled] * np.log(p[labelled]) + (1 - u[labelled]) * np.log(1 - p[labelled]))
    return -s / len(p)


def np_dsad(z, codes, c, eta):
    """Eq. (2): 1/(N+M) {sum_i ||z_i - c||^(2y_i) + eta sum_j ||z~_j - c||^(2y~_j)}."""
    outlier, labelled, y = paper_sets(codes)
    total = 0.0
    for i in np.flatnonzero(outlier):
        total += np.linalg.norm(z[i] - c) ** (2 * y[i])
    for j in np.flatnonzero(labelled):
        total += eta * np.linalg.norm(z[j] - c) ** (2 * y[j])
    return total / len(z)


def np_ddcsad(z, codes, cp, cn, eta):
    """Eq. (3): the outlier sum of ||z-c_p||^(2y) + ||z-c_n||^(-2y), plus eta times the labelled sum."""
    outlier, labelled, y = paper_sets(codes)
    total = 0.0
    for i in np.flatnonzero(outlier):
        total += np.linalg.norm(z[i] - cp) ** (2 * y[i]) + np.linalg.norm(z[i] - cn) ** (-2 * y[i])
    for j in np.flatnonzero(labelled):
        total += eta * (np.linalg.norm(z[j] - cp) ** (2 * y[j]) + np.linalg.norm(z[j] - cn) ** (-2 * y[j]))
    return total / len(z)


def f(t):
    return float(ops.convert_to_numpy(t))


@pytest.fixture
def batch():
    rng = np.random.default_rng(3)
    codes = np.array([1, 1, 1, -1, -1, -1, -1, -2, 1, -2])
    z = rng.normal(size=(len(codes), 4))
    cp = rng.normal(size=4)
    cn = rng.normal(size=4) + 1.0
    p = rng.uniform(0.05, 0.95, size=len(codes))
    return codes, z, cp, cn, p


# ---------------------------------------------------------------------------- tests
def test_bce_matches_eq1_from_probabilities_and_logits(batch):
    codes, _, _, _, p = batch
    ref = np_bce(p, codes)
    assert f(L.bce_loss(p, codes)) == pytest.approx(ref, rel=1e-5)
    logits = np.log(p / (1 - p))
    assert f(L.bce_loss(logits, codes, from_logits=True)) == pytest.approx(ref, rel=1e-5)


def test_bce_outlier_and_anomaly_take_log_one_minus_p():
    assert f(L.bce_loss(np.array([0.9]), np.array([-1]))) == pytest.approx(-np.log(0.1), rel=1e-5)
    assert f(L.bce_loss(np.array([0.9]), np.array([-2]))) == pytest.approx(-np.log(0.1), rel=1e-5)
    assert f(L.bce_loss(np.array([0.9]), np.array([1]))) == pytest.approx(-np.log(0.9), rel=1e-5)


@pytest.mark.parametrize("eta", [1.0, 2.0, 3.5])
def test_dsad_matches_eq2(batch, eta):
    codes, z, cp, _, _ = batch
    ref = np_dsad(z, codes, cp, eta)
    assert f(L.dsad_loss(z, codes, cp, eta=eta, epsilon=0.0)) == pytest.approx(ref, rel=1e-5)
    # the default epsilon (1e-6) barely moves it
    assert f(L.dsad_loss(z, codes, cp, eta=eta)) == pytest.approx(ref, rel=1e-4)


@pytest.mark.parametrize("eta", [1.0, 2.0, 3.5])
def test_ddcsad_matches_eq3(batch, eta):
    codes, z, cp, cn, _ = batch
    ref = np_ddcsad(z, codes, cp, cn, eta)
    assert f(L.ddcsad_loss(z, codes, cp, cn, eta=eta, epsilon=0.0)) == pytest.approx(ref, rel=1e-5)
    assert f(L.ddcsad_loss(z, codes, cp, cn, eta=eta)) == pytest.approx(ref, rel=1e-4)


def test_exponent_sign_per_clip():
    z = np.array([[3.0, 4.0]])  # ||z - 0||^2 = 25
    zero, cn = np.zeros(2), np.array([3.0, 0.0])  # ||z - c_n||^2 = 16
    # DSAD: normal -> d, outlier -> 1/d, anomaly -> eta/d
    assert f(L.dsad_loss(z, [1], zero, eta=1.0, epsilon=0.0)) == pytest.approx(25.0)
    assert f(L.dsad_loss(z, [-1], zero, eta=2.0, epsilon=0.0)) == pytest.approx(1 / 25.0)
    assert f(L.dsad_loss(z, [-2], zero, eta=2.0, epsilon=0.0)) == pytest.approx(2 / 25.0)
    # DDCSAD: normal -> d_p + 1/d_n, outlier -> 1/d_p + d_n
    assert f(L.ddcsad_loss(z, [1], zero, cn, eta=1.0, epsilon=0.0)) == pytest.approx(25 + 1 / 16)
    assert f(L.ddcsad_loss(z, [-1], zero, cn, eta=2.0, epsilon=0.0)) == pytest.approx(1 / 25 + 16)


def test_eta_weights_the_labelled_set_only(batch):
    codes, z, cp, cn, _ = batch
    out = codes == -1
    # outliers alone: eta has no effect
    a = f(L.ddcsad_loss(z[out], codes[out], cp, cn, eta=1.0))
    b = f(L.ddcsad_loss(z[out], codes[out], cp, cn, eta=5.0))
    assert a == pytest.approx(b, rel=1e-6)
    # labelled set alone (normal + anomalies): linear in eta
    a = f(L.dsad_loss(z[~out], codes[~out], cp, eta=1.0))
    b = f(L.dsad_loss(z[~out], codes[~out], cp, eta=3.0))
    assert b == pytest.approx(3 * a, rel=1e-5)
    # normaliser is the batch size N + M, not the weighted count
    one = f(L.dsad_loss(z[:1], codes[:1], cp, eta=2.0))
    assert one == pytest.approx(2.0 * np.sum((z[0] - cp) ** 2), rel=1e-5)


def test_epsilon_keeps_inverse_terms_finite():
    c = np.array([1.0, 2.0])
    z = c[None, :]
    val = f(L.dsad_loss(z, [-1], c, epsilon=1e-6))
    assert np.isfinite(val) and val == pytest.approx(1e6, rel=1e-5)
    val = f(L.ddcsad_loss(z, [1], np.zeros(2), c, eta=1.0, epsilon=1e-3))
    assert val == pytest.approx(5.0 + 1e3, rel=1e-5)


@pytest.mark.parametrize("variant", L.VARIANTS)
def test_multitask_loss_eq4_and_variants(batch, variant):
    codes, z, cp, cn, p = batch
    lam, eta = 0.7, 2.0
    bce = np_bce(p, codes)
    dsad = np_dsad(z, codes, cp, eta)
    ddc = np_ddcsad(z, codes, cp, cn, eta)
    ref = {"bce": bce, "dsad": dsad, "ddcsad": ddc, "bce+dsad": bce + lam * dsad, "bce+ddcsad": bce + lam * ddc}
    got = L.multitask_loss(p, z, codes, cp, cn, variant=variant, lam=lam, eta=eta, epsilon=0.0)
    assert f(got) == pytest.approx(ref[variant], rel=1e-5)


def test_defaults_are_the_papers():
    assert (L.DEFAULT_LAMBDA, L.DEFAULT_ETA) == (1.0, 2.0)
    assert 0 < L.DEFAULT_EPSILON <= 1e-4


def test_unknown_variant_raises():
    with pytest.raises(ASDError):
        L.multitask_loss(np.array([0.5]), np.zeros((1, 2)), [1], np.zeros(2), variant="bce+svdd")
