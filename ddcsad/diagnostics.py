"""Why the DSAD centroid of the randomly initialised network scored below chance (issue 10).

``python -m ddcsad.diagnostics [--data-root ROOT] [--seed N]`` (default: the quick synthetic DCASE 2020
set) takes, for every machine ID, the quick light encoder *as initialised* (``ddcsad.experiments``,
seed ``N``: the network DSAD keeps almost unchanged in 40 quick iterations at lr 1e-4), sets its batch
normalisation statistics from training batches (what 40 training iterations do to the moving
statistics) and scores the ID's test clips, averaged over the ten crops, with

* ``old_centroid``: ||z - c||^2 with c computed *before* the statistics were set (the initial BN
  statistics, mean 0 / variance 1: the centroid DSAD kept before the fix);
* ``norm``: ||z||^2 alone;
* ``new_centroid``: ||z - c||^2 with c computed after the statistics were set (the fix).

It prints the mean over IDs of the per-ID AUC of each score, the mean norms of c and z, and the
correlation of the old-centroid score with ||z||^2. Not a test: a measurement for README.md.
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ddcsad.diagnostics", description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from sklearn.metrics import roc_auc_score

    from asdcore.experiment import cache_root
    from asdcore.features import LogMelConfig, extract_features, valid_frames
    from asdcore.layouts import read_dataset
    from asdcore.synthetic import ensure_synthetic
    from ddcsad import data
    from ddcsad import experiments as E
    from ddcsad.training import LossTrainer

    config = E.QUICK_CONFIG
    root = args.data_root or ensure_synthetic(2020, cache_dir=cache_root(None) / "synthetic")
    table = read_dataset(2020, root)
    fc = LogMelConfig(n_fft=config.n_fft, hop_length=config.hop_length, n_mels=config.n_mels,
                      n_frames=config.feature_frames)
    result = extract_features(table, fc, cache_dir=cache_root(None) / "features", progress=False, ragged="pad")
    table = table[result.kept].reset_index(drop=True)
    features = result.features
    offsets, _ = data.amplitude_normalisation(table, config.amplitude_norm, cache_dir=cache_root(None) / "amplitude")
    data.normalise_amplitude(features, offsets)
    features, lengths = data.fit_short_clips(features, valid_frames(features), config.crop_frames)
    trainer = LossTrainer("dsad", dataclasses.replace(config, bn_calibration_batches=0),
                          (config.crop_frames, features.shape[2]), seed=args.seed)
    model = trainer.model
    rows = []
    for ui, (part, machine_type, unit) in enumerate(data.select_units(table, config.parts, None)):
        sets = data.unit_sets(table, machine_type, unit)
        trainer.reset()
        centroids = data.centroid_dataset(features, sets, config.crop_frames, 64, 1, lengths=lengths)
        old = model.update_centroids(centroids)["c_p"]
        sampler = data.BalancedBatches(features, sets, config.batch_composition, config.crop_frames,
                                       seed=args.seed * 7919 + ui, lengths=lengths)
        model.calibrate_batch_norm(sampler, 10)
        new = model.update_centroids(centroids)["c_p"]
        labels = table["label"].to_numpy()[sets.test]
        keep = np.isin(labels, ["normal", "anomaly"])
        y = labels[keep] == "anomaly"
        if y.all() or not y.any():
            continue
        x = data.gather_crops(features, sets.test[keep], lengths[sets.test[keep]], config.n_crops, config.crop_frames)
        z = model.embed(x.reshape((-1,) + x.shape[2:])).reshape(len(y), config.n_crops, -1).astype(np.float64)
        d_old = ((z - old) ** 2).sum(-1).mean(1)
        norm = (z ** 2).sum(-1).mean(1)
        d_new = ((z - new) ** 2).sum(-1).mean(1)
        rows.append({"part": part, "type": machine_type, "unit": unit, "old_centroid": roc_auc_score(y, d_old),
                     "norm": roc_auc_score(y, norm), "new_centroid": roc_auc_score(y, d_new),
                     "corr_old_norm": np.corrcoef(d_old, norm)[0, 1], "c_old": np.linalg.norm(old),
                     "c_new": np.linalg.norm(new), "z": np.linalg.norm(z, axis=-1).mean()})
    import pandas as pd

    frame = pd.DataFrame(rows)
    pd.set_option("display.width", 160)
    print(frame.groupby("type")[["old_centroid", "norm", "new_centroid", "corr_old_norm"]].mean().round(3))
    print(f"mean over {len(frame)} IDs: AUC old centroid {frame['old_centroid'].mean():.3f}, ||z||^2 "
          f"{frame['norm'].mean():.3f}, new centroid {frame['new_centroid'].mean():.3f}; corr(old, ||z||^2) "
          f"{frame['corr_old_norm'].mean():.3f}; norms: c old {frame['c_old'].mean():.2f}, c new "
          f"{frame['c_new'].mean():.2f}, z {frame['z'].mean():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
