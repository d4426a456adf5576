"""Training curves drawn from the units' CSV logs (``training_log.csv``, :mod:`asdcore.keras_utils`).

Seeing that training works without TensorBoard: the runner draws ``plots/training/<unit>.png`` for every
unit with a log (:func:`plot_unit_logs`), one panel per kind of logged value, each value a line over the
epochs:

- losses: ``loss`` and its terms (DDCSAD ``bce`` / ``centroid_loss``, SerialOE ``mac_loss`` / ``id_loss``,
  the smoothing networks' ``val_loss``);
- adaptive scale(s) of the sub-cluster AdaCos heads (``scale``, ``scale_<head>``; log y-axis when they span
  more than a decade);
- DDCSAD's mean squared distances of normal / outlier embeddings to c_p / c_n (``dist_*``);
- learning rate(s) (log y-axis when they span more than a decade).

:func:`plot_scale_curves` puts several networks' adaptive scales on one figure with the divergence
threshold: Wilkinghoff 2020, Table III and the appendix (without mixup the modified AdaCos scale grows
without bound; with mixup it settles).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from asdcore.errors import ASDError
from asdcore.report import save_figure

__all__ = ["read_training_log", "curve_panels", "plot_training_log", "plot_unit_logs", "plot_scale_curves"]

#: File name of a unit's (main) training log in its folder (written by asdcore.keras_utils.training_callbacks).
TRAINING_LOG = "training_log.csv"


def read_training_log(path) -> pd.DataFrame:
    """A CSV training log with an ``epoch`` column counted from 1 (Keras' CSVLogger counts from 0)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ASDError(f"{path}: not a readable training log ({error}); train the unit again") from error
    if "epoch" not in frame.columns:
        raise ASDError(f"{path}: no 'epoch' column; not a Keras CSV training log")
    frame = frame.drop_duplicates("epoch", keep="last").sort_values("epoch")  # a resumed run appends
    # Keras' CSVLogger adds an empty val_<name> column per value when there is no validation data
    frame = frame.drop(columns=[c for c in frame.columns if c != "epoch" and frame[c].isna().all()])
    return frame.assign(epoch=frame["epoch"].astype(int) + 1).reset_index(drop=True)


def _is_loss(column: str) -> bool:
    return column.endswith("loss") or column == "bce"


def curve_panels(columns) -> list[tuple[str, list[str], bool]]:
    """``(title, columns, log y-axis possible)`` of each panel for the columns of a log (empty panels left
    out); a possible log axis is used when the values span more than a decade (:func:`_spans_decades`)."""
    columns = [c for c in columns if c != "epoch"]
    panels = [("loss", [c for c in columns if _is_loss(c)], False),
              ("adaptive scale", [c for c in columns if c == "scale" or c.startswith("scale_")], True),
              ("mean squared distance to the centroids",
               sorted((c for c in columns if c.startswith("dist_")), key=lambda c: (c.split("_")[1:2], "_cn" in c)),
               False),
              ("learning rate", [c for c in columns if c.startswith("learning_rate")], True)]
    return [panel for panel in panels if panel[1]]


def _style(column: str) -> dict:
    """Legend label and line style of a column: DDCSAD's distances read "normal to c_p" (normal solid,
    outlier dashed; circles to c_p, squares to c_n); other columns keep their name."""
    if column.startswith("dist_") and column.count("_") == 2:
        _, group, centre = column.split("_")
        return {"label": f"{group} to c_{centre[1:]}", "ls": "-" if group == "normal" else "--",
                "marker": "o" if centre == "cp" else "s"}
    return {"label": column, "marker": "o"}


def _positive(values: np.ndarray) -> np.ndarray:
    """Values for a log axis: non-positive and non-finite ones left out (NaN)."""
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def _spans_decades(frame: pd.DataFrame, columns) -> bool:
    """Whether the positive finite values of ``columns`` span more than a factor of 10 (then a log axis
    shows them better; a narrower range reads better on a linear one)."""
    values = _positive(frame[list(columns)].to_numpy(dtype=float).ravel())
    values = values[np.isfinite(values)]
    return len(values) > 0 and values.max() > 10 * values.min()


def plot_training_log(log_path, png_path, title: str = "") -> Path | None:
    """Draw one log's curves (:func:`curve_panels`) into ``png_path``; None when the log has no epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = read_training_log(log_path)
    panels = curve_panels(frame.columns)
    if frame.empty or not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(8.5, 2.3 * len(panels) + 0.6), sharex=True, squeeze=False)
    epochs = frame["epoch"].to_numpy()
    marker = len(frame) <= 30  # markers while the epochs can be told apart
    for ax, (name, columns, log_y) in zip(axes[:, 0], panels):
        log_y = log_y and _spans_decades(frame, columns)
        for column in columns:
            values = frame[column].to_numpy(dtype=float)
            values = _positive(values) if log_y else values
            shown = np.isfinite(values)  # values logged on some epochs only (validation) stay one line
            style = _style(column)
            if not marker:
                style.pop("marker")
            ax.plot(epochs[shown], values[shown], ms=3, lw=1.2, **style)
        if log_y:
            ax.set_yscale("log")
        ax.set_ylabel(name if len(name) < 20 else name.replace(" to the ", "\nto the "), fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the panel, never on a line
    axes[-1, 0].set_xlabel("epoch")
    axes[-1, 0].xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title or Path(log_path).parent.name, fontsize=10)
    return save_figure(fig, png_path, dpi=110)


def plot_unit_logs(unit_folders, out_dir, tag: str = "") -> list[Path]:
    """``<out_dir>/<unit>.png`` for every unit folder holding a ``training_log.csv`` (the unit's main
    training; DDCSAD's fine-tunings keep their own ``training_log_anomalies<k>.csv``, open them in
    TensorBoard). ``tag``: the run's data and mode, in every title (:func:`asdcore.report.run_tag`). Returns
    the written paths."""
    written = []
    for folder in unit_folders:
        log = Path(folder) / TRAINING_LOG
        if log.is_file():
            path = plot_training_log(log, Path(out_dir) / f"{Path(folder).name}.png",
                                     title=f"training of {Path(folder).name}" + (f"\n{tag}" if tag else ""))
            if path is not None:
                written.append(path)
    return written


def plot_scale_curves(logs: dict, png_path, threshold: float, title: str = "") -> Path:
    """The adaptive scale per epoch of several networks on one figure (log y-axes), with the divergence
    threshold drawn (Wilkinghoff 2020, Table III: a network whose scale passes it is reported "diverges"):
    left the curves against the threshold, right the same curves on their own range.

    Parameters
    ----------
    logs : dict
        Curve label -> path of the network's ``training_log.csv`` (missing files are left out).
    threshold : float
        The scale above which training stops (``divergence_scale``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = []
    for label, path in logs.items():
        if not Path(path).is_file():
            continue
        frame = read_training_log(path)
        if "scale" in frame.columns:
            curves.append((label, frame["epoch"].to_numpy(), frame["scale"].to_numpy(dtype=float)))
    if not curves:
        raise ASDError(f"no training log with a 'scale' column among {list(logs)}; were the networks trained?")
    # left: the curves against the threshold; right: the same curves on their own range (they may all lie
    # decades below the threshold, where the left panel squeezes them together)
    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = [("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", "-"), ("P", "--")]
    for i, (label, epochs, values) in enumerate(curves):
        diverged = not math.isfinite(values[-1]) or values[-1] > threshold
        marker, line = styles[i % len(styles)]
        for axis in (ax, zoom):
            axis.plot(epochs, _positive(values), marker=marker if len(epochs) <= 30 else None, ls=line, ms=4,
                      lw=1.4, color=f"C{i}", label=f"{label}{' (diverges)' if diverged else ''}")
    ax.axhline(float(threshold), color="red", ls="--", lw=1, label=f"divergence threshold {float(threshold):.0e}")
    values = _positive(np.concatenate([v for _, _, v in curves]))
    values = values[np.isfinite(values)]
    zoom_log = len(values) > 0 and values.max() > 10 * values.min()  # a linear axis reads better within a decade
    for axis, name, log_y in ((ax, "with the divergence threshold", True), (zoom, "the curves' own range", zoom_log)):
        if log_y:
            axis.set_yscale("log")
        axis.set(xlabel="epoch", ylabel="adaptive scale s", title=name)
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(title or "adaptive scale per epoch", fontsize=11)
    return save_figure(fig, png_path, dpi=110)
