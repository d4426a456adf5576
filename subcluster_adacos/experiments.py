"""The ``subcluster-adacos`` command of ``run_dcase2020.py``: the experiments of Wilkinghoff 2020.

Experiments (``--experiment``) and the paper's table each reproduces:

- ``backends``: Table II, back-ends on the embeddings of a network trained with standard AdaCos and mixup;
- ``mixup``: Table III, {no mixup, mixup} x {standard AdaCos, modified AdaCos}, S = 1, full-covariance
  Gaussian back-end ("diverges" where the adaptive scale explodes);
- ``subclusters``: Table IV, S in {1, 2, ..., 64}, Gaussian and GMM back-ends;
- ``representations``: Table V, mean / max / learned (S = 32) and "combined" (mean for ToyConveyor);
- ``ensemble``: Fig. 2/3, GMM scores of the S = 1 ... 64 networks summed;
- ``all``: every one of them; each network is trained once and shared between experiments.

Each network is one unit of the runner (:mod:`asdcore.runner`), named :attr:`ModelSpec.name` (e.g.
``adacos_S01_nomixup``, ``subcluster_adacos_S32_mixup``) and seeded by that name; it writes its snapshots,
embeddings, centres and model-output scores into ``units/<name>/``
(:func:`subcluster_adacos.training.train_network`). ``assemble`` fits the back-ends from those folders.
The run folder also holds ``models/system/`` (the combined system of Table V, the same
:class:`~subcluster_adacos.scoring.ScoringSystem` that scored the "combined" row) for
``run_dcase2020.py score``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from asdcore.errors import ASDError
from asdcore.experiment import QUICK_BANNER
from asdcore.runner import Assembled, Method

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


def training_config(spec: ModelSpec, c: SubClusterAdaCosConfig):
    """The :class:`~subcluster_adacos.training.TrainingConfig` of one network of the experiments."""
    from subcluster_adacos.training import TrainingConfig

    return TrainingConfig(loss=spec.loss, n_subclusters=spec.n_subclusters, mixup=spec.mixup,
                          mixup_labels=c.mixup_labels, angle_mode=c.angle_mode, epochs=c.epochs,
                          batch_size=c.batch_size, learning_rate=c.learning_rate, l2=c.l2,
                          class_weight=c.class_weight, checkpoint_every=c.checkpoint_every,
                          divergence_scale=c.divergence_scale)


def _label(spec: ModelSpec) -> dict:
    return {"mixup": "yes" if spec.mixup else "no", "modified_adacos": "yes" if spec.loss != "adacos" else "no"}


def run_experiment(name, nets, representation_scores: dict):
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
        combined = nets.combined(spec)  # the saved ScoringSystem's scores: learned, the temporal mean for ToyConveyor
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

_ALL = {"statistic": "arithmetic mean", "machine_type": "all"}
_TABLES = {
    "backends": dict(published="wilkinghoff2020_table2", row_columns=("backend",), filters=_ALL,
                     title="Table II: back-ends (mean over IDs, %)"),
    "mixup": dict(published="wilkinghoff2020_table3", row_columns=("mixup", "modified_adacos"), filters=_ALL,
                  title="Table III: mixup and modified AdaCos, S = 1, Gaussian back-end (%)"),
    "subclusters": dict(published="wilkinghoff2020_table4", row_columns=("n_subclusters", "backend"),
                        filters=_ALL, title="Table IV: number of sub-clusters (%)"),
    "representations": dict(published="wilkinghoff2020_table5", row_columns=("representation",),
                            filters={"statistic": "arithmetic mean"},
                            title="Table V: representations per machine type (%)"),
    "ensemble": dict(published="wilkinghoff2020_ensemble", row_columns=("system",),
                     filters={"statistic": "arithmetic mean"},
                     title="Fig. 2/3: ensemble over the number of sub-clusters (evaluation set, %)"),
}


def table_spec(name, labels, diverged, run_types=()):
    """The :class:`~asdcore.tables.TableSpec` of one experiment: our systems in the paper's rows; the rows
    of diverged networks read "diverges" (for the machine types of the run, ``run_types``, and "all")."""
    from asdcore.tables import TableSpec

    wanted = {tuple(str(v) for v in row.values()) for row in diverged}
    types = {str(t) for t in run_types} | {"all"}

    def mark_diverged(wide):
        if not wanted:
            return wide
        columns = list(_TABLES[name]["row_columns"])
        hit = np.array([tuple(r) in wanted for r in wide[columns].astype(str).itertuples(index=False)], dtype=bool)
        hit &= wide["machine type"].astype(str).isin(types).to_numpy()
        ours = [c for c in wide.columns if c.endswith("(ours)")]
        wide[ours] = wide[ours].astype(object)
        wide.loc[hit, ours] = "diverges"
        return wide

    return TableSpec(**_TABLES[name], systems=labels, extra_columns=mark_diverged)


def comparison(name, summary, labels, diverged, notes, config, run_types=()):
    """The markdown section of one experiment and its frame: our numbers beside the paper's, in the paper's
    rows; the rows of diverged networks read "diverges"."""
    from asdcore.tables import render_markdown, tidy_results

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
    seen = set(summary["machine_type"]) if "machine_type" in summary else set()
    return render_markdown(table_spec(name, labels, diverged, set(run_types) | seen), tidy_results(summary),
                           notes + extra)


# --- the command -----------------------------------------------------------------------------------------

class SubClusterAdaCos2020(Method):
    """``run_dcase2020.py subcluster-adacos``: one unit per network (:attr:`ModelSpec.name`, e.g.
    ``subcluster_adacos_S04_mixup``), shared between the chosen experiments; ``assemble`` fits the
    back-ends on the units' embeddings, scores Tables II-V and the ensemble and saves the combined system."""

    command = "subcluster-adacos"
    year = 2020
    title = "Sub-cluster AdaCos (Wilkinghoff 2020)"

    def default_config(self, quick):
        return SubClusterAdaCosConfig().quick() if quick else SubClusterAdaCosConfig()

    def add_arguments(self, parser):
        parser.add_argument("--experiment", default="all", choices=list(EXPERIMENTS) + ["all"],
                            help="which table to reproduce (default: all)")
        parser.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
        parser.add_argument("--angle-mode", choices=("reference", "corrected"), default=None,
                            help="mixed-up angle: the public code's (reference, default) or without the count factor")

    def overrides(self, args):
        return {"epochs": args.epochs, "angle_mode": args.angle_mode}

    def experiment_name(self, args):
        return f"subcluster-adacos-{args.experiment}"

    @staticmethod
    def experiments(ctx):
        return list(EXPERIMENTS) if ctx.args.experiment == "all" else [ctx.args.experiment]

    def prepare(self, ctx):
        from asdcore.representations import standardised_logmel
        from subcluster_adacos.training import class_labels

        standardised_logmel(ctx)  # lazily standardised memory map: no copy of the data set
        ctx.state["train"] = np.flatnonzero(ctx.mask(split="train"))
        ctx.state["labels"], ctx.state["class_names"] = class_labels(ctx.table)

    def specs(self, ctx) -> list[ModelSpec]:
        specs = []
        for name in self.experiments(ctx):
            specs += [s for s in models_for(name, ctx.config) if s not in specs]
        return specs

    def units(self, ctx):
        return [ctx.unit(s.name, {"loss": s.loss, "mixup": s.mixup, "n_subclusters": s.n_subclusters})
                for s in self.specs(ctx)]

    def estimate(self, ctx, units):
        steps = int(np.ceil(len(ctx.state["train"]) / ctx.config.batch_size)) * ctx.config.epochs
        return {"steps": steps * len(units)}

    def train_unit(self, ctx, unit):
        from subcluster_adacos.training import train_network

        spec = ModelSpec(**unit.spec)
        c = ctx.config
        ctx.log.info("training %s (%d epochs, %d clips, %d classes, seed %d)", spec.name, c.epochs,
                     len(ctx.state["train"]), len(ctx.state["class_names"]), unit.seed)
        summary = train_network(ctx.state["logmel"][2], ctx.state["labels"], len(ctx.state["class_names"]),
                                training_config(spec, c), unit.folder, ctx.state["train"], seed=unit.seed)
        if summary["diverged"]:
            ctx.log.warning("%s diverged (adaptive scale %s): reported as 'diverges', as in Table III",
                            spec.name, summary["scales"][-1:] or "n/a")
        return summary

    def assemble(self, ctx, units):
        from asdcore.representations import score_simple_representation
        from subcluster_adacos.scoring import TrainedNetworks

        experiments = self.experiments(ctx)
        nets = TrainedNetworks(ctx.table, ctx.state["logmel"], {ModelSpec(**u.spec): u.folder for u in units},
                               ctx.state["class_names"], ctx.config, ctx.log)
        view = ctx.state["logmel"][2]
        representation_scores = {}
        if "representations" in experiments or "ensemble" in experiments:
            statistics = ("mean", "max") if "representations" in experiments else ("mean",)
            representation_scores = {s: score_simple_representation(ctx.table, view, s) for s in statistics}
        systems, found = {}, {}
        for name in experiments:
            scores, row_labels, diverged, notes = run_experiment(name, nets, representation_scores)
            systems.update(scores)
            found[name] = (row_labels, diverged, notes)
        if "representations" in experiments:
            spec = ModelSpec("subcluster_adacos", True, ctx.config.representation_subclusters)
            system = nets.system(spec, load_model=True)
            if system is not None:  # the combined system of Table V, for run_dcase2020.py score
                system.save(ctx.run.path / "models" / "system")

        def report(ctx, per_unit, summary):
            config = ctx.config
            notes = [ctx.source.description]
            if ctx.quick:
                notes.append(f"{QUICK_BANNER} ({ctx.why}): {config.epochs} epochs, S in {config.subclusters}")
            text = [f"experiments: {', '.join(experiments)}", ""]
            if summary.empty and not any(d for _, d, _ in found.values()):
                return text + ["No labelled test clips: submission files only."]
            for name in experiments:
                row_labels, diverged, extra = found[name]
                section, merged = comparison(name, summary, row_labels, diverged, notes + extra, config,
                                             run_types=sorted(set(ctx.table["machine_type"])))
                text.append(section)
                print(f"\n{_TABLES[name]['title']}")
                print(merged.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
            return text

        def claims(confidence):
            from subcluster_adacos.claims import claims_2020

            return claims_2020(confidence, experiments, ctx.config, found.get("mixup", ({}, [], []))[1])

        return Assembled(systems, report=report, claims=claims)


METHOD = SubClusterAdaCos2020()
