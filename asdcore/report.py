"""Markdown sections of ``comparison.md`` (the tables themselves: :mod:`asdcore.tables`) and plots: ROC curves
and score histograms per machine type, and the panel grid of Kuroyanagi Fig. 2 / Fujimura Fig. 5."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["comparison_markdown", "plot_scores", "plot_grid", "save_figure", "run_tag", "distinct_colours",
           "standardised_by_normals", "MACHINE_ORDER", "PAUC_MAX_FPR"]

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


def run_tag(synthetic: bool, quick: bool, preset: str | None = None, overrides: bool = False) -> str:
    """What every figure of a run says about its data and settings, e.g. ``SYNTHETIC data, QUICK mode``.

    synthetic : the clips were made by :mod:`asdcore.synthetic` (numbers not comparable with the papers').
    quick : ``--quick`` settings; with the ``medium`` synthetic preset this is a MEDIUM run (quick settings,
        more data: ``configs/medium``).
    overrides : full settings changed by flags or ``--config`` (not the paper's).
    """
    data = "SYNTHETIC data" if synthetic else "real data"
    if quick:
        mode = "MEDIUM run (QUICK settings, medium synthetic set)" if synthetic and preset == "medium" else "QUICK mode"
    else:
        mode = "paper settings with overrides" if overrides else "PAPER settings"
    return f"{data}, {mode}"


def distinct_colours(n: int) -> list:
    """``n`` colours a reader can tell apart: matplotlib's ``tab10`` up to 10, ``tab20`` up to 20, beyond
    that evenly spaced hues of ``turbo``."""
    import matplotlib

    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        order = list(range(0, 20, 2)) + list(range(1, 20, 2))  # the dark shades first, then the light ones
        return [matplotlib.colormaps["tab20"](i) for i in order[:n]]
    return [matplotlib.colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, n)]


#: the end of the false-positive range of the partial AUC (DCASE task 2: p = 0.1)
PAUC_MAX_FPR = 0.1


def standardised_by_normals(rows: pd.DataFrame, score_column: str, group_cols) -> np.ndarray:
    """Each unit's scores as z-values of its normal test clips: ``(score - mean) / std`` with the mean and
    standard deviation of the unit's normal clips (std 0 -> 1). Units have their own score scales (one model
    per unit, or one back-end per unit); standardised, their histograms can be pooled."""
    scores = rows[score_column].to_numpy(dtype=float)
    out = np.full(len(rows), np.nan)
    for _, index in rows.groupby(list(group_cols), sort=False).indices.items():
        unit = scores[index]
        normal = unit[(rows["label"].to_numpy()[index] == "normal") & np.isfinite(unit)]
        if len(normal) == 0:
            continue
        spread = normal.std()
        out[index] = (unit - normal.mean()) / (spread if spread > 0 else 1.0)
    return out


def plot_scores(table: pd.DataFrame, score_column: str, out_dir, title: str = "", tag: str = "") -> list[Path]:
    """Per machine type one PNG: ROC curves (one per unit/domain, its AUC in the legend, the pAUC region
    FPR <= 0.1 shaded) and the normal and anomalous clips' score histograms, each unit's scores
    standardised by its normal clips (:func:`standardised_by_normals`).

    Only labelled test clips are used. ``title``: the system; ``tag``: the run's data and mode
    (:func:`run_tag`). Returns the written paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labelled = table[table["label"].isin(["normal", "anomaly"]) & (table["split"] == "test")]
    group_cols = [c for c in ("part", "unit", "domain") if c in labelled.columns]
    written = []
    for machine_type, rows in labelled.groupby("machine_type", sort=True):
        fig, (ax_roc, ax_hist) = plt.subplots(1, 2, figsize=(12, 5.2))
        curves = []
        for keys, unit_rows in rows.groupby(group_cols, sort=True):
            y = (unit_rows["label"] == "anomaly").to_numpy()
            if y.all() or not y.any():
                continue
            scores = unit_rows[score_column].to_numpy(dtype=float)
            keys = keys if isinstance(keys, tuple) else (keys,)
            curves.append((" ".join(str(k) for k in keys if isinstance(k, str) and k), y, scores))
        ax_roc.axvspan(0, PAUC_MAX_FPR, color="0.88", lw=0, label=f"pAUC region: FPR \u2264 p = {PAUC_MAX_FPR:g}")
        for (name, y, scores), colour in zip(curves, distinct_colours(len(curves))):
            fpr, tpr, _ = roc_curve(y, scores)
            auc = roc_auc_score(y, scores)
            # slightly transparent: with few test clips the step curves of several units share segments
            ax_roc.plot(fpr, tpr, lw=1.6, alpha=0.85, color=colour, label=f"{name}: AUC {100 * auc:.1f} %")
        ax_roc.plot([0, 1], [0, 1], "k:", lw=0.8, label="chance (AUC 50 %)")
        sizes = {(int((~y).sum()), int(y.sum())) for _, y, _ in curves}
        size_note = ""
        if len(sizes) == 1:
            n_normal, n_anomaly = sizes.pop()
            size_note = f"\n{n_normal} normal + {n_anomaly} anomalous test clips per unit"
        ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
        ax_roc.set_title(f"ROC per unit, {machine_type}{size_note}", fontsize=10)
        ax_roc.legend(fontsize=7, loc="lower right", framealpha=0.9)
        z = standardised_by_normals(rows, score_column, group_cols)
        finite = np.isfinite(z)
        if finite.any():
            bins = np.histogram_bin_edges(z[finite], bins=40)
            labels = rows["label"].to_numpy()
            for label, colour in (("normal", "tab:blue"), ("anomaly", "tab:red")):
                chosen = finite & (labels == label)
                ax_hist.hist(z[chosen], bins=bins, alpha=0.55, color=colour, density=True,
                             label=f"{label} test clips ({int(chosen.sum())})")
        ax_hist.set(xlabel="anomaly score, standardised per unit\n(z-value w.r.t. the unit's normal test clips)",
                    ylabel="density", title=f"score distribution, {machine_type} (all units pooled)")
        ax_hist.legend(loc="upper right", fontsize=8)  # "best" searches every histogram patch: very slow
        heading = " - ".join(part for part in (title, machine_type) if part)
        fig.suptitle(heading + (f"\n{tag}" if tag else ""), fontsize=10)
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
