"""Declarative paper tables: our numbers beside the published ones, in the paper's rows and columns.

Every comparison table is one :class:`TableSpec`: the published CSV it mirrors (:mod:`asdcore.published`),
which of its label columns name a row, which filters select the printed rows, and which of our systems
fill which row (``systems``: our system name -> the paper's row labels). :func:`render` turns our results
(the ``summary`` / ``per_unit`` frames of :func:`asdcore.pipeline.evaluate_systems`) into the same tidy
vocabulary as the published CSVs (:func:`tidy_results`), joins them on the row labels, and pivots to one
row per printed row and one ``<set> <METRIC> (ours)`` / ``(paper)`` column pair per printed column, rows
and columns in the paper's order. Rows the paper has and we don't (or the other way round) stay, with
``-`` cells: nothing is dropped silently.

Extras are hooks, not copies: ``cell_text`` replaces our cell by a word (``"diverges"`` for a network
whose adaptive scale exploded, Table III), ``extra_columns`` appends computed columns (Kuroyanagi's 95 %
interval, Fujimura's ToyCar-5) and ``notes`` adds lines under the title.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pandas as pd

from asdcore.errors import ASDError
from asdcore.published import load_table
from asdcore.report import MACHINE_ORDER, comparison_markdown

__all__ = ["TableSpec", "tidy_results", "render", "render_markdown"]

_METRIC_NAMES = {"auc": "AUC", "pauc": "pAUC", "score": "score", "auc_ci95": "AUC CI", "alpha": "alpha", "K": "K",
                 "n_clusters": "clusters", "precision": "precision", "recall": "recall", "f1": "F1"}


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """One paper table as data.

    Attributes
    ----------
    published : str
        Name of the published CSV (``asdcore.published.load_table``), e.g. ``"wilkinghoff2020_table4"``.
    title : str
        Section title in comparison.md.
    row_columns : tuple of str
        Published label columns that name a printed row besides ``machine_type`` (e.g.
        ``("n_subclusters", "backend")``).
    systems : dict
        Our system name -> ``{row column: value}`` (the paper's labels of the row it fills); the order is
        the order of our rows that the paper does not have.
    filters : dict
        Column -> value or tuple of values kept, applied to both sides (e.g. ``{"statistic":
        "arithmetic mean", "machine_type": ("all",)}``); missing columns are ignored.
    metrics : tuple of str
        Metrics shown (``auc``, ``pauc``, ``score``, ...), in this order within each set.
    sets : tuple of str
        Data sets shown (``dev``, ``eval``), in this order.
    index_columns : tuple of str
        Further row keys shared by both sides (``machine_type``, ``unit``, ``domain``).
    cell_text : callable, optional
        ``cell_text(system) -> str | None``: a word that replaces all our cells of that system's row.
    extra_columns : callable, optional
        ``extra_columns(wide) -> wide``: adds computed columns to the rendered frame.
    """

    published: str
    title: str
    row_columns: tuple = ()
    systems: dict = dataclasses.field(default_factory=dict)
    filters: dict = dataclasses.field(default_factory=dict)
    metrics: tuple = ("auc", "pauc")
    sets: tuple = ("dev", "eval")
    index_columns: tuple = ("machine_type",)
    cell_text: Callable | None = None
    extra_columns: Callable | None = None


def tidy_results(results: pd.DataFrame, metrics=("auc", "pauc", "score")) -> pd.DataFrame:
    """Our ``summary`` or ``per_unit`` frame in the published CSVs' vocabulary.

    ``part`` becomes ``set``; each metric column becomes rows ``metric, value`` in percent (AUC values in
    [0, 1] times 100); ``system`` is kept to label rows.
    """
    if results is None or results.empty:
        return pd.DataFrame(columns=["system", "set", "metric", "value"])
    frame = results.rename(columns={"part": "set"})
    keep = [m for m in metrics if m in frame.columns]
    ids = [c for c in frame.columns if c not in keep and c not in ("n_units", "n_clips", "precision", "recall", "f1",
                                                                  "n_normal", "n_anomaly", "auc_ci95")]
    tidy = frame.melt(id_vars=ids, value_vars=keep, var_name="metric", value_name="value")
    tidy["value"] = 100.0 * tidy["value"].astype(float)
    for column in ("machine_type", "unit", "domain", "statistic", "set"):
        if column in tidy:
            tidy[column] = tidy[column].fillna("").astype(str)
    return tidy


def _select(frame: pd.DataFrame, filters: dict) -> pd.DataFrame:
    rows = np.ones(len(frame), dtype=bool)
    for column, value in filters.items():
        if column not in frame.columns:
            continue
        values = [str(v) for v in (value if isinstance(value, (tuple, list, set)) else (value,))]
        rows &= frame[column].astype(str).isin(values).to_numpy()
    return frame[rows]


def _label(metric_set: tuple) -> str:
    part, metric = metric_set
    return f"{part} {_METRIC_NAMES.get(metric, metric)}"


def render(spec: TableSpec, ours: pd.DataFrame) -> pd.DataFrame:
    """The comparison frame of ``spec``: our tidy results (:func:`tidy_results`) beside the paper's.

    Columns: the row columns, the index columns (``machine_type`` shown as ``machine type``), then for each
    set and metric ``<set> <METRIC> (ours)`` and ``(paper)``; values in percent (NaN where absent).
    """
    keys = list(spec.row_columns) + list(spec.index_columns)
    paper = _select(load_table(spec.published), spec.filters)
    missing = [c for c in keys if c not in paper.columns]
    if missing:
        raise ASDError(f"table {spec.published} has no column(s) {missing}; fix the TableSpec")
    paper = paper[paper["set"].isin(spec.sets) & paper["metric"].isin(spec.metrics)].copy()
    # a cell the paper prints as a word ("diverges") has no value and that word as its note
    words = paper["value"].isna() & paper["note"].str.len().between(1, 20)
    paper["value"] = paper["value"].astype(object)
    paper.loc[words, "value"] = paper.loc[words, "note"]
    paper = paper[keys + ["set", "metric", "value"]].assign(side="paper")

    labelled = []
    if ours is not None and not ours.empty and spec.systems:
        ours = _select(ours, spec.filters)
        ours = ours[ours["system"].isin(list(spec.systems)) & ours["set"].isin(spec.sets)
                    & ours["metric"].isin(spec.metrics)]
        for system, labels in spec.systems.items():
            rows = ours[ours["system"] == system].copy()
            for column in spec.row_columns:
                rows[column] = str(labels.get(column, ""))
            labelled.append(rows)
    ours_rows = (pd.concat(labelled, ignore_index=True) if labelled
                 else pd.DataFrame(columns=keys + ["set", "metric", "value"]))
    for column in keys:
        if column not in ours_rows:
            ours_rows[column] = ""
    ours_rows = ours_rows[keys + ["set", "metric", "value"]].astype({"value": object}).assign(side="ours")

    both = pd.concat([paper, ours_rows], ignore_index=True)
    for column in keys:
        both[column] = both[column].astype(str)
    # row order: the paper's first appearance, then ours in the order of spec.systems / our rows
    order = both[keys].drop_duplicates().reset_index(drop=True)
    if "machine_type" in keys and not spec.row_columns:
        rank = {m: i for i, m in enumerate(MACHINE_ORDER)}
        order = order.assign(_m=order["machine_type"].map(rank).fillna(len(rank))).sort_values(
            "_m", kind="stable").drop(columns="_m")
    order["_row"] = np.arange(len(order))
    wide = both.dropna(subset=["value"]).pivot(index=keys + [], columns=["set", "metric", "side"], values="value") \
        if not both.dropna(subset=["value"]).duplicated(keys + ["set", "metric", "side"]).any() else None
    if wide is None:
        raise ASDError(f"{spec.title}: two values for one cell; give each system its own row labels")
    columns = []
    for part in spec.sets:
        for metric in spec.metrics:
            for side in ("ours", "paper"):
                columns.append((part, metric, side))
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(columns, names=["set", "metric", "side"]))
    # columns without words are numbers again (NaN for absent cells)
    wide = wide.apply(lambda col: col if col.map(lambda v: isinstance(v, str)).any() else col.astype(float))
    wide.columns = [f"{_label((p, m))} ({s})" for p, m, s in wide.columns]
    wide = order.merge(wide.reset_index(), on=keys, how="left").sort_values("_row").drop(columns="_row")
    if spec.cell_text is not None and spec.systems:
        ours_cols = [c for c in wide.columns if c.endswith("(ours)")]
        wide[ours_cols] = wide[ours_cols].astype(object)
        for system, labels in spec.systems.items():
            text = spec.cell_text(system)
            if not text:
                continue
            match = np.ones(len(wide), dtype=bool)
            for column in spec.row_columns:
                match &= (wide[column] == str(labels.get(column, ""))).to_numpy()
            wide.loc[match, ours_cols] = text
    wide = wide.rename(columns={"machine_type": "machine type"}).reset_index(drop=True)
    if spec.extra_columns is not None:
        wide = spec.extra_columns(wide)
    return wide


def render_markdown(spec: TableSpec, ours: pd.DataFrame, notes=None) -> tuple[str, pd.DataFrame]:
    """``(markdown section, frame)`` of :func:`render`, for comparison.md and the console."""
    frame = render(spec, ours)
    return comparison_markdown(spec.title, frame, notes), frame
