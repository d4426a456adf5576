"""Markdown sections of ``comparison.md`` (the tables themselves: :mod:`asdcore.tables`) and plots: ROC curves
and score histograms per machine type, and the panel grid of Kuroyanagi Fig. 2 / Fujimura Fig. 5."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["comparison_markdown", "plot_scores", "plot_grid", "save_figure", "MACHINE_ORDER"]

#: Machine types in the order of the papers' tables; "all" last.
MACHINE_ORDER = ["fan", "gearbox", "pump", "slider", "valve", "ToyCar", "ToyConveyor", "ToyTrain", "all"]


def save_figure(fig, path, dpi: int = 90, **savefig_kwargs) -> Path:
    """Lay out ``fig``, write it to ``path`` (folders made as needed) and close it: the last step of every
    plot of the project. Returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, **savefig_kwargs)
    plt.close(fig)
    return path


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
        written.append(save_figure(fig, out_dir / f"{machine_type}.png"))
    return written


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
    return save_figure(fig, path)
