"""Anomaly scores from a trained sub-cluster AdaCos network (Wilkinghoff 2020, Sec. III-C, Tables II, IV, V).

The network gives 128-d embeddings; the back-ends of :mod:`asdcore.backends` turn them into anomaly scores
per machine ID. The reference back-end is a GMM per ID with S components whose means start at the ID's
L2-normalised learned sub-cluster centres (REFERENCE.md §4). The "model output" row of Table II, which
needs the network's head, is here too, and so is :class:`ScoringSystem`, everything needed to score a new
recording (saved with a run, loaded by ``run_dcase2020.py score``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from asdcore.backends import (CosineMeanBackend, CosineTopKBackend, GaussianBackend, GMMBackend, PLDABackend,
                              score_per_unit)
from asdcore.errors import ASDError

__all__ = ["BACKENDS", "extract_embeddings", "model_output_scores", "backend_scores", "scored_by_mean",
           "combined_scores", "ScoringSystem"]

#: Table II rows (key -> label in the paper) plus the GMM of Table IV.
BACKENDS = {
    "model_output": "representation model output",
    "cosine_mean": "cosine similarity to mean",
    "cosine_top10": "cosine similarity to top 10",
    "plda": "two-covariance PLDA",
    "gaussian_spherical": "Gaussian (spherical covariance)",
    "gaussian_diag": "Gaussian (diagonal covariance)",
    "gaussian_full": "Gaussian (full covariance)",
    "gmm": "GMM",
}


def extract_embeddings(training_model, features: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Embeddings (clips, 128) of the nested embedding network of a training model (inference mode)."""
    from subcluster_adacos.network import embedding_model

    return np.asarray(embedding_model(training_model).predict(features, batch_size=batch_size, verbose=0),
                      dtype=np.float64)


def model_output_scores(training_model, features: np.ndarray, labels: np.ndarray, n_classes: int,
                        batch_size: int = 64) -> np.ndarray:
    """Table II "representation model output": ``-log P(class of the clip | clip)`` from the head at
    inference (no mixup, fixed scale)."""
    one_hot = np.eye(n_classes, dtype=np.float32)[labels]
    probabilities = training_model.predict({"features": features, "labels": one_hot}, batch_size=batch_size,
                                           verbose=0)
    return -np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-30, None))


def scored_by_mean(machine_types, combined_mean_types) -> np.ndarray:
    """Boolean mask of the clips (or units) whose machine type the "combined" rule of Table V scores with the
    temporal-mean Gaussian instead of the learned representation (ToyConveyor in the paper, Sec. IV-F)."""
    return np.isin(np.asarray(machine_types).astype(str), [str(t) for t in combined_mean_types])


def combined_scores(learned: np.ndarray, mean: np.ndarray, machine_types, combined_mean_types) -> np.ndarray:
    """Table V "combined": the temporal-mean Gaussian's scores for ``combined_mean_types``, the learned
    representation's scores for every other machine type. The one place this rule is written: the
    "combined" row, each member of the ensemble of Fig. 2/3 (the public code scores ToyConveyor with the
    temporal mean inside the sum over S, REFERENCE.md §9) and :class:`ScoringSystem` use it."""
    learned, mean = np.asarray(learned, dtype=np.float64), np.asarray(mean, dtype=np.float64)
    if learned.shape != mean.shape:
        raise ASDError(f"combined scores: {learned.shape} learned scores but {mean.shape} temporal-mean scores")
    return np.where(scored_by_mean(machine_types, combined_mean_types), mean, learned)


def _gmm_factory(centres_by_class, class_of_unit, n_subclusters, score_rule):
    def make(unit):
        means = None
        if centres_by_class is not None and centres_by_class.shape[1] == n_subclusters:
            means = centres_by_class[class_of_unit[unit]]
        elif centres_by_class is not None and n_subclusters == 1:
            means = centres_by_class[class_of_unit[unit]].mean(axis=0, keepdims=True)
        return GMMBackend(n_components=n_subclusters, means_init=means, reg_covar=1e-3, score=score_rule)

    return make


def backend_scores(backend: str, embeddings: np.ndarray, table, class_names=None, centres_by_class=None,
                   n_subclusters: int = 1, gmm_score: str = "max_component") -> np.ndarray:
    """Anomaly scores of the test clips of ``table`` (NaN for training clips) with one back-end per unit.

    Parameters
    ----------
    backend : a key of :data:`BACKENDS` except "model_output".
    embeddings : (clips, dim) aligned with ``table``.
    class_names, centres_by_class : the classes ("type/unit") and :func:`normalized_centers` of the head;
        used to initialise the GMM means (reference). Without them scikit-learn's k-means initialisation.
    n_subclusters : GMM components (S).
    gmm_score : "max_component" (reference) or "loglik" (weighted mixture log-likelihood).
    """
    from asdcore.pipeline import unit_keys

    keys = unit_keys(table)
    train = (table["split"] == "train").to_numpy()
    test = ~train
    scores = np.full(len(table), np.nan)
    if backend == "plda":
        plda = PLDABackend().fit(embeddings[train], keys[train])
        scores[test] = plda.score(embeddings[test], keys[test])
        return scores
    if backend == "gmm":
        class_of_unit = None if class_names is None else {name: i for i, name in enumerate(class_names)}
        make = _gmm_factory(centres_by_class, class_of_unit, n_subclusters, gmm_score)
    elif backend == "cosine_mean":
        def make(unit):
            return CosineMeanBackend()
    elif backend == "cosine_top10":
        def make(unit):
            return CosineTopKBackend(10)
    elif backend.startswith("gaussian_"):
        covariance = backend.split("_", 1)[1]
        def make(unit):
            return GaussianBackend(covariance_type=covariance)
    else:
        raise ASDError(f"unknown back-end {backend!r}; choose one of {', '.join(BACKENDS)}")
    scores[test] = score_per_unit(make, embeddings[train], keys[train], embeddings[test], keys[test])
    return scores


def _embed_directly(model, features, batch_size=64):
    """Embeddings batch by batch with ``predict_on_batch``: its compiled function is built once and reused,
    without the per-call set-up of ``predict`` that dominates the time to score a single clip."""
    return np.concatenate([np.asarray(model.predict_on_batch(features[i:i + batch_size]), dtype=np.float64)
                           for i in range(0, len(features), batch_size)])


class ScoringSystem:
    """Everything needed to score new recordings: feature settings, normalisation statistics, one or more
    embedding networks and their per-unit GMMs (scores of several networks are summed, as the ensemble).

    Saved to a folder as ``system.json`` (settings), ``normalizer.npz``, ``embedding_<i>.keras`` and
    ``backends_<i>.joblib`` (scikit-learn GMMs; load only folders you trust: joblib files can run code).
    """

    def __init__(self, feature_config, normalizer, embedding_models, backends, combined_mean_types=(),
                 mean_backends=None):
        self.feature_config = feature_config
        self.normalizer = normalizer
        self.embedding_models = list(embedding_models)
        self.backends = list(backends)  # one dict unit -> fitted back-end per embedding model
        self.combined_mean_types = tuple(combined_mean_types)
        self.mean_backends = mean_backends or {}

    @property
    def units(self):
        return sorted(self.backends[0]) if self.backends else sorted(self.mean_backends)

    def score_features(self, features: np.ndarray, units) -> np.ndarray:
        """Scores of normalised log-mel ``features`` (clips, frames, bins) for the given unit of each clip."""
        units = np.asarray(units)
        unknown = sorted(set(units) - set(self.units) - set(self.mean_backends))
        if unknown:
            raise ASDError(f"no trained model for unit(s) {unknown[:3]}; known: {', '.join(self.units[:8])} ...")
        machine_types = np.array([u.split("/")[0] for u in units])
        by_mean = scored_by_mean(machine_types, self.combined_mean_types)
        learned_scores, mean_scores = np.full(len(units), np.nan), np.full(len(units), np.nan)
        learned = np.flatnonzero(~by_mean)
        if len(learned):
            learned_scores[learned] = 0.0
            for model, backends in zip(self.embedding_models, self.backends):
                embeddings = _embed_directly(model, features[learned])
                for unit in np.unique(units[learned]):
                    rows = units[learned] == unit
                    learned_scores[learned[rows]] += backends[unit].score(embeddings[rows])
        by_mean = np.flatnonzero(by_mean)
        if len(by_mean):
            means = features[by_mean].mean(axis=1)
            for unit in np.unique(units[by_mean]):
                rows = units[by_mean] == unit
                mean_scores[by_mean[rows]] = self.mean_backends[unit].score(means[rows])
        return combined_scores(learned_scores, mean_scores, machine_types, self.combined_mean_types)

    def save(self, folder) -> Path:
        import json

        import joblib

        from asdcore.experiment import atomic_write_text, config_to_dict

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=False)
        self.normalizer.save(folder / "normalizer.npz")
        for i, (model, backends) in enumerate(zip(self.embedding_models, self.backends)):
            model.save(folder / f"embedding_{i}.keras")
            joblib.dump(backends, folder / f"backends_{i}.joblib")
        if self.mean_backends:
            joblib.dump(self.mean_backends, folder / "mean_backends.joblib")
        info = {"feature_config": config_to_dict(self.feature_config), "n_models": len(self.embedding_models),
                "combined_mean_types": list(self.combined_mean_types), "units": self.units}
        atomic_write_text(folder / "system.json", json.dumps(info, indent=2))
        return folder

    @classmethod
    def load(cls, folder) -> "ScoringSystem":
        import json

        import joblib
        import keras

        import subcluster_adacos.layers  # noqa: F401 - registers the custom layers for deserialisation
        from asdcore.features import LogMelConfig, Normalizer

        folder = Path(folder)
        info_path = folder / "system.json"
        if not info_path.is_file():
            raise ASDError(f"{folder}: no system.json; give the models/system folder of a subcluster-adacos run")
        info = json.loads(info_path.read_text(encoding="utf-8"))
        models = [keras.models.load_model(folder / f"embedding_{i}.keras") for i in range(info["n_models"])]
        backends = [joblib.load(folder / f"backends_{i}.joblib") for i in range(info["n_models"])]
        mean_path = folder / "mean_backends.joblib"
        fc = dict(info["feature_config"])
        return cls(LogMelConfig(**fc), Normalizer.load(folder / "normalizer.npz"), models, backends,
                   combined_mean_types=info.get("combined_mean_types", ()),
                   mean_backends=joblib.load(mean_path) if mean_path.exists() else None)
