"""Metrics against scikit-learn, against the formulas computed by hand, and against the papers' own numbers."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import hmean
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from asdcore import metrics
from asdcore.errors import ASDError
from asdcore.published import load_table

EPS = np.finfo(float).eps


# ----------------------------------------------------------------------------- independent references
def roc_from_scratch(y, s):
    """ROC points (FPR, TPR) from (0, 0) over every distinct threshold, highest first."""
    y = np.asarray(y, dtype=bool)
    s = np.asarray(s, dtype=float)
    fpr, tpr = [0.0], [0.0]
    for t in np.unique(s)[::-1]:
        fpr.append(float(np.mean(s[~y] >= t)))
        tpr.append(float(np.mean(s[y] >= t)))
    return np.array(fpr), np.array(tpr)


def partial_area(fpr, tpr, p):
    """Trapezoid area under the ROC for FPR in [0, p], interpolating linearly at FPR = p."""
    area = 0.0
    for i in range(1, len(fpr)):
        x0, x1, y0, y1 = fpr[i - 1], fpr[i], tpr[i - 1], tpr[i]
        if x0 >= p:
            break
        if x1 > p:
            y1 = y0 + (y1 - y0) * (p - x0) / (x1 - x0)
            x1 = p
        area += (x1 - x0) * (y0 + y1) / 2.0
    return area


def mcclish(y, s, p):
    a = partial_area(*roc_from_scratch(y, s), p)
    lo, hi = p * p / 2.0, p
    return 0.5 * (1.0 + (a - lo) / (hi - lo))


def auc_by_pairs(y, s):
    """Mann-Whitney: fraction of (anomaly, normal) pairs ranked correctly, ties one half."""
    y = np.asarray(y, dtype=bool)
    s = np.asarray(s, dtype=float)
    diff = s[y][:, None] - s[~y][None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def random_case(seed, n_normal=60, n_anomaly=40, ties=False):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_normal, bool), np.ones(n_anomaly, bool)]
    s = rng.normal(size=y.size) + 0.8 * y
    if ties:
        s = np.round(s * 2) / 2
    perm = rng.permutation(y.size)
    return y[perm], s[perm]


# ----------------------------------------------------------------------------- AUC / pAUC
@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, False), (3, True)])
def test_auc_matches_sklearn_and_pair_count(seed, ties):
    y, s = random_case(seed, ties=ties)
    assert metrics.auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert metrics.auc(y, s) == pytest.approx(auc_by_pairs(y, s), abs=1e-12)


def test_auc_accepts_string_labels():
    y, s = random_case(5)
    labels = np.where(y, "anomaly", "normal")
    assert metrics.auc(labels, s) == pytest.approx(roc_auc_score(y, s))


@pytest.mark.parametrize("seed,ties,p", [(0, False, 0.1), (1, True, 0.1), (2, False, 0.1), (3, True, 0.1),
                                         (4, False, 0.2), (6, True, 0.05)])
def test_pauc_is_mcclish_standardised(seed, ties, p):
    y, s = random_case(seed, n_normal=97, n_anomaly=53, ties=ties)
    by_hand = mcclish(y, s, p)
    assert metrics.pauc(y, s, max_fpr=p) == pytest.approx(by_hand, abs=1e-12)
    assert metrics.pauc(y, s, max_fpr=p) == pytest.approx(roc_auc_score(y, s, max_fpr=p), abs=1e-12)


def test_pauc_extremes():
    y = np.r_[np.zeros(10, bool), np.ones(10, bool)]
    perfect = y.astype(float)
    assert metrics.pauc(y, perfect) == pytest.approx(1.0)
    # reversed: raw partial area 0 -> 0.5 * (1 + (0 - p^2/2) / (p - p^2/2))
    p = 0.1
    assert metrics.pauc(y, -perfect) == pytest.approx(0.5 * (1 - (p * p / 2) / (p - p * p / 2)))
    assert metrics.auc(y, -perfect) == 0.0


def test_one_class_raises():
    with pytest.raises(ASDError, match="normal"):
        metrics.auc(np.zeros(5), np.arange(5.0))
    with pytest.raises(ASDError, match="anomaly"):
        metrics.pauc(["anomaly"] * 3, [1.0, 2.0, 3.0])


def test_bad_inputs_raise():
    with pytest.raises(ASDError):
        metrics.auc(["normal", "unknown", "anomaly"], [1.0, 2.0, 3.0])
    with pytest.raises(ASDError):
        metrics.auc([0, 1, 1], [1.0, np.nan, 3.0])
    with pytest.raises(ASDError):
        metrics.auc([0, 1, 1], [1.0, 2.0])


# ----------------------------------------------------------------------------- means
def test_harmonic_mean_by_hand():
    assert metrics.harmonic_mean([0.5, 1.0]) == pytest.approx(2.0 / (1 / 0.5 + 1 / 1.0))
    values = [0.61, 0.93, 0.72, 0.55]
    assert metrics.harmonic_mean(values) == pytest.approx(len(values) / sum(1 / v for v in values))
    assert metrics.harmonic_mean(values) == pytest.approx(hmean(values))


def test_harmonic_mean_floors_at_eps():
    # zero is floored at machine epsilon (2021 evaluator), so the mean is ~2 eps instead of an error
    expected = 2.0 / (1.0 / EPS + 1.0)
    assert metrics.harmonic_mean([0.0, 1.0]) == pytest.approx(expected, rel=1e-12)
    assert metrics.harmonic_mean([-0.5, 1.0]) == pytest.approx(expected, rel=1e-12)


def test_arithmetic_mean_and_empty():
    assert metrics.arithmetic_mean([0.2, 0.4, 0.9]) == pytest.approx(0.5)
    with pytest.raises(ASDError):
        metrics.harmonic_mean([])
    with pytest.raises(ASDError):
        metrics.arithmetic_mean([np.nan, 1.0])


# ----------------------------------------------------------------------------- Hanley & McNeil
def test_hanley_mcneil_by_hand():
    a, n_a, n_n = 0.8, 30, 45
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = np.sqrt((a * (1 - a) + (n_a - 1) * (q1 - a * a) + (n_n - 1) * (q2 - a * a)) / (n_a * n_n))
    assert metrics.hanley_mcneil_se(a, n_a, n_n) == pytest.approx(se, rel=1e-12)
    low, high = metrics.hanley_mcneil_ci(a, n_a, n_n)
    assert low == pytest.approx(a - 1.96 * se) and high == pytest.approx(a + 1.96 * se)


def test_hanley_mcneil_published_example():
    # Hanley & McNeil (1982), the CT example: 51 abnormal and 58 normal images, A = 0.893 -> SE = 0.032
    assert metrics.hanley_mcneil_se(0.893, 51, 58) == pytest.approx(0.032, abs=0.001)


def test_hanley_mcneil_clips_and_validates():
    low, high = metrics.hanley_mcneil_ci(0.99, 5, 5)
    assert high == 1.0 and low < 0.99
    with pytest.raises(ASDError):
        metrics.hanley_mcneil_ci(1.2, 10, 10)
    with pytest.raises(ASDError):
        metrics.hanley_mcneil_ci(0.8, 0, 10)


# ----------------------------------------------------------------------------- decisions
def test_precision_recall_f1_against_sklearn():
    rng = np.random.default_rng(3)
    y = rng.random(80) < 0.4
    y[:2] = [True, False]
    d = (rng.random(80) < 0.5).astype(int)
    p, r, f = metrics.precision_recall_f1(y, d)
    assert p == pytest.approx(precision_score(y, d))
    assert r == pytest.approx(recall_score(y, d))
    assert f == pytest.approx(f1_score(y, d))
    # no positive decisions: tp / max(0, eps) = 0, as the 2021 evaluator (no division error)
    assert metrics.precision_recall_f1(y, np.zeros(80)) == (0.0, 0.0, 0.0)


# ----------------------------------------------------------------------------- evaluate_clips
def test_evaluate_clips_2020_against_sklearn_and_extremes(clip_table):
    table = clip_table([("fan", "id_00", ""), ("fan", "id_02", ""), ("pump", "id_00", "")], year=2020)
    per_unit = metrics.evaluate_clips(table)
    assert list(per_unit.columns) == ["machine_type", "unit", "domain", "auc", "pauc", "n_normal", "n_anomaly",
                                      "auc_ci_low", "auc_ci_high"]
    assert list(per_unit[["machine_type", "unit"]].itertuples(index=False, name=None)) == [
        ("fan", "id_00"), ("fan", "id_02"), ("pump", "id_00")]
    for row in per_unit.itertuples():
        rows = table[(table.machine_type == row.machine_type) & (table.unit == row.unit) & (table.split == "test")]
        y = rows.label == "anomaly"
        assert row.auc == pytest.approx(roc_auc_score(y, rows.score))
        assert row.pauc == pytest.approx(mcclish(y, rows.score, 0.1))
        assert (row.n_normal, row.n_anomaly) == (12, 12)
        low, high = metrics.hanley_mcneil_ci(row.auc, 12, 12)
        assert (row.auc_ci_low, row.auc_ci_high) == pytest.approx((low, high))
    table["score"] = (table["label"] == "anomaly").astype(float)
    assert (metrics.evaluate_clips(table)[["auc", "pauc"]] == 1.0).all().all()
    table["score"] = -table["score"]
    assert (metrics.evaluate_clips(table)["auc"] == 0.0).all()


def test_evaluate_clips_2021_domains_are_separate(clip_table):
    table = clip_table([("fan", "section_00", "source"), ("fan", "section_00", "target")], year=2021)
    perfect = (table["label"] == "anomaly").astype(float)
    table["score"] = np.where(table["domain"] == "source", perfect, -perfect)
    per_unit = metrics.evaluate_clips(table).set_index("domain")
    assert per_unit.loc["source", "auc"] == 1.0 and per_unit.loc["target", "auc"] == 0.0
    assert per_unit.loc["source", "pauc"] == 1.0


def test_evaluate_clips_decisions(clip_table):
    table = clip_table([("pump", "section_01", "source")], year=2021)
    table["decision"] = (table["score"] > 0.5).astype(int)
    row = metrics.evaluate_clips(table, decision_column="decision").iloc[0]
    test = table[table.split == "test"]
    y = test.label == "anomaly"
    assert row.precision == pytest.approx(precision_score(y, test.decision))
    assert row.recall == pytest.approx(recall_score(y, test.decision))
    assert row.f1 == pytest.approx(f1_score(y, test.decision))


def test_evaluate_clips_errors_and_skips(clip_table):
    table = clip_table([("fan", "id_00", ""), ("fan", "id_01", "")], year=2020)
    one_class = table[~((table.unit == "id_00") & (table.label == "anomaly"))]
    with pytest.raises(ASDError, match="id_00"):
        metrics.evaluate_clips(one_class)
    unknown = table.copy()
    unknown.loc[(unknown.unit == "id_01") & (unknown.split == "test"), "label"] = "unknown"
    with pytest.raises(ASDError, match="ground truth"):
        metrics.evaluate_clips(unknown)
    skipped = table.copy()
    skipped.loc[skipped.unit == "id_01", "score"] = np.nan
    assert list(metrics.evaluate_clips(skipped)["unit"]) == ["id_00"]
    both_parts = pd.concat([table, table.assign(part="eval")])
    with pytest.raises(ASDError, match="one part at a time"):
        metrics.evaluate_clips(both_parts)
    partial = table.copy()
    partial.loc[partial.index[-1], "score"] = np.nan
    with pytest.raises(ASDError, match="no score"):
        metrics.evaluate_clips(partial)


# ----------------------------------------------------------------------------- summarize
def per_unit_frame(rows):
    return pd.DataFrame(rows, columns=["part", "machine_type", "unit", "domain", "auc", "pauc"])


def test_summarize_2020_by_hand():
    per_unit = per_unit_frame([
        ("dev", "fan", "id_00", "", 0.9, 0.8), ("dev", "fan", "id_02", "", 0.7, 0.6),
        ("dev", "pump", "id_00", "", 0.6, 0.5),
    ])
    s = metrics.summarize(per_unit, 2020).set_index(["machine_type", "statistic"])
    assert s.loc[("fan", "arithmetic mean"), "auc"] == pytest.approx(0.8)
    assert s.loc[("pump", "arithmetic mean"), "pauc"] == pytest.approx(0.5)
    assert s.loc[("all", "arithmetic mean"), "auc"] == pytest.approx((0.9 + 0.7 + 0.6) / 3)
    assert s.loc[("all", "arithmetic mean of type means"), "auc"] == pytest.approx((0.8 + 0.6) / 2)


def test_summarize_keeps_part_only_when_given():
    per_unit = per_unit_frame([("dev", "fan", "id_00", "", 0.9, 0.8), ("eval", "fan", "id_01", "", 0.5, 0.5)])
    with_part = metrics.summarize(per_unit, 2020)
    assert list(with_part.columns) == ["part", "machine_type", "domain", "statistic", "n_units", "auc", "pauc"]
    assert set(with_part["part"]) == {"dev", "eval"}
    assert with_part.query("part == 'eval' and machine_type == 'fan'")["auc"].iloc[0] == 0.5
    without = metrics.summarize(per_unit[per_unit.part == "dev"].drop(columns="part"), 2020)
    assert list(without.columns) == ["machine_type", "domain", "statistic", "n_units", "auc", "pauc"]


def test_summarize_2020_reproduces_table5_all_rows():
    # Wilkinghoff 2020 Table V: the "all" rows are means over the 23 dev IDs (4 per type, 3 for ToyConveyor)
    table5 = load_table("wilkinghoff2020_table5", wide=True)
    dev_ids = {"fan": [0, 2, 4, 6], "pump": [0, 2, 4, 6], "slider": [0, 2, 4, 6], "valve": [0, 2, 4, 6],
               "ToyCar": [1, 2, 3, 4], "ToyConveyor": [1, 2, 3]}
    for representation in ("mean", "max", "learned"):
        rows = table5[(table5.representation == representation) & (table5.set == "dev")].set_index("machine_type")
        per_unit = per_unit_frame([("dev", t, f"id_{i:02d}", "", rows.loc[t, "auc"], rows.loc[t, "pauc"])
                                   for t, ids in dev_ids.items() for i in ids])
        s = metrics.summarize(per_unit, 2020).set_index(["machine_type", "statistic"])
        assert s.loc[("all", "arithmetic mean"), "auc"] == pytest.approx(rows.loc["all", "auc"], abs=0.006)
        assert s.loc[("all", "arithmetic mean"), "pauc"] == pytest.approx(rows.loc["all", "pauc"], abs=0.006)


def test_summarize_2021_by_hand_and_official_score():
    per_unit = per_unit_frame([
        ("dev", "fan", "section_00", "source", 0.9, 0.7), ("dev", "fan", "section_00", "target", 0.6, 0.55),
        ("dev", "fan", "section_01", "source", 0.8, 0.65), ("dev", "fan", "section_01", "target", 0.5, 0.52),
        ("dev", "pump", "section_00", "source", 0.95, 0.9), ("dev", "pump", "section_00", "target", 0.4, 0.0),
    ])
    s = metrics.summarize(per_unit, 2021).set_index(["machine_type", "domain", "statistic"])
    hm = lambda v: len(v) / sum(1 / max(x, EPS) for x in v)  # noqa: E731
    assert s.loc[("fan", "source", "harmonic mean"), "auc"] == pytest.approx(hm([0.9, 0.8]))
    assert s.loc[("fan", "target", "harmonic mean"), "pauc"] == pytest.approx(hm([0.55, 0.52]))
    assert s.loc[("fan", "all", "harmonic mean"), "auc"] == pytest.approx(hm([0.9, 0.6, 0.8, 0.5]))
    assert s.loc[("fan", "all", "arithmetic mean"), "auc"] == pytest.approx(np.mean([0.9, 0.6, 0.8, 0.5]))
    assert s.loc[("fan", "all", "harmonic mean"), "score"] == pytest.approx(
        hm([0.9, 0.6, 0.8, 0.5, 0.7, 0.55, 0.65, 0.52]))
    everything = list(per_unit.auc) + list(per_unit.pauc)
    assert s.loc[("all", "all", "harmonic mean"), "score"] == pytest.approx(hm(everything))
    assert metrics.official_score(per_unit) == pytest.approx(hm(everything))
    assert s.loc[("all", "target", "harmonic mean"), "auc"] == pytest.approx(hm([0.6, 0.5, 0.4]))


def test_summarize_2021_reproduces_published_harmonic_means():
    # Wilkinghoff 2021 Table 2, proposed system: per-type harmonic means over sections and domains of the
    # printed per-section values (types whose printed mean is consistent with the printed cells)
    t2 = load_table("wilkinghoff2021_table2", wide=True)
    proposed = t2[t2.system == "proposed system"]
    cells = proposed[proposed.unit != "all"]
    per_unit = pd.DataFrame({"part": "dev", "machine_type": cells.machine_type, "unit": cells.unit,
                             "domain": cells.domain, "auc": cells.auc / 100, "pauc": cells.pauc / 100})
    s = metrics.summarize(per_unit, 2021).set_index(["machine_type", "domain", "statistic"])
    printed = proposed[proposed.unit == "all"].set_index("machine_type")
    for machine_type in ("ToyCar", "gearbox", "pump", "slider", "valve"):
        for metric in ("auc", "pauc"):
            ours = 100 * s.loc[(machine_type, "all", "harmonic mean"), metric]
            assert ours == pytest.approx(printed.loc[machine_type, metric], abs=0.011)


def test_summarize_2021_official_score_matches_table5():
    # Table 5 "all both" = harmonic mean of all AUCs and pAUCs; with equal section counts per domain it is
    # the harmonic mean of the four printed domain means
    t5 = load_table("wilkinghoff2021_table5", wide=True)
    for system in ("baseline autoencoder", "proposed system"):
        rows = t5[(t5.system == system) & (t5.machine_type == "all")].set_index("domain")
        four = [rows.loc[d, m] for d in ("source", "target") for m in ("auc", "pauc")]
        assert metrics.harmonic_mean(four) == pytest.approx(rows.loc["all", "score"], abs=0.011)


def test_summarize_rejects_bad_year_and_empty():
    with pytest.raises(ASDError):
        metrics.summarize(per_unit_frame([("dev", "fan", "id_00", "", 0.9, 0.8)]), 2019)
    with pytest.raises(ASDError):
        metrics.summarize(per_unit_frame([]), 2020)


# ----------------------------------------------------------------------------- mean AUC interval
def _hm_var_by_hand(a, n_a, n_n):
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return (a * (1 - a) + (n_a - 1) * (q1 - a * a) + (n_n - 1) * (q2 - a * a)) / (n_a * n_n)


def test_mean_auc_ci_by_hand():
    aucs, pos, neg = [0.8, 0.6, 0.95], [10, 5, 20], [20, 5, 30]
    mean = (0.8 + 0.6 + 0.95) / 3
    se = np.sqrt(sum(_hm_var_by_hand(a, p, n) for a, p, n in zip(aucs, pos, neg))) / 3
    got = metrics.mean_auc_ci(aucs, pos, neg)
    assert got == pytest.approx((mean, se, mean - 1.96 * se, mean + 1.96 * se), rel=1e-12)


def test_mean_auc_ci_published_example():
    """Hanley & McNeil's example (A = 0.893, 51 / 58 cases, SE 0.032) twice: SE of the mean = 0.032 / sqrt(2)."""
    mean, se, low, high = metrics.mean_auc_ci([0.893, 0.893], [51, 51], [58, 58])
    assert mean == pytest.approx(0.893)
    assert se == pytest.approx(0.032 / np.sqrt(2), abs=0.001)
    assert (low, high) == pytest.approx((0.893 - 1.96 * se, 0.893 + 1.96 * se))


def test_mean_auc_ci_one_unit_is_hanley_mcneil():
    assert metrics.mean_auc_ci([0.7], [12], [30])[2:] == pytest.approx(metrics.hanley_mcneil_ci(0.7, 12, 30))


def test_mean_auc_ci_rejects_bad_input():
    with pytest.raises(ASDError, match="no units"):
        metrics.mean_auc_ci([], [], [])
    with pytest.raises(ASDError, match="one count of each per unit"):
        metrics.mean_auc_ci([0.7, 0.8], [5], [5, 5])
    with pytest.raises(ASDError, match="non-finite"):
        metrics.mean_auc_ci([np.nan], [5], [5])
