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
                              fit_progress, score_per_unit)
from asdcore.errors import ASDError

__all__ = ["BACKENDS", "extract_embeddings", "model_output_scores", "network_outputs", "predict_full_batches", "backend_scores", "classes_of_units", "scored_by_mean",
           "combined_scores", "ScoringSystem", "TrainedNetworks"]

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


#: clips read from a memory map / standardised view per prediction call (a multiple of every batch size used)
READ_CHUNK = 1024


def _chunks(n: int, rows=None):
    rows = np.arange(n) if rows is None else np.asarray(rows)
    for start in range(0, len(rows), READ_CHUNK):
        yield rows[start:start + READ_CHUNK]


def predict_full_batches(model, inputs, batch_size: int):
    """``model.predict(inputs)`` with every batch full: the inputs are padded with zeros to a multiple of
    ``batch_size`` and the outputs cut back.

    Keras traces its prediction function once per batch shape, so a short last batch costs a second trace
    per model; TensorFlow counts the traces of every model's prediction function together (they share one
    code object) and, after five close together, warns of "retracing". With full batches each model is
    traced once. Each clip's output does not depend on the others of its batch (inference mode).
    """
    import keras

    n = len(keras.tree.flatten(inputs)[0])
    pad = (-n) % int(batch_size)
    if pad:
        inputs = keras.tree.map_structure(
            lambda a: np.concatenate([a, np.zeros((pad,) + a.shape[1:], dtype=a.dtype)]), inputs)
    outputs = model.predict(inputs, batch_size=batch_size, verbose=0)
    return keras.tree.map_structure(lambda o: np.asarray(o)[:n], outputs)


def extract_embeddings(training_model, features, batch_size: int = 64, rows=None) -> np.ndarray:
    """Embeddings (clips, 128) of the nested embedding network of a training model (inference mode).

    ``features`` may be a memory map or a :class:`~asdcore.features.StandardisedView`: it is read
    :data:`READ_CHUNK` clips at a time (``rows``: only those clips, in that order), never copied whole.
    """
    from subcluster_adacos.network import embedding_model

    model = embedding_model(training_model)
    return np.concatenate([np.asarray(predict_full_batches(model, np.asarray(features[chunk], dtype=np.float32),
                                                           batch_size), dtype=np.float64)
                           for chunk in _chunks(len(features), rows)])


def _output_scores(probabilities, labels, groups=None) -> np.ndarray:
    """``-log P(class of the clip | clip)``; with ``groups`` (the unit index of every class, several classes per
    unit: ``classes: section_attributes``) ``-log`` of the summed probability of the classes of the clip's
    unit, ``P(unit | clip)``, which needs no attributes of the test clip."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    if groups is None:
        chosen = probabilities[np.arange(len(labels)), labels]
    else:
        groups = np.asarray(groups)
        chosen = np.stack([probabilities[:, groups == g].sum(axis=1) for g in range(int(groups.max()) + 1)],
                          axis=1)[np.arange(len(labels)), groups[labels]]
    return -np.log(np.clip(chosen, 1e-30, None))


def model_output_scores(training_model, features, labels: np.ndarray, n_classes: int,
                        batch_size: int = 64, rows=None) -> np.ndarray:
    """Table II "representation model output": ``-log P(class of the clip | clip)`` from the head at
    inference (no mixup, fixed scale). ``rows``: score only those clips of ``features`` (``labels`` are
    then theirs); read in chunks as :func:`extract_embeddings`."""
    labels = np.asarray(labels)
    one_hot = np.eye(n_classes, dtype=np.float32)[labels]
    probabilities = []
    for i, chunk in enumerate(_chunks(len(features), rows)):
        part = slice(i * READ_CHUNK, i * READ_CHUNK + len(chunk))
        probabilities.append(predict_full_batches(
            training_model, {"features": np.asarray(features[chunk], dtype=np.float32), "labels": one_hot[part]},
            batch_size))
    return _output_scores(np.concatenate(probabilities), labels)


def network_outputs(training_model, features, labels: np.ndarray, n_classes: int,
                    batch_size: int = 64, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`extract_embeddings` and :func:`model_output_scores` of every clip in one pass of the network.

    One inference model (``[features, labels] -> [embedding, probabilities]``, the training model's own
    layers) instead of two: the network runs once per clip, and one prediction function is traced per
    trained network (see :func:`predict_full_batches`). Returns ``(embeddings, model output scores)``;
    ``groups``: the unit of every class where a unit has several (see :func:`_output_scores`).
    """
    import keras

    from subcluster_adacos.network import head_layer

    embedding = head_layer(training_model)._inbound_nodes[0].input_tensors[0]  # noqa: SLF001 - the head's input
    both = keras.Model(training_model.inputs, [embedding, training_model.outputs[0]], name="network_outputs")
    labels = np.asarray(labels)
    one_hot = np.eye(n_classes, dtype=np.float32)[labels]
    embeddings, probabilities = [], []
    for chunk in _chunks(len(features)):
        emb, prob = predict_full_batches(both, {"features": np.asarray(features[chunk], dtype=np.float32),
                                                "labels": one_hot[chunk]}, batch_size)
        embeddings.append(np.asarray(emb, dtype=np.float64))
        probabilities.append(prob)
    return np.concatenate(embeddings), _output_scores(np.concatenate(probabilities), labels, groups)


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


def classes_of_units(class_names) -> dict:
    """``{<type>/<unit>: [indices of its classes]}`` from the head's class names (one class per unit with
    ``classes: sections``, several with ``section_attributes``)."""
    from subcluster_adacos.training import class_unit

    out = {}
    for i, name in enumerate(class_names):
        out.setdefault(class_unit(name), []).append(i)
    return out


def _gmm_factory(centres_by_class, classes_of_unit, n_subclusters, score_rule, reg_covar=1e-3):
    """GMM per unit; its means start at the unit's class centres (Sec. III-C). A unit with several classes
    (``classes: section_attributes``) has more centres than components: scikit-learn's k-means
    initialisation on the unit's training embeddings then (for S = 1 it makes no difference)."""
    def make(unit):
        means = None
        own = None if centres_by_class is None or classes_of_unit is None else classes_of_unit.get(unit, [])
        if own is not None and len(own) == 1:
            if centres_by_class.shape[1] == n_subclusters:
                means = centres_by_class[own[0]]
            elif n_subclusters == 1:
                means = centres_by_class[own[0]].mean(axis=0, keepdims=True)
        return GMMBackend(n_components=n_subclusters, means_init=means, reg_covar=reg_covar, score=score_rule)

    return make


def backend_scores(backend: str, embeddings: np.ndarray, table, class_names=None, centres_by_class=None,
                   n_subclusters: int = 1, gmm_score: str = "max_component", reg_covar: float = 1e-3) -> np.ndarray:
    """Anomaly scores of the test clips of ``table`` (NaN for training clips) with one back-end per unit.

    Parameters
    ----------
    backend : a key of :data:`BACKENDS` except "model_output".
    embeddings : (clips, dim) aligned with ``table``.
    class_names, centres_by_class : the classes ("type/unit") and :func:`normalized_centers` of the head;
        used to initialise the GMM means (reference). Without them scikit-learn's k-means initialisation.
    n_subclusters : GMM components (S).
    gmm_score : "max_component" (reference) or "loglik" (weighted mixture log-likelihood).
    reg_covar : added to the covariance diagonal of the Gaussians and GMMs (public code: 1e-3; scikit-learn's
        default, which the paper's "as implemented in scikit-learn" may mean for Table II, is 1e-6).
    """
    from asdcore.selection import train as train_rows
    from asdcore.selection import unit_keys

    keys = unit_keys(table)
    train = train_rows(table)
    test = ~train
    scores = np.full(len(table), np.nan)
    if backend == "plda":
        plda = PLDABackend().fit(embeddings[train], keys[train])
        scores[test] = plda.score(embeddings[test], keys[test])
        return scores
    if backend == "gmm":
        make = _gmm_factory(centres_by_class, None if class_names is None else classes_of_units(class_names),
                            n_subclusters, gmm_score, reg_covar)
    elif backend == "cosine_mean":
        def make(unit):
            return CosineMeanBackend()
    elif backend == "cosine_top10":
        def make(unit):
            return CosineTopKBackend(10)
    elif backend.startswith("gaussian_"):
        covariance = backend.split("_", 1)[1]
        def make(unit):
            return GaussianBackend(covariance_type=covariance, reg_covar=reg_covar)
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
    embedding networks and their per-unit GMMs (scores of several networks are summed, as the ensemble),
    and the temporal-mean Gaussians of the "combined" rule of Table V.

    The one object behind the Table V "learned" and "combined" rows of a run and the saved system of
    ``run_dcase2020.py score``: :meth:`fit` fits the back-ends on the normal training clips, :meth:`score`
    scores clips (scikit-learn style); both take precomputed embeddings so a run embeds each clip once.

    Saved to a folder as ``system.json`` (settings), ``normalizer.npz``, ``embedding_<i>.keras`` and
    ``backends_<i>.joblib`` (scikit-learn GMMs; load only folders you trust: joblib files can run code).
    """

    def __init__(self, feature_config, normalizer, embedding_models, backends=None, combined_mean_types=(),
                 mean_backends=None, centres=None, class_names=None, gmm_score: str = "max_component",
                 reg_covar: float = 1e-3):
        self.feature_config = feature_config
        self.normalizer = normalizer
        self.embedding_models = list(embedding_models)
        self.backends = list(backends or [])  # one dict unit -> fitted back-end per embedding model
        self.combined_mean_types = tuple(combined_mean_types)
        self.mean_backends = mean_backends or {}
        # for fit: per model the head's normalised centres (classes, S, dim), the GMM means' initialisation
        self.centres = None if centres is None else [np.asarray(c) for c in centres]
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.gmm_score = gmm_score
        self.reg_covar = reg_covar  # of every Gaussian fitted by fit

    @property
    def units(self):
        return sorted(self.backends[0]) if self.backends else sorted(self.mean_backends)

    def _embeddings(self, features, rows, embeddings):
        """Per network the embeddings of the clips ``rows`` (all when None): sliced from the precomputed
        ``embeddings`` (aligned with ``features``) or computed reading ``features`` chunk by chunk."""
        if embeddings is not None:
            return [np.asarray(e) if rows is None else np.asarray(e)[rows] for e in embeddings]
        return [np.concatenate([_embed_directly(model, np.asarray(features[c], dtype=np.float32))
                                for c in _chunks(len(features), rows)])
                for model in self.embedding_models]

    def fit(self, features, units, rows=None, embeddings=None) -> "ScoringSystem":
        """Fit one GMM per unit and network on the embeddings of the (normal training) clips ``rows`` of
        ``features`` (standardised, clips x frames x bins; read in chunks), S components whose means start
        at the unit's centres (Sec. III-C), and one full-covariance Gaussian on the temporal mean for the
        units of ``combined_mean_types`` (Table V "combined").

        ``units`` (type/unit key of every clip) and ``embeddings`` (optional, per network, of every clip)
        are aligned with ``features``; ``rows`` selects the training clips (default: all).
        """
        from asdcore.representations import temporal_statistic

        units = np.asarray(units)
        if rows is not None:
            rows = np.asarray(rows)
            rows = np.flatnonzero(rows) if rows.dtype == bool else rows
        fit_units = units if rows is None else units[rows]
        if self.centres is None or self.class_names is None:
            raise ASDError("ScoringSystem.fit needs the heads' centres and class names (give centres=, class_names=)")
        groups = classes_of_units(self.class_names)
        self.backends = []
        for k, (centres, embedded) in enumerate(zip(self.centres, self._embeddings(features, rows, embeddings))):
            make = _gmm_factory(centres, groups, centres.shape[1], self.gmm_score, self.reg_covar)
            what = f"GMMs of network {k + 1}/{len(self.centres)}"
            self.backends.append({unit: make(unit).fit(embedded[fit_units == unit])
                                  for unit in fit_progress(np.unique(fit_units), what)})
        self.mean_backends = {}
        by_mean = scored_by_mean([u.split("/")[0] for u in fit_units], self.combined_mean_types)
        if by_mean.any():
            chosen = np.arange(len(features))[rows if rows is not None else slice(None)][by_mean]
            means = temporal_statistic(features, "mean", rows=chosen)
            for unit in np.unique(fit_units[by_mean]):
                self.mean_backends[unit] = GaussianBackend("full", reg_covar=self.reg_covar, normalize=False).fit(
                    means[fit_units[by_mean] == unit])
        return self

    def score_parts(self, features, units, rows=None, embeddings=None) -> tuple[np.ndarray, np.ndarray]:
        """``(learned, mean)`` scores of the clips ``rows`` of ``features`` (default: all): the networks'
        GMM scores summed (NaN for units without GMMs) and the temporal-mean Gaussian's (NaN for units
        the "combined" rule does not score with it)."""
        from asdcore.representations import temporal_statistic

        units = np.asarray(units)
        if rows is not None:
            rows = np.asarray(rows)
            rows = np.flatnonzero(rows) if rows.dtype == bool else rows
            units = units[rows]
        known = set(self.units) | set(self.mean_backends)
        unknown = sorted(set(units) - known)
        if unknown:
            raise ASDError(f"no trained model for unit(s) {unknown[:3]}; known: {', '.join(sorted(known)[:8])} ...")
        learned_scores, mean_scores = np.full(len(units), np.nan), np.full(len(units), np.nan)
        with_gmm = np.isin(units, list(self.backends[0])) if self.backends else np.zeros(len(units), dtype=bool)
        if with_gmm.any():
            learned_scores[with_gmm] = 0.0
            clip_rows = np.arange(len(features))[rows if rows is not None else slice(None)][with_gmm]
            embedded = self._embeddings(features, clip_rows, embeddings)
            learned = np.flatnonzero(with_gmm)
            for embedding, backends in zip(embedded, self.backends):
                for unit in np.unique(units[learned]):
                    hit = units[learned] == unit
                    learned_scores[learned[hit]] += backends[unit].score(embedding[hit])
        by_mean = np.flatnonzero(np.isin(units, list(self.mean_backends)))
        if len(by_mean):
            clip_rows = np.arange(len(features))[rows if rows is not None else slice(None)][by_mean]
            means = temporal_statistic(features, "mean", rows=clip_rows)
            for unit in np.unique(units[by_mean]):
                hit = units[by_mean] == unit
                mean_scores[by_mean[hit]] = self.mean_backends[unit].score(means[hit])
        return learned_scores, mean_scores

    def score(self, features, units, rows=None, embeddings=None) -> np.ndarray:
        """Anomaly scores of the clips ``rows`` of ``features`` (default: all) for the unit of each clip:
        the "combined" rule (:func:`combined_scores`) of the learned and the temporal-mean scores."""
        learned, mean = self.score_parts(features, units, rows, embeddings)
        selected = np.asarray(units) if rows is None else np.asarray(units)[rows]
        machine_types = np.array([u.split("/")[0] for u in selected])
        return combined_scores(learned, mean, machine_types, self.combined_mean_types)

    def score_features(self, features: np.ndarray, units) -> np.ndarray:
        """Scores of normalised log-mel ``features`` (clips, frames, bins) for the given unit of each clip."""
        return self.score(features, units)

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


class TrainedNetworks:
    """The finished networks of a run, read from their folders (:func:`~subcluster_adacos.training.
    load_network`), and the back-end scores on their embeddings (each back-end fitted once per run).

    Parameters
    ----------
    table : the clip table; ``features``: ``(feature_config, normalizer, standardised view)`` of its clips.
    folders : network spec (anything with ``n_subclusters``) -> the folder :func:`train_network` wrote.
    config : has ``combined_mean_types`` and ``gmm_score`` (the experiment's config).
    """

    def __init__(self, table, features, folders: dict, class_names, config, log=None):
        from asdcore.experiment import get_logger
        from asdcore.selection import train, unit_keys

        self.table, self.features, self.folders = table, features, folders
        self.class_names, self.config, self.log = class_names, config, log or get_logger()
        self.keys, self.train = unit_keys(table), train(table)
        self._networks, self._systems = {}, {}

    def get(self, spec) -> dict:
        from subcluster_adacos.training import load_network

        if spec not in self._networks:
            self._networks[spec] = load_network(self.folders[spec])
        return self._networks[spec]

    def system(self, spec, load_model: bool = False):
        """The Table V "combined" :class:`~subcluster_adacos.scoring.ScoringSystem` of ``spec``, fitted once on
        the training clips' embeddings (None when the network diverged); ``load_model`` adds the embedding
        network (from the unit's last snapshot) so that the system can be saved for ``score``."""
        from subcluster_adacos.training import load_network

        trained = self.get(spec)
        if trained["diverged"]:
            return None
        if spec not in self._systems:
            feature_config, normalizer, view = self.features
            self._systems[spec] = ScoringSystem(
                feature_config, normalizer, [], combined_mean_types=self.config.combined_mean_types,
                centres=[trained["centres"]], class_names=self.class_names, gmm_score=self.config.gmm_score,
                reg_covar=self.config.reg_covar).fit(view, self.keys, rows=self.train, embeddings=[trained["embeddings"]])
        system = self._systems[spec]
        if load_model and not system.embedding_models:
            from subcluster_adacos.network import embedding_model

            system.embedding_models = [embedding_model(load_network(self.folders[spec], load_model=True)["model"])]
        return system

    def backend(self, spec, backend: str, n_components: int | None = None):
        """Scores of one back-end on the embeddings of ``spec`` (None when that network diverged)."""
        trained = self.get(spec)
        if trained["diverged"]:
            return None
        if backend == "model_output":
            return trained["model_output"]
        n_components = n_components or spec.n_subclusters
        if backend == "gmm" and n_components == spec.n_subclusters:  # the system's GMMs, fitted once
            return self.scored(spec)[0]
        return backend_scores(backend, trained["embeddings"], self.table, self.class_names, trained["centres"],
                              n_components, self.config.gmm_score, self.config.reg_covar)

    def scored(self, spec):
        """``(learned, combined)`` scores of every clip (NaN for training clips) from :meth:`system`."""
        key = ("scored", spec)
        if key not in self._systems:
            system, trained = self.system(spec), self.get(spec)
            test = np.flatnonzero(~self.train)
            learned, combined = np.full(len(self.table), np.nan), np.full(len(self.table), np.nan)
            parts = system.score_parts(self.features[2], self.keys, rows=test, embeddings=[trained["embeddings"]])
            learned[test] = parts[0]
            combined[test] = combined_scores(*parts, self.table["machine_type"].to_numpy()[test],
                                             system.combined_mean_types)  # = system.score
            self._systems[key] = (learned, combined)
        return self._systems[key]

    def combined(self, spec):
        """Table V "combined" scores of ``spec`` (None when it diverged), from the same system as is saved."""
        if self.get(spec)["diverged"]:
            return None
        return self.scored(spec)[1]
