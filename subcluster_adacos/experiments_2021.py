"""The ``multi-distribution`` command of ``run_dcase2021.py``: the experiments of Wilkinghoff 2021.

"Combining multiple distributions based on sub-cluster AdaCos for anomalous sound detection under domain
shifted conditions" (DCASE 2021 workshop). Experiments (``--experiment``) and the paper's tables:

- ``system``: Table 2 (development set, per section and domain, with the decisions' F1) and, when the
  evaluation set has labels (``--ground-truth`` or ground-truth files inside the data root), Table 5;
- ``distributions``: Table 3, each term of eqs. (2)-(3) alone (summed over the same networks as the
  proposed system) and the proposed ensemble;
- ``losses``: Table 4, the ensemble of the section-only networks, the ensemble of the two-head networks
  and the proposed per-type combination;
- ``all``: every one of them; each network is trained once.

Every experiment trains, for each variant it needs, one network per S in ``subclusters``: one unit of
:mod:`asdcore.runner` named ``<variant>_S<S>`` (e.g. ``sections_S04``), seeded by that name. A unit keeps
its snapshots every ``checkpoint_every`` epochs and writes the embeddings and learned centres of each
(``units/<name>/outputs_epoch_XXXX.npz``); :meth:`MultiDistribution.assemble` fits the GMMs of every
snapshot from those files alone (:mod:`subcluster_adacos.multi_distribution`). The run folder holds
``scores/<system>/`` (DCASE 2021 ``anomaly_score_*`` and, for complete systems, ``decision_result_*``
files), ``thresholds/<system>.csv``, ``results.csv``, ``comparison.md``, ``plots/``, ``units/`` and
``models/`` (``normalizer.npz``, ``score_sets.csv``). The tables of comparison.md are
:class:`asdcore.tables.TableSpec` s over ``asdcore/published/wilkinghoff2021_table{2,3,4,5}.csv``
(:func:`paper_tables`).

The settings live in :mod:`subcluster_adacos.settings_2021`, the paper tables in
:mod:`subcluster_adacos.tables_2021`; this module keeps the protocol (re-exporting their names).
"""
from __future__ import annotations

from dataclasses import replace

from asdcore.runner import Assembled, Method
from subcluster_adacos.settings_2021 import (  # noqa: F401 - re-exported: the command's names
    EXPERIMENTS, MultiDistributionConfig, _checkpoints, _subclusters)
from subcluster_adacos.tables_2021 import DISTRIBUTION_SYSTEMS, LOSS_SYSTEMS, paper_tables, report  # noqa: F401


def variants_needed(experiments, config: MultiDistributionConfig, machine_types) -> list[str]:
    """The variants to train: both for Table 4 or a choice on the dev set, else those the paper uses for
    the machine types present."""
    from subcluster_adacos.multi_distribution import VARIANTS, paper_variants

    if "losses" in experiments or config.variant_choice == "dev":
        return list(VARIANTS)
    used = set(paper_variants(machine_types, config.sections_only_types).values())
    return [v for v in VARIANTS if v in used]


def systems_for(experiments, ensembles, proposed) -> tuple[dict, dict]:
    """Scores (and decision scores, for complete systems) of every system the experiments evaluate."""
    from subcluster_adacos.multi_distribution import BOTH_HEADS, SECTIONS_ONLY

    scores, decision_scores = {}, {}
    if "distributions" in experiments:
        for name in ("distribution_section", "distribution_attribute", "distribution_target"):
            scores[name] = proposed.terms[name.split("_", 1)[1]]
    if "losses" in experiments:
        for name, variant in (("loss_sections", SECTIONS_ONLY), ("loss_sections_attributes", BOTH_HEADS)):
            if variant not in ensembles:  # every network of the variant diverged (warned in build_ensembles)
                continue
            scores[name], decision_scores[name] = ensembles[variant].score, ensembles[variant].decision
    scores["proposed"], decision_scores["proposed"] = proposed.score, proposed.decision
    return scores, decision_scores


# --- the method ------------------------------------------------------------------------------------------


def _outputs_file(unit, epoch: int):
    return unit.folder / f"outputs_epoch_{int(epoch):04d}.npz"


class MultiDistribution(Method):
    """Wilkinghoff 2021 on the runner: one unit per network (``<variant>_S<S>``, e.g. ``sections_S04``,
    ``sections_attributes_S16``); a unit trains its network, keeps the snapshots every ``checkpoint_every``
    epochs (``epoch_XXXX.keras``) and writes the embeddings and learned centres of each snapshot
    (``outputs_epoch_XXXX.npz``); :meth:`assemble` fits the GMMs of every snapshot, sums the score sets
    and sets the thresholds."""

    command = "multi-distribution"
    year = 2021
    title = "Multiple distributions with sub-cluster AdaCos (Wilkinghoff 2021)"

    def default_config(self, quick):
        return MultiDistributionConfig().quick() if quick else MultiDistributionConfig()

    def add_arguments(self, parser):
        parser.add_argument("--experiment", default="all", choices=list(EXPERIMENTS) + ["all"],
                            help="which tables to reproduce: system (Tables 2, 5), distributions (Table 3), "
                                 "losses (Table 4) or all (default)")
        parser.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
        parser.add_argument("--checkpoint-every", type=int, default=None,
                            help="score the networks after every N epochs (paper: 100)")
        parser.add_argument("--subclusters", default=None,
                            help="comma-separated numbers of sub-clusters S (paper: 1,2,4,8,16)")
        parser.add_argument("--variant-choice", choices=("paper", "dev"), default=None,
                            help="per machine type: the paper's choice of network variant (default) or the "
                                 "better one on the labelled development set")

    def overrides(self, args):
        return {"epochs": args.epochs, "checkpoint_every": args.checkpoint_every,
                "variant_choice": args.variant_choice,
                "subclusters": None if args.subclusters is None else _subclusters(args.subclusters)}

    def experiment_name(self, args):
        return f"multi-distribution-{args.experiment}"

    def check(self, ctx):
        ctx.config = replace(ctx.config, subclusters=tuple(int(s) for s in ctx.config.subclusters),
                             loss_weights=tuple(float(w) for w in ctx.config.loss_weights)).check()

    def prepare(self, ctx):
        from asdcore.features import LogMelConfig, Normalizer
        from subcluster_adacos.multi_distribution import TrainingClasses

        features = ctx.features(LogMelConfig())  # read-only memory map
        classes = TrainingClasses.from_table(ctx.table)
        ctx.log.info("classes: %d sections, %d attribute classes (paper: 42 and 199)", classes.n_sections,
                     classes.n_attributes)
        normalizer = Normalizer().fit(features, rows=classes.rows)  # all normal training clips (Sec. 2.3)
        ctx.state.update(features=features, normalizer=normalizer, view=normalizer.view(features),
                         classes=classes, experiments=list(EXPERIMENTS) if ctx.args.experiment == "all"
                         else [ctx.args.experiment])

    def units(self, ctx):
        variants = variants_needed(ctx.state["experiments"], ctx.config, sorted(set(ctx.table["machine_type"])))
        return [ctx.unit(f"{variant}_S{int(s):02d}", {"variant": variant, "n_subclusters": int(s)})
                for variant in variants for s in ctx.config.subclusters]

    def estimate(self, ctx, units):
        n_train = int(ctx.state["classes"].rows.sum())
        return {"steps": len(units) * ctx.config.epochs * -(-n_train // ctx.config.batch_size), "trainer": "multi2021"}

    def train_unit(self, ctx, unit):
        import keras

        from subcluster_adacos.multi_distribution import network_outputs, train_network

        config, classes = ctx.config, ctx.state["classes"]
        ctx.log.info("training %s: %d epochs, %d clips, %d sections, %d attribute classes, seed %d", unit.name,
                     config.epochs, int(classes.rows.sum()), classes.n_sections, classes.n_attributes, unit.seed)
        model, info = train_network(unit.spec["variant"], ctx.state["view"], classes,
                                    config.training(unit.spec["n_subclusters"]), model_dir=unit.folder,
                                    seed=unit.seed, verbose=0, loss_weights=config.loss_weights)
        epochs = []
        if not info["diverged"]:
            for epoch, path in sorted(info["snapshots"].items()):
                snapshot = model if epoch == config.epochs else keras.models.load_model(path)
                network_outputs(snapshot, ctx.state["view"], classes, config.batch_size).save(
                    _outputs_file(unit, epoch))
                epochs.append(int(epoch))
        return {"diverged": bool(info["diverged"]), "epochs": epochs}

    def assemble(self, ctx, units):
        from subcluster_adacos.multi_distribution import (NetworkOutputs, TemporalMaxScorer, add_temporal_max,
                                                          build_ensembles, choose_variants_on_dev, decide,
                                                          decision_thresholds, paper_variants, score_outputs,
                                                          select_by_type, temporal_max)
        from asdcore.classification import with_sections
        from subcluster_adacos.maps import diagnostics_2021

        config, table, experiments = ctx.config, ctx.table, ctx.state["experiments"]
        ctx.state["normalizer"].save(ctx.run.file("models", "normalizer.npz"))
        tmax_term = None
        if table["machine_type"].isin(config.tmax_types).any():  # eq. (4)
            tmax = temporal_max(ctx.state["features"], ctx.state["normalizer"])
            tmax_term = TemporalMaxScorer(config.tmax_types, config.reg_covar).fit(tmax, table).term(tmax, table)

        per_set = tmax_term if config.tmax_term == "per_set" else None  # eq. (4) in every score set, or ...
        scoring_table = table
        if ctx.year >= 2022:  # the evaluation test names of 2022-2025 carry no domain: the scores may not use it
            import numpy as np

            test = (table["split"] == "test").to_numpy()
            scoring_table = table.assign(domain=np.where(test, "", table["domain"].to_numpy()))
            ctx.log.info("DCASE %d: test clips scored without their domain (the smaller of eqs. (2) and (3))",
                         ctx.year)

        def score_snapshot(unit, epoch):
            return score_outputs(NetworkOutputs.load(_outputs_file(unit, epoch)), scoring_table, per_set,
                                 config.reg_covar, config.component_weights, config.target_decision,
                                 gmm_score=config.gmm_score, section_gmm_data=config.section_gmm_data)

        singles = {}
        ensembles, listing = build_ensembles(units, score_snapshot, ctx.log, singles)
        if config.tmax_term == "once":  # ... once per system: each ensemble and each single set
            with_term = table["machine_type"].isin(config.tmax_types).to_numpy()
            ensembles = {v: add_temporal_max(e, tmax_term, scoring_table, with_term) for v, e in ensembles.items()}
            singles = {k: {v: add_temporal_max(e, tmax_term, scoring_table, with_term) for v, e in by_variant.items()}
                       for k, by_variant in singles.items()}
        ctx.run.write_csv("models/score_sets.csv", listing)
        machine_types = sorted(set(table["machine_type"]))
        choice = paper_variants(machine_types, config.sections_only_types)
        choice_note = "variant per machine type: the paper's (Sec. 2.5)"
        if config.variant_choice == "dev":
            choice, dev_scores = choose_variants_on_dev(table, {v: s.score for v, s in ensembles.items()}, choice)
            ctx.run.write_csv("variant_choice.csv", dev_scores)
            choice_note = "variant per machine type: the better on the development set"
        proposed = select_by_type(table, ensembles, choice)
        maps_and_accuracy = diagnostics_2021(ctx, units, choice, lambda unit, epoch: NetworkOutputs.load(
            _outputs_file(unit, epoch)))  # plots/embeddings, classification.csv
        scores, decision_scores = systems_for(experiments, ensembles, proposed)
        for (n_sub, epoch), by_variant in sorted(singles.items()):  # the proposed system from one score set
            if set(choice.values()) <= set(by_variant):
                scores[f"single_S{n_sub:02d}_epoch{epoch:04d}"] = select_by_type(table, by_variant, choice).score
        decisions = {}
        for name, values in decision_scores.items():
            thresholds = decision_thresholds(values, table, config.threshold_percentile)
            ctx.run.write_csv(f"thresholds/{name}.csv", thresholds)
            decisions[name] = decide(values, scoring_table, thresholds)
        notes = [ctx.source.description,
                 f"{choice_note}: " + ", ".join(f"{t} = {v}" for t, v in sorted(choice.items())),
                 f"ensembles: S in {config.subclusters} x checkpoints at epochs {_checkpoints(config)} = "
                 f"{len(config.subclusters) * len(_checkpoints(config))} score sets per variant"]
        if ctx.quick:
            notes.insert(0, f"{ctx.settings_label}: {config.epochs} epochs, S in {config.subclusters}")
        elif ctx.settings_label != "paper settings":
            notes.insert(0, ctx.settings_label)
        def claims(confidence):
            from subcluster_adacos.claims import claims_2021

            return claims_2021(confidence, experiments, [n for n in scores if n.startswith("single_")])

        return Assembled(scores, decisions, report=with_sections(lambda ctx, per_unit, summary: report(
            ctx, experiments, per_unit, summary, notes), maps_and_accuracy), claims=claims)


METHOD = MultiDistribution()
