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
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from asdcore.errors import ASDError
from asdcore.experiment import QUICK_BANNER
from asdcore.runner import Assembled, Method

EXPERIMENTS = ("distributions", "losses", "system")

#: system names of the run folder -> row/column labels of the paper
DISTRIBUTION_SYSTEMS = {"distribution_section": "P(x|s,k)", "distribution_attribute": "P(x|a,k)",
                        "distribution_target": "P(x|X_target(s),k)", "proposed": "proposed ensemble"}
LOSS_SYSTEMS = {"loss_sections": "sections", "loss_sections_attributes": "sections and file endings",
                "proposed": "proposed ensemble"}
#: the domain a distribution is defined for in Table 3 (None: both)
DISTRIBUTION_DOMAIN = {"distribution_attribute": "source", "distribution_target": "target"}


@dataclass(frozen=True)
class MultiDistributionConfig:
    """Settings of the Wilkinghoff 2021 experiments; defaults = the paper (section cited) or, where the
    paper is silent, the 2020 sub-cluster AdaCos code it builds on."""

    epochs: int = 400  # Sec. 2.3
    batch_size: int = 64  # Sec. 2.3
    learning_rate: float = 1e-3  # Adam (Sec. 2.3) with Keras' default settings
    l2: float = 1e-5  # network of [11] (Sec. 2.3); 2020 public code
    mixup: bool = True  # Sec. 2.3
    mixup_labels: str = "linear"  # 2020 code; "max": max(l*y1, (1-l)*y2), some versions of the 2022 code
    angle_mode: str = "reference"  # mixed-up angle of the 2020 public code (REFERENCE.md §4)
    class_weight: str = "none"  # paper silent; the author's 2022 code uses none ("balanced": the 2020 code's)
    loss_weights: tuple = (1.0, 1.0)  # Sec. 2.3: two sub-cluster AdaCos losses with equal weights
    subclusters: tuple = (1, 2, 4, 8, 16)  # Sec. 2.5: S = 2^0 ... 2^4, the same S in both heads
    checkpoint_every: int = 100  # Sec. 2.5: scores after every 100 epochs (4 checkpoints x 5 S = 20 sets)
    reg_covar: float = 1e-3  # Sec. 2.4: 1e-3 added to the covariance diagonal
    component_weights: bool = True  # Sec. 2.4: "weighted likelihoods of component k" (False: 2020 code)
    gmm_score: str = "component"  # Sec. 2.4: max over components k; "mixture": full mixture log-likelihood (2022 code)
    section_gmm_data: str = "source"  # Sec. 2.4 "normal data of the source domain"; "all": + target (2022 code)
    tmax_types: tuple = ("valve",)  # Sec. 2.4, eq. (4): temporal-maximum term for valve (source domain)
    sections_only_types: tuple = ("fan", "gearbox", "valve")  # Sec. 2.5: section loss only for these
    variant_choice: str = "paper"  # Sec. 2.5 the paper's per-type choice; "dev": the better on the dev set
    threshold_percentile: float = 90.0  # Sec. 2.6
    target_decision: str = "first_term"  # Sec. 2.6: target decisions on the first term of eq. (3)

    def quick(self) -> "MultiDistributionConfig":
        """A CPU-sized variant: 2 epochs with a checkpoint after each, S in {1, 2}; the rest as the paper."""
        return replace(self, epochs=2, checkpoint_every=1, subclusters=(1, 2))

    def check(self) -> "MultiDistributionConfig":
        if self.variant_choice not in ("paper", "dev"):
            raise ASDError(f"variant_choice must be 'paper' or 'dev', got {self.variant_choice!r}")
        if self.target_decision not in ("first_term", "full"):
            raise ASDError(f"target_decision must be 'first_term' or 'full', got {self.target_decision!r}")
        if not self.subclusters or min(int(s) for s in self.subclusters) < 1:
            raise ASDError(f"subclusters must be positive integers, got {self.subclusters}")
        if self.epochs < 1 or self.checkpoint_every < 1:
            raise ASDError(f"epochs ({self.epochs}) and checkpoint_every ({self.checkpoint_every}) must be >= 1")
        for name, allowed in (("class_weight", ("none", "balanced")), ("gmm_score", ("component", "mixture")),
                              ("section_gmm_data", ("source", "all")), ("mixup_labels", ("linear", "max"))):
            if getattr(self, name) not in allowed:
                raise ASDError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {getattr(self, name)!r}")
        if not 0 <= self.threshold_percentile <= 100:
            raise ASDError(f"threshold_percentile must lie in [0, 100], got {self.threshold_percentile}")
        return self

    def training(self, n_subclusters: int):
        from subcluster_adacos.training import TrainingConfig

        return TrainingConfig(loss="subcluster_adacos", n_subclusters=int(n_subclusters), mixup=self.mixup,
                              mixup_labels=self.mixup_labels, angle_mode=self.angle_mode, epochs=self.epochs,
                              batch_size=self.batch_size,
                              learning_rate=self.learning_rate, l2=self.l2, class_weight=self.class_weight,
                              checkpoint_every=self.checkpoint_every)


def variants_needed(experiments, config: MultiDistributionConfig, machine_types) -> list[str]:
    """The variants to train: both for Table 4 or a choice on the dev set, else those the paper uses for
    the machine types present."""
    from subcluster_adacos.multi_distribution import VARIANTS, paper_variants

    if "losses" in experiments or config.variant_choice == "dev":
        return list(VARIANTS)
    used = set(paper_variants(machine_types, config.sections_only_types).values())
    return [v for v in VARIANTS if v in used]


def build_ensembles(units, score_snapshot, log, singles: dict | None = None):
    """Sum the score sets of the finished units (networks) per variant, in the units' order (variant, then
    S) and by snapshot epoch: variant -> ScoreSet. ``score_snapshot(unit, epoch) -> ScoreSet``. A diverged
    network is left out with a warning. Also returns a DataFrame listing each score set (variant, S,
    epoch) and whether its network diverged. ``singles``, when given, collects every single score set:
    ``(S, epoch) -> {variant: ScoreSet}``."""
    from subcluster_adacos.multi_distribution import sum_score_sets

    sets, listing = {}, []
    for unit in units:
        variant, n_sub, result = unit.spec["variant"], unit.spec["n_subclusters"], unit.result()
        sets.setdefault(variant, [])
        if result["diverged"]:
            log.warning("%s diverged: its score sets are left out of the ensemble", unit.name)
            listing.append({"variant": variant, "n_subclusters": n_sub, "epoch": None, "diverged": True})
            continue
        for epoch in result["epochs"]:
            sets[variant].append(score_snapshot(unit, epoch))
            if singles is not None:
                singles.setdefault((int(n_sub), int(epoch)), {})[variant] = sets[variant][-1]
            listing.append({"variant": variant, "n_subclusters": n_sub, "epoch": epoch, "diverged": False})
    ensembles = {}
    for variant, variant_sets in sets.items():
        if not variant_sets:
            log.warning("%s: every network diverged; its systems are left out", variant)
            continue
        ensembles[variant] = sum_score_sets(variant_sets)
        log.info("%s: ensemble of %d score sets", variant, ensembles[variant].n_sets)
    return ensembles, pd.DataFrame(listing, columns=["variant", "n_subclusters", "epoch", "diverged"])


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


# --- comparison tables ------------------------------------------------------------------------------------
# Each paper table is an asdcore.tables.TableSpec over asdcore/published/wilkinghoff2021_table<N>.csv: one row
# per printed row and machine type (section, domain), columns "<set> <METRIC> (ours)" / "(paper)". What a spec
# cannot express is a hook: the baselines' columns of Tables 2 and 5 and our F1 (Table 2) are extra columns.

#: the paper's baseline systems (Tables 2 and 5) -> the prefix of their extra columns
BASELINES = {"baseline autoencoder": "AE", "baseline MobileNetV2": "MobileNetV2"}


def _ours(frame, systems, part, metrics=("auc", "pauc"), **conditions):
    """Our rows of ``frame`` (summary or per_unit) in the published vocabulary
    (:func:`asdcore.tables.tidy_results`): ``systems``, set ``part``, ``metrics`` only, and ``column == value``
    (a tuple: any of them)."""
    from asdcore.tables import tidy_results

    if frame is None or frame.empty:
        return tidy_results(None)
    rows = frame[frame["system"].isin(list(systems)) & (frame["part"] == part)]
    for column, value in conditions.items():
        rows = rows[rows[column].isin(value if isinstance(value, tuple) else (value,))]
    return tidy_results(rows, metrics)


def _baseline_columns(published, keys, part, metrics):
    """``extra_columns`` hook: the paper's baselines beside the rendered rows, ``<AE|MobileNetV2> <set>
    <METRIC> (paper)``, inserted after the row labels (the paper prints them first)."""
    from asdcore.published import load_table

    names = {"auc": "AUC", "pauc": "pAUC", "score": "score"}

    def extra(wide):
        paper = load_table(published)
        position = len(keys)
        for system, short in BASELINES.items():
            rows = paper[(paper["system"] == system) & (paper["set"] == part)]
            for metric in metrics:
                values = rows[rows["metric"] == metric].set_index([k for k, _ in keys])["value"]
                index = pd.MultiIndex.from_frame(wide[[shown for _, shown in keys]].astype(str))
                wide.insert(position, f"{short} {part} {names[metric]} (paper)", values.reindex(index).to_numpy())
                position += 1
        return wide

    return extra


def table2_spec(types=()):
    """Table 2: AUC and pAUC per section and domain on the development set and their harmonic mean per
    machine type (section ``all``, domain ``all``), the proposed system; the baselines' columns and our F1 of
    the decisions (Sec. 2.6; the paper prints none) are extra columns."""
    from asdcore.tables import TableSpec

    baselines = _baseline_columns("wilkinghoff2021_table2", [("machine_type", "machine type"), ("unit", "unit"),
                                                             ("domain", "domain")], "dev", ("auc", "pauc"))

    def extra(wide):
        wide = baselines(wide.drop(columns=["dev F1 (paper)"]))
        return wide.rename(columns={"unit": "section"})

    # the paper's rows of its proposed system and ours, named "proposed"
    filters = {"system": ("proposed system", "proposed"), **({"machine_type": tuple(types)} if types else {})}
    return TableSpec("wilkinghoff2021_table2", "Table 2: AUC and pAUC (%) per section and domain, development set "
                     "(section all: harmonic mean per machine type; F1 of the decisions: ours only)",
                     systems={"proposed": {}}, filters=filters, metrics=("auc", "pauc", "f1"), sets=("dev",),
                     index_columns=("machine_type", "unit", "domain"), extra_columns=extra)


def table2_ours(per_unit, summary):
    """Our Table 2 rows: per section and domain, and the harmonic mean per machine type (section ``all``)."""
    metrics = ("auc", "pauc", "f1")
    sections = _ours(per_unit, ["proposed"], "dev", metrics)
    means = _ours(summary, ["proposed"], "dev", metrics, domain="all", statistic="harmonic mean").assign(unit="all")
    return pd.concat([sections, means], ignore_index=True)


def table3_spec(types=()):
    """Table 3: harmonic means of each term of eqs. (2)-(3) alone and of the proposed ensemble, development
    set; P(x|a,k) is a source-domain, P(x|X_target(s),k) a target-domain term (rows of the other domain: none,
    as in the paper)."""
    from asdcore.tables import TableSpec

    return TableSpec("wilkinghoff2021_table3", "Table 3: harmonic means of AUC and pAUC (%) of the single "
                     "distributions, development set", row_columns=("distribution",),
                     systems={s: {"distribution": label} for s, label in DISTRIBUTION_SYSTEMS.items()},
                     filters={"machine_type": tuple(types)} if types else {}, sets=("dev",),
                     index_columns=("machine_type", "domain"))


def table3_ours(summary):
    parts = [_ours(summary, [system], "dev", domain=DISTRIBUTION_DOMAIN.get(system, ("source", "target")),
                   statistic="harmonic mean") for system in DISTRIBUTION_SYSTEMS]
    return pd.concat(parts, ignore_index=True)


def table4_spec(types=()):
    """Table 4: harmonic means of the section-only ensemble, the two-head ensemble and the proposed per-type
    combination, development set."""
    from asdcore.tables import TableSpec

    return TableSpec("wilkinghoff2021_table4", "Table 4: harmonic means of AUC and pAUC (%) of the two losses, "
                     "development set", row_columns=("loss",),
                     systems={s: {"loss": label} for s, label in LOSS_SYSTEMS.items()},
                     filters={"machine_type": tuple(types)} if types else {}, sets=("dev",),
                     index_columns=("machine_type", "domain"))


def table4_ours(summary):
    return _ours(summary, LOSS_SYSTEMS, "dev", domain=("source", "target"), statistic="harmonic mean")


def table5_spec(types=()):
    """Table 5: harmonic means per machine type and domain on the evaluation set and the official score
    (machine type ``all``, domain ``all``); the baselines' columns are extra columns."""
    from asdcore.tables import TableSpec

    filters = {"system": ("proposed system", "proposed"), **({"machine_type": tuple(types)} if types else {})}
    return TableSpec("wilkinghoff2021_table5", "Table 5: harmonic means of AUC and pAUC (%), evaluation set "
                     "(score: the official score, harmonic mean of all AUCs and pAUCs)", systems={"proposed": {}},
                     filters=filters, metrics=("auc", "pauc", "score"), sets=("eval",),
                     index_columns=("machine_type", "domain"),
                     extra_columns=_baseline_columns("wilkinghoff2021_table5", [("machine_type", "machine type"),
                                                                                ("domain", "domain")],
                                                     "eval", ("auc", "pauc", "score")))


def table5_ours(summary):
    per_domain = _ours(summary, ["proposed"], "eval", domain=("source", "target"), statistic="harmonic mean")
    official = _ours(summary, ["proposed"], "eval", ("score",), machine_type="all", domain="all",
                     statistic="harmonic mean")
    return pd.concat([per_domain, official], ignore_index=True)


def paper_tables(experiments, per_unit, summary):
    """``[(TableSpec, our tidy rows)]`` of the tables the experiments reproduce, restricted to our machine
    types; a table none of whose systems we have (Table 5 without evaluation labels) is left out."""
    tables = []
    if "system" in experiments:
        tables += [(table2_spec, table2_ours(per_unit, summary)), (table5_spec, table5_ours(summary))]
    if "distributions" in experiments:
        tables.append((table3_spec, table3_ours(summary)))
    if "losses" in experiments:
        tables.append((table4_spec, table4_ours(summary)))
    return [(spec(sorted(set(ours["machine_type"]))), ours) for spec, ours in tables if not ours.empty]


# --- the method ------------------------------------------------------------------------------------------

def _subclusters(text):
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ASDError(f"--subclusters {text!r}: give comma-separated integers, e.g. 1,2,4,8,16") from None
    if not values:
        raise ASDError("--subclusters: give at least one number of sub-clusters")
    return values


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
        return {"steps": len(units) * ctx.config.epochs * -(-n_train // ctx.config.batch_size)}

    def train_unit(self, ctx, unit):
        import keras

        from subcluster_adacos.multi_distribution import network_outputs, train_network

        config, classes = ctx.config, ctx.state["classes"]
        ctx.log.info("training %s: %d epochs, %d clips, %d sections, %d attribute classes, seed %d", unit.name,
                     config.epochs, int(classes.rows.sum()), classes.n_sections, classes.n_attributes, unit.seed)
        model, info = train_network(unit.spec["variant"], ctx.state["view"], classes,
                                    config.training(unit.spec["n_subclusters"]), model_dir=unit.folder,
                                    seed=unit.seed, verbose=2, loss_weights=config.loss_weights)
        epochs = []
        if not info["diverged"]:
            for epoch, path in sorted(info["snapshots"].items()):
                snapshot = model if epoch == config.epochs else keras.models.load_model(path)
                network_outputs(snapshot, ctx.state["view"], classes, config.batch_size).save(
                    _outputs_file(unit, epoch))
                epochs.append(int(epoch))
        keras.backend.clear_session(free_memory=True)
        return {"diverged": bool(info["diverged"]), "epochs": epochs}

    def assemble(self, ctx, units):
        from subcluster_adacos.multi_distribution import (NetworkOutputs, TemporalMaxScorer, choose_variants_on_dev,
                                                          decide, decision_thresholds, paper_variants,
                                                          score_outputs, select_by_type, temporal_max)

        config, table, experiments = ctx.config, ctx.table, ctx.state["experiments"]
        ctx.state["normalizer"].save(ctx.run.file("models", "normalizer.npz"))
        tmax_term = None
        if table["machine_type"].isin(config.tmax_types).any():  # eq. (4)
            tmax = temporal_max(ctx.state["features"], ctx.state["normalizer"])
            tmax_term = TemporalMaxScorer(config.tmax_types, config.reg_covar).fit(tmax, table).term(tmax, table)

        def score_snapshot(unit, epoch):
            return score_outputs(NetworkOutputs.load(_outputs_file(unit, epoch)), table, tmax_term,
                                 config.reg_covar, config.component_weights, config.target_decision,
                                 gmm_score=config.gmm_score, section_gmm_data=config.section_gmm_data)

        singles = {}
        ensembles, listing = build_ensembles(units, score_snapshot, ctx.log, singles)
        ctx.run.write_csv("models/score_sets.csv", listing)
        machine_types = sorted(set(table["machine_type"]))
        choice = paper_variants(machine_types, config.sections_only_types)
        choice_note = "variant per machine type: the paper's (Sec. 2.5)"
        if config.variant_choice == "dev":
            choice, dev_scores = choose_variants_on_dev(table, {v: s.score for v, s in ensembles.items()}, choice)
            ctx.run.write_csv("variant_choice.csv", dev_scores)
            choice_note = "variant per machine type: the better on the development set"
        proposed = select_by_type(table, ensembles, choice)
        scores, decision_scores = systems_for(experiments, ensembles, proposed)
        for (n_sub, epoch), by_variant in sorted(singles.items()):  # the proposed system from one score set
            if set(choice.values()) <= set(by_variant):
                scores[f"single_S{n_sub:02d}_epoch{epoch:04d}"] = select_by_type(table, by_variant, choice).score
        decisions = {}
        for name, values in decision_scores.items():
            thresholds = decision_thresholds(values, table, config.threshold_percentile)
            ctx.run.write_csv(f"thresholds/{name}.csv", thresholds)
            decisions[name] = decide(values, table, thresholds)
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

        return Assembled(scores, decisions, report=lambda ctx, per_unit, summary: report(
            ctx, experiments, per_unit, summary, notes), claims=claims)


def report(ctx, experiments, per_unit, summary, notes) -> list[str]:
    """The sections of comparison.md (Tables 2-5 for the experiments run, :func:`paper_tables`); also printed."""
    from asdcore.tables import render_markdown

    text = ["Experiments: " + ", ".join(experiments), ""]
    if summary.empty:
        return text + ["No labelled test clips: submission files only."]
    for spec, ours in paper_tables(experiments, per_unit, summary):
        markdown, frame = render_markdown(spec, ours, notes)
        text.append(markdown)
        print("\n" + spec.title + (f"  [{QUICK_BANNER}]" if ctx.quick else ""))
        print(frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
    official = summary[(summary["system"] == "proposed") & (summary["machine_type"] == "all")
                       & (summary["domain"] == "all") & (summary["statistic"] == "harmonic mean")]
    for row in official.itertuples(index=False):
        print(f"official score (harmonic mean of all AUCs and pAUCs), {row.part}: {100 * row.score:.2f} %")
    return text


def _checkpoints(config) -> list[int]:
    epochs = [e for e in range(1, config.epochs + 1) if e % config.checkpoint_every == 0]
    return epochs if epochs and epochs[-1] == config.epochs else epochs + [config.epochs]


METHOD = MultiDistribution()
