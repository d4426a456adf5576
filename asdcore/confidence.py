"""The mean AUC of every evaluated system with its 95 % confidence interval (``confidence.csv``).

One row per system and part (``dev``, ``eval`` and, when a run has both, ``all``): the arithmetic mean of
the per-unit AUCs (machine IDs in 2020, section x domain in 2021, as the organisers' evaluators compute
them) and the Hanley-McNeil interval of that mean (:func:`asdcore.metrics.mean_auc_ci`). ``above_chance``
says whether the lower bound exceeds 0.5, i.e. whether the system is better than chance on these clips at
the 95 % level.
"""
from __future__ import annotations

import pandas as pd

from asdcore.errors import ASDError
from asdcore.metrics import mean_auc_ci

__all__ = ["COLUMNS", "confidence_table", "lookup", "confidence_markdown"]

COLUMNS = ["system", "part", "n_units", "n_normal", "n_anomaly", "mean_auc", "se", "ci_low", "ci_high",
           "above_chance"]


def _row(system, part, rows: pd.DataFrame) -> dict:
    mean, se, low, high = mean_auc_ci(rows["auc"], rows["n_anomaly"], rows["n_normal"])
    return {"system": system, "part": part, "n_units": int(len(rows)), "n_normal": int(rows["n_normal"].sum()),
            "n_anomaly": int(rows["n_anomaly"].sum()), "mean_auc": mean, "se": se, "ci_low": low,
            "ci_high": high, "above_chance": bool(low > 0.5)}


def confidence_table(per_unit: pd.DataFrame) -> pd.DataFrame:
    """Mean AUC and its 95 % interval per system and part from the runner's per-unit results.

    ``per_unit`` holds one row per system, part and unit with ``auc``, ``n_normal`` and ``n_anomaly``
    (:func:`asdcore.pipeline.evaluate_systems`). Part ``all`` pools the units of both parts (same formula).
    """
    missing = [c for c in ("system", "part", "auc", "n_normal", "n_anomaly") if c not in per_unit.columns]
    if missing:
        raise ASDError(f"confidence_table: the per-unit results lack columns {missing}")
    rows = []
    for system, of_system in per_unit.groupby("system", sort=False):
        parts = sorted(of_system["part"].unique())
        for part in parts:
            rows.append(_row(system, part, of_system[of_system["part"] == part]))
        if len(parts) > 1:
            rows.append(_row(system, "all", of_system))
    return pd.DataFrame(rows, columns=COLUMNS)


def lookup(confidence: pd.DataFrame, system: str, part: str = "all") -> dict | None:
    """The row of ``system`` and ``part`` as a dict (``None`` when the run has no such system). Part
    ``all`` falls back to the only part of a one-part run."""
    rows = confidence[confidence["system"] == system]
    if not len(rows):
        return None
    chosen = rows[rows["part"] == part]
    if not len(chosen) and part == "all" and rows["part"].nunique() == 1:
        chosen = rows
    return chosen.iloc[0].to_dict() if len(chosen) else None


def confidence_markdown(confidence: pd.DataFrame) -> list[str]:
    """The ``comparison.md`` section: one line per system, the part ``all`` (or the only part) in percent."""
    lines = ["## Mean AUC with 95 % confidence interval", "",
             "Mean of the per-unit AUCs (machine IDs in 2020, section x domain in 2021) over the test clips of "
             "both parts; 95 % interval = mean -/+ 1.96 SE, SE = sqrt(sum of the units' Hanley-McNeil "
             "variances) / number of units (`confidence.csv` has each part).", "",
             "| system | units | mean AUC (%) | 95 % CI (%) | lower bound > 50 % |", "|---|---|---|---|---|"]
    for system in dict.fromkeys(confidence["system"]):
        row = lookup(confidence, system)
        if row is None:
            continue
        lines.append(f"| {system} | {row['n_units']} | {100 * row['mean_auc']:.2f} | "
                     f"{100 * row['ci_low']:.2f} - {100 * row['ci_high']:.2f} | "
                     f"{'yes' if row['above_chance'] else 'no'} |")
    return lines + [""]
