"""Ours-vs-published tables (``comparison.md``) and per-machine-type plots (ROC curves, score histograms)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["side_by_side", "comparison_markdown", "plot_scores"]


def side_by_side(ours: pd.DataFrame, published: pd.DataFrame | None, keys: list[str],
                 metrics: list[str]) -> pd.DataFrame:
    """Join our numbers and the paper's on ``keys``; columns ``<metric> (ours)`` and ``<metric> (paper)``.

    Both frames hold percentages in ``metrics`` columns. Rows of ours without a published counterpart
    keep an empty paper column (and the other way round), so no row is silently dropped.
    """
    left = ours[keys + metrics].rename(columns={m: f"{m} (ours)" for m in metrics})
    if published is None or published.empty:
        right = pd.DataFrame(columns=keys + [f"{m} (paper)" for m in metrics])
    else:
        right = published[keys + [m for m in metrics if m in published]].rename(
            columns={m: f"{m} (paper)" for m in metrics})
    for m in metrics:
        if f"{m} (paper)" not in right:
            right[f"{m} (paper)"] = np.nan
    for key in keys:
        left[key] = left[key].astype(str)
        right[key] = right[key].astype(str)
    merged = left.merge(right, on=keys, how="outer", sort=False)
    ordered = keys + [c for m in metrics for c in (f"{m} (ours)", f"{m} (paper)")]
    return merged[ordered]


def comparison_markdown(title: str, table: pd.DataFrame, notes: list[str] | None = None, digits: int = 2) -> str:
    """A markdown section: title, notes (data used, quick mode, ...) and the table with ``digits`` decimals."""
    lines = [f"## {title}", ""]
    for note in notes or []:
        lines.append(f"> {note}")
    if notes:
        lines.append("")
    lines.append(table.to_markdown(index=False, floatfmt=f".{digits}f", missingval="-"))
    lines.append("")
    return "\n".join(lines)


def plot_scores(table: pd.DataFrame, score_column: str, out_dir, title: str = "") -> list[Path]:
    """Per machine type one PNG: ROC curves (one per unit/domain) and normal-vs-anomaly score histograms.

    Only labelled test clips are used. Returns the written paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labelled = table[table["label"].isin(["normal", "anomaly"]) & (table["split"] == "test")]
    written = []
    for machine_type, rows in labelled.groupby("machine_type", sort=True):
        fig, (ax_roc, ax_hist) = plt.subplots(1, 2, figsize=(11, 4.5))
        group_cols = ["part", "unit", "domain"]
        for keys, unit_rows in rows.groupby(group_cols, sort=True):
            y = (unit_rows["label"] == "anomaly").to_numpy()
            if y.all() or not y.any():
                continue
            fpr, tpr, _ = roc_curve(y, unit_rows[score_column].to_numpy())
            ax_roc.plot(fpr, tpr, lw=1, label=" ".join(k for k in keys if k))
        ax_roc.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax_roc.axvline(0.1, color="grey", lw=0.6, ls="--")
        ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC, {machine_type}")
        ax_roc.legend(fontsize=6, loc="lower right")
        scores = rows[score_column].to_numpy(dtype=float)
        bins = np.histogram_bin_edges(scores[np.isfinite(scores)], bins=40)
        for label, colour in (("normal", "tab:blue"), ("anomaly", "tab:red")):
            ax_hist.hist(rows.loc[rows["label"] == label, score_column], bins=bins, alpha=0.55, color=colour,
                         label=label, density=True)
        ax_hist.set(xlabel="anomaly score", ylabel="density", title=f"scores, {machine_type}")
        ax_hist.legend()
        if title:
            fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        path = out_dir / f"{machine_type}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
