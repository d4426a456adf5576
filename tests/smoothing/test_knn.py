"""a_prop (Fujimura et al. eq. 7) against a brute-force computation written from the equation."""
import numpy as np
import pytest

from asdcore.errors import ASDError
from smoothing import knn
from smoothing.knn import NeighbourhoodSmoother, neighbourhood_smooth


def brute_force(features, scores, k, domains=None, metric="cosine", domain="all"):
    """Eq. (7) clip by clip with plain Python loops: own score + the k-1 nearest others (ties by index),
    all available candidates when fewer, mean over the clips used."""
    X = np.asarray(features, dtype=np.float64)
    out = []
    for i in range(len(X)):
        cands = []
        for j in range(len(X)):
            if j == i or (domain == "source" and domains[j] != "source"):
                continue
            if metric == "cosine":
                dist = 1.0 - X[i] @ X[j] / (np.linalg.norm(X[i]) * np.linalg.norm(X[j]))
            else:
                dist = np.sqrt(np.sum((X[i] - X[j]) ** 2))
            cands.append((dist, j))
        chosen = [j for _, j in sorted(cands)[: k - 1]]
        out.append((scores[i] + sum(scores[j] for j in chosen)) / (1 + len(chosen)))
    return np.array(out)


def make_data(n=40, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    s = rng.gamma(2.0, size=n)
    d = np.where(rng.random(n) < 0.6, "source", "target")
    return X, s, d


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("domain", ["all", "source"])
@pytest.mark.parametrize("k", [1, 2, 5, 16, 39, 40, 2048])
def test_matches_brute_force(metric, domain, k):
    X, s, d = make_data()
    got = neighbourhood_smooth(X, s, k, domains=d, metric=metric, domain=domain)
    np.testing.assert_allclose(got, brute_force(X, s, k, d, metric, domain), rtol=1e-12)


def test_k1_returns_generative_scores():
    X, s, d = make_data()
    for metric in knn.METRICS:
        for domain in knn.DOMAINS:
            np.testing.assert_array_equal(neighbourhood_smooth(X, s, 1, d, metric, domain), s)


def test_self_excluded_by_hand():
    # a and b close in direction, c opposite. With K = 2 each clip averages with its nearest *other* clip.
    X = np.array([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0]])
    s = np.array([0.0, 10.0, 100.0])
    got = neighbourhood_smooth(X, s, 2)
    np.testing.assert_allclose(got, [5.0, 5.0, 55.0])  # c's nearest other clip is b (1.995 < 2)
    # an exact duplicate of a clip is a neighbour (excluded by index, not by distance)
    X2 = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(neighbourhood_smooth(X2, [1.0, 3.0, 7.0], 2), [2.0, 2.0, (7 + 1) / 2])


def test_domain_restriction_by_hand():
    X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    s = np.array([1.0, 2.0, 30.0, 40.0])
    d = np.array(["source", "target", "source", "target"])
    # source only: neighbours of every clip come from clips 0 and 2.
    got = neighbourhood_smooth(X, s, 2, domains=d, domain="source")
    np.testing.assert_allclose(got, [(1 + 30) / 2, (2 + 1) / 2, (30 + 1) / 2, (40 + 30) / 2])
    got_all = neighbourhood_smooth(X, s, 2, domains=d, domain="all")
    np.testing.assert_allclose(got_all, [(1 + 2) / 2, (2 + 1) / 2, (30 + 40) / 2, (40 + 30) / 2])


def test_fewer_than_k_uses_all_available():
    X, s, d = make_data(n=25)
    np.testing.assert_allclose(neighbourhood_smooth(X, s, 2048), np.full(25, s.mean()))
    src = d == "source"
    want = np.where(src, s[src].sum(), s + s[src].sum()) / np.where(src, src.sum(), src.sum() + 1)
    np.testing.assert_allclose(neighbourhood_smooth(X, s, 2048, d, domain="source"), want)


def test_no_source_candidates_gives_generative_scores():
    X, s, _ = make_data(n=5)
    np.testing.assert_allclose(neighbourhood_smooth(X, s, 4, ["target"] * 5, domain="source"), s)


def test_incremental_equals_batch():
    X, s, d = make_data(n=60, seed=3)
    for metric in knn.METRICS:
        for domain in knn.DOMAINS:
            batch = NeighbourhoodSmoother(8, metric, domain).add(X, s, d).smoothed()
            inc = NeighbourhoodSmoother(8, metric, domain)
            for lo, hi in [(0, 1), (1, 17), (17, 18), (18, 60)]:
                inc.add(X[lo:hi], s[lo:hi], d[lo:hi])
            assert inc.n_observed == 60
            np.testing.assert_array_equal(inc.smoothed(), batch)


def test_score_new_equals_batch_over_observed_so_far():
    X, s, d = make_data(n=50, seed=4)
    sm = NeighbourhoodSmoother(6, "cosine", "source")
    sm.add(X[:20], s[:20], d[:20])
    new = sm.score_new(X[20:35], s[20:35], d[20:35])
    want = brute_force(X[:35], s[:35], 6, d[:35], "cosine", "source")[20:35]
    np.testing.assert_allclose(new, want, rtol=1e-10)
    assert sm.n_observed == 35
    np.testing.assert_allclose(sm.smoothed(), brute_force(X[:35], s[:35], 6, d[:35], "cosine", "source"),
                               rtol=1e-10)


def test_score_new_without_adding():
    X, s, d = make_data(n=30, seed=5)
    sm = NeighbourhoodSmoother(4, "euclidean", "all").add(X[:29], s[:29], d[:29])
    got = sm.score_new(X[29:], s[29:], d[29:], add=False)
    np.testing.assert_allclose(got, brute_force(X, s, 4, d, "euclidean")[29:], rtol=1e-10)
    assert sm.n_observed == 29


def test_smoothed_many_and_blocks(monkeypatch):
    X, s, d = make_data(n=45, seed=6)
    monkeypatch.setattr(knn, "_BLOCK_ENTRIES", 100)  # several row blocks
    sm = NeighbourhoodSmoother(3, "euclidean", "source").add(X, s, d)
    many = sm.smoothed_many([1, 3, 64])
    for k in (1, 3, 64):
        np.testing.assert_allclose(many[k], brute_force(X, s, k, d, "euclidean", "source"), rtol=1e-10)
    np.testing.assert_array_equal(sm.smoothed(), many[3])


def test_bad_input():
    X, s, d = make_data(n=5)
    with pytest.raises(ASDError):
        NeighbourhoodSmoother(0)
    with pytest.raises(ASDError):
        NeighbourhoodSmoother(2, metric="manhattan")
    with pytest.raises(ASDError):
        NeighbourhoodSmoother(2, domain="source").add(X, s)
    with pytest.raises(ASDError):
        NeighbourhoodSmoother(2).add(X, s[:4])
    with pytest.raises(ASDError):
        NeighbourhoodSmoother(2).add(X[0], s[:1])
    with pytest.raises(ASDError):
        NeighbourhoodSmoother(2).smoothed()
    sm = NeighbourhoodSmoother(2).add(X, s)
    with pytest.raises(ASDError):
        sm.add(X[:, :3], s)
    with pytest.raises(ASDError):
        sm.add(X, s, d)  # domains given now but not before
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ASDError):
        NeighbourhoodSmoother(2).add(bad, s)


# ------------------------------------------------------------------------- saturation (issue 11)
def labelled_pool(n=400, seed=7):
    """A section-sized pool whose a_G follows the labels (anomalies score higher), so any rounding
    pattern of a 'constant' score that follows a_G also follows the labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2 == 1
    X = rng.normal(size=(n, 16)) + 2.0 * y[:, None]
    s = rng.gamma(2.0, size=n) * np.where(y, 1.7, 1.0) * 1e3 + 1e-3 * rng.random(n)
    d = np.where(np.arange(n) % 4 < 2, "source", "target")
    return X, s, d, y


@pytest.mark.parametrize("metric", knn.METRICS)
def test_saturated_k_gives_exactly_equal_scores_and_auc_one_half(metric):
    from sklearn.metrics import roc_auc_score

    X, s, d, y = labelled_pool()
    sm = NeighbourhoodSmoother(1, metric=metric, domain="all").add(X, s, d)
    for k in (len(s), len(s) + 1, 2048):
        got = sm.smoothed(k)
        assert np.unique(got).size == 1  # exactly, not up to rounding
        assert got[0] == pytest.approx(s.mean(), rel=1e-12)
        assert roc_auc_score(y, got) == 0.5 and roc_auc_score(y, got, max_fpr=0.1) == 0.5
    # one below saturation: a real ranking, no longer constant
    assert np.unique(sm.smoothed(len(s) - 1)).size > 1


def test_saturated_source_data_is_exact_per_domain():
    X, s, d, y = labelled_pool(seed=8)
    src = d == "source"
    got = NeighbourhoodSmoother(2048, domain="source").add(X, s, d).smoothed()
    # source clips: all source clips -> one value; target clips: own a_G + all source clips
    assert np.unique(got[src]).size == 1
    np.testing.assert_array_equal(got[~src], (s[~src] + s[src].sum()) / (1 + src.sum()))
