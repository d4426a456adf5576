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

The settings live in :mod:`subcluster_adacos.settings_2020`, the paper tables in
:mod:`subcluster_adacos.tables_2020`; this module keeps the protocol (re-exporting their names).
"""
from __future__ import annotations

import numpy as np

from asdcore.runner import Assembled, Method
from subcluster_adacos.settings_2020 import (  # noqa: F401 - re-exported: the command's names
    EXPERIMENTS, TABLE_II_BACKENDS, ModelSpec, SubClusterAdaCosConfig, models_for, training_config)
from subcluster_adacos.tables_2020 import comparison, run_experiment, table_spec  # noqa: F401
from subcluster_adacos.tables_2020 import report as tables_report


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
        from subcluster_adacos.training import class_groups, class_labels, class_unit, resolved_classes

        standardised_logmel(ctx)  # lazily standardised memory map: no copy of the data set
        ctx.state["train"] = np.flatnonzero(ctx.mask(split="train"))
        classes = resolved_classes(ctx.table, ctx.config.classes)
        ctx.state["labels"], ctx.state["class_names"] = class_labels(ctx.table, classes=classes)
        ctx.state["class_groups"] = class_groups(ctx.state["class_names"])
        n_units = len({class_unit(n) for n in ctx.state["class_names"]})
        ctx.log.info("classes: %s (%d classes, %d machine types x units)", classes, len(ctx.state["class_names"]),
                     n_units)

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
        return {"steps": steps * len(units), "trainer": "subcluster2020"}

    def train_unit(self, ctx, unit):
        from subcluster_adacos.training import train_network

        spec = ModelSpec(**unit.spec)
        c = ctx.config
        ctx.log.info("training %s (%d epochs, %d clips, %d classes, seed %d)", spec.name, c.epochs,
                     len(ctx.state["train"]), len(ctx.state["class_names"]), unit.seed)
        summary = train_network(ctx.state["logmel"][2], ctx.state["labels"], len(ctx.state["class_names"]),
                                training_config(spec, c), unit.folder, ctx.state["train"], seed=unit.seed,
                                groups=ctx.state["class_groups"])
        if summary["diverged"]:
            ctx.log.warning("%s diverged (adaptive scale %s): reported as 'diverges', as in Table III",
                            spec.name, summary["scales"][-1:] or "n/a")
        return summary

    def assemble(self, ctx, units):
        from asdcore.classification import with_sections
        from asdcore.representations import score_simple_representation
        from subcluster_adacos.maps import diagnostics_2020
        from subcluster_adacos.scoring import TrainedNetworks

        experiments = self.experiments(ctx)
        nets = TrainedNetworks(ctx.table, ctx.state["logmel"], {ModelSpec(**u.spec): u.folder for u in units},
                               ctx.state["class_names"], ctx.config, ctx.log)
        view = ctx.state["logmel"][2]
        representation_scores = {}
        if "representations" in experiments or "ensemble" in experiments:
            statistics = ("mean", "max") if "representations" in experiments else ("mean",)
            representation_scores = {s: score_simple_representation(ctx.table, view, s, ctx.config.reg_covar)
                                     for s in statistics}
        if "mixup" in experiments:  # Table III's four networks on one figure (plots/training/table3_scale.png)
            from subcluster_adacos.training import plot_scale_figure
            plot_scale_figure({(s.loss, s.mixup): nets.folders[s] for s in models_for("mixup", ctx.config)},
                              ctx.run.path / "plots" / "training" / "table3_scale.png", ctx.config.divergence_scale,
                              tag=ctx.tag)
        systems, found = {}, {}
        for name in experiments:
            scores, row_labels, diverged, notes = run_experiment(name, nets, representation_scores)
            systems.update(scores)
            found[name] = (row_labels, diverged, notes)
        maps_and_accuracy = diagnostics_2020(ctx, nets, list(nets.folders))  # plots/embeddings, classification.csv
        if "representations" in experiments:
            spec = ModelSpec("subcluster_adacos", True, ctx.config.representation_subclusters)
            system = nets.system(spec, load_model=True)
            if system is not None:  # the combined system of Table V, for run_dcase2020.py score
                system.save(ctx.run.path / "models" / "system")

        def report(ctx, per_unit, summary):
            return tables_report(ctx, experiments, found, summary)

        def claims(confidence):
            from subcluster_adacos.claims import claims_2020

            return claims_2020(confidence, experiments, ctx.config, found.get("mixup", ({}, [], []))[1])

        return Assembled(systems, report=with_sections(report, maps_and_accuracy), claims=claims)


METHOD = SubClusterAdaCos2020()
