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

__all__ = ["temporal_statistic", "score_simple_representation", "SimpleRepresentationsConfig",
           "add_arguments", "run"]

STATISTICS = ("mean", "max")


def temporal_statistic(features: np.ndarray, statistic: str) -> np.ndarray:
    """Per mel bin the mean or the maximum over time: ``[clips, frames, bins] -> [clips, bins]``."""
    if statistic == "mean":
        return features.mean(axis=1)
    if statistic == "max":
        return features.max(axis=1)
    raise ASDError(f"unknown temporal statistic {statistic!r}; choose one of {', '.join(STATISTICS)}")


def score_simple_representation(table: pd.DataFrame, features: np.ndarray, statistic: str,
                                reg_covar: float = 1e-3) -> np.ndarray:
    """Anomaly scores of every test clip of ``table`` (NaN for training clips).

    One Gaussian with full covariance per unit (machine type + ID/section) on the normal training clips
    of that unit; score = negative log-likelihood (Table V). ``features`` are the normalised log-mel
    spectrograms aligned with ``table``; ``reg_covar`` is added to the covariance diagonal.
    """
    from asdcore.pipeline import unit_keys

    representation = temporal_statistic(features, statistic)
    keys = unit_keys(table)
    train = (table["split"] == "train").to_numpy()
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


# --- the command --------------------------------------------------------------------------------------

def add_arguments(parser, year):
    from asdcore.experiment import add_common_arguments

    add_common_arguments(parser)


def run(args) -> int:
    from asdcore import published
    from asdcore.experiment import QUICK_BANNER, RunFolder, resolve_config, set_seed
    from asdcore.features import LogMelConfig, Normalizer
    from asdcore.pipeline import evaluate_systems, load_features, open_data
    from asdcore.report import (PART_COLUMNS, comparison_markdown, in_paper_order, ours_in_paper_layout,
                                published_in_paper_layout, side_by_side)

    set_seed(args.seed)
    run_folder = RunFolder.create(args.out, 2020, "simple-representations")
    config = resolve_config(SimpleRepresentationsConfig(), args.config)
    feature_config = LogMelConfig()
    source, table = open_data(args, 2020)
    run_folder.write_config({"experiment": "simple-representations", "data": source.description,
                             "seed": args.seed, "quick": args.quick, "settings": config,
                             "features": feature_config})
    table, features = load_features(table, feature_config, args, run_folder)
    train = (table["split"] == "train").to_numpy()
    normalizer = Normalizer().fit(features[train])
    features = normalizer.transform(features)
    systems = {statistic: score_simple_representation(table, features, statistic, config.reg_covar)
               for statistic in config.statistics}
    per_unit, summary = evaluate_systems(run_folder, table, systems, 2020, quick=args.quick)
    notes = [source.description]
    if args.quick:
        notes.append(QUICK_BANNER + " (this experiment trains nothing, so --quick changes nothing here)")
    text = ["# Simple representations (Wilkinghoff 2020, Table V)", ""]
    if not summary.empty:
        labels = {statistic: {"representation": statistic} for statistic in config.statistics}
        ours = ours_in_paper_layout(summary, labels, machine_types=None)
        paper = published.load_table("wilkinghoff2020_table5")
        paper = published_in_paper_layout(paper[paper["representation"].isin(config.statistics)],
                                          ["representation"], machine_types=None)
        combined = in_paper_order(side_by_side(ours, paper, ["representation", "machine type"], list(PART_COLUMNS)),
                                  ["representation"])
        text.append(comparison_markdown("Mean AUC and pAUC per machine type (%)", combined, notes))
        print(combined.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    run_folder.write_text("comparison.md", "\n".join(text))
    print(f"run folder: {run_folder.path}")
    run_folder.close()
    return 0
