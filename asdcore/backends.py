"""Scorers on embeddings (the "back-ends" of Wilkinghoff 2020, Table II), scikit-learn style.

Every back-end is fitted on the normal training embeddings of one unit (machine ID or section) with
``fit(X)`` and returns anomaly scores with ``score(X)``: higher = more anomalous. ``score_per_unit``
fits one back-end per unit and scores that unit's test clips.

Back-ends of Table II: cosine similarity to the class mean, mean cosine similarity to the k = 10
closest training embeddings, two-covariance PLDA, Gaussians with spherical / diagonal / full
covariance, and GMMs (Table IV). The "model output" row needs the network and lives with the method.

All Gaussians go through scikit-learn's public API (``GaussianMixture`` and its fitted ``means_`` /
``precisions_cholesky_`` attributes).
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from asdcore.errors import ASDError

__all__ = [
    "fit_progress",
    "l2_normalize",
    "GaussianBackend",
    "GMMBackend",
    "CosineMeanBackend",
    "CosineTopKBackend",
    "PLDABackend",
    "score_per_unit",
    "component_log_densities",
]


def l2_normalize(X, axis=-1, eps=1e-12):
    """Project rows onto the unit sphere: ``x / max(||x||, eps)``."""
    X = np.asarray(X, dtype=np.float64)
    return X / np.maximum(np.linalg.norm(X, axis=axis, keepdims=True), eps)


def component_log_densities(gmm: GaussianMixture, X) -> np.ndarray:
    """log N(x | mu_k, Sigma_k) for every component k of a fitted full-covariance GaussianMixture.

    Mixture weights are not included. Computed from the public ``means_`` and ``precisions_cholesky_``:
    ``log N = -d/2 log(2 pi) + sum(log diag L_k) - 1/2 ||(x - mu_k) L_k||^2`` with ``Sigma_k^-1 = L_k L_k^T``.
    Returns an array (n_samples, n_components).
    """
    X = np.asarray(X, dtype=np.float64)
    n_features = X.shape[1]
    chol = gmm.precisions_cholesky_
    if gmm.covariance_type == "full":
        log_det = np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
        maha = np.empty((X.shape[0], gmm.n_components))
        for k, (mu, prec_chol) in enumerate(zip(gmm.means_, chol)):
            y = (X - mu) @ prec_chol
            maha[:, k] = np.sum(y * y, axis=1)
    elif gmm.covariance_type == "diag":
        log_det = np.sum(np.log(chol), axis=1)
        maha = np.stack([np.sum(((X - mu) * c) ** 2, axis=1) for mu, c in zip(gmm.means_, chol)], axis=1)
    elif gmm.covariance_type == "spherical":
        log_det = n_features * np.log(chol)
        maha = np.stack([np.sum((X - mu) ** 2, axis=1) * c**2 for mu, c in zip(gmm.means_, chol)], axis=1)
    else:  # tied
        log_det = np.full(gmm.n_components, np.sum(np.log(np.diag(chol))))
        maha = np.stack([np.sum(((X - mu) @ chol) ** 2, axis=1) for mu in gmm.means_], axis=1)
    return -0.5 * (n_features * np.log(2 * np.pi) + maha) + log_det


def _check_fit_data(X, min_samples=1, what="training embeddings"):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ASDError(f"{what} must be a 2-D array (samples, dimensions), got shape {X.shape}")
    if X.shape[0] < min_samples:
        raise ASDError(f"{what}: {X.shape[0]} sample(s), at least {min_samples} needed")
    if not np.all(np.isfinite(X)):
        raise ASDError(f"{what} contain NaN or infinite values")
    return X


class GMMBackend:
    """A Gaussian mixture per unit; anomaly score from the fitted components.

    Parameters
    ----------
    n_components : int
        Number of modes (the number of sub-clusters S, Wilkinghoff 2020 Table IV).
    covariance_type : {"full", "diag", "spherical", "tied"}
        "full" is the reference (Table II: a full covariance wins).
    means_init : array (n_components, dim), optional
        Initial means; the reference uses that class's L2-normalised learned sub-cluster centres.
    reg_covar : float
        Added to the covariance diagonals (public code and Wilkinghoff 2021: 1e-3).
    score : {"max_component", "loglik"}
        "max_component" (reference): minus the largest per-component Gaussian log-density,
        mixture weights excluded. "loglik": minus the weighted mixture log-likelihood.
    normalize : bool
        L2-normalise embeddings before fitting and scoring (reference: True).
    random_state : int
        Seed of scikit-learn's initialisation where no ``means_init`` is given.

    Notes
    -----
    A unit with fewer training samples than components (possible in quick runs) is fitted with as
    many components as samples, keeping the initial means that lie closest to the data; a warning says so.
    """

    def __init__(self, n_components=1, covariance_type="full", means_init=None, reg_covar=1e-3,
                 score="max_component", normalize=True, random_state=0, max_iter=100):
        if score not in ("max_component", "loglik"):
            raise ASDError(f"GMM score must be 'max_component' or 'loglik', got {score!r}")
        self.n_components = int(n_components)
        self.covariance_type = covariance_type
        self.means_init = None if means_init is None else np.asarray(means_init, dtype=np.float64)
        self.reg_covar = reg_covar
        self.score_rule = score
        self.normalize = normalize
        self.random_state = random_state
        self.max_iter = max_iter

    def _prepare(self, X):
        return l2_normalize(X) if self.normalize else np.asarray(X, dtype=np.float64)

    def fit(self, X, y=None):
        X = self._prepare(_check_fit_data(X))
        n_components = self.n_components
        means_init = self.means_init
        if means_init is not None:
            means_init = self._prepare(means_init)
            if means_init.shape != (n_components, X.shape[1]):
                raise ASDError(f"means_init has shape {means_init.shape}, expected {(n_components, X.shape[1])}")
        if X.shape[0] < n_components:
            warnings.warn(f"{X.shape[0]} training samples for a {n_components}-component GMM: "
                          f"fitting {X.shape[0]} components instead", stacklevel=2)
            if means_init is not None:
                closeness = (X @ means_init.T).max(axis=0)
                means_init = means_init[np.sort(np.argsort(-closeness)[: X.shape[0]])]
            n_components = X.shape[0]
        self.gmm_ = GaussianMixture(n_components=n_components, covariance_type=self.covariance_type,
                                    reg_covar=self.reg_covar, means_init=means_init,
                                    random_state=self.random_state, max_iter=self.max_iter)
        # Small GMMs fit far faster on one BLAS thread than on several competing ones.
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.filterwarnings("ignore", message=".*did not converge.*")
            self.gmm_.fit(X)
        return self

    def component_log_densities(self, X):
        """Per-component log densities (n_samples, n_components), weights excluded."""
        return component_log_densities(self.gmm_, self._prepare(X))

    def score(self, X):
        X = self._prepare(X)
        if self.score_rule == "loglik":
            return -self.gmm_.score_samples(X)
        return -component_log_densities(self.gmm_, X).max(axis=1)


class GaussianBackend(GMMBackend):
    """A single Gaussian per unit (Table II rows "Gaussian (spherical/diagonal/full covariance)",
    Table V "mean"/"max"); anomaly score = negative log-likelihood."""

    def __init__(self, covariance_type="full", reg_covar=1e-3, normalize=True):
        super().__init__(n_components=1, covariance_type=covariance_type, reg_covar=reg_covar,
                         score="loglik", normalize=normalize)


class CosineMeanBackend:
    """Table II "cosine similarity to mean": score = -cos(x, mean of the unit's training embeddings).

    The mean is taken over the embeddings as the network gives them (not over their L2-normalised
    versions; the paper says "the mean of each machine id" and no public code exists), then normalised."""

    def fit(self, X, y=None):
        X = _check_fit_data(X)
        self.mean_ = l2_normalize(X.mean(axis=0, keepdims=True))
        return self

    def score(self, X):
        return -(l2_normalize(X) @ self.mean_.T)[:, 0]


class CosineTopKBackend:
    """Table II "cosine similarity to top 10": score = -mean cosine to the k most similar training
    embeddings of the unit (all of them when fewer than k)."""

    def __init__(self, k=10):
        self.k = int(k)

    def fit(self, X, y=None):
        self.train_ = l2_normalize(_check_fit_data(X))
        return self

    def score(self, X):
        sims = l2_normalize(X) @ self.train_.T
        k = min(self.k, sims.shape[1])
        top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
        return -top.mean(axis=1)


class PLDABackend:
    """Two-covariance PLDA (Table II), fitted on all units at once.

    Model: ``x = y + e`` with class variable ``y ~ N(mu, B)`` and within-class noise ``e ~ N(0, W)``.
    ``B`` and ``W`` are moment estimates (covariance of the class means, pooled within-class covariance),
    each with ``reg`` added to the diagonal, fitted once on the L2-normalised training embeddings of all
    units (the paper's implementation [32] is not named in our copy and no public code exists; an EM-trained
    two-covariance model starts from these estimates). The anomaly score of ``x`` for unit ``c`` with ``n`` enrolment
    embeddings of mean ``m`` is minus the log-likelihood ratio

    ``log N(x | m_post, P + W) - log N(x | mu, B + W)``, with ``P = (B^-1 + n W^-1)^-1`` and
    ``m_post = P (B^-1 mu + n W^-1 m)`` (the posterior of ``y`` given the enrolment data).

    Unlike the other back-ends, ``fit(X, units)`` and ``score(X, units)`` take the unit of each row.
    """

    def __init__(self, reg=1e-6, normalize=True):
        self.reg = reg
        self.normalize = normalize

    def _prepare(self, X):
        return l2_normalize(X) if self.normalize else np.asarray(X, dtype=np.float64)

    def fit(self, X, units):
        X = self._prepare(_check_fit_data(X))
        units = np.asarray(units)
        labels = np.unique(units)
        if len(labels) < 2:
            raise ASDError("PLDA needs training embeddings of at least two units")
        dim = X.shape[1]
        means = np.stack([X[units == u].mean(axis=0) for u in labels])
        counts = np.array([(units == u).sum() for u in labels])
        self.mu_ = X.mean(axis=0)
        centred = X - means[np.searchsorted(labels, units)]
        W = centred.T @ centred / max(X.shape[0] - len(labels), 1) + self.reg * np.eye(dim)
        B = np.cov(means.T, bias=True) + self.reg * np.eye(dim)
        W_inv, B_inv = np.linalg.inv(W), np.linalg.inv(B)
        self.W_, self.B_ = W, B
        self.posteriors_ = {}
        for u, m, n in zip(labels, means, counts):
            P = np.linalg.inv(B_inv + n * W_inv)
            m_post = P @ (B_inv @ self.mu_ + n * W_inv @ m)
            self.posteriors_[u] = (m_post, P + W)
        self.marginal_cov_ = B + W
        return self

    @staticmethod
    def _log_normal(X, mean, cov):
        chol = np.linalg.cholesky(cov)
        z = np.linalg.solve(chol, (X - mean).T)
        return -0.5 * (np.sum(z * z, axis=0) + X.shape[1] * np.log(2 * np.pi)) - np.sum(np.log(np.diag(chol)))

    def score(self, X, units):
        X = self._prepare(X)
        units = np.asarray(units)
        scores = np.empty(X.shape[0])
        marginal = self._log_normal(X, self.mu_, self.marginal_cov_)
        for u in np.unique(units):
            if u not in self.posteriors_:
                raise ASDError(f"PLDA: unit {u!r} has no training embeddings")
            rows = units == u
            mean, cov = self.posteriors_[u]
            scores[rows] = -(self._log_normal(X[rows], mean, cov) - marginal[rows])
        return scores


def fit_progress(items, what: str):
    """``items`` with a progress bar on stderr (tqdm): back-end fitting over many units (41 IDs x 7 GMMs
    at the papers' scale) takes minutes, and the user sees how far it is. ``what`` names the step."""
    from tqdm.auto import tqdm

    items = list(items)
    return tqdm(items, desc=what, total=len(items), unit="unit", mininterval=1.0)


def score_per_unit(make_backend, train_X, train_units, test_X, test_units) -> np.ndarray:
    """Fit one back-end per unit on that unit's training rows and score that unit's test rows.

    Parameters
    ----------
    make_backend : callable(unit) -> back-end with ``fit(X)`` and ``score(X)``
    train_X, test_X : arrays (n, dim)
    train_units, test_units : arrays of hashable unit keys (e.g. "fan/id_00")

    Returns
    -------
    scores : array (n_test,), aligned with ``test_X``.
    """
    train_units = np.asarray(train_units)
    test_units = np.asarray(test_units)
    scores = np.full(len(test_units), np.nan)
    for unit in fit_progress(np.unique(test_units), "back-ends (fit and score)"):
        train_rows = train_units == unit
        if not train_rows.any():
            raise ASDError(f"unit {unit}: test clips but no training clips to fit a back-end on")
        backend = make_backend(unit).fit(np.asarray(train_X)[train_rows])
        test_rows = test_units == unit
        scores[test_rows] = backend.score(np.asarray(test_X)[test_rows])
    return scores
