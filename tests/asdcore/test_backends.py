"""Back-ends against independent computations (scipy densities, numpy by hand)."""
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from asdcore.backends import (CosineMeanBackend, CosineTopKBackend, GaussianBackend, GMMBackend, PLDABackend,
                              l2_normalize, score_per_unit)
from asdcore.errors import ASDError


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 4)) + np.array([3.0, 0, 0, 0])
    test = rng.normal(size=(30, 4)) + np.array([3.0, 0, 0, 0])
    return train, test


def test_max_component_score_equals_scipy_density(data):
    train, test = data
    means_init = l2_normalize(train[:3])
    backend = GMMBackend(n_components=3, means_init=means_init, reg_covar=1e-3).fit(train)
    gmm = backend.gmm_
    assert gmm.reg_covar == 1e-3 and gmm.covariance_type == "full"
    x = l2_normalize(test)
    dens = np.stack([multivariate_normal(gmm.means_[k], gmm.covariances_[k]).logpdf(x) for k in range(3)], axis=1)
    np.testing.assert_allclose(backend.score(test), -dens.max(axis=1), rtol=1e-8, atol=1e-8)


def test_loglik_score_equals_weighted_mixture(data):
    train, test = data
    backend = GMMBackend(n_components=2, score="loglik").fit(train)
    gmm = backend.gmm_
    x = l2_normalize(test)
    mix = sum(w * multivariate_normal(m, c).pdf(x) for w, m, c in zip(gmm.weights_, gmm.means_, gmm.covariances_))
    np.testing.assert_allclose(backend.score(test), -np.log(mix), rtol=1e-8)


@pytest.mark.parametrize("cov", ["spherical", "diag", "full"])
def test_gaussian_backend_is_negative_loglik(data, cov):
    train, test = data
    backend = GaussianBackend(covariance_type=cov, normalize=False).fit(train)
    ref = GaussianMixture(1, covariance_type=cov, reg_covar=1e-3).fit(train)
    np.testing.assert_allclose(backend.score(test), -ref.score_samples(test), rtol=1e-6)


def test_gmm_with_fewer_samples_than_components_warns():
    rng = np.random.default_rng(1)
    with pytest.warns(UserWarning, match="components instead"):
        backend = GMMBackend(n_components=8, means_init=rng.normal(size=(8, 3))).fit(rng.normal(size=(5, 3)))
    assert backend.gmm_.n_components == 5
    assert np.all(np.isfinite(backend.score(rng.normal(size=(4, 3)))))


def test_cosine_backends_by_hand(data):
    train, test = data
    mean_dir = train.mean(0) / np.linalg.norm(train.mean(0))
    expected = -np.array([t @ mean_dir / np.linalg.norm(t) for t in test])
    np.testing.assert_allclose(CosineMeanBackend().fit(train).score(test), expected, rtol=1e-10)
    sims = np.array([[t @ r / np.linalg.norm(t) / np.linalg.norm(r) for r in train] for t in test])
    expected_top = -np.sort(sims, axis=1)[:, -10:].mean(axis=1)
    np.testing.assert_allclose(CosineTopKBackend(10).fit(train).score(test), expected_top, rtol=1e-10)


def test_plda_llr_against_direct_formula():
    rng = np.random.default_rng(2)
    units = np.repeat(["a", "b", "c"], 50)
    centres = rng.normal(scale=3, size=(3, 2))
    X = centres[np.repeat([0, 1, 2], 50)] + rng.normal(size=(150, 2))
    plda = PLDABackend(normalize=False).fit(X, units)
    # Direct two-covariance computation by hand.
    means = np.stack([X[units == u].mean(0) for u in "abc"])
    mu = X.mean(0)
    W = sum(((X[units == u] - means[i]).T @ (X[units == u] - means[i])) for i, u in enumerate("abc")) / (150 - 3)
    W += 1e-6 * np.eye(2)
    B = np.cov(means.T, bias=True) + 1e-6 * np.eye(2)
    P = np.linalg.inv(np.linalg.inv(B) + 50 * np.linalg.inv(W))
    m_post = P @ (np.linalg.inv(B) @ mu + 50 * np.linalg.inv(W) @ means[1])
    x = rng.normal(size=(5, 2)) + centres[1]
    expected = -(multivariate_normal(m_post, P + W).logpdf(x) - multivariate_normal(mu, B + W).logpdf(x))
    np.testing.assert_allclose(plda.score(x, ["b"] * 5), expected, rtol=1e-8)
    # A clip far from its unit scores as more anomalous than one at the unit's centre.
    far, near = plda.score(np.stack([centres[0], centres[1]]), ["b", "b"])
    assert far > near


def test_score_per_unit_fits_each_unit_on_its_own_rows():
    """Two units whose training clips point in different directions: each test clip is scored against the
    training clips of its own unit (score = minus the largest cosine, computed here by hand)."""
    rng = np.random.default_rng(4)
    angles = np.concatenate([rng.uniform(-0.3, 0.3, 20), rng.uniform(np.pi / 2 - 0.3, np.pi / 2 + 0.3, 20)])
    train_X = np.stack([np.cos(angles), np.sin(angles)], axis=1) * rng.uniform(0.5, 2.0, (40, 1))
    train_units = np.repeat(["u1", "u2"], 20)
    test_angles = rng.uniform(0, np.pi / 2, 6)
    test_X = np.stack([np.cos(test_angles), np.sin(test_angles)], axis=1)
    test_units = np.array(["u1", "u2", "u1", "u2", "u1", "u2"])
    scores = score_per_unit(lambda u: CosineTopKBackend(1), train_X, train_units, test_X, test_units)
    unit_train = l2_normalize(train_X)
    for i, unit in enumerate(test_units):
        own = unit_train[train_units == unit] @ test_X[i]
        assert scores[i] == pytest.approx(-own.max(), abs=1e-12)
    # the other unit's clips would give different scores: the test tells the units apart
    swapped = score_per_unit(lambda u: CosineTopKBackend(1), train_X, train_units[::-1], test_X, test_units)
    assert np.all(np.abs(swapped - scores) > 1e-3)
    with pytest.raises(ASDError, match="no training clips"):
        score_per_unit(lambda u: CosineMeanBackend(), train_X, train_units, test_X, np.array(["u3"] * 6))


def test_back_end_fitting_over_units_shows_progress(capsys):
    """One step per unit on stderr (tqdm), ending at units/units."""
    rng = np.random.default_rng(0)
    train_X, test_X = rng.normal(size=(30, 3)), rng.normal(size=(9, 3))
    units = np.array(["a", "b", "c"])
    score_per_unit(lambda u: CosineMeanBackend(), train_X, np.repeat(units, 10), test_X, np.repeat(units, 3))
    err = capsys.readouterr().err
    assert "back-ends" in err and "3/3" in err
