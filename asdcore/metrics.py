"""Evaluation as the DCASE task 2 organisers compute it: AUC, pAUC, means, confidence intervals.

Conventions (REFERENCE.md section 2, and the organisers' evaluators ``dcase2020_task2_evaluator`` and
``dcase2021_task2_evaluator``):

- Positive class = anomaly; a higher score means more anomalous.
- AUC is the ROC AUC; pAUC is scikit-learn's ``roc_auc_score(..., max_fpr=0.1)``, i.e. the partial area
  under the ROC curve up to FPR ``p = 0.1`` standardised with McClish's correction (chance level 0.5,
  perfect 1.0), *not* the raw partial area.
- DCASE 2020: one AUC/pAUC per machine ID; per machine type the arithmetic mean over its IDs.
- DCASE 2021: one AUC/pAUC per (machine type, section, domain), each computed on the test clips of that
  section *and that domain only* (the ``anomaly_score_<type>_section_XX_<domain>_test.csv`` file against the
  ``ground_truth_<type>_section_XX_<domain>_test.csv`` file of the same domain). Source and target AUCs are
  therefore reported separately for every section, as the 2021 evaluator does. Per machine type the
  harmonic mean over sections and domains; the official score is the harmonic mean of all AUC and pAUC
  values together (Kawaguchi et al. 2021, "Description and discussion on DCASE 2021 challenge task 2").
  Values are floored at machine epsilon before a harmonic mean, as in the 2021 evaluator.
- DCASE 2022-2025 (the official evaluators ``dcase2022_task2_evaluator``, ``dcase2023_task2_evaluator`` and
  ``dcase2024_task2_evaluator``; the 2025 one publishes figures that fit the same rule): one score file per
  (machine type, section) holding both domains. AUC(source) is computed over the section's **source normal
  clips and all its anomalous clips** (both domains), AUC(target) likewise with the target normal clips; the
  pAUC is computed once per section over **all** its clips, domains pooled. Per machine type the harmonic mean
  over sections; the official score is the harmonic mean of every AUC(source), AUC(target) and pAUC over all
  types and sections (each pAUC counted once), values floored at machine epsilon. Precision, recall and F1 per
  domain use that domain's clips only. In the per-unit tables below a later-year section gives two rows
  (``domain`` source and target) whose ``auc`` is that domain's AUC and whose ``pauc`` is the section's pooled
  pAUC (the same value on both rows; it is counted once in every mean).
- Precision, recall and F1 from 0/1 decisions as the 2021 evaluator: ``tp / max(tp + fp, eps)`` etc.
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, roc_auc_score

from asdcore.errors import ASDError

__all__ = [
    "EPS",
    "auc",
    "pauc",
    "arithmetic_mean",
    "harmonic_mean",
    "hanley_mcneil_se",
    "hanley_mcneil_ci",
    "mean_auc_ci",
    "precision_recall_f1",
    "evaluate_clips",
    "summarize",
    "official_score",
    "LATER_YEARS",
    "table_year",
]

#: Editions evaluated with the 2022-2025 rule (domain AUCs with all anomalies, pooled pAUC per section).
LATER_YEARS = (2022, 2023, 2024, 2025)

#: Floor applied before harmonic means and in precision/recall/F1 denominators (``sys.float_info.epsilon``,
#: identical to ``np.finfo(float).eps``), as in the DCASE 2021 evaluator.
EPS = sys.float_info.epsilon

_UNIT_KEYS = ["machine_type", "unit", "domain"]


def _binary_labels(y_true, where: str = "") -> np.ndarray:
    """Labels as a boolean array (True = anomaly).

    Accepts "normal"/"anomaly" strings, booleans or 0/1 numbers. Raises ``ASDError`` for anything else,
    and when only one class is present (AUC is undefined then).
    """
    y = np.asarray(y_true)
    if y.ndim != 1 or y.size == 0:
        raise ASDError(f"{where or 'labels'}: expected a non-empty 1-d list of labels, got shape {y.shape}")
    if y.dtype.kind in "OUS":
        values = set(np.unique(y.astype(str)).tolist())
        bad = values - {"normal", "anomaly"}
        if bad:
            raise ASDError(f"{where or 'labels'}: labels must be 'normal' or 'anomaly', found {sorted(bad)[:3]}"
                           " (clips without ground truth cannot be evaluated: pass the ground-truth files)")
        out = y.astype(str) == "anomaly"
    elif y.dtype.kind == "b":
        out = y.astype(bool)
    else:
        yf = y.astype(float)
        if not np.all(np.isin(yf, (0.0, 1.0))):
            raise ASDError(f"{where or 'labels'}: numeric labels must be 0 (normal) or 1 (anomaly)")
        out = yf == 1.0
    if out.all() or not out.any():
        only = "anomaly" if out.all() else "normal"
        raise ASDError(f"{where or 'labels'}: all {out.size} clips are labelled {only}; AUC needs both normal "
                       "and anomalous test clips (check the ground truth and the test folder)")
    return out


def _scores(scores, n: int, where: str = "") -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1 or s.size != n:
        raise ASDError(f"{where or 'scores'}: {s.size} scores for {n} labels; give one score per clip")
    if not np.all(np.isfinite(s)):
        raise ASDError(f"{where or 'scores'}: {int((~np.isfinite(s)).sum())} scores are NaN or infinite; "
                       "fix the scoring step (every test clip needs a finite anomaly score)")
    return s


def auc(y_true, scores) -> float:
    """Area under the ROC curve (anomaly = positive class, higher score = more anomalous).

    Parameters
    ----------
    y_true : array-like
        "normal"/"anomaly" strings, booleans or 0/1 (1 = anomaly).
    scores : array-like of float
        Anomaly scores, one per clip.

    Returns
    -------
    float
        AUC in [0, 1]. Ties count one half.
    """
    y = _binary_labels(y_true)
    s = _scores(scores, y.size)
    return float(roc_auc_score(y, s))


def pauc(y_true, scores, max_fpr: float = 0.1) -> float:
    """Official DCASE partial AUC: McClish-standardised partial area up to ``max_fpr``.

    Equals ``sklearn.metrics.roc_auc_score(y_true, scores, max_fpr=max_fpr)``: with ``A_p`` the raw area
    under the ROC curve for FPR in [0, p] (ROC linearly interpolated at FPR = p),

        pAUC = 0.5 * (1 + (A_p - p**2 / 2) / (p - p**2 / 2)),

    so chance level gives 0.5 and a perfect detector 1.0 (McClish 1989; DCASE 2020/2021 task 2).
    """
    if not 0.0 < max_fpr <= 1.0:
        raise ASDError(f"max_fpr={max_fpr}: must lie in (0, 1]")
    y = _binary_labels(y_true)
    s = _scores(scores, y.size)
    return float(roc_auc_score(y, s, max_fpr=max_fpr))


def _values(values, where: str) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ASDError(f"{where}: no values to average")
    if np.isnan(v).any():
        raise ASDError(f"{where}: {int(np.isnan(v).sum())} values are NaN; evaluate every unit first")
    return v


def arithmetic_mean(values) -> float:
    """Plain mean (DCASE 2020 per-type averages, the 2021 evaluator's "arithmetic mean" rows)."""
    return float(np.mean(_values(values, "arithmetic_mean")))


def harmonic_mean(values) -> float:
    """Harmonic mean ``n / sum(1 / max(v, eps))`` with values floored at machine epsilon.

    The floor (``np.finfo(float).eps``) mirrors the DCASE 2021 evaluator, which calls
    ``scipy.stats.hmean(np.maximum(values, sys.float_info.epsilon))``; a zero value therefore drives the mean
    towards zero instead of raising.
    """
    v = np.maximum(_values(values, "harmonic_mean"), EPS)
    return float(v.size / np.sum(1.0 / v))


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC (Hanley & McNeil 1982, eq. 2).

    With ``A`` the AUC, ``n_a = n_pos`` anomalous and ``n_n = n_neg`` normal clips,
    ``Q1 = A / (2 - A)``, ``Q2 = 2 A**2 / (1 + A)``:

        SE**2 = (A (1 - A) + (n_a - 1)(Q1 - A**2) + (n_n - 1)(Q2 - A**2)) / (n_a n_n).
    """
    a = float(auc)
    if not 0.0 <= a <= 1.0:
        raise ASDError(f"auc={a}: an AUC must lie in [0, 1]")
    if int(n_pos) < 1 or int(n_neg) < 1:
        raise ASDError(f"n_pos={n_pos}, n_neg={n_neg}: need at least one anomalous and one normal clip")
    n_a, n_n = int(n_pos), int(n_neg)
    q1 = a / (2.0 - a)
    q2 = 2.0 * a * a / (1.0 + a)
    var = (a * (1.0 - a) + (n_a - 1) * (q1 - a * a) + (n_n - 1) * (q2 - a * a)) / (n_a * n_n)
    return float(np.sqrt(max(var, 0.0)))


def hanley_mcneil_ci(auc: float, n_pos: int, n_neg: int, z: float = 1.96) -> tuple[float, float]:
    """Confidence interval ``A -/+ z * SE`` of an AUC (Hanley & McNeil 1982); 95 % for ``z = 1.96``.

    Kuroyanagi et al. report AUCs as ``A +/- z * SE`` (their Table II). The bounds are clipped to [0, 1].

    Returns
    -------
    (low, high) : tuple of float
    """
    se = hanley_mcneil_se(auc, n_pos, n_neg)
    a = float(auc)
    return float(max(0.0, a - z * se)), float(min(1.0, a + z * se))


def mean_auc_ci(aucs, n_pos, n_neg, z: float = 1.96) -> tuple[float, float, float, float]:
    """Mean of per-unit AUCs with its Hanley-McNeil confidence interval.

    The units (machine IDs in 2020, section x domain in 2021) have disjoint test clips, so their AUC
    estimates are independent and the variance of their arithmetic mean is the sum of the per-unit
    variances (:func:`hanley_mcneil_se`, Hanley & McNeil 1982, eq. 2) over ``n**2``:

        mean = (1/n) sum_i A_i,    SE = sqrt(sum_i SE_i**2) / n,    CI = mean -/+ z SE.

    This is the interval of the number the papers and the organisers report (the arithmetic mean over
    units), not of one AUC over the clips of all units pooled (which would rank scores of different units'
    models against each other).

    Parameters
    ----------
    aucs, n_pos, n_neg : array-like, one entry per unit
        AUC, number of anomalous and of normal test clips of each unit.
    z : float
        1.96 for a 95 % interval.

    Returns
    -------
    (mean, se, low, high) : tuple of float; the bounds are clipped to [0, 1].
    """
    a = np.asarray(aucs, dtype=np.float64).ravel()
    pos, neg = np.asarray(n_pos).ravel(), np.asarray(n_neg).ravel()
    if a.size == 0:
        raise ASDError("mean_auc_ci: no units (need at least one AUC)")
    if not (a.size == pos.size == neg.size):
        raise ASDError(f"mean_auc_ci: {a.size} AUCs but {pos.size} anomaly and {neg.size} normal counts; "
                       "give one count of each per unit")
    if not np.all(np.isfinite(a)):
        raise ASDError("mean_auc_ci: non-finite AUC values; evaluate every unit first")
    variances = [hanley_mcneil_se(x, p, n) ** 2 for x, p, n in zip(a, pos, neg)]
    mean = float(a.mean())
    se = float(np.sqrt(np.sum(variances)) / a.size)
    return mean, se, float(max(0.0, mean - z * se)), float(min(1.0, mean + z * se))


def precision_recall_f1(y_true, decisions) -> tuple[float, float, float]:
    """Precision, recall and F1 of 0/1 decisions (1 = anomalous), as the DCASE 2021 evaluator.

    ``precision = tp / max(tp + fp, eps)``, ``recall = tp / max(tp + fn, eps)``,
    ``F1 = 2 P R / max(P + R, eps)``.
    """
    y = _binary_labels(y_true)
    d = np.asarray(decisions, dtype=float)
    if d.shape != y.shape:
        raise ASDError(f"{d.size} decisions for {y.size} labels; give one 0/1 decision per clip")
    if not np.all(np.isin(d, (0.0, 1.0))):
        raise ASDError("decisions must be 0 (normal) or 1 (anomalous)")
    tn, fp, fn, tp = confusion_matrix(y, d == 1.0, labels=[False, True]).ravel()
    precision = tp / max(tp + fp, EPS)
    recall = tp / max(tp + fn, EPS)
    f1 = 2.0 * precision * recall / max(precision + recall, EPS)
    return float(precision), float(recall), float(f1)


def table_year(table: pd.DataFrame, year=None):
    """The edition whose rule applies: ``year`` when given, else the table's single ``year`` value, else None."""
    if year is not None:
        return int(year)
    if "year" in table.columns and len(table):
        years = sorted(set(int(y) for y in table["year"].unique()))
        if len(years) == 1:
            return years[0]
        raise ASDError(f"the clip table mixes DCASE years {years}; evaluate one year at a time")
    return None


def _evaluate_later(test: pd.DataFrame, score_column, decision_column, max_fpr, z) -> list[dict]:
    """Per-section rows of the DCASE 2022-2025 rule (see the module docstring)."""
    rows = []
    for (machine_type, unit), section in test.groupby(["machine_type", "unit"], sort=False):
        scores = section[score_column].to_numpy(dtype=float)
        if np.isnan(scores).all():
            continue
        where = f"{machine_type} {unit}"
        if "part" in section and section["part"].nunique() > 1:
            raise ASDError(f"{where}: the section appears in several parts {sorted(section['part'].unique())}; "
                           "evaluate one part at a time")
        if np.isnan(scores).any():
            first = section.loc[np.isnan(scores), "file"].iloc[0] if "file" in section else "?"
            raise ASDError(f"{where}: {int(np.isnan(scores).sum())} of {scores.size} test clips have no score "
                           f"(first: {first}); score every test clip of the section")
        y = _binary_labels(section["label"].to_numpy(), where)
        s = _scores(scores, y.size, where)
        domain = section["domain"].to_numpy().astype(str)
        unknown = ~np.isin(domain, ("source", "target"))
        if unknown.any():
            first = section["file"].iloc[int(np.argmax(unknown))] if "file" in section else "?"
            raise ASDError(f"{where}: {int(unknown.sum())} test clips have no domain (first: {first}); the DCASE "
                           "2022-2025 scores need it: pass the ground truth with ground_truth_domain/ "
                           "(or the eval_data_list) via --ground-truth")
        section_pauc = float(roc_auc_score(y, s, max_fpr=max_fpr))
        for d in ("source", "target"):
            in_domain = domain == d
            normals = in_domain & ~y
            if not normals.any():
                raise ASDError(f"{where}: no {d} normal test clip; AUC({d}) needs at least one")
            chosen = in_domain | y
            row = {"machine_type": machine_type, "unit": unit, "domain": d,
                   "auc": float(roc_auc_score(y[chosen], s[chosen])), "pauc": section_pauc,
                   "n_normal": int(normals.sum()), "n_anomaly": int(y.sum())}
            row["auc_ci_low"], row["auc_ci_high"] = hanley_mcneil_ci(row["auc"], row["n_anomaly"],
                                                                     row["n_normal"], z)
            if decision_column is not None:
                decisions = section[decision_column].to_numpy(dtype=float)
                if np.isnan(decisions).any():
                    raise ASDError(f"{where}: {int(np.isnan(decisions).sum())} test clips have no decision; "
                                   "write a decision for every scored clip")
                d_pos = y[in_domain]
                tp = int((d_pos & (decisions[in_domain] == 1)).sum())
                fp = int((~d_pos & (decisions[in_domain] == 1)).sum())
                fn = int((d_pos & (decisions[in_domain] == 0)).sum())
                precision = tp / max(tp + fp, EPS)
                recall = tp / max(tp + fn, EPS)
                row["precision"], row["recall"] = float(precision), float(recall)
                row["f1"] = float(2.0 * precision * recall / max(precision + recall, EPS))
            rows.append(row)
    return rows


def evaluate_clips(table: pd.DataFrame, score_column: str = "score", decision_column: str | None = None,
                   max_fpr: float = 0.1, z: float = 1.96, year: int | None = None) -> pd.DataFrame:
    """AUC, pAUC (and decisions' precision/recall/F1) per evaluation unit.

    A unit is (machine type, unit, domain): a machine ID in 2020 (domain ""), a section and domain in
    2021, where AUC and pAUC use only the test clips of that domain (DCASE 2021 evaluator). Only rows with
    ``split == "test"`` are used. Units whose scores are all missing (NaN) are skipped, so a table holding
    dev and eval clips can be evaluated when only one part was scored; a unit with some scores missing, or
    with clips labelled "unknown", raises ``ASDError``. Dev and eval units never share an ID or section, so
    one call may hold both parts; summarise each part separately (see :func:`summarize`).

    Parameters
    ----------
    table : DataFrame
        The clip table (``machine_type, unit, domain, split, label`` and ``score_column``; ``file`` when
        present, for messages).
    score_column : str
        Column with anomaly scores (higher = more anomalous).
    decision_column : str, optional
        Column with 0/1 decisions; adds ``precision, recall, f1``.
    max_fpr : float
        pAUC range (0.1 in both challenges).
    z : float
        Normal quantile of the AUC confidence interval (1.96: 95 %).
    year : int, optional
        The edition whose rule applies (default: the table's ``year`` column). 2022-2025 use the later rule
        of the module docstring: one row per section and domain, ``auc`` over the domain's normal clips and
        all anomalous clips of the section, ``pauc`` over the whole section.

    Returns
    -------
    DataFrame
        One row per unit: ``machine_type, unit, domain, auc, pauc, n_normal, n_anomaly, auc_ci_low,
        auc_ci_high`` (+ ``precision, recall, f1``), values as fractions in [0, 1], sorted by
        (machine_type, domain, unit) like the 2021 evaluator (all sections of the source domain, then the
        target domain).
    """
    required = ["machine_type", "unit", "split", "label", score_column]
    if decision_column is not None:
        required.append(decision_column)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ASDError(f"evaluate_clips: the table lacks columns {missing}; attach scores first "
                       "(asdcore.submission.attach_scores)")
    test = table[table["split"] == "test"].copy()
    if "domain" not in test.columns:
        test["domain"] = ""
    test["domain"] = test["domain"].fillna("").astype(str)
    if table_year(table, year) in LATER_YEARS:
        rows = _evaluate_later(test, score_column, decision_column, max_fpr, z)
    else:
        rows = _evaluate_units(test, score_column, decision_column, max_fpr, z)
    if not rows:
        raise ASDError(f"evaluate_clips: no test clip has a score in column '{score_column}'; nothing to evaluate")
    columns = _UNIT_KEYS + ["auc", "pauc", "n_normal", "n_anomaly", "auc_ci_low", "auc_ci_high"]
    if decision_column is not None:
        columns += ["precision", "recall", "f1"]
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(["machine_type", "domain", "unit"], kind="stable").reset_index(drop=True)


def _evaluate_units(test, score_column, decision_column, max_fpr, z) -> list[dict]:
    """Per-unit rows of the 2020 and 2021 rules (one unit = an ID, or a section and domain)."""
    rows = []
    for key, unit_rows in test.groupby(_UNIT_KEYS, sort=False):
        scores = unit_rows[score_column].to_numpy(dtype=float)
        if np.isnan(scores).all():
            continue
        machine_type, unit, domain = key
        where = " ".join(str(k) for k in key if k)
        if "part" in unit_rows and unit_rows["part"].nunique() > 1:
            raise ASDError(f"{where}: the unit appears in several parts {sorted(unit_rows['part'].unique())}; "
                           "evaluate one part at a time")
        if np.isnan(scores).any():
            first = unit_rows.loc[np.isnan(scores), "file"].iloc[0] if "file" in unit_rows else "?"
            raise ASDError(f"{where}: {int(np.isnan(scores).sum())} of {scores.size} test clips have no score "
                           f"(first: {first}); score every test clip of the unit")
        y = _binary_labels(unit_rows["label"].to_numpy(), where)
        row = {
            "machine_type": machine_type, "unit": unit, "domain": domain,
            "auc": float(roc_auc_score(y, _scores(scores, y.size, where))),
            "pauc": float(roc_auc_score(y, scores, max_fpr=max_fpr)),
            "n_normal": int((~y).sum()), "n_anomaly": int(y.sum()),
        }
        row["auc_ci_low"], row["auc_ci_high"] = hanley_mcneil_ci(row["auc"], row["n_anomaly"], row["n_normal"], z)
        if decision_column is not None:
            decisions = unit_rows[decision_column].to_numpy(dtype=float)
            if np.isnan(decisions).any():
                raise ASDError(f"{where}: {int(np.isnan(decisions).sum())} test clips have no decision; "
                               "write a decision for every scored clip")
            row["precision"], row["recall"], row["f1"] = precision_recall_f1(y, decisions)
        rows.append(row)
    return rows


def _metric_columns(per_unit: pd.DataFrame) -> list[str]:
    return [c for c in ("auc", "pauc", "precision", "recall", "f1") if c in per_unit.columns]


def _section_paucs(rows: pd.DataFrame) -> np.ndarray:
    """Later years: one pAUC per (machine type, section) (both domain rows hold the same pooled value)."""
    return rows.drop_duplicates(["machine_type", "unit"])["pauc"].to_numpy(dtype=float)


def _summary_row(machine_type, domain, statistic, rows, metrics, with_score, later=False):
    mean = harmonic_mean if statistic == "harmonic mean" else arithmetic_mean
    out = {"machine_type": machine_type, "domain": domain, "statistic": statistic, "n_units": int(len(rows))}
    for metric in metrics:
        values = _section_paucs(rows) if (later and metric == "pauc") else rows[metric].to_numpy(dtype=float)
        out[metric] = mean(values)
    if with_score:
        paucs = _section_paucs(rows) if later else rows["pauc"].to_numpy(dtype=float)
        pooled = np.concatenate([rows["auc"].to_numpy(dtype=float), paucs])
        out["score"] = harmonic_mean(pooled) if statistic == "harmonic mean" else np.nan
    return out


def _summary_rows(per_unit: pd.DataFrame, year: int, metrics: list[str]) -> list[dict]:
    rows = []
    types = sorted(per_unit["machine_type"].unique())
    if year == 2020:
        for machine_type in types:
            r = per_unit[per_unit["machine_type"] == machine_type]
            rows.append(_summary_row(machine_type, "", "arithmetic mean", r, metrics, False))
        type_means = pd.DataFrame(rows)
        rows.append(_summary_row("all", "", "arithmetic mean", per_unit, metrics, False))
        row = {"machine_type": "all", "domain": "", "statistic": "arithmetic mean of type means",
               "n_units": int(len(per_unit))}
        for metric in metrics:
            row[metric] = arithmetic_mean(type_means[metric])
        rows.append(row)
        return rows
    later = year in LATER_YEARS
    groups = [(t, per_unit[per_unit["machine_type"] == t]) for t in types] + [("all", per_unit)]
    for machine_type, r in groups:
        for domain in sorted(d for d in r["domain"].unique() if d):
            rows.append(_summary_row(machine_type, domain, "harmonic mean", r[r["domain"] == domain], metrics, True,
                                     later))
        rows.append(_summary_row(machine_type, "all", "harmonic mean", r, metrics, True, later))
        rows.append(_summary_row(machine_type, "all", "arithmetic mean", r, metrics, True, later))
    return rows


def summarize(per_unit: pd.DataFrame, year: int) -> pd.DataFrame:
    """The summary rows the organisers' evaluators print and the papers' tables use.

    Give one part (dev or eval) at a time; if ``per_unit`` has a ``part`` column, each part is summarised
    separately and the output keeps a leading ``part`` column.

    DCASE 2020 (``domain`` = ""):
      - per machine type: "arithmetic mean" over its IDs (2020 evaluator "Average"; the papers' per-type
        rows);
      - ``machine_type = "all"``, "arithmetic mean": over all IDs. This is how the "all" rows of
        Wilkinghoff 2020 Table V (and the overall means of its Tables II-IV) are computed: e.g. the dev
        "mean" row 80.91 % is the mean over the 23 dev IDs, not over the six machine types (81.11 %);
      - ``machine_type = "all"``, "arithmetic mean of type means": the mean of the per-type means
        (Kuroyanagi et al. Table II "Machine Average"). On the 2020 eval set (3 IDs per type) both agree.

    DCASE 2021 (harmonic means of values floored at machine epsilon):
      - per machine type and domain ("source", "target"): "harmonic mean" over sections (Wilkinghoff 2021
        Tables 3-5);
      - per machine type, ``domain = "all"``: "harmonic mean" over sections and domains (Wilkinghoff 2021
        Table 2, Fujimura Table II) and the evaluator's "arithmetic mean";
      - ``machine_type = "all"``: the same over all machine types, sections and domains.
      ``score`` (harmonic-mean rows only, NaN on arithmetic rows) is the harmonic mean of the pooled AUC and
      pAUC values of the group; on the row (all, all, harmonic mean) it is the official DCASE 2021 score
      (Wilkinghoff 2021 Table 5 "all both", Fujimura Table II "All-hmean").

    DCASE 2022-2025: the same rows as 2021, with every pAUC taken once per section (the pooled section pAUC,
      :func:`evaluate_clips`): the domain rows hold the harmonic mean of that domain's AUCs over sections
      (the evaluators' "harmonic mean (source)" / "(target)") and of the section pAUCs; ``score`` on the row
      (all, all, harmonic mean) is the official score: the harmonic mean of every AUC(source), AUC(target) and
      section pAUC.

    Parameters
    ----------
    per_unit : DataFrame
        Output of :func:`evaluate_clips`.
    year : int
        2020 or 2021.

    Returns
    -------
    DataFrame
        Columns ``machine_type, domain, statistic, n_units, auc, pauc`` (+ ``precision, recall, f1`` when
        present; + ``score`` in 2021; ``part`` first when the input has it), fractions in [0, 1].
    """
    if int(year) not in (2020, 2021) + LATER_YEARS:
        raise ASDError(f"year={year}: must be one of 2020-2025")
    if per_unit is None or len(per_unit) == 0:
        raise ASDError("summarize: no per-unit results to summarise")
    per_unit = per_unit.copy()
    if "domain" not in per_unit.columns:
        per_unit["domain"] = ""
    per_unit["domain"] = per_unit["domain"].fillna("").astype(str)
    metrics = _metric_columns(per_unit)
    columns = ["machine_type", "domain", "statistic", "n_units"] + metrics + (["score"] if int(year) != 2020 else [])
    if "part" not in per_unit.columns:
        return pd.DataFrame(_summary_rows(per_unit, int(year), metrics), columns=columns)
    rows = []
    for part, part_rows in per_unit.groupby("part", sort=True):
        rows += [{"part": part, **row} for row in _summary_rows(part_rows, int(year), metrics)]
    return pd.DataFrame(rows, columns=["part"] + columns)


def official_score(per_unit: pd.DataFrame, part: str | None = None, year: int = 2021) -> float:
    """Official score: harmonic mean of all AUC and pAUC values (of one ``part`` if given).

    2021: every unit's AUC and pAUC; 2022-2025: every AUC(source), AUC(target) and each section's pooled
    pAUC once (:func:`evaluate_clips` of a later-year table)."""
    rows = per_unit if part is None or "part" not in per_unit else per_unit[per_unit["part"] == part]
    if len(rows) == 0:
        raise ASDError(f"official_score: no per-unit results for part '{part}'")
    paucs = _section_paucs(rows) if int(year) in LATER_YEARS else rows["pauc"].to_numpy(dtype=float)
    return harmonic_mean(np.concatenate([rows["auc"].to_numpy(dtype=float), paucs]))
