"""Ours-vs-published tables (``comparison.md``) and per-machine-type plots (ROC curves, score histograms)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["side_by_side", "comparison_markdown", "plot_scores", "ours_in_paper_layout",
           "published_in_paper_layout", "in_paper_order", "PART_COLUMNS", "plot_grid"]

#: Machine types in the order of the papers' tables; "all" last.
MACHINE_ORDER = ["fan", "gearbox", "pump", "slider", "valve", "ToyCar", "ToyConveyor", "ToyTrain", "all"]


def in_paper_order(frame: pd.DataFrame, row_columns: list[str], column: str = "machine type") -> pd.DataFrame:
    """Rows grouped by ``row_columns`` (first-appearance order kept) and, within, machine types in the
    papers' order."""
    order = {m: i for i, m in enumerate(MACHINE_ORDER)}
    frame = frame.sort_values(column, key=lambda s: s.map(order).fillna(len(order)), kind="stable")
    if not row_columns:
        return frame.reset_index(drop=True)
    firsts = {}
    for values in frame[row_columns].astype(str).itertuples(index=False):
        firsts.setdefault(tuple(values), len(firsts))
    rank = [firsts[tuple(v)] for v in frame[row_columns].astype(str).itertuples(index=False)]
    return frame.assign(_rank=rank).sort_values("_rank", kind="stable").drop(columns="_rank").reset_index(drop=True)


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
    left["_order"] = np.arange(len(left))
    # An outer merge sorts its keys; keep our row order, with rows only the paper has at the end.
    merged = left.merge(right, on=keys, how="outer").sort_values("_order", kind="stable", na_position="last")
    ordered = keys + [c for m in metrics for c in (f"{m} (ours)", f"{m} (paper)")]
    return merged[ordered].reset_index(drop=True)


def comparison_markdown(title: str, table: pd.DataFrame, notes: list[str] | None = None, digits: int = 2) -> str:
    """A markdown section: title, notes (data used, quick mode, ...) and the table with ``digits`` decimals."""
    lines = [f"## {title}", ""]
    for note in notes or []:
        lines.append(f"> {note}")
    if notes:
        lines.append("")
    cells = table.map(lambda v: v.replace("|", "\\|") if isinstance(v, str) else v)  # "|" would split a cell
    cells.columns = [str(c).replace("|", "\\|") for c in cells.columns]
    cells = cells.astype(object).where(cells.notna(), None)  # tabulate's missingval only replaces None
    lines.append(cells.to_markdown(index=False, floatfmt=f".{digits}f", missingval="-"))
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
        ax_hist.legend(loc="upper right")  # "best" searches every histogram patch: very slow
        if title:
            fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        path = out_dir / f"{machine_type}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


PART_COLUMNS = ("dev AUC", "dev pAUC", "eval AUC", "eval pAUC")


def _by_part(rows: pd.DataFrame, keys: list[str], auc, pauc) -> pd.DataFrame:
    out = rows[keys].drop_duplicates().reset_index(drop=True)
    for part in ("dev", "eval"):
        part_rows = rows[rows["part"] == part]
        for label, values in (("AUC", auc(part_rows)), ("pAUC", pauc(part_rows))):
            column = part_rows[keys].assign(**{f"{part} {label}": np.asarray(values, dtype=float)})
            out = out.merge(column, on=keys, how="left")
    return out


def ours_in_paper_layout(summary: pd.DataFrame, row_labels: dict[str, dict], machine_types=("all",),
                         statistic: str = "arithmetic mean") -> pd.DataFrame:
    """Our summary rows shaped like a 2020 paper table: one row per system (labelled by ``row_labels``:
    system -> {column: value}) and machine type, columns ``dev AUC, dev pAUC, eval AUC, eval pAUC`` in %.

    ``machine_types=None`` keeps every machine type. The default statistic is the mean over all IDs of a
    set, the "all"/mean rows of Wilkinghoff 2020 Tables II-V.
    """
    rows = summary[(summary["statistic"] == statistic) & summary["system"].isin(list(row_labels))]
    if machine_types is not None:
        rows = rows[rows["machine_type"].isin(list(machine_types))]
    rows = rows.rename(columns={"system": "_system", "machine_type": "machine type"})
    label_frame = pd.DataFrame([{"_system": s, "_rank": i, **labels} for i, (s, labels) in enumerate(row_labels.items())])
    rows = rows.merge(label_frame, on="_system").sort_values("_rank", kind="stable")  # the order of row_labels
    keys = [c for c in label_frame.columns if c not in ("_system", "_rank")] + ["machine type"]
    return _by_part(rows, keys, lambda r: 100 * r["auc"], lambda r: 100 * r["pauc"])


def published_in_paper_layout(tidy: pd.DataFrame, label_columns: list[str], machine_types=("all",),
                              rename: dict | None = None) -> pd.DataFrame:
    """A tidy published table (:func:`asdcore.published.load_table`) in the layout of
    :func:`ours_in_paper_layout`; ``rename`` maps published label columns to ours."""
    rows = tidy if machine_types is None else tidy[tidy["machine_type"].isin(list(machine_types))]
    wide = rows.pivot_table(index=label_columns + ["machine_type", "set"], columns="metric", values="value",
                            sort=False).reset_index()
    wide = wide.rename(columns={"machine_type": "machine type", "set": "part", **(rename or {})})
    keys = [(rename or {}).get(c, c) for c in label_columns] + ["machine type"]
    missing = lambda r: np.full(len(r), np.nan)  # noqa: E731
    return _by_part(wide, keys, lambda r: r["auc"] if "auc" in r else missing(r),
                    lambda r: r["pauc"] if "pauc" in r else missing(r))


def plot_grid(frame: pd.DataFrame, x: str, y: str, path, low: str | None = None, high: str | None = None,
              panel: str = "machine_type", line: str = "system", panels=None, panel_titles: dict | None = None,
              xlabel: str = "", ylabel: str = "", title: str = "", categorical_x: bool = False,
              n_cols: int = 3, scale: float = 100.0) -> Path:
    """One panel per value of ``panel`` (machine types in the papers' order unless ``panels`` is given), one
    line per value of ``line``: ``y`` against ``x`` with a band from ``low`` to ``high`` when both are given
    (confidence interval, mean +/- std). Values are multiplied by ``scale`` (percent). Draws Kuroyanagi
    et al. Fig. 2 and Fujimura et al. Fig. 5.

    ``categorical_x`` places the sorted ``x`` values at equal distances (e.g. 1, 2, 4, ..., 64 anomalies).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = list(dict.fromkeys(frame[panel]))
    if panels is None:
        rank = {m: i for i, m in enumerate(MACHINE_ORDER)}
        panels = sorted(present, key=lambda m: (m != "all" or panel != "machine_type", rank.get(m, len(rank))))
    panels = [p for p in panels if p in present]
    n_rows = max(1, int(np.ceil(len(panels) / n_cols)))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.0 * n_cols, 3.2 * n_rows), squeeze=False)
    ticks = sorted(frame[x].unique())
    position = {v: i for i, v in enumerate(ticks)}
    for ax, name in zip(axes.ravel(), panels):
        for label, rows in frame[frame[panel] == name].groupby(line, sort=False):
            rows = rows.sort_values(x)
            xs = [position[v] for v in rows[x]] if categorical_x else rows[x].to_numpy(dtype=float)
            drawn, = ax.plot(xs, scale * rows[y].to_numpy(dtype=float), marker="o", ms=3, lw=1.2, label=str(label))
            if low is not None and high is not None:
                ax.fill_between(xs, scale * rows[low].to_numpy(dtype=float), scale * rows[high].to_numpy(dtype=float),
                                color=drawn.get_color(), alpha=0.18, lw=0)
        if categorical_x:
            ax.set_xticks(range(len(ticks)), [str(t) for t in ticks])
        ax.set_title((panel_titles or {}).get(name, str(name)), fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    if panels:
        axes.ravel()[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
