"""Simple representations (Wilkinghoff 2020, Sec. IV-F and Table V): the temporal mean or maximum of the
normalised log-mel spectrogram, scored per unit with a single full-covariance Gaussian.

The anomaly score is the negative log-likelihood of the clip's representation under the Gaussian fitted
to the unit's normal training clips. The same statistics serve other systems: the "combined" system of
Table V (the mean for ToyConveyor) and the valve term of Wilkinghoff 2021, eq. (4) (the maximum).

This module also holds the ``simple-representations`` command of ``run_dcase2020.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from asdcore.backends import GaussianBackend, score_per_unit
from asdcore.errors import ASDError
from asdcore.runner import Assembled, Method

__all__ = ["temporal_statistic", "score_simple_representation", "SimpleRepresentationsConfig",
           "standardised_logmel", "SimpleRepresentations", "METHOD"]

STATISTICS = ("mean", "max")


#: clips read at a time from a memory map or a standardised view
READ_CHUNK = 1024


def temporal_statistic(features, statistic: str, rows=None) -> np.ndarray:
    """Per mel bin the mean or the maximum over time: ``[clips, frames, bins] -> [clips, bins]``.

    ``features`` may be a memory map or a :class:`asdcore.features.StandardisedView`: it is read
    :data:`READ_CHUNK` clips at a time; ``rows`` (indices) restricts the result to those clips, in that order.
    """
    if statistic not in STATISTICS:
        raise ASDError(f"unknown temporal statistic {statistic!r}; choose one of {', '.join(STATISTICS)}")
    reduce = np.mean if statistic == "mean" else np.max
    if isinstance(features, np.ndarray) and not isinstance(features, np.memmap) and rows is None:
        return reduce(features, axis=1)
    rows = np.arange(len(features)) if rows is None else np.asarray(rows)
    if rows.dtype == bool:
        rows = np.flatnonzero(rows)
    if not len(rows):
        return np.zeros((0, features.shape[-1]), dtype=np.float32)
    return np.concatenate([reduce(np.asarray(features[rows[i:i + READ_CHUNK]]), axis=1)
                           for i in range(0, len(rows), READ_CHUNK)])


def score_simple_representation(table: pd.DataFrame, features, statistic: str,
                                reg_covar: float = 1e-3) -> np.ndarray:
    """Anomaly scores of every test clip of ``table`` (NaN for training clips).

    One Gaussian with full covariance per unit (machine type + ID/section) on the normal training clips
    of that unit; score = negative log-likelihood (Table V). ``features`` are the normalised log-mel
    spectrograms aligned with ``table`` (an array or a lazily standardised view, read in chunks);
    ``reg_covar`` is added to the covariance diagonal.
    """
    from asdcore.selection import train as train_rows
    from asdcore.selection import unit_keys

    representation = temporal_statistic(features, statistic)
    keys = unit_keys(table)
    train = train_rows(table)
    test = ~train
    scores = np.full(len(table), np.nan)
    scores[test] = score_per_unit(
        lambda unit: GaussianBackend("full", reg_covar=reg_covar, normalize=False),
        representation[train], keys[train], representation[test], keys[test])
    return scores


@dataclass(frozen=True)
class SimpleRepresentationsConfig:
    """Settings of the Table V "mean"/"max" rows (Wilkinghoff 2020, Sec. IV-B and IV-F)."""

    statistics: tuple = ("mean", "max")  # Table V rows
    reg_covar: float = 1e-3  # added to the Gaussian's covariance diagonal (scikit-learn GaussianMixture)


def standardised_logmel(ctx):
    """The run's log-mel features (LogMelConfig(), Sec. IV-B) standardised per bin with the statistics of
    all training clips, lazily (:class:`asdcore.features.StandardisedView` over the memory-mapped store):
    ``(feature_config, normalizer, view)``, computed once per process and kept in ``ctx.state``."""
    if "logmel" not in ctx.state:
        from asdcore.features import LogMelConfig, Normalizer

        feature_config = LogMelConfig()
        features = ctx.features(feature_config)
        normalizer = Normalizer().fit(features, rows=ctx.mask(split="train"))
        ctx.state["logmel"] = (feature_config, normalizer, normalizer.view(features))
    return ctx.state["logmel"]


TABLE_V = dict(published="wilkinghoff2020_table5", row_columns=("representation",),
               filters={"statistic": "arithmetic mean"})


# --- the command: trains nothing, so it has no units; assemble fits the Gaussians -----------------------

class SimpleRepresentations(Method):
    """``run_dcase2020.py simple-representations``: Table V rows "mean" and "max"."""

    command = "simple-representations"
    year = 2020
    title = "Simple representations (Wilkinghoff 2020, Table V)"
    uses_keras = False

    def default_config(self, quick):
        return SimpleRepresentationsConfig()  # nothing is trained: quick mode changes nothing

    def assemble(self, ctx, units):
        from asdcore.tables import TableSpec, render_markdown, tidy_results

        _, _, view = standardised_logmel(ctx)
        config = ctx.config
        systems = {s: score_simple_representation(ctx.table, view, s, config.reg_covar) for s in config.statistics}
        spec = TableSpec(title="Mean AUC and pAUC per machine type (%)", **TABLE_V,
                         systems={s: {"representation": s} for s in config.statistics})

        def report(ctx, per_unit, summary):
            if summary.empty:
                return ["No labelled test clips: submission files only."]
            notes = [ctx.source.description]
            if ctx.quick:
                notes.append("this experiment trains nothing, so --quick changes nothing here")
            text, frame = render_markdown(spec, tidy_results(summary), notes)
            print(frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
            return [text]

        return Assembled(systems, report=report)


METHOD = SimpleRepresentations()
