"""The ``subcluster-adacos`` command of ``run_dcase2020.py``: the experiments of Wilkinghoff 2020.

Experiments (``--experiment``) and the paper's table each reproduces:

- ``backends``: Table II, back-ends on the embeddings of a network trained with standard AdaCos and mixup;
- ``mixup``: Table III, {no mixup, mixup} x {standard AdaCos, modified AdaCos}, S = 1, full-covariance
  Gaussian back-end ("diverges" where the adaptive scale explodes);
- ``subclusters``: Table IV, S in {1, 2, ..., 64}, Gaussian and GMM back-ends;
- ``representations``: Table V, mean / max / learned (S = 32) and "combined" (mean for ToyConveyor);
- ``ensemble``: Fig. 2/3, GMM scores of the S = 1 ... 64 networks summed;
- ``all``: every one of them; each network is trained once and shared between experiments.

The run folder also holds ``models/system/`` (the combined system of Table V) for ``run_dcase2020.py score``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from asdcore.errors import ASDError

EXPERIMENTS = ("backends", "mixup", "subclusters", "representations", "ensemble")
TABLE_II_BACKENDS = ("model_output", "cosine_mean", "cosine_top10", "plda", "gaussian_spherical",
                     "gaussian_diag", "gaussian_full")


@dataclass(frozen=True)
class SubClusterAdaCosConfig:
    """Settings of the Wilkinghoff 2020 experiments; defaults = the paper (section / table cited)."""

    epochs: int = 400  # Sec. IV-B
    batch_size: int = 64  # Sec. IV-B
    learning_rate: float = 1e-3  # Adam defaults, Sec. IV-B
    l2: float = 1e-5  # public code
    angle_mode: str = "reference"  # mixed-up angle of the public code; "corrected" = without count factor
    class_weight: str = "balanced"  # public code
    checkpoint_every: int = 100  # snapshots every 100 epochs
    subclusters: tuple = (1, 2, 4, 8, 16, 32, 64)  # Table IV and the ensemble (Fig. 2/3)
    representation_subclusters: int = 32  # Table V "learned" = the S = 32 GMM row of Table IV
    combined_mean_types: tuple = ("ToyConveyor",)  # Table V "combined": the mean representation for these
    gmm_score: str = "max_component"  # public code; "loglik" = weighted mixture log-likelihood
    divergence_scale: float = 1e8  # Table III "diverges": stop when the adaptive scale exceeds this or is NaN
    mixup_labels: str = "linear"  # public code; "max": max(l*y1, (1-l)*y2) (a later version of the author's code)

    def quick(self) -> "SubClusterAdaCosConfig":
        """A CPU-sized variant: 10 epochs, S in {1, 4}; all other settings as the paper."""
        return replace(self, epochs=10, checkpoint_every=10, subclusters=(1, 4), representation_subclusters=4)


@dataclass(frozen=True)
class ModelSpec:
    """One network to train: loss head, mixup on/off and the number of sub-clusters."""

    loss: str
    mixup: bool
    n_subclusters: int

    @property
    def name(self) -> str:
        loss = "subcluster_adacos" if self.loss == "subcluster_adacos" else "adacos"
        return f"{loss}_S{self.n_subclusters:02d}_{'mixup' if self.mixup else 'nomixup'}"


def models_for(experiment: str, config: SubClusterAdaCosConfig) -> list[ModelSpec]:
    """The networks an experiment needs (Table II: standard AdaCos with mixup, Sec. IV-C)."""
    if experiment == "backends":
        return [ModelSpec("adacos", True, 1)]
    if experiment == "mixup":
        return [ModelSpec("adacos", False, 1), ModelSpec("subcluster_adacos", False, 1),
                ModelSpec("adacos", True, 1), ModelSpec("subcluster_adacos", True, 1)]
    if experiment in ("subclusters", "ensemble"):
        return [ModelSpec("subcluster_adacos", True, s) for s in config.subclusters]
    if experiment == "representations":
        return [ModelSpec("subcluster_adacos", True, config.representation_subclusters)]
    raise ASDError(f"unknown experiment {experiment!r}; choose one of {', '.join(EXPERIMENTS)} or all")


class TrainedNetworks:
    """Trains each :class:`ModelSpec` once per run and keeps its embeddings and head centres."""

    def __init__(self, run, table, features, labels, class_names, config, seed, log):
        self.run, self.table, self.features = run, table, features
        self.labels, self.class_names, self.config = labels, class_names, config
        self.seed, self.log = seed, log
        self.train_rows = (table["split"] == "train").to_numpy()
        self._cache = {}

    def get(self, spec: ModelSpec) -> dict:
        if spec not in self._cache:
            self._cache[spec] = self._train(spec)
        return self._cache[spec]

    def _train(self, spec: ModelSpec) -> dict:
        from subcluster_adacos.layers import normalized_centers
        from subcluster_adacos.network import head_layer
        from subcluster_adacos.scoring import extract_embeddings, model_output_scores
        from subcluster_adacos.training import TrainingConfig, train_model

        c = self.config
        training = TrainingConfig(loss=spec.loss, n_subclusters=spec.n_subclusters, mixup=spec.mixup,
                                  mixup_labels=c.mixup_labels,
                                  angle_mode=c.angle_mode, epochs=c.epochs, batch_size=c.batch_size,
                                  learning_rate=c.learning_rate, l2=c.l2, class_weight=c.class_weight,
                                  checkpoint_every=c.checkpoint_every, divergence_scale=c.divergence_scale)
        model_dir = self.run.path / "models" / spec.name
        final = model_dir / f"epoch_{c.epochs:04d}.keras"
        if final.is_file():  # a resumed run: this network finished before the interruption
            import keras

            self.log.info("loading the finished network %s", final)
            model = keras.models.load_model(final)
            info = {"diverged": False, "scales": [float(keras.ops.convert_to_numpy(head_layer(model).scale))]}
        else:
            from asdcore.experiment import seed_for, set_seed

            # Each network gets its own seed from (--seed, its name): its result does not depend on which
            # other networks the chosen experiments train before it.
            network_seed = seed_for(self.seed, spec.name)
            set_seed(network_seed)
            self.log.info("training %s (%d epochs, %d clips, %d classes, seed %d)", spec.name, c.epochs,
                          int(self.train_rows.sum()), len(self.class_names), network_seed)
            model, info = train_model(self.features[self.train_rows], self.labels[self.train_rows],
                                      len(self.class_names), training, model_dir=model_dir, seed=network_seed,
                                      verbose=2)
        result = {"model": model, "diverged": info["diverged"], "scales": info["scales"]}
        if info["diverged"]:
            self.log.warning("%s diverged (adaptive scale %s): reported as 'diverges', as in Table III",
                             spec.name, info["scales"][-1:] or "n/a")
            return result
        result["embeddings"] = extract_embeddings(model, self.features, c.batch_size)
        result["centres"] = normalized_centers(head_layer(model))
        test = ~self.train_rows
        output = np.full(len(self.table), np.nan)
        output[test] = model_output_scores(model, self.features[test], self.labels[test], len(self.class_names),
                                           c.batch_size)
        result["model_output"] = output
        return result

    def backend(self, spec: ModelSpec, backend: str, n_components: int | None = None):
        """Scores of one back-end on the embeddings of ``spec`` (None when that network diverged)."""
        from subcluster_adacos.scoring import backend_scores

        trained = self.get(spec)
        if trained["diverged"]:
            return None
        if backend == "model_output":
            return trained["model_output"]
        return backend_scores(backend, trained["embeddings"], self.table, self.class_names, trained["centres"],
                              n_components or spec.n_subclusters, self.config.gmm_score)


def _label(spec: ModelSpec) -> dict:
    return {"mixup": "yes" if spec.mixup else "no", "modified_adacos": "yes" if spec.loss != "adacos" else "no"}


def run_experiment(name, nets: TrainedNetworks, representation_scores: dict):
    """Systems (name -> scores) and their paper-table row labels for one experiment.

    Returns ``(systems, labels, diverged, notes)``: ``diverged`` holds the row labels of the systems whose
    network diverged (reported as "diverges", never scored), ``notes`` lines for the comparison table.
    ``representation_scores`` holds the temporal "mean" (and "max") scores of Table V; "mean" is needed by
    the "representations" and "ensemble" experiments (the "combined" rule).
    """
    from subcluster_adacos.scoring import BACKENDS, combined_scores

    config = nets.config
    machine_types = nets.table["machine_type"].to_numpy()
    systems, labels, diverged, notes = {}, {}, [], []

    def add(key, scores, row_labels):
        if scores is None:
            diverged.append(row_labels)
        else:
            systems[key], labels[key] = scores, row_labels

    if name == "backends":
        spec = models_for("backends", config)[0]
        for backend in TABLE_II_BACKENDS:
            add(f"table2_{backend}", nets.backend(spec, backend), {"backend": BACKENDS[backend]})
    elif name == "mixup":
        for spec in models_for("mixup", config):
            add(f"table3_{spec.name}", nets.backend(spec, "gaussian_full"), _label(spec))
    elif name == "subclusters":
        for spec in models_for("subclusters", config):
            for label, components in (("Gaussian", 1), ("GMM", spec.n_subclusters)):
                add(f"table4_S{spec.n_subclusters:02d}_{label.lower()}", nets.backend(spec, "gmm", components),
                    {"n_subclusters": str(spec.n_subclusters), "backend": label})
    elif name == "representations":
        spec = models_for("representations", config)[0]
        learned = nets.backend(spec, "gmm")
        mean = representation_scores["mean"]
        combined = None if learned is None else combined_scores(learned, mean, machine_types,
                                                                 config.combined_mean_types)
        for key, scores in (("mean", mean), ("max", representation_scores["max"]), ("learned", learned),
                            ("combined", combined)):
            add(f"table5_{key}", scores, {"representation": key})
    elif name == "ensemble":
        # Fig. 2/3: every member is scored with the "combined" rule (the temporal mean for ToyConveyor),
        # as the public code does, and the members' scores are summed without normalisation.
        mean = representation_scores["mean"]
        members, left_out = [], []
        for spec in models_for("ensemble", config):
            learned = nets.backend(spec, "gmm")
            if learned is None:
                left_out.append(spec.n_subclusters)
                continue
            members.append(combined_scores(learned, mean, machine_types, config.combined_mean_types))
        add("ensemble", np.sum(members, axis=0) if members else None, {"system": "ensemble"})
        if left_out:
            nets.log.warning("ensemble: the networks with S in %s diverged and are left out of the sum", left_out)
            notes.append(f"ensemble: the networks with S in {left_out} diverged and are left out of the sum")
        largest = ModelSpec("subcluster_adacos", True, config.representation_subclusters)
        add("ensemble_single", nets.backend(largest, "gmm"), {"system": "proposed approach"})
    return systems, labels, diverged, notes


# --- comparison tables ----------------------------------------------------------------------------------

_TABLES = {
    "backends": ("wilkinghoff2020_table2", ["backend"], ("all",), "Table II: back-ends (mean over IDs, %)"),
    "mixup": ("wilkinghoff2020_table3", ["mixup", "modified_adacos"], ("all",),
              "Table III: mixup and modified AdaCos, S = 1, Gaussian back-end (%)"),
    "subclusters": ("wilkinghoff2020_table4", ["n_subclusters", "backend"], ("all",),
                    "Table IV: number of sub-clusters (%)"),
    "representations": ("wilkinghoff2020_table5", ["representation"], None,
                        "Table V: representations per machine type (%)"),
    "ensemble": ("wilkinghoff2020_ensemble", ["system"], None,
                 "Fig. 2/3: ensemble over the number of sub-clusters (evaluation set, %)"),
}

def _mark_diverged(merged, diverged, label_columns, machine_types):
    """Our cells of the diverged rows (of the run's ``machine_types``) read "diverges" (as in the paper's
    Table III); the other numbers of our columns are rounded to two decimals, kept as text."""
    if not diverged:
        return merged
    wanted = {tuple(str(v) for v in row.values()) for row in diverged}
    hit = np.array([tuple(r) in wanted for r in merged[label_columns].astype(str).itertuples(index=False)])
    hit &= merged["machine type"].astype(str).isin([str(t) for t in machine_types]).to_numpy()
    out = merged.copy()
    for column in [c for c in out.columns if c.endswith("(ours)")]:
        values = [None if not np.isfinite(v) else f"{v:.2f}" for v in out[column].astype(float)]
        out[column] = np.where(hit, "diverges", np.array(values, dtype=object))
    return out


def comparison(name, summary, labels, diverged, notes, config, run_types=()):
    """The markdown section of one experiment: our numbers beside the paper's, in the paper's rows; the
    rows of diverged networks read "diverges" (per machine type of the run, ``run_types``, and "all")."""
    from asdcore import published
    from asdcore.report import (PART_COLUMNS, comparison_markdown, in_paper_order, ours_in_paper_layout,
                                published_in_paper_layout, side_by_side)

    table_name, label_columns, machine_types, title = _TABLES[name]
    if labels and not summary.empty:
        ours = ours_in_paper_layout(summary, labels, machine_types=machine_types)
    else:  # every network of the experiment diverged
        ours = pd.DataFrame(columns=label_columns + ["machine type", *PART_COLUMNS])
    seen = set(summary["machine_type"]) if "machine_type" in summary else set()
    types = machine_types or sorted(seen | set(run_types) | {"all"})
    for row in diverged:
        ours = pd.concat([ours, pd.DataFrame([{**row, "machine type": t, **{c: np.nan for c in PART_COLUMNS}}
                                              for t in types])], ignore_index=True)
    paper = published.load_table(table_name)
    wanted = {tuple(str(v) for v in labels_.values()) for labels_ in labels.values()} | \
             {tuple(str(v) for v in row.values()) for row in diverged}
    paper = paper[[tuple(r) in wanted for r in paper[label_columns].astype(str).itertuples(index=False)]]
    paper = published_in_paper_layout(paper, label_columns, machine_types=machine_types)
    merged = side_by_side(ours, paper, label_columns + ["machine type"], list(PART_COLUMNS))
    merged = _mark_diverged(in_paper_order(merged, label_columns), diverged, label_columns, types)
    extra = []
    if name == "ensemble":
        extra.append(f"ensemble = the scores of the networks with S in {config.subclusters} summed, each scored "
                     f"with the Table V 'combined' rule (temporal-mean Gaussian for "
                     f"{', '.join(config.combined_mean_types)}, GMM on the embeddings otherwise), as in the "
                     f"public code; proposed approach = the single network with S = "
                     f"{config.representation_subclusters}, GMM on the embeddings for every type (the paper's "
                     "'learned' row of Table V)")
    if name == "mixup" or diverged:
        extra.append(f"diverges = training stopped because the adaptive scale exceeded {config.divergence_scale:g}"
                     " or became NaN/infinite, or the loss became non-finite (checked after every epoch)")
    return comparison_markdown(title, merged, notes + extra), merged


# --- the command -----------------------------------------------------------------------------------------

def add_arguments(parser, year):
    from asdcore.experiment import add_common_arguments

    parser.add_argument("--experiment", default="all", choices=list(EXPERIMENTS) + ["all"],
                        help="which table to reproduce (default: all)")
    add_common_arguments(parser)
    parser.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue an interrupted run in its folder (same flags as the interrupted run)")
    parser.add_argument("--angle-mode", choices=("reference", "corrected"), default=None,
                        help="mixed-up angle: the public code's (reference, default) or without the count factor")


def run(args) -> int:
    from asdcore.experiment import QUICK_BANNER, RunFolder, get_logger, resolve_config, resolve_quick, set_seed
    from asdcore.features import LogMelConfig, Normalizer
    from asdcore.pipeline import evaluate_systems, load_features, open_data
    from asdcore.representations import score_simple_representation
    from subcluster_adacos.training import class_labels

    set_seed(args.seed)
    log = get_logger()
    quick, why = resolve_quick(args)
    default = SubClusterAdaCosConfig()
    if quick:
        default = default.quick()
    config = resolve_config(default, args.config, {"epochs": args.epochs, "angle_mode": args.angle_mode})
    experiments = list(EXPERIMENTS) if args.experiment == "all" else [args.experiment]
    if args.resume is not None:
        run_folder = RunFolder.resume(args.resume)
    else:
        run_folder = RunFolder.create(args.out, 2020, f"subcluster-adacos-{args.experiment}")
    if quick:
        log.info("%s (%s)", QUICK_BANNER, why)
    feature_config = LogMelConfig()
    source, table = open_data(args, 2020)
    run_folder.write_config({"command": "subcluster-adacos", "experiments": experiments, "quick": quick,
                             "data": source.description, "seed": args.seed, "settings": config,
                             "features": feature_config})
    table, features = load_features(table, feature_config, args, run_folder)
    train = (table["split"] == "train").to_numpy()
    normalizer = Normalizer().fit(features[train])
    features = normalizer.transform(features)
    labels, class_names = class_labels(table)
    nets = TrainedNetworks(run_folder, table, features, labels, class_names, config, args.seed, log)
    representation_scores = {}
    if "representations" in experiments or "ensemble" in experiments:
        statistics = ("mean", "max") if "representations" in experiments else ("mean",)
        representation_scores = {s: score_simple_representation(table, features, s) for s in statistics}
    systems, labels_by_experiment, diverged_by_experiment, notes_by_experiment = {}, {}, {}, {}
    for name in experiments:
        found, row_labels, diverged, extra = run_experiment(name, nets, representation_scores)
        systems.update(found)
        labels_by_experiment[name] = row_labels
        diverged_by_experiment[name] = diverged
        notes_by_experiment[name] = extra
    if systems:
        per_unit, summary = evaluate_systems(run_folder, table, systems, 2020, quick=quick)
    else:  # every network diverged: nothing to score, the tables say "diverges"
        per_unit, summary = pd.DataFrame(), pd.DataFrame()
    notes = [source.description]
    if quick:
        notes.append(f"{QUICK_BANNER} ({why}): {config.epochs} epochs, S in {config.subclusters}")
    text = [f"# Sub-cluster AdaCos (Wilkinghoff 2020): {', '.join(experiments)}", ""]
    if summary.empty and not any(diverged_by_experiment.values()):
        text.append("No labelled test clips: submission files only.")
    else:
        for name in experiments:
            section, merged = comparison(name, summary, labels_by_experiment[name], diverged_by_experiment[name],
                                         notes + notes_by_experiment[name], config,
                                         run_types=sorted(set(table["machine_type"])))
            text.append(section)
            print(f"\n{_TABLES[name][3]}")
            print(merged.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
    run_folder.write_text("comparison.md", "\n".join(text))
    if "representations" in experiments:
        save_scoring_system(run_folder, nets, config, feature_config, normalizer, table, features)
    print(f"\nrun folder: {run_folder.path}")
    run_folder.close()
    return 0


def save_scoring_system(run_folder, nets, config, feature_config, normalizer, table, features):
    """Save the "combined" system of Table V (learned representation with a GMM per ID; the temporal mean
    for ``combined_mean_types``) under ``models/system`` for ``run_dcase2020.py score``."""
    from asdcore.backends import GaussianBackend, GMMBackend
    from asdcore.pipeline import unit_keys
    from subcluster_adacos.network import embedding_model
    from subcluster_adacos.scoring import ScoringSystem, scored_by_mean

    spec = ModelSpec("subcluster_adacos", True, config.representation_subclusters)
    trained = nets.get(spec)
    if trained["diverged"]:
        return
    keys = unit_keys(table)
    train = (table["split"] == "train").to_numpy()
    index = {name: i for i, name in enumerate(nets.class_names)}
    backends, mean_backends = {}, {}
    means = features.mean(axis=1)
    for unit in np.unique(keys[train]):
        rows = train & (keys == unit)
        if scored_by_mean([unit.split("/")[0]], config.combined_mean_types)[0]:
            mean_backends[unit] = GaussianBackend("full", normalize=False).fit(means[rows])
        else:
            backends[unit] = GMMBackend(spec.n_subclusters, means_init=trained["centres"][index[unit]],
                                        score=config.gmm_score).fit(trained["embeddings"][rows])
    system = ScoringSystem(feature_config, normalizer, [embedding_model(trained["model"])], [backends],
                           combined_mean_types=config.combined_mean_types, mean_backends=mean_backends)
    system.save(run_folder.path / "models" / "system")
