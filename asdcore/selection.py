"""Row selections of the clip table, named once (instead of masks written inline in every driver).

Every function takes the clip table (:mod:`asdcore.layouts`) and returns a boolean numpy mask over its
rows, or per-row keys.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["rows", "train", "test", "labelled_test", "unit_keys", "section_keys"]


def rows(table: pd.DataFrame, **conditions) -> np.ndarray:
    """Rows whose columns equal the given values: ``rows(t, split="train", machine_type=["fan", "pump"])``
    (a list, tuple or set means "any of")."""
    mask = np.ones(len(table), dtype=bool)
    for column, value in conditions.items():
        values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
        mask &= table[column].isin(values).to_numpy()
    return mask


def train(table: pd.DataFrame) -> np.ndarray:
    """Training clips (all of them normal by construction of the data sets)."""
    return rows(table, split="train")


def test(table: pd.DataFrame) -> np.ndarray:
    """Test clips, labelled or not."""
    return rows(table, split="test")


def labelled_test(table: pd.DataFrame) -> np.ndarray:
    """Test clips whose label is known (dev test; eval test with the organisers' ground truth)."""
    return rows(table, split="test", label=["normal", "anomaly"])


def unit_keys(table: pd.DataFrame) -> np.ndarray:
    """One key per clip for per-unit models: ``<machine_type>/<unit>`` (IDs and sections are unique per type)."""
    return (table["machine_type"].astype(str) + "/" + table["unit"].astype(str)).to_numpy()


def section_keys(table: pd.DataFrame) -> np.ndarray:
    """``<machine_type>/<unit>/<domain>``: the groups DCASE 2021 evaluates separately."""
    return (table["machine_type"].astype(str) + "/" + table["unit"].astype(str) + "/"
            + table["domain"].fillna("").astype(str)).to_numpy()
