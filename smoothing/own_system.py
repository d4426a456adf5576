"""``asd fit smoothing``: the adapter of :mod:`asdcore.system` for discriminative neighbourhood smoothing
(Fujimura et al.) on a user's own machines.

Per machine type (each own machine is its own type; a DCASE root keeps its types and sections) the paper
script's two networks are trained with its functions: a_G, the autoencoder
(:func:`smoothing.autoencoder.train_autoencoder`), and f_D, SerialOE with every other machine given as
pseudo-anomalies (:func:`smoothing.serial_oe.train_serial_oe`), on the share ``protocol.source_fraction``
(85 %, paper IV-A) of each machine's recordings; amplitude standardised per recording, 4 s segments.

Reference pool (the difference from the paper)
----------------------------------------------
Eq. (7) smooths a clip's a_G with those of its K-1 nearest neighbours in f_D. The paper takes the neighbours
among the *test* clips of the section (the paper script keeps this): a clip's score then depends on which
other clips are scored with it. Here the neighbours come from a **reference pool stored at fit time**: the
machine's held-out normal recordings (the other 15 %, which trained neither network: their a_G is not an
in-sample reconstruction error), as 4 s segments (``protocol.level="segment"``) or clips (``"clip"``).
:meth:`smoothing.knn.NeighbourhoodSmoother.score_new` with ``add=False`` scores each new recording against
that pool alone. K is ``k`` (default 16: Table I chooses K on labelled test clips, which a user does not
have; 16 keeps the clip's own a_G at a sixteenth of the sum and stays far below the pool of a machine with
~100 recordings); a K whose K-1 neighbours cover the whole pool is a warning at fit time (every recording
would get nearly the pool's mean).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from asdcore.errors import ASDError

__all__ = ["SmoothingSystemConfig", "SmoothingSystem", "ADAPTERS"]


def _protocol():
    from smoothing.settings import ProtocolConfig

    return ProtocolConfig()


def _ae():
    from smoothing.autoencoder import AEConfig

    return AEConfig()


def _serial_oe():
    from smoothing.serial_oe import SerialOEConfig

    return SerialOEConfig()


@dataclass(frozen=True)
class SmoothingSystemConfig:
    """Settings of the smoothing system for own machines: K and "Data" of eq. (7) (ours, see the module
    docstring) and the paper script's protocol, a_G and f_D settings (:mod:`smoothing.settings`)."""

    k: int = 16  # K of eq. (7): the clip itself + 15 neighbours from the reference pool (ours)
    data: str = "all"  # Table I "Data": neighbours among "all" pool items or "source" ones only
    protocol: object = field(default_factory=_protocol)
    ae: object = field(default_factory=_ae)
    serial_oe: object = field(default_factory=_serial_oe)


def _mels(config):
    from smoothing.training import crop_frames

    p = config.protocol
    return {name: replace(net.logmel_config(), n_frames=crop_frames(p.clip_seconds, net.sr, net.hop_length))
            for name, net in (("ae", config.ae), ("serial_oe", config.serial_oe))}


def _split(table, config, seed):
    from smoothing.protocol import training_split

    return training_split(table.assign(split="train"), config.protocol.source_fraction,
                          config.protocol.n_target_fit, seed)


def _pool_items(config, n_clips: int) -> int:
    return n_clips * (config.serial_oe.n_segments if config.protocol.level == "segment" else 1)


def _standardise(x, wave_std, mel, config):
    from smoothing.training import standardize_features

    if config.protocol.standardize_amplitude:
        x = standardize_features(np.array(x, dtype=np.float32), np.asarray(wave_std, np.float64), mel)
    return np.asarray(x, dtype=np.float32)


def _items(config, embeddings, ae_segments):
    """(f_D, a_G) items of clips: per 4 s segment (level "segment") or per clip (means over its segments)."""
    if config.protocol.level == "segment":
        return embeddings.reshape(-1, embeddings.shape[-1]), ae_segments.reshape(-1)
    return embeddings.mean(axis=1), ae_segments.mean(axis=1)


class _Scorer:
    def __init__(self, folder, config):
        import keras

        import smoothing.serial_oe  # noqa: F401 - registers the custom layers
        from smoothing.knn import NeighbourhoodSmoother

        folder = Path(folder)
        self.config = config
        self.mels = _mels(config)
        self.sr = int(config.serial_oe.sr)
        self.machines = json.loads((folder / "machines.json").read_text(encoding="utf-8"))
        self.models, self.smoothers = {}, {}
        for machine, info in self.machines.items():
            for name in ("ae", "serial_oe"):
                if info[name] not in self.models:
                    self.models[info[name]] = keras.models.load_model(folder / info[name])
            with np.load(folder / info["pool"]) as pool:
                smoother = NeighbourhoodSmoother(int(config.k), config.protocol.metric, config.data)
                self.smoothers[machine] = smoother.add(pool["features"], pool["scores"], pool["domains"])

    def score_clip(self, wave, machine: str, domain: str):
        from asdcore.features import compute_logmel
        from smoothing.autoencoder import score_clips
        from smoothing.serial_oe import embed_clips

        info = self.machines[machine]
        wave = np.asarray(wave, dtype=np.float64)
        std = np.sqrt(max(np.mean(wave * wave) - np.mean(wave) ** 2, 0.0))
        x = {name: _standardise(compute_logmel(wave[None].astype(np.float32), mel), [std], mel, self.config)
             for name, mel in self.mels.items()}
        _, segments = score_clips(self.models[info["ae"]], x["ae"], self.config.ae)
        embeddings = embed_clips(self.models[info["serial_oe"]], x["serial_oe"], self.config.serial_oe)
        features, scores = _items(self.config, embeddings, segments)
        domains = np.full(len(scores), domain)
        smoothed = self.smoothers[machine].score_new(features, scores, domains, add=False)
        score = float(np.mean(smoothed))
        return score, score


class SmoothingSystem:
    """Adapter of :mod:`asdcore.system` for neighbourhood smoothing (Fujimura et al.)."""

    name = "smoothing"
    domains = False

    def default_config(self, quick: bool):
        from smoothing.settings import quick_config

        if not quick:
            return SmoothingSystemConfig()
        q = quick_config()
        return SmoothingSystemConfig(protocol=q.protocol, ae=q.ae, serial_oe=q.serial_oe)

    def check(self, table, config, log) -> None:
        config.protocol.check()
        if config.data not in ("all", "source"):
            raise ASDError(f"data={config.data!r}: use all or source")
        if config.protocol.level == "segment" and \
                (config.ae.n_segments, config.ae.segment_seconds) != (config.serial_oe.n_segments,
                                                                      config.serial_oe.segment_seconds):
            raise ASDError("level 'segment' pairs a_G and f_D segment by segment: give ae and serial_oe the same "
                           "n_segments and segment_seconds (--set ae.n_segments=N)")
        if table["machine_type"].nunique() < 2:
            raise ASDError("smoothing's f_D (SerialOE) learns a machine against other machines' recordings, but "
                           f"the training recordings hold one machine ({table['machine'].iloc[0]}): give several "
                           "machines (one sub-folder each) or --auxiliary DIR with other machines' normal recordings")
        role = _split(table, config, 0)
        own = (table["part"] != "auxiliary").to_numpy()
        for machine in sorted(table.loc[own, "machine"].unique()):
            rows = own & (table["machine"] == machine).to_numpy()
            pool = _pool_items(config, int((rows & (role == "val")).sum()))
            if pool == 0:
                raise ASDError(f"{machine}: too few recordings for a reference pool (the {100 * (1 - config.protocol.source_fraction):.0f} % "
                               "not used in training is empty); add recordings")
            if config.k - 1 >= pool:
                log.warning("setting k=%d covers the whole reference pool of %s (%d items): every recording gets "
                            "nearly the same score; fix: --set k=%d or add recordings", config.k, machine, pool,
                            max(2, pool // 4))

    def fit(self, table, config, folder, seed, log) -> None:
        from asdcore.amplitude import waveform_std
        from asdcore.experiment import cache_root, seed_for
        from asdcore.pipeline import load_features
        from smoothing.autoencoder import score_clips, train_autoencoder
        from smoothing.serial_oe import embed_clips, train_serial_oe

        folder = Path(folder)
        table = table.assign(split="train").reset_index(drop=True)
        role = _split(table, config, seed)
        fit, val = role == "fit", role == "val"
        mels = _mels(config)
        features = {}
        for name, mel in mels.items():
            kept, features[name] = load_features(table, mel, cache_dir=cache_root())
            if len(kept) != len(table):
                raise ASDError("some training recordings could not be read; see the log")
        std = waveform_std(table["path"], cache_root() / "amplitude", config.serial_oe.sr)

        def clips(name, rows):
            return _standardise(np.asarray(features[name][rows]), std[rows], mels[name], config)

        own = (table["part"] != "auxiliary").to_numpy()
        machines = {}
        types = sorted(table.loc[own, "machine_type"].unique())
        jit = config.protocol.jit_compile
        for i, machine_type in enumerate(types):
            of_type = (table["machine_type"] == machine_type).to_numpy()
            sections = sorted(table.loc[of_type, "unit"].unique())
            section_ids = table["unit"].map({s: j for j, s in enumerate(sections)}).fillna(0).to_numpy(np.int64)
            log.info("%s: training a_G (%d epochs) and f_D (%d epochs, %d other recordings as pseudo-anomalies)",
                     machine_type, config.ae.epochs, config.serial_oe.epochs, int((fit & ~of_type).sum()))
            ae, _ = train_autoencoder(clips("ae", fit & of_type), None, config.ae, seed=seed_for(seed, "ae", machine_type),
                                      validate_every=0, jit_compile=jit)
            soe, _ = train_serial_oe(clips("serial_oe", fit & of_type), section_ids[fit & of_type],
                                     clips("serial_oe", fit & ~of_type), len(sections), config.serial_oe,
                                     seed=seed_for(seed, "serial_oe", machine_type), validate_every=0, jit_compile=jit)
            names = {"ae": f"ae_{i:03d}.keras", "serial_oe": f"serial_oe_{i:03d}.keras"}
            ae.save(folder / names["ae"])
            soe.save(folder / names["serial_oe"])
            for machine in sorted(table.loc[own & of_type, "machine"].unique()):
                rows = val & own & (table["machine"] == machine).to_numpy()
                _, segments = score_clips(ae, clips("ae", rows), config.ae)
                embeddings = embed_clips(soe, clips("serial_oe", rows), config.serial_oe)
                pool_features, pool_scores = _items(config, embeddings, segments)
                per_clip = table.loc[rows, "domain"].to_numpy().astype(str)
                domains = np.repeat(per_clip, len(pool_scores) // max(1, len(per_clip)))
                pool = f"pool_{len(machines):03d}.npz"
                np.savez(folder / pool, features=pool_features, scores=pool_scores, domains=domains)
                machines[machine] = {**names, "pool": pool, "pool_items": int(len(pool_scores))}
                log.info("%s: reference pool of %d items (%d held-out recordings)", machine, len(pool_scores),
                         int(rows.sum()))
        (folder / "machines.json").write_text(json.dumps(machines, indent=1), encoding="utf-8")

    def load(self, folder, config):
        return _Scorer(folder, config)


ADAPTERS = {"smoothing": SmoothingSystem()}
