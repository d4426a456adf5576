"""ddcsad.scoring: eq. (5) by hand, crop averaging, Table I alpha, alpha on validation data, Table II AUCs."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from asdcore.errors import ASDError
from ddcsad import scoring


def test_eq5_crops_by_hand():
    p = np.array([[0.9, 0.7], [0.2, 0.4], [0.5, 0.5]])
    d = np.array([[1.0, 3.0], [5.0, 9.0], [2.0, 2.0]])
    alpha = 0.3
    # d' over all six crops: (d - 1) / (9 - 1)
    dn = (d - 1.0) / 8.0
    expected = [np.mean([alpha * (1 - p[i, c]) + (1 - alpha) * dn[i, c] for c in range(2)]) for i in range(3)]
    np.testing.assert_allclose(scoring.eq5(p, d, alpha), expected)
    # clip means first: p = 0.8, 0.3, 0.5; d = 2, 7, 2 -> d' = 0, 1, 0
    np.testing.assert_allclose(scoring.eq5(p, d, alpha, "clips"),
                               [alpha * 0.2, alpha * 0.7 + (1 - alpha), alpha * 0.5])
    # alpha = 1: 1 - p averaged; alpha = 0: d' averaged
    np.testing.assert_allclose(scoring.eq5(p, d, 1.0), 1 - p.mean(axis=1))
    np.testing.assert_allclose(scoring.eq5(p, d, 0.0), dn.mean(axis=1))
    # 1-d inputs are single crops
    np.testing.assert_allclose(scoring.eq5([0.5, 1.0], [0.0, 4.0], 0.5), [0.25, 0.5])


def test_eq5_errors_and_constant_distances():
    assert np.all(scoring.minmax([3.0, 3.0, 3.0]) == 0)
    with pytest.raises(ASDError):
        scoring.eq5([0.5], [1.0], 1.5)
    with pytest.raises(ASDError):
        scoring.eq5([0.5, 0.2], [1.0], 0.5)
    with pytest.raises(ASDError):
        scoring.eq5([0.5], [1.0], 0.5, minmax_over="frames")
    with pytest.raises(ASDError):
        scoring.minmax([1.0, np.nan])


class MeanModel:
    """A stand-in network: p = sigmoid(mean of the crop), distance = first value of the crop."""

    def __init__(self):
        self.batches = []

    def predict(self, x, batch_size=None, verbose=0):
        self.batches.append(len(x))
        m = x.reshape(len(x), -1).mean(axis=1)
        return {"p": 1 / (1 + np.exp(-m)), "distance": x[:, 0, 0].copy()}


def test_crop_outputs_ten_crops_of_256_frames():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(5, 313, 4)).astype(np.float32)
    model = MeanModel()
    p, d = scoring.crop_outputs(model, feats, rows=[4, 1, 2], batch_size=8, chunk_clips=2)
    assert p.shape == d.shape == (3, 10)
    starts = [round(c * (313 - 256) / 9) for c in range(10)]  # 0, 6, 13, ..., 57
    assert starts[:3] == [0, 6, 13] and starts[-1] == 57
    for i, r in enumerate([4, 1, 2]):
        for c, s in enumerate(starts):
            crop = feats[r, s: s + 256]
            assert p[i, c] == pytest.approx(1 / (1 + np.exp(-crop.mean())), rel=1e-5)
            assert d[i, c] == pytest.approx(crop[0, 0])
    # padded to whole batches of 8 crops (20 -> 24, 10 -> 16): one input shape only, no retracing
    assert model.batches == [24, 16]
    # the clip score is the average of the crop scores
    scores = scoring.variant_scores("bce", p, d)
    np.testing.assert_allclose(scores, np.mean(1 - p, axis=1))


def test_table1_alpha_and_fixed_alphas():
    # Table I of the paper, typed in by hand
    table1 = {"bce+dsad": {"fan": 0.1, "pump": 0.2, "slider": 0.0, "ToyCar": 0.0, "ToyConveyor": 0.0, "valve": 0.0},
              "bce+ddcsad": {"fan": 0.1, "pump": 1.0, "slider": 1.0, "ToyCar": 0.1, "ToyConveyor": 0.0, "valve": 1.0}}
    for loss, row in table1.items():
        for machine_type, value in row.items():
            assert scoring.table1_alpha(loss, machine_type) == value
    assert scoring.table1_alpha("bce", "fan") == 1.0
    assert scoring.table1_alpha("dsad", "fan") == 0.0 and scoring.table1_alpha("ddcsad", "valve") == 0.0
    with pytest.raises(ASDError):
        scoring.table1_alpha("bce+ddcsad", "gearbox")
    with pytest.raises(ASDError):
        scoring.variant_scores("bce+ddcsad", [0.1], [0.2])  # needs alpha
    # DSAD / DDCSAD ignore p entirely
    np.testing.assert_allclose(scoring.variant_scores("ddcsad", [0.9, 0.1], [1.0, 3.0], alpha=0.7), [0.0, 1.0])


def test_choose_alpha_picks_the_informative_output():
    rng = np.random.default_rng(1)
    y = np.array([0] * 20 + [1] * 20, bool)
    informative_d = np.where(y, 5.0, 1.0)[:, None] + rng.normal(0, 0.5, (40, 3))
    noise_p = rng.uniform(size=(40, 3))
    alpha, curve = scoring.choose_alpha([(noise_p, informative_d, y)])
    assert alpha == 0.0
    # the curve is the pooled AUC of eq. (5) at each alpha (checked with sklearn at alpha = 0.4)
    s = 0.4 * (1 - noise_p) + 0.6 * (informative_d - informative_d.min()) / np.ptp(informative_d)
    assert curve.set_index("alpha").at[0.4, "auc"] == pytest.approx(roc_auc_score(y, s.mean(axis=1)))
    # p informative (but not perfect), d misleading (larger for normal clips): alpha = 1 wins
    informative_p = np.where(y, 0.4, 0.6)[:, None] + rng.normal(0, 0.15, (40, 3))
    misleading_d = np.where(y, 1.0, 2.0)[:, None] + rng.normal(0, 0.3, (40, 3))
    alpha, curve = scoring.choose_alpha([(informative_p, misleading_d, y)])
    assert alpha == 1.0 and curve["auc"].iloc[-1] > curve["auc"].iloc[0]
    # several IDs: each scored on its own, then pooled; ties go to the smallest alpha
    perfect = np.where(y, 0.0, 1.0)[:, None] * np.ones((1, 2))
    alpha, curve = scoring.choose_alpha([(perfect, 1 - perfect, y), (perfect, 1 - perfect, y)])
    assert alpha == 0.0 and np.allclose(curve["auc"], 1.0)
    with pytest.raises(ASDError):
        scoring.choose_alpha([])


def hanley_mcneil_by_hand(a, n_pos, n_neg):
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return np.sqrt((a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg))


def test_type_auc_pools_the_ids_of_a_type_with_hanley_mcneil_interval():
    rng = np.random.default_rng(2)
    rows = []
    for unit in ("id_01", "id_03"):
        for label in ["normal"] * 7 + ["anomaly"] * 5:
            rows.append({"part": "eval", "machine_type": "fan", "unit": unit, "split": "test", "label": label})
    for _ in range(4):
        rows.append({"part": "eval", "machine_type": "fan", "unit": "id_01", "split": "train", "label": "normal"})
    table = pd.DataFrame(rows)
    y = (table.label == "anomaly").to_numpy()
    scores = np.where(y, 0.6, 0.4) + rng.normal(0, 0.2, len(table))
    scores[table.split.to_numpy() == "train"] = np.nan
    out = scoring.type_auc(table, scores)
    assert len(out) == 1
    row = out.iloc[0]
    test = table.split.to_numpy() == "test"
    a = roc_auc_score(y[test], scores[test])
    assert row["auc"] == pytest.approx(a)
    assert (row["n_normal"], row["n_anomaly"], row["n_units"]) == (14, 10, 2)
    assert row["ci95"] == pytest.approx(1.96 * hanley_mcneil_by_hand(a, 10, 14))
    assert row["auc_ci_low"] == pytest.approx(max(0, a - row["ci95"]))
    assert row["pauc"] == pytest.approx(roc_auc_score(y[test], scores[test], max_fpr=0.1))
    avg = scoring.machine_average(pd.concat([out, out.assign(machine_type="pump", auc=0.5)]))
    assert avg.iloc[0]["auc"] == pytest.approx((a + 0.5) / 2)
