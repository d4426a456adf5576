"""``asd fit subcluster-adacos`` and ``asd fit multi-distribution``: the adapters of :mod:`asdcore.system` for
Wilkinghoff's two systems on a user's own machines.

Both train with the paper scripts' functions on the clip table of :mod:`asdcore.folders` (each machine one
class; ``--auxiliary`` machines extra classes, never scored) and score one recording at a time:

- ``subcluster-adacos`` (Wilkinghoff 2020): one network with sub-cluster AdaCos and mixup
  (:func:`subcluster_adacos.training.train_network`, S = ``representation_subclusters``, 32 as Table V's
  "learned" row), per machine a GMM with S components started at the machine's learned centres and the
  "combined" rule of Table V (:class:`subcluster_adacos.scoring.ScoringSystem`: the same object the paper
  script saves for ``run_dcase2020.py score``).
- ``multi-distribution`` (Wilkinghoff 2021): networks for S in ``subclusters`` with a snapshot every
  ``checkpoint_every`` epochs (:func:`subcluster_adacos.multi_distribution.train_network`), per snapshot the
  GMMs of eqs. (2)-(4) (:class:`~subcluster_adacos.multi_distribution.DistributionScorer`,
  :class:`~subcluster_adacos.multi_distribution.TemporalMaxScorer`), score sets summed (Sec. 2.5). Machines
  are the sections; own folders carry no attributes, so their networks have the section head only (the
  paper's "sections" variant); DCASE 2021 roots keep the paper's per-type variant. A machine with target
  recordings scores clips marked target (a ``target`` folder or ``_target_`` in the name) with eq. (3) and
  decides on its first term (Sec. 2.6); without target recordings every clip is scored with eq. (2)/(4).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from asdcore.errors import ASDError

__all__ = ["SubClusterAdaCosSystem", "MultiDistributionSystem", "ADAPTERS"]


def _features(table, feature_config, log):
    """Cached log-mel features of every row of ``table`` (the paper scripts' reader: a bad file is an error
    naming it)."""
    from asdcore.experiment import cache_root
    from asdcore.pipeline import load_features

    kept, features = load_features(table, feature_config, cache_dir=cache_root())
    if len(kept) != len(table):
        raise ASDError("some training recordings could not be read; see the log")
    return features


def _class_check(table, what: str) -> None:
    n = table["machine"].nunique()
    if n < 2:
        raise ASDError(f"{what} learns to tell machines apart and needs at least two classes, but the training "
                       f"recordings hold one machine ({table['machine'].iloc[0]}): give several machines (one "
                       "sub-folder each) or --auxiliary DIR with other machines' normal recordings")


def _component_check(table, n_components: int, setting: str, log) -> None:
    counts = table[table["part"] != "auxiliary"].groupby("machine").size()
    few = counts[counts < n_components]
    for machine, n in few.items():
        log.warning("setting %s=%d: %s has only %d training recordings for %d GMM components (degenerate "
                    "components); fix: --set %s=%d or add recordings", setting, n_components, machine, n,
                    n_components, setting, max(1, 2 ** int(np.floor(np.log2(max(1, n // 2))))))


# ------------------------------------------------------------------------------ sub-cluster AdaCos 2020

class _SubClusterScorer:
    def __init__(self, system, keys: dict):
        self.system, self.keys = system, keys
        self.sr = int(system.feature_config.sr)

    def score_clip(self, wave, machine: str, domain: str):
        from asdcore.features import compute_logmel

        features = self.system.normalizer.transform(compute_logmel(np.asarray(wave)[None], self.system.feature_config))
        score = float(self.system.score(features, [self.keys[machine]])[0])
        return score, score


class SubClusterAdaCosSystem:
    """Adapter of :mod:`asdcore.system` for sub-cluster AdaCos (Wilkinghoff 2020)."""

    name = "subcluster-adacos"
    domains = False

    def default_config(self, quick: bool):
        from subcluster_adacos.settings_2020 import SubClusterAdaCosConfig

        return SubClusterAdaCosConfig().quick() if quick else SubClusterAdaCosConfig()

    def check(self, table, config, log) -> None:
        _class_check(table, "sub-cluster AdaCos")
        _component_check(table, config.representation_subclusters, "representation_subclusters", log)

    def fit(self, table, config, folder, seed, log) -> None:
        from asdcore.features import LogMelConfig, Normalizer
        from asdcore.selection import unit_keys
        from subcluster_adacos.network import embedding_model
        from subcluster_adacos.scoring import ScoringSystem
        from subcluster_adacos.settings_2020 import ModelSpec, training_config
        from subcluster_adacos.training import class_labels, load_network, train_network

        feature_config = LogMelConfig()  # Sec. IV-B
        features = _features(table, feature_config, log)
        normalizer = Normalizer().fit(features)  # per bin, all training recordings (as the paper script)
        view = normalizer.view(features)
        labels, class_names = class_labels(table)
        spec = ModelSpec("subcluster_adacos", True, config.representation_subclusters)
        log.info("training %s: %d epochs, %d recordings, %d classes", spec.name, config.epochs, len(table),
                 len(class_names))
        network = Path(folder) / "network"
        summary = train_network(view, labels, len(class_names), training_config(spec, config), network,
                                np.arange(len(table)), seed=seed)
        if summary["diverged"]:
            raise ASDError("training diverged (the adaptive scale exploded); fit again with another --seed")
        trained = load_network(network, load_model=True)
        keys = unit_keys(table)
        own = np.flatnonzero((table["part"] != "auxiliary").to_numpy())
        system = ScoringSystem(feature_config, normalizer, [embedding_model(trained["model"])],
                               combined_mean_types=config.combined_mean_types, centres=[trained["centres"]],
                               class_names=class_names, gmm_score=config.gmm_score,
                               reg_covar=getattr(config, "reg_covar", 1e-3))
        system.fit(view, keys, rows=own, embeddings=[trained["embeddings"]])
        system.save(Path(folder) / "system")
        machines = dict(zip(table["machine"].iloc[own], keys[own]))
        (Path(folder) / "machines.json").write_text(json.dumps(machines, indent=1), encoding="utf-8")
        _keep_log_only(network)

    def load(self, folder, config):
        from subcluster_adacos.scoring import ScoringSystem

        keys = json.loads((Path(folder) / "machines.json").read_text(encoding="utf-8"))
        return _SubClusterScorer(ScoringSystem.load(Path(folder) / "system"), keys)


def _keep_log_only(network: Path) -> None:
    """The unit folder after its outputs were used: only ``training_log.csv`` stays (the weights the system
    needs are saved with it)."""
    for path in list(network.iterdir()):
        if path.name != "training_log.csv":
            shutil.rmtree(path) if path.is_dir() else path.unlink()


# ------------------------------------------------------------------------------ multiple distributions 2021

class _MultiScorer:
    def __init__(self, folder, config):
        import joblib
        import keras

        import subcluster_adacos.layers  # noqa: F401 - registers the custom layers
        from asdcore.features import LogMelConfig, Normalizer

        folder = Path(folder)
        self.config = config
        self.feature_config = LogMelConfig()
        self.sr = int(self.feature_config.sr)
        self.normalizer = Normalizer.load(folder / "normalizer.npz")
        self.machines = json.loads((folder / "machines.json").read_text(encoding="utf-8"))
        sets = json.loads((folder / "score_sets.json").read_text(encoding="utf-8"))
        from subcluster_adacos.network import embedding_model

        self.sets = [(embedding_model(keras.models.load_model(folder / s["model"])), joblib.load(folder / s["scorer"]))
                     for s in sets]
        tmax = folder / "tmax.joblib"
        self.tmax = joblib.load(tmax) if tmax.exists() else None

    def score_clip(self, wave, machine: str, domain: str):
        from asdcore.features import compute_logmel
        from subcluster_adacos.multi_distribution import add_temporal_max, combine_terms, sum_score_sets
        from subcluster_adacos.scoring import _embed_directly

        info = self.machines[machine]
        table = pd.DataFrame({"machine_type": [info["machine_type"]], "unit": [info["unit"]], "domain": [domain],
                              "split": ["test"], "attributes": [""]})
        raw = compute_logmel(np.asarray(wave)[None], self.feature_config)
        x = self.normalizer.transform(raw)
        tmax_term = None
        if self.tmax is not None and info["machine_type"] in self.tmax.machine_types:
            tmax_term = self.tmax.term(x.max(axis=1), table)
        once = getattr(self.config, "tmax_term", "per_set") == "once"  # eq. (4) per score set or once (Sec. 2.5)
        sets = []
        for model, scorer in self.sets:
            embedding = _embed_directly(model, x)
            terms = scorer.terms(embedding, table, require_target=False)
            if domain != "target" or not np.isfinite(terms["target"]).all():
                terms["target"] = np.zeros(1)
            sets.append(combine_terms(terms, table, None if once else tmax_term, self.config.target_decision))
        ensemble = sum_score_sets(sets)
        if once:  # the term enters the summed ensemble once, as the experiments do
            ensemble = add_temporal_max(ensemble, tmax_term, table)
        return float(ensemble.score[0]), float(ensemble.decision[0])


class MultiDistributionSystem:
    """Adapter of :mod:`asdcore.system` for multiple distributions with sub-cluster AdaCos (Wilkinghoff 2021)."""

    name = "multi-distribution"
    domains = True

    def default_config(self, quick: bool):
        from subcluster_adacos.settings_2021 import MultiDistributionConfig

        return MultiDistributionConfig().quick() if quick else MultiDistributionConfig()

    def check(self, table, config, log) -> None:
        config.check()
        _class_check(table, "the multi-distribution system")
        _component_check(table, max(config.subclusters), "subclusters", log)

    def fit(self, table, config, folder, seed, log) -> None:
        import joblib
        import keras

        from asdcore.experiment import seed_for
        from asdcore.features import LogMelConfig, Normalizer
        from subcluster_adacos.multi_distribution import (BOTH_HEADS, SECTIONS_ONLY, DistributionScorer,
                                                          TemporalMaxScorer, TrainingClasses, network_outputs,
                                                          paper_variants, train_network)
        from subcluster_adacos.settings_2021 import _checkpoints

        folder = Path(folder)
        table = table.assign(label="normal", split="train")
        feature_config = LogMelConfig()
        features = _features(table, feature_config, log)
        classes = TrainingClasses.from_table(table)
        normalizer = Normalizer().fit(features)  # all normal training clips (Sec. 2.3)
        normalizer.save(folder / "normalizer.npz")
        view = normalizer.view(features)
        with_attributes = table["attributes"].fillna("").astype(str).ne("").any()
        if with_attributes:
            choice = paper_variants(sorted(set(table["machine_type"])), config.sections_only_types)
            variants = sorted(set(choice.values()))
        else:  # no attribute classes: the section head only
            choice, variants = {}, [SECTIONS_ONLY]
        if len(variants) > 1:
            raise ASDError("machine types of both network variants (sections only / sections and attributes) in "
                           "one system; fit the types of config sections_only_types in a system of their own")
        variant = variants[0]
        own = (table["part"] != "auxiliary").to_numpy()
        scoring_table = table[own].reset_index(drop=True)
        sets = []
        for n_sub in config.subclusters:
            name = f"{variant}_S{int(n_sub):02d}"
            log.info("training %s: %d epochs, %d recordings, %d sections%s", name, config.epochs, len(table),
                     classes.n_sections, f", {classes.n_attributes} attribute classes" if variant == BOTH_HEADS else "")
            model, info = train_network(variant, view, classes, config.training(n_sub), model_dir=folder / name,
                                        seed=seed_for(seed, name), verbose=0, loss_weights=config.loss_weights)
            if info["diverged"]:
                log.warning("%s diverged: left out of the ensemble", name)
                continue
            for epoch, path in sorted(info["snapshots"].items()):
                if epoch not in _checkpoints(config):
                    continue
                snapshot = model if epoch == config.epochs else keras.models.load_model(path)
                outputs = network_outputs(snapshot, view, classes, config.batch_size)
                scorer = DistributionScorer(config.reg_covar, config.component_weights, config.gmm_score,
                                            config.section_gmm_data)
                scorer.fit(outputs.embeddings[own], scoring_table, outputs.section_centres, outputs.attribute_centres)
                stem = f"{name}_epoch{int(epoch):04d}"
                snapshot.save(folder / f"{stem}.keras")
                joblib.dump(scorer, folder / f"{stem}.joblib")
                sets.append({"model": f"{stem}.keras", "scorer": f"{stem}.joblib"})
            _keep_log_only(folder / name)
        if not sets:
            raise ASDError("every network diverged; fit again with another --seed")
        if scoring_table["machine_type"].isin(config.tmax_types).any():  # eq. (4)
            from subcluster_adacos.multi_distribution import temporal_max

            tmax = temporal_max(view)[own]
            joblib.dump(TemporalMaxScorer(config.tmax_types, config.reg_covar).fit(tmax, scoring_table),
                        folder / "tmax.joblib")
        (folder / "score_sets.json").write_text(json.dumps(sets, indent=1), encoding="utf-8")
        machines = {m: {"machine_type": str(g["machine_type"].iloc[0]), "unit": str(g["unit"].iloc[0])}
                    for m, g in scoring_table.groupby("machine")}
        (folder / "machines.json").write_text(json.dumps(machines, indent=1), encoding="utf-8")
        log.info("%d score sets (S in %s, checkpoints %s)", len(sets), tuple(config.subclusters), _checkpoints(config))

    def load(self, folder, config):
        return _MultiScorer(folder, config)


ADAPTERS = {"subcluster-adacos": SubClusterAdaCosSystem(), "multi-distribution": MultiDistributionSystem()}
