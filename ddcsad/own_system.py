"""``asd fit ddcsad``: the adapter of :mod:`asdcore.system` for BCE + DDCSAD (Kuroyanagi et al.) on a user's
own machines.

One model per machine (Sec. IV-A), trained by :class:`ddcsad.training.LossTrainer` with the loss of
``losses`` (default BCE+DDCSAD, the paper's proposal): normal = the machine's recordings, outliers = the
recordings of every other machine given (``--normal`` sub-folders and ``--auxiliary``; the paper takes the
other machines of the same data set, which a user's folders do not name). Features, amplitude normalisation
per machine, crops and eq. (5) are the paper script's (:mod:`ddcsad.data`, :mod:`ddcsad.scoring`).

Differences from the paper script, for per-recording scores
-----------------------------------------------------------
- eq. (5)'s min-max normalisation of d uses the minimum and maximum of d over the machine's normal training
  crops, stored at fit time (the paper script normalises over the evaluated test clips of the ID, so a clip's
  score depends on the other test clips). Normalised values of new clips may leave [0, 1].
- alpha: Table I's value for a DCASE 2020 machine type; for any other machine 0.5 (equal weight of both
  terms; Table I's alphas span 0-1 with a median of 0.55), or ``--set alpha=VALUE``.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from asdcore.errors import ASDError

__all__ = ["DDCSADSystem", "ADAPTERS", "OWN_ALPHA"]

#: alpha of eq. (5) for machines of no DCASE 2020 type (see the module docstring)
OWN_ALPHA = 0.5


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _alpha(config, loss: str, machine_type: str, log=None) -> float:
    from ddcsad.scoring import fixed_alpha, table1_alpha

    if not isinstance(config.alpha, str):
        return float(config.alpha)
    if fixed_alpha(loss) is not None:
        return float(fixed_alpha(loss))
    try:
        return table1_alpha(loss, machine_type)
    except ASDError:
        if log is not None:
            log.info("%s: not a DCASE 2020 machine type: alpha = %.2f (Table I has none; --set alpha=VALUE)",
                     machine_type, OWN_ALPHA)
        return OWN_ALPHA


class _Scorer:
    def __init__(self, folder, config):
        from ddcsad.model import load_model_weights
        from ddcsad.training import LossTrainer

        folder = Path(folder)
        self.config = config
        self.machines = json.loads((folder / "machines.json").read_text(encoding="utf-8"))
        self.feature_config = _feature_config(config)
        self.sr = int(self.feature_config.sr)
        self.models = {}
        for machine, info in self.machines.items():
            trainer = LossTrainer(config.losses[0], config, (config.crop_frames, config.n_mels), seed=0)
            load_model_weights(trainer.model, folder / info["weights"])
            self.models[machine] = trainer.model

    def score_clip(self, wave, machine: str, domain: str):
        from asdcore.features import compute_logmel
        from ddcsad.data import fit_short_clips
        from ddcsad.scoring import crop_outputs, eq5

        info, c = self.machines[machine], self.config
        if info.get("wave_affine") is not None:  # amplitude_method "waveform": the standardised wave's features
            mean, std = info["wave_affine"]
            wave = ((np.asarray(wave) - mean) / std).astype(np.float32)
            features = compute_logmel(wave[None], self.feature_config)
        else:  # "logmel_shift"
            features = compute_logmel(np.asarray(wave)[None], self.feature_config) + np.float32(info["offset_db"])
        features, lengths = fit_short_clips(features, np.array([features.shape[1]]), c.crop_frames)
        logit, d = crop_outputs(self.models[machine], features, None, c.n_crops, c.crop_frames,
                                c.inference_batch_size, lengths=lengths)
        score = float(eq5(logit, d, info["alpha"], c.minmax_over, bounds=info["bounds"])[0])
        return score, score


def _feature_config(config):
    from asdcore.features import LogMelConfig

    return LogMelConfig(n_fft=config.n_fft, hop_length=config.hop_length, n_mels=config.n_mels,
                        n_frames=config.feature_frames)


class DDCSADSystem:
    """Adapter of :mod:`asdcore.system` for BCE + DDCSAD (Kuroyanagi et al.)."""

    name = "ddcsad"
    domains = False

    def default_config(self, quick: bool):
        from ddcsad.settings import PAPER_CONFIG, QUICK_CONFIG

        base = QUICK_CONFIG if quick else PAPER_CONFIG
        return dataclasses.replace(base, losses=("bce+ddcsad",), anomalies=(0,), save_models="none")

    def check(self, table, config, log) -> None:
        if len(config.losses) != 1:
            raise ASDError(f"losses={','.join(config.losses)}: a system has one loss; --set losses=bce+ddcsad")
        if table["machine"].nunique() < 2:
            raise ASDError("ddcsad trains each machine against outlier recordings of other machines, but the "
                           f"training recordings hold one machine ({table['machine'].iloc[0]}): give several "
                           "machines (one sub-folder each) or --auxiliary DIR with other machines' normal recordings")
        if config.amplitude_norm == "clip":
            raise ASDError("amplitude_norm=clip is not supported by asd fit; --set amplitude_norm=machine")

    def fit(self, table, config, folder, seed, log) -> None:
        from asdcore.experiment import cache_root, seed_for
        from asdcore.features import valid_frames
        from asdcore.pipeline import load_features
        from ddcsad import data
        from ddcsad.model import save_model_weights
        from ddcsad.scoring import crop_outputs
        from ddcsad.training import LossTrainer

        folder = Path(folder)
        loss = config.losses[0]
        table = table.assign(split="train").reset_index(drop=True)
        feature_config = _feature_config(config)
        # as the paper script: the waveforms' statistics first, then the features of the standardised waves
        # (amplitude_method "waveform") or the log-mel shifted by -10 log10(sigma^2) dB ("logmel_shift")
        offsets, amplitudes = data.amplitude_normalisation(table, config.amplitude_norm,
                                                           cache_dir=cache_root() / "amplitude", sr=feature_config.sr)
        on_waves = getattr(config, "amplitude_method", "logmel_shift") == "waveform" and config.amplitude_norm != "none"
        affine = data.amplitude_affine(table, amplitudes, config.amplitude_norm) if on_waves else None
        extra = {"wave_affine": affine} if on_waves else {}
        kept, features = load_features(table, feature_config, cache_dir=cache_root(), ragged="pad", **extra)
        if len(kept) != len(table):
            raise ASDError("some training recordings could not be read; see the log")
        if not on_waves:
            features = data.normalise_amplitude(features, offsets)
        features, lengths = data.fit_short_clips(features, valid_frames(features), config.crop_frames)
        machines = {}
        own = sorted(table.loc[table["part"] != "auxiliary", "machine"].unique())
        for i, machine in enumerate(own):
            target = (table["machine"] == machine).to_numpy()
            first = table[target].iloc[0]
            sets = data.UnitSets("own", str(first["machine_type"]), str(first["unit"]), np.flatnonzero(target),
                                 np.flatnonzero(~target))
            trainer = LossTrainer(loss, config, (config.crop_frames, int(features.shape[2])),
                                  seed=seed_for(seed, "initial network"))
            info = trainer.train(features, sets, config.iterations, config.batch_composition,
                                 seed=seed_for(seed, machine), lengths=lengths, folder=folder / f"log_{i:03d}")
            log.info("%s (%s): %d iterations against %d outlier recordings, loss %.4g", machine, loss,
                     config.iterations, len(sets.outlier), info.get("loss", float("nan")))
            _, d = crop_outputs(trainer.model, features, sets.normal, config.n_crops, config.crop_frames,
                                config.inference_batch_size, lengths=lengths)
            d = d if config.minmax_over == "crops" else d.mean(axis=1)
            weights = f"machine_{i:03d}.weights.npz"
            save_model_weights(trainer.model, folder / weights)
            first_row = np.flatnonzero(target)[0]
            machines[machine] = {"weights": weights, "offset_db": float(offsets[first_row]),
                                 "wave_affine": None if affine is None else [float(affine[0][first_row]),
                                                                             float(affine[1][first_row])],
                                 "alpha": _alpha(config, loss, str(first["machine_type"]), log),
                                 "bounds": [float(np.min(d)), float(np.max(d))]}
        (folder / "machines.json").write_text(json.dumps(machines, indent=1), encoding="utf-8")
        amplitudes.to_csv(folder / "amplitude.csv", index=False)

    def load(self, folder, config):
        return _Scorer(folder, config)


ADAPTERS = {"ddcsad": DDCSADSystem()}
