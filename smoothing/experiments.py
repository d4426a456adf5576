"""The ``smoothing`` command of ``run_dcase2021.py``: the experiments of Fujimura, Imoto and Toda,
"Discriminative neighborhood smoothing for generative anomalous sound detection" (DCASE 2021 data), as an
:class:`asdcore.runner.Method`.

``--experiment``: ``table`` (Table II: SerialOE, AE, Proposed, Proposed (Oracle), per machine type the
harmonic mean of AUC and pAUC over sections 03-05, All-hmean, ToyCar-5; Table I: the hyper-parameters
chosen on sections 00-02, the Oracle's on 03-05), ``fraction`` (Fig. 5: only 5 %, 10 %, ..., 100 % of the
test clips of sections 03-05 observed, 20 draws) or ``all`` (default: both; the networks are trained once).

Units of work (paper IV-A), one per network, each trained on 85 % of the source training clips and two
target clips of every section of its machine type (:func:`smoothing.protocol.training_split`):

- ``ae_<machine type>``: a_G, the DCASE baseline autoencoder (:mod:`smoothing.autoencoder`); writes
  ``model.keras``, ``history.csv`` and ``segment_scores.npy`` (a_G of every 4 s crop of every test clip of
  its type);
- ``serial_oe_<machine type>``: f_D, SerialOE (:mod:`smoothing.serial_oe`; the other machine types are its
  pseudo-anomalies); writes ``model.keras``, ``history.csv`` and ``embeddings.npy`` (f_D of every crop of
  every training and test clip of its type).

Clips are amplitude-standardised (:func:`smoothing.training.standardize_features`). :meth:`Smoothing.assemble`
reads the unit folders and runs the protocol (:mod:`smoothing.protocol`, no network): smoothing (eq. 7,
:mod:`smoothing.knn`) among the 4 s test segments of one machine type and section for every K of the grid
2-2048 and both "Data" choices (saturated settings flagged), chosen per machine type on sections 00-02
("Proposed") and 03-05 ("Proposed (Oracle)", whose ToyCar-5 uses its own best setting, Table II's note);
SerialOE's GMM per section, clusters and data chosen on sections 00-02.

Outputs besides the runner's (``scores/<system>/``, ``results.csv``, ``comparison.md``, ``units/``):
``selection.csv`` (every setting's score, with saturation), ``table1.csv`` (Table I beside the paper's),
``fraction.csv``, ``fraction_draws.csv`` and ``plots/fig5_fraction.png`` (Fig. 5), ``models/split.csv``.

``--generative subcluster-adacos --generative-scores DIR`` smooths the scores of the multi-distribution
system (Wilkinghoff 2021, ``run_dcase2021.py multi-distribution``) instead of the autoencoder's (no AE
units): a combination the paper did not try, reported beside the others.

The settings live in :mod:`smoothing.settings`, the paper tables in :mod:`smoothing.tables`; this module keeps
the protocol (re-exporting the settings' names).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from asdcore.errors import ASDError
from asdcore.runner import Assembled, Method
from smoothing.settings import (  # noqa: F401 - re-exported: the command's names
    EXPERIMENTS, GENERATIVE, ProtocolConfig, SmoothingConfig, load_configs, quick_config)
from smoothing.tables import _fraction_section, _notes, _table_sections
from smoothing.training import ModelCache, crop_frames, standardize_features

__all__ = ["ProtocolConfig", "SmoothingConfig", "load_configs", "Smoothing", "METHOD", "EXPERIMENTS", "GENERATIVE"]


# ------------------------------------------------------------------------------------------ the method
class Smoothing(Method):
    command = "smoothing"
    year = 2021
    title = "Discriminative neighbourhood smoothing (Fujimura et al.)"
    clear_session_between_units = False  # the compiled networks are reused across units (ModelCache)

    def default_config(self, quick):
        return quick_config() if quick else SmoothingConfig()

    def add_arguments(self, parser):
        parser.add_argument("--experiment", default="all", choices=list(EXPERIMENTS) + ["all"],
                            help="table: Tables I and II; fraction: Fig. 5; all: both (default)")
        parser.add_argument("--generative", default="ae", choices=GENERATIVE,
                            help="a_G: the paper's autoencoder (default) or the multi-distribution sub-cluster "
                                 "AdaCos system's scores (needs --generative-scores)")
        parser.add_argument("--generative-scores", type=Path, default=None, metavar="DIR",
                            help="folder of DCASE 2021 anomaly_score_*.csv files of the generative system, e.g. "
                                 "scores/<system>/ of a run_dcase2021.py multi-distribution run")

    def experiment_name(self, args):
        """``smoothing-<experiment>`` (one naming rule for every command: quick mode is in config.yaml, the
        log and every output, not in the folder name); the flags are checked here, before any folder exists."""
        if args.generative == "subcluster-adacos" and args.generative_scores is None:
            raise ASDError("--generative subcluster-adacos needs --generative-scores DIR: run `run_dcase2021.py "
                           "multi-distribution` first and pass its scores folder (runs/2021/.../scores/<system>/)")
        if args.generative == "ae" and args.generative_scores is not None:
            raise ASDError("--generative-scores is only used with --generative subcluster-adacos; drop it or add "
                           "--generative subcluster-adacos")
        return f"smoothing-{args.experiment}"

    def check(self, ctx):
        if ctx.year >= 2022 and "source" in ctx.config.protocol.datas:
            # adaptation "neighbours: all" (docs/later-dcase.md): the 2022-2025 evaluation test names carry no
            # domain, so Table I's "Data = source" (neighbours among source test clips only) cannot be applied
            ctx.config = replace(ctx.config, protocol=replace(ctx.config.protocol, datas=("all",)))
            ctx.log.info("DCASE %d: neighbours among all test clips (Data = all): test domains are unknown",
                         ctx.year)
        c, table = ctx.config, ctx.table
        c.protocol.check()
        paired = (c.ae.n_segments, c.ae.segment_seconds) == (c.serial_oe.n_segments, c.serial_oe.segment_seconds)
        if c.protocol.level == "segment" and ctx.args.generative == "ae" and not paired:
            raise ASDError("level 'segment' pairs a_G and f_D crop by crop: give the autoencoder and SerialOE the "
                           "same n_segments and segment_seconds in --config")
        machine_types = sorted(table["machine_type"].unique())
        if len(machine_types) < 2:
            raise ASDError("SerialOE needs at least two machine types (the others are its pseudo-anomalies); "
                           f"the data hold only {machine_types}")
        parts = _parts(ctx)
        if "dev" not in parts:
            raise ASDError("no labelled development test clips (sections 00-02): the hyper-parameters are chosen "
                           "there; give a data root with dev_data/")
        if "eval" not in parts:
            if ctx.args.experiment in ("fraction", "all"):
                raise ASDError("Fig. 5 (--experiment fraction/all) needs labelled evaluation test clips (sections "
                               "03-05): give --ground-truth with the eval labels, or use --experiment table")
            ctx.log.warning("no labelled evaluation test clips: Proposed (Oracle) is skipped (give --ground-truth "
                            "with the eval labels)")

    def prepare(self, ctx):
        from smoothing.protocol import training_split

        c = ctx.config
        networks = (("ae", c.ae),) if ctx.args.generative == "ae" else ()
        ctx.state["mels"] = {name: replace(net.logmel_config(),
                                           n_frames=crop_frames(c.protocol.clip_seconds, net.sr, net.hop_length))
                             for name, net in networks + (("serial_oe", c.serial_oe),)}
        for name, mel in ctx.state["mels"].items():  # cached; unreadable clips (--skip-bad-files) leave the table
            if not (name == "serial_oe" and c.serial_oe.input == "waveform"):  # no store: mel of every batch
                ctx.features(mel)
        ctx.table = ctx.table.reset_index(drop=True)
        ctx.state["role"] = training_split(ctx.table, c.protocol.source_fraction, c.protocol.n_target_fit, ctx.seed)

    def units(self, ctx):
        types = sorted(ctx.table["machine_type"].unique())
        networks = (["ae"] if ctx.args.generative == "ae" else []) + ["serial_oe"]
        return [ctx.unit(f"{net}_{t}", {"network": net, "machine_type": t}) for net in networks for t in types]

    def estimate(self, ctx, units):
        """Training steps: per epoch one batch per ``batch_segments`` fitting clips of the type (a_G) or per
        half batch of them (f_D: the other half are other types' clips), as CropBatches / OEBatches count. The
        CPU-hours estimate (``trainer_steps``) counts SerialOE's steps only: the autoencoder's step time was not
        measured by the benchmarks."""
        c, fit = ctx.config, ctx.state["role"] == "fit"
        per_batch = {"ae": (c.ae.epochs, c.ae.batch_segments),
                     "serial_oe": (c.serial_oe.epochs, max(1, c.serial_oe.batch_size // 2))}
        steps = {"ae": 0, "serial_oe": 0}
        for u in units:
            epochs, clips = per_batch[u.spec["network"]]
            steps[u.spec["network"]] += epochs * -(-int((fit & ctx.mask(machine_type=u.spec["machine_type"])).sum())
                                                   // clips)
        return {"steps": steps["ae"] + steps["serial_oe"], "trainer": f"serialoe-{c.serial_oe.backbone}",
                "trainer_steps": steps["serial_oe"],
                "networks": sum(u.spec["network"] == "serial_oe" for u in units)}

    def train_unit(self, ctx, unit):
        from asdcore.atomic_io import atomic_save_npy, atomic_write_csv

        c, t = ctx.config, unit.spec["machine_type"]
        role = ctx.state["role"]
        fit, val, test, of_type = role == "fit", role == "val", ctx.mask(split="test"), ctx.mask(machine_type=t)
        options = dict(seed=unit.seed, validate_every=c.protocol.validate_every, jit_compile=c.protocol.jit_compile,
                       cache=ctx.state.setdefault("model_cache", ModelCache()),  # compiled once per process
                       folder=unit.folder)  # training_log.csv, tensorboard/ (asdcore.keras_utils)
        started = time.perf_counter()
        if unit.spec["network"] == "ae":
            from smoothing.autoencoder import score_clips, train_autoencoder

            need = of_type & (fit | val | test)
            x = _clips(ctx, "ae", need)
            model, history = train_autoencoder(x[fit[need]], x[val[need]], c.ae, **options)
            _, segments = score_clips(model, x[test[need]], c.ae)
            atomic_save_npy(unit.folder / "segment_scores.npy", segments, overwrite=True)
        else:
            from smoothing.serial_oe import embed_clips, train_serial_oe

            x = _clip_source(ctx, "serial_oe")  # every clip, read batch by batch (other types = the outliers)
            sections = sorted(ctx.table.loc[of_type, "unit"].unique())
            section_ids = np.where(of_type, ctx.table["unit"].map({s: i for i, s in enumerate(sections)}), 0)
            ids = section_ids.astype(np.int64)
            model, history = train_serial_oe(
                x.subset(fit & of_type), ids[fit & of_type], x.subset(fit & ~of_type), len(sections), c.serial_oe,
                val=(x.subset(val & of_type), ids[val & of_type], x.subset(val & ~of_type)), **options)
            embeddings = embed_clips(model, x.subset((test | fit) & of_type), c.serial_oe)
            atomic_save_npy(unit.folder / "embeddings.npy", embeddings, overwrite=True)
        model.save(unit.folder / "model.keras")
        atomic_write_csv(history, unit.folder / "history.csv", overwrite=True)
        val_loss = history["val_loss"].dropna()
        ctx.log.info("%s: %d epochs, loss %.4g, val %.4g (%.1f s)", unit.name, len(history),
                     history["loss"].iloc[-1], val_loss.iloc[-1] if len(val_loss) else np.nan,
                     time.perf_counter() - started)
        return {"epochs": int(len(history)), "loss": float(history["loss"].iloc[-1]),
                "val_loss": float(val_loss.iloc[-1]) if len(val_loss) else None}

    def assemble(self, ctx, units):
        from threadpoolctl import threadpool_limits

        from asdcore.classification import with_sections
        from smoothing.maps import diagnostics

        c, table = ctx.config, ctx.table
        role = ctx.state["role"]
        ctx.run.write_csv("models/split.csv", table.loc[role != "", ["file", "part", "machine_type", "unit",
                                                                     "domain"]].assign(role=role[role != ""]))
        fit, test = role == "fit", ctx.mask(split="test")
        emb = np.full((len(table), c.serial_oe.n_segments, c.serial_oe.embedding_dim), np.nan, dtype=np.float32)
        gen_seg = np.full((len(table), c.ae.n_segments), np.nan)
        for unit in units:
            of_type = ctx.mask(machine_type=unit.spec["machine_type"])
            if unit.spec["network"] == "ae":
                gen_seg[test & of_type] = _load(unit, "segment_scores.npy", test & of_type)
            else:
                emb[(test | fit) & of_type] = _load(unit, "embeddings.npy", (test | fit) & of_type)
        if ctx.args.generative == "ae":
            generative_name, gen_clip = "AE", gen_seg.mean(axis=1)
        else:
            generative_name, gen_clip = "SubclusterAdaCos", _given_scores(table, ctx.args.generative_scores)
            # per-clip scores: at level "segment" every 4 s segment of a clip carries its clip's score
            gen_seg = np.repeat(gen_clip[:, None], c.serial_oe.n_segments, axis=1)
        # one BLAS thread for the many small distance matrices of quick runs (spinning threads on a busy CPU)
        with threadpool_limits(limits=1 if ctx.quick else None, user_api="blas"):
            systems, chosen, saturated, toycar5 = _systems(ctx, emb, gen_clip, gen_seg, fit, test, generative_name)
            fig5 = (_fraction(ctx, emb, gen_clip, gen_seg, chosen.get("Proposed_Oracle"), generative_name)
                    if ctx.args.experiment in ("fraction", "all") else None)
        notes = _notes(ctx, generative_name)
        maps_and_accuracy = diagnostics(ctx, units, emb)  # plots/embeddings, classification.csv

        def report(ctx, per_unit, summary):
            text = []
            if ctx.args.experiment in ("table", "all"):
                text += _table_sections(ctx, summary, systems, chosen, saturated, toycar5, generative_name, notes)
            if fig5 is not None:
                text += _fraction_section(ctx, fig5, notes)
            return text

        def claims(confidence):
            from smoothing.claims import claims_for

            return claims_for(table, systems, generative_name)

        table_systems = systems if ctx.args.experiment in ("table", "all") else {}
        return Assembled(table_systems, report=with_sections(report, maps_and_accuracy),
                         plots=not ctx.quick, claims=claims)  # quick: no per-system ROC plots


METHOD = Smoothing()


# ------------------------------------------------------------------------------------------ helpers
def _parts(ctx) -> dict:
    """Labelled test clips of sections 00-02 ("dev") and 03-05 ("eval"), where there are any."""
    from asdcore.selection import labelled_test

    parts = {p: labelled_test(ctx.table) & ctx.mask(part=p) for p in ("dev", "eval")}
    return {p: rows for p, rows in parts.items() if rows.any()}


def _clips(ctx, network: str, rows) -> np.ndarray:
    """The features of network ``network`` of the clips ``rows`` (a copy), amplitude-standardised (IV-A)."""
    mel = ctx.state["mels"][network]
    x = np.array(ctx.features(mel)[rows], dtype=np.float32)
    if ctx.config.protocol.standardize_amplitude:
        standardize_features(x, _amplitude_std(ctx)[rows], mel)
    return x


def _clip_source(ctx, network: str):
    """Every clip of the table for network ``network``, read batch by batch and amplitude-standardised (IV-A)
    on reading: from the memory-mapped feature store, or (SerialOE with ``input: waveform``) computed from
    the recordings (:mod:`asdcore.clip_sources`). One source per network and process, so that the machine
    types' trainers share one copy on the accelerator (:func:`asdcore.input_pipeline.place_clips`)."""
    from asdcore.clip_sources import StoreClips, WaveformClips

    sources = ctx.state.setdefault("clip_sources", {})
    if network in sources:
        return sources[network]
    mel = ctx.state["mels"][network]
    adjust = None
    if ctx.config.protocol.standardize_amplitude:
        std = _amplitude_std(ctx)
        adjust = lambda x, rows: standardize_features(x, std[rows], mel)  # noqa: E731
    if network == "serial_oe" and ctx.config.serial_oe.input == "waveform":
        sources[network] = WaveformClips(ctx.table["path"], mel, adjust=adjust)
    else:
        sources[network] = StoreClips(ctx.features(mel), adjust=adjust)
    return sources[network]


def _amplitude_std(ctx) -> np.ndarray:
    from asdcore.amplitude import waveform_std
    from asdcore.experiment import cache_root

    if "std" not in ctx.state:
        ctx.state["std"] = waveform_std(ctx.table["path"], cache_root(ctx.cache_dir) / "amplitude",
                                        ctx.config.serial_oe.sr)
    return ctx.state["std"]


def _load(unit, name: str, rows) -> np.ndarray:
    values = np.load(unit.folder / name)
    if len(values) != int(rows.sum()):
        raise ASDError(f"{unit.folder / name}: {len(values)} rows for {int(rows.sum())} clips; the data changed "
                       "since the unit was trained: start a new run")
    return values


def _given_scores(table, folder) -> np.ndarray:
    """The generative system's scores of every test clip, read from DCASE 2021 anomaly score files."""
    from asdcore.submission import attach_scores, read_scores

    joined = attach_scores(table, read_scores(folder, 2021))
    test = (table["split"] == "test").to_numpy()
    missing = test & joined["score"].isna().to_numpy()
    if missing.any():
        first = table[missing].iloc[0]
        raise ASDError(f"{folder}: no scores for {int(missing.sum())} test clips (first: {first['machine_type']} "
                       f"{first['unit']} {first['domain']}); score the same data with run_dcase2021.py "
                       "multi-distribution (same --data-root)")
    scores = joined["score"].to_numpy(dtype=float, copy=True)
    scores[~test] = np.nan
    return scores


def _systems(ctx, emb, gen_clip, gen_seg, fit, test, generative_name):
    """Every setting of Proposed and SerialOE scored; the chosen ones composed into the systems."""
    from smoothing import protocol as P
    from smoothing.protocol import _log_saturation
    from smoothing.serial_oe import _serial_oe_grid

    protocol, table, log = ctx.config.protocol, ctx.table, ctx.log
    t0 = time.perf_counter()
    parts = _parts(ctx)
    evaluators = {p: P.UnitEvaluator(table[rows]) for p, rows in parts.items()}
    rows_of = {p: np.flatnonzero(rows) for p, rows in parts.items()}
    types_col = table["machine_type"].to_numpy()

    # Proposed: every (data, K), chosen per machine type on dev (Proposed) and eval (Oracle)
    features, scores, domains, pools, clip_index = P.smoothing_items(table, emb, gen_clip, gen_seg, test,
                                                                     protocol.pool, protocol.level)
    ks = P.k_grid(protocol.k_min, protocol.k_max)
    saturated = P.saturation_frame(table[test], domains, pools, clip_index, ks, protocol.datas, protocol.exclude)
    _log_saturation(log, saturated, P.pool_sizes(domains, pools), protocol)
    grid_prop = {}
    for setting, values in P.smooth_grid(features, scores, domains, pools, clip_index, int(test.sum()), ks,
                                         protocol.datas, protocol.metric, exclude=protocol.exclude).items():
        grid_prop[setting] = np.full(len(table), np.nan)
        grid_prop[setting][test] = values
    names_prop = ("data", "k")
    table_prop = P.grid_table(evaluators, grid_prop, names_prop, rows_of)
    chosen = {"Proposed": P.fill_unseen_types(P.select_best(table_prop, names_prop, "dev"), table_prop, names_prop,
                                              "dev", types_col[test])}
    toycar5 = None
    if "eval" in parts:
        chosen["Proposed_Oracle"] = P.fill_unseen_types(P.select_best(table_prop, names_prop, "eval"), table_prop,
                                                        names_prop, "eval", types_col[test])
        toycar5 = P.toycar5_oracle(table, grid_prop)

    # SerialOE: GMM clusters and data chosen on dev
    grid_oe, clusters = _serial_oe_grid(table, emb, fit, test, protocol, ctx.seed, log)
    names_oe = ("data", "n_clusters")
    table_oe = P.grid_table(evaluators, grid_oe, names_oe, rows_of)
    chosen["SerialOE"] = P.fill_unseen_types(P.select_best(table_oe, names_oe, "dev"), table_oe, names_oe, "dev",
                                             types_col[test])
    log.info("K grid %s, GMM clusters %s: settings scored in %.1f s", ks, clusters, time.perf_counter() - t0)

    selection = pd.concat([table_prop.assign(system="Proposed", n_clusters=np.nan),
                           table_oe.assign(system="SerialOE", k=np.nan)], ignore_index=True)
    # "data" is a setting of the grid here (which clips the neighbours come from): the run's data is data_source
    selection = selection[["system", "part", "data", "k", "n_clusters", "machine_type", "score"]].assign(
        mode=ctx.mode, data_source=ctx.data)
    selection[["k", "n_clusters"]] = selection[["k", "n_clusters"]].astype("Int64")
    ctx.run.write_csv("selection.csv", P.with_saturation(selection, saturated))

    systems = {"SerialOE": P.compose(types_col, chosen["SerialOE"], grid_oe, names_oe), generative_name: gen_clip,
               "Proposed": P.compose(types_col, chosen["Proposed"], grid_prop, names_prop)}
    if "Proposed_Oracle" in chosen:
        systems["Proposed_Oracle"] = P.compose(types_col, chosen["Proposed_Oracle"], grid_prop, names_prop)
    return systems, chosen, saturated, toycar5


def _fraction(ctx, emb, gen_clip, gen_seg, oracle, generative_name) -> pd.DataFrame:
    """Fig. 5: the curve (written to fraction.csv, fraction_draws.csv and plots/fig5_fraction.png)."""
    from asdcore.report import plot_grid
    from smoothing.protocol import fraction_curve, k_grid, smoothing_items

    protocol, table = ctx.config.protocol, ctx.table
    t0 = time.perf_counter()
    rows = _parts(ctx)["eval"]
    features, scores, domains, pools, clip_index = smoothing_items(table, emb, gen_clip, gen_seg, rows,
                                                                   protocol.pool, protocol.level)
    curve, draws = fraction_curve(table[rows].reset_index(drop=True), features, scores, domains, pools, clip_index,
                                  k_grid(protocol.k_min, protocol.k_max), protocol.datas,
                                  fractions=protocol.fractions, n_draws=protocol.n_draws, seed=ctx.seed,
                                  metric=protocol.metric, selection=protocol.fraction_selection, oracle=oracle,
                                  generative=gen_clip[rows], exclude=protocol.exclude)
    curve["system"] = curve["system"].replace({"generative": generative_name})
    # "data" is a setting of the grid here, as in selection.csv: the run's data goes to data_source
    ctx.run.write_csv("fraction.csv", curve.assign(mode=ctx.mode, data_source=ctx.data))
    ctx.run.write_csv("fraction_draws.csv", draws.assign(mode=ctx.mode, data_source=ctx.data))
    bands = curve.assign(percent=100 * curve["fraction"], low=curve["mean"] - curve["std"],
                         high=curve["mean"] + curve["std"])
    plot_grid(bands, "percent", "mean", ctx.run.file("plots", "fig5_fraction.png"), low="low", high="high",
              panel_titles={"all": "All-hmean"}, n_cols=4, xlabel="test clips used (%)", ylabel="hmean AUC, pAUC (%)",
              title=f"Fig. 5: smoothing with a fraction of the test clips (sections 03-05)\n{ctx.tag}")
    ctx.log.info("Fig. 5: %d fractions x %d draws in %.1f s", len(protocol.fractions), protocol.n_draws,
                 time.perf_counter() - t0)
    return curve


