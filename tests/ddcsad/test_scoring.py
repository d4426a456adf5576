"""ddcsad.scoring: eq. (5) by hand, crop averaging, Table I alpha, alpha on validation data, Table II AUCs."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from asdcore.errors import ASDError
from ddcsad import scoring


def logit_of(p):
    """The logit whose sigmoid is p (eq. 5 takes logits: 1 - p is computed from them)."""
    p = np.asarray(p, np.float64)
    return np.log(p) - np.log1p(-p)


def test_eq5_crops_by_hand():
    p = np.array([[0.9, 0.7], [0.2, 0.4], [0.5, 0.5]])
    z = logit_of(p)
    d = np.array([[1.0, 3.0], [5.0, 9.0], [2.0, 2.0]])
    alpha = 0.3
    # d' over all six crops: (d - 1) / (9 - 1)
    dn = (d - 1.0) / 8.0
    expected = [np.mean([alpha * (1 - p[i, c]) + (1 - alpha) * dn[i, c] for c in range(2)]) for i in range(3)]
    np.testing.assert_allclose(scoring.eq5(z, d, alpha), expected)
    # clip means first: p = 0.8, 0.3, 0.5; d = 2, 7, 2 -> d' = 0, 1, 0
    np.testing.assert_allclose(scoring.eq5(z, d, alpha, "clips"),
                               [alpha * 0.2, alpha * 0.7 + (1 - alpha), alpha * 0.5])
    # alpha = 1: 1 - p averaged; alpha = 0: d' averaged
    np.testing.assert_allclose(scoring.eq5(z, d, 1.0), 1 - p.mean(axis=1))
    np.testing.assert_allclose(scoring.eq5(z, d, 0.0), dn.mean(axis=1))
    # 1-d inputs are single crops; logit 0 is p = 1/2
    np.testing.assert_allclose(scoring.eq5([0.0, 0.0], [0.0, 4.0], 0.5), [0.25, 0.75])


def test_one_minus_p_does_not_saturate():
    """Logits 10, 20, 40: float32 sigmoid gives p = 1 (score 0) for 20 and 40; ours keeps them apart."""
    logits = np.array([10.0, 20.0, 40.0])
    p32 = 1 / (1 + np.exp(-logits.astype(np.float32)))
    assert np.all(1 - p32[1:] == 0)  # the saturation the scores must not inherit
    by_hand = [1 / (1 + np.exp(10.0)), 2.0611536181902037e-09, 4.248354255291589e-18]  # 1/(1+e^z), float64
    np.testing.assert_allclose(scoring.one_minus_p(logits), by_hand, rtol=1e-12)
    for alpha_loss in ("bce",):  # alpha = 1: s = 1 - p
        s = scoring.variant_scores(alpha_loss, logits, np.zeros(3))
        np.testing.assert_allclose(s, by_hand, rtol=1e-12)
        assert len(set(s.tolist())) == 3 and np.all(np.diff(s) < 0)
    # eq. (5) with alpha = 1 over crops: the crop means stay apart as well
    s = scoring.eq5(np.array([[20.0, 40.0], [40.0, 40.0], [20.0, 20.0]]), np.zeros((3, 2)), 1.0)
    assert s[2] > s[0] > s[1] > 0
    # very negative logits: 1 - p -> 1 without overflow warnings
    np.testing.assert_allclose(scoring.one_minus_p([-800.0, 0.0]), [1.0, 0.5])


def test_eq5_errors_and_constant_distances():
    assert np.all(scoring.minmax([3.0, 3.0, 3.0]) == 0)
    with pytest.raises(ASDError):
        scoring.eq5([0.0], [1.0], 1.5)
    with pytest.raises(ASDError):
        scoring.eq5([0.0, 0.2], [1.0], 0.5)
    with pytest.raises(ASDError):
        scoring.eq5([0.0], [1.0], 0.5, minmax_over="frames")
    with pytest.raises(ASDError):
        scoring.minmax([1.0, np.nan])


class MeanModel:
    """A stand-in network: logit = mean of the crop, distance = first value of the crop."""

    def __init__(self):
        self.batches = []

    def predict(self, x, batch_size=None, verbose=0):
        self.batches.append(len(x))
        assert not np.isnan(x).any(), "a crop read the padding after a clip's end"
        m = x.reshape(len(x), -1).mean(axis=1)
        return {"logit": m, "p": 1 / (1 + np.exp(-m)), "distance": x[:, 0, 0].copy()}


# Sec. IV-A: ten 256-frame sections with overlap, first at the start, last at the end of the clip;
# start_c = round(c (frames - 256) / 9), worked out by hand
STARTS_313 = [0, 6, 13, 19, 25, 32, 38, 44, 51, 57]  # a 10 s clip
STARTS_353 = [0, 11, 22, 32, 43, 54, 65, 75, 86, 97]  # an ~11.3 s ToyCar clip: the last crop ends at 353


def test_crop_outputs_ten_crops_over_each_whole_clip():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(5, 353, 4)).astype(np.float32)
    lengths = np.array([353, 313, 313, 353, 313])
    for i, n in enumerate(lengths):
        feats[i, n:] = np.nan  # padding of the shorter clips (ragged="pad")
    model = MeanModel()
    logit, d = scoring.crop_outputs(model, feats, rows=[4, 1, 3], batch_size=8, chunk_clips=2, lengths=lengths)
    assert logit.shape == d.shape == (3, 10)
    for i, (r, starts) in enumerate([(4, STARTS_313), (1, STARTS_313), (3, STARTS_353)]):
        for c, s in enumerate(starts):
            crop = feats[r, s: s + 256]
            assert logit[i, c] == pytest.approx(crop.mean(), rel=1e-5)
            assert d[i, c] == pytest.approx(crop[0, 0])
    # padded to whole batches of 8 crops (20 -> 24, 10 -> 16): one input shape only, no retracing
    assert model.batches == [24, 16]
    # the clip score is the average of the crop scores
    scores = scoring.variant_scores("bce", logit, d)
    np.testing.assert_allclose(scores, np.mean(1 / (1 + np.exp(logit)), axis=1))


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
    # DSAD / DDCSAD ignore the logit entirely
    np.testing.assert_allclose(scoring.variant_scores("ddcsad", [2.0, -2.0], [1.0, 3.0], alpha=0.7), [0.0, 1.0])


def test_choose_alpha_picks_the_informative_output():
    rng = np.random.default_rng(1)
    y = np.array([0] * 20 + [1] * 20, bool)
    informative_d = np.where(y, 5.0, 1.0)[:, None] + rng.normal(0, 0.5, (40, 3))
    noise_p = rng.uniform(size=(40, 3))
    alpha, curve = scoring.choose_alpha([(logit_of(noise_p), informative_d, y)])
    assert alpha == 0.0
    # the curve is the pooled AUC of eq. (5) at each alpha (checked with sklearn at alpha = 0.4)
    s = 0.4 * (1 - noise_p) + 0.6 * (informative_d - informative_d.min()) / np.ptp(informative_d)
    assert curve.set_index("alpha").at[0.4, "auc"] == pytest.approx(roc_auc_score(y, s.mean(axis=1)))
    # p informative (but not perfect), d misleading (larger for normal clips): alpha = 1 wins
    informative_p = np.where(y, 0.4, 0.6)[:, None] + rng.normal(0, 0.15, (40, 3))
    misleading_d = np.where(y, 1.0, 2.0)[:, None] + rng.normal(0, 0.3, (40, 3))
    alpha, curve = scoring.choose_alpha([(logit_of(np.clip(informative_p, 1e-6, 1 - 1e-6)), misleading_d, y)])
    assert alpha == 1.0 and curve["auc"].iloc[-1] > curve["auc"].iloc[0]
    # several IDs: each scored on its own, then pooled; ties go to the smallest alpha
    perfect = np.where(y, 0.0, 1.0)[:, None] * np.ones((1, 2))
    z = np.where(perfect > 0, 30.0, -30.0)  # p = 1 for normal clips, 0 for anomalies
    alpha, curve = scoring.choose_alpha([(z, 1 - perfect, y), (z, 1 - perfect, y)])
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
