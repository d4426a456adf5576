"""Table V "mean" / "max" (Wilkinghoff 2020, Sec. IV-F): one full-covariance Gaussian per unit on the temporal
mean or maximum of the normalised log-mel, checked against NumPy / SciPy alone (no back-end class of ours)."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

import asdcore.representations as representations


def _by_hand(features, table, statistic, reg_covar):
    """Per unit: the temporal statistic by NumPy, the maximum-likelihood mean and covariance (bias=True, as a
    one-component Gaussian mixture estimates it) plus ``reg_covar`` on the diagonal, and minus the SciPy
    log-density of each test clip."""
    reps = features.mean(axis=1) if statistic == "mean" else features.max(axis=1)
    scores = np.full(len(table), np.nan)
    train = (table["split"] == "train").to_numpy()
    for unit in table["unit"].unique():
        rows = (table["unit"] == unit).to_numpy()
        fit = reps[rows & train].astype(np.float64)
        cov = np.cov(fit, rowvar=False, bias=True) + reg_covar * np.eye(fit.shape[1])
        scores[rows & ~train] = -multivariate_normal(fit.mean(axis=0), cov).logpdf(reps[rows & ~train])
    return scores


@pytest.mark.parametrize("statistic", ["mean", "max"])
@pytest.mark.parametrize("reg_covar", [1e-3, 1e-6])
def test_table5_mean_and_max_scores_against_a_gaussian_by_hand(statistic, reg_covar, tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    n, frames, bins = 40, 12, 5
    table = pd.DataFrame({"machine_type": "fan", "unit": ["id_00"] * 20 + ["id_02"] * 20,
                          "split": (["train"] * 14 + ["test"] * 6) * 2})
    # units with different spreads and correlated bins, so a shared or diagonal Gaussian would not pass
    mixing = rng.normal(size=(2, bins, bins))
    features = np.einsum("ctb,cbd->ctd", rng.normal(size=(n, frames, bins)), mixing[np.repeat([0, 1], 20)])
    features = (features + rng.normal(size=(n, 1, bins))).astype(np.float32)
    expected = _by_hand(features, table, statistic, reg_covar)
    ours = representations.score_simple_representation(table, features, statistic, reg_covar)
    np.testing.assert_allclose(ours, expected, rtol=1e-6)
    # the same from a memory map read in chunks of 3 clips
    mapped = np.lib.format.open_memmap(tmp_path / "features.npy", mode="w+", dtype=np.float32, shape=features.shape)
    mapped[:] = features
    monkeypatch.setattr(representations, "READ_CHUNK", 3)
    np.testing.assert_allclose(representations.score_simple_representation(table, mapped, statistic, reg_covar),
                               expected, rtol=1e-6)
