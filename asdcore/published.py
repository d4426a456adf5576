"""The four papers' result tables, kept as tidy CSV files inside the package (``asdcore/published/``).

One CSV per table, one row per printed number. Every file has the columns ``paper, table``, then the
table's row labels, then ``set`` ("dev"/"eval"), ``metric``, ``value`` and ``note``:

- values are as printed: AUC/pAUC/score in percent (``92.57`` for 92.57 %), hyperparameters as numbers;
  ``value`` is empty only where the paper prints no number ("diverges") or the text cannot be read, and
  ``note`` then says which;
- ``metric``: ``auc``, ``pauc`` (McClish-standardised, p = 0.1), ``score`` (harmonic mean of AUCs and pAUCs
  together, the DCASE 2021 official score), ``auc_ci95`` (half-width of the 95 % interval), ``alpha``,
  ``K``, ``n_clusters``;
- machine types use the data set's folder names (the 2021 paper's "slide rail" is ``slider``);
  ``unit`` is ``section_XX`` and ``domain`` ``source``/``target`` as in the clip table; ``all`` marks an
  aggregate over sections, domains or machine types, and ``statistic`` names it (same vocabulary as
  :func:`asdcore.metrics.summarize`). For hyperparameter tables ``set`` is the data the value was chosen
  on.

Paper keys (the number is the DCASE task year the paper evaluates on, not its publication year):

- ``wilkinghoff2020``: Wilkinghoff, "Sub-cluster AdaCos: learning representations for anomalous sound
  detection", IJCNN 2021. Tables II (backends), III (mixup / modified AdaCos), IV (sub-clusters), V (per
  machine type: temporal mean / max of the log-mel, learned, combined). The overall means of these tables
  are means over all machine IDs of the set (23 dev, 18 eval IDs), not over machine types. The PDF text of
  Tables II-IV lists its columns as dev AUC, eval AUC, dev pAUC, eval pAUC (cross-checked with Table V).
- ``wilkinghoff2021``: Wilkinghoff, "Combining multiple distributions based on sub-cluster AdaCos for
  anomalous sound detection under domain shifted conditions", DCASE 2021 workshop. Tables 2 (per section,
  dev), 3 (distributions), 4 (losses), 5 (eval, with the official score as ``all``/``all``/``score``).
- ``kuroyanagi2020``: Kuroyanagi et al., binary classification (BCE) + DDCSAD on DCASE 2020. Tables I
  (alpha of eq. 5) and II (AUC with 95 % Hanley-McNeil intervals; the set is not named in the caption).
- ``fujimura2021``: Fujimura, Imoto, Toda, "Discriminative neighborhood smoothing for generative anomalous
  sound detection" on DCASE 2021. Tables I (hyperparameters) and II (harmonic means over sections 3-5).
"""
from __future__ import annotations

from importlib import resources

import pandas as pd

from asdcore.errors import ASDError

__all__ = ["available_tables", "load_table", "to_wide", "TABLE_DIR"]

#: Package data folder holding the CSV files (shipped via ``package_data={"asdcore": ["published/*.csv"]}``).
TABLE_DIR = "published"

_FIXED = ("paper", "table", "set", "metric", "value", "note")


def _folder():
    return resources.files("asdcore").joinpath(TABLE_DIR)


def available_tables() -> list[str]:
    """Names accepted by :func:`load_table`, e.g. ``"wilkinghoff2020_table5"``, sorted."""
    folder = _folder()
    if not folder.is_dir():
        raise ASDError(f"{folder}: the published tables are missing from the installed package; reinstall "
                       "(setup.py must ship package_data 'published/*.csv')")
    return sorted(entry.name[:-4] for entry in folder.iterdir() if entry.name.endswith(".csv"))


def load_table(name: str, wide: bool = False) -> pd.DataFrame:
    """One paper table.

    Parameters
    ----------
    name : str
        ``<paper>_table<N>``, see :func:`available_tables` (e.g. ``"wilkinghoff2020_table5"``).
    wide : bool
        False: the tidy table (one printed number per row, ``value`` float, NaN where the paper prints
        none). True: :func:`to_wide` of it (one column per metric).

    Returns
    -------
    DataFrame
        Label columns as str ("" where empty), ``value`` as float.
    """
    names = available_tables()
    if name not in names:
        raise ASDError(f"no published table '{name}'; available: {', '.join(names)}")
    with _folder().joinpath(f"{name}.csv").open("r", encoding="utf-8") as handle:
        frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
    frame["value"] = pd.to_numeric(frame["value"].replace("", float("nan"))).astype(float)
    return to_wide(frame) if wide else frame


def to_wide(tidy: pd.DataFrame) -> pd.DataFrame:
    """Tidy table -> one row per printed row and set, one column per metric (e.g. ``auc``, ``pauc``).

    Label columns (everything but ``paper, table, set, metric, value, note``) and ``set`` become the keys;
    notes are dropped.
    """
    labels = [c for c in tidy.columns if c not in _FIXED]
    keys = ["paper", "table"] + labels + ["set"]
    if tidy.duplicated(keys + ["metric"]).any():
        raise ASDError("to_wide: a (row, set, metric) appears twice; the table is not tidy")
    wide = tidy.pivot(index=keys, columns="metric", values="value")
    order = tidy[keys].drop_duplicates()
    wide = order.merge(wide.reset_index(), on=keys, how="left")
    metrics = list(dict.fromkeys(tidy["metric"]))
    wide = wide[keys + metrics].reset_index(drop=True)
    wide.columns.name = None
    return wide
