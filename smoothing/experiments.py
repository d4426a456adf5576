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
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from asdcore.errors import ASDError
from asdcore.runner import Assembled, Method
from smoothing.protocol import FIG5_FRACTIONS
from smoothing.training import ModelCache, crop_frames, standardize_features

__all__ = ["ProtocolConfig", "SmoothingConfig", "load_configs", "Smoothing", "METHOD", "EXPERIMENTS", "GENERATIVE"]

EXPERIMENTS = ("table", "fraction")
GENERATIVE = ("ae", "subcluster-adacos")
QUICK_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
_PAPER_METHOD = {"SerialOE": "SerialOE", "AE": "AE", "Proposed": "Proposed", "Proposed_Oracle": "Proposed (Oracle)"}


def _err(message: str) -> ASDError:
    return ASDError(f"smoothing/experiments.py: {message}")


@dataclass(frozen=True)
class ProtocolConfig:
    """The protocol's settings; defaults = Fujimura et al. (section / table cited) or documented choices.

    Attributes
    ----------
    source_fraction, n_target_fit :
        85 % of the source training clips and two target clips train the models (IV-A).
    standardize_amplitude :
        Every clip scaled to zero mean and unit variance (IV-A).
    clip_seconds :
        Frames kept per clip (10 s clips, IV-A); longer clips keep their last 10 s, shorter ones are
        repeat-padded (:func:`asdcore.audio.fit_length`).
    k_min, k_max :
        The K grid: powers of two from 2 (K = 1 is a_G itself) to 2048 (Table I), every one evaluated; a
        (data, K) that covers every candidate of every pool is reported as saturated
        (:func:`smoothing.protocol.saturated_settings`).
    datas :
        Test items used as neighbours: "source" or "all" (Table I, "Data").
    metric :
        Distance between f_D features (cosine; see :class:`smoothing.knn.NeighbourhoodSmoother`).
    pool, level :
        Which test items smooth each other (issue 11). Default ``level="segment"``, ``pool="section"``:
        eq. (7) over the seven 4 s segments of every test clip of one machine type and section, then the
        mean per clip. On the real data (100 normal + 100 anomalous clips per section and domain) a
        section then holds 1,400 source / 2,800 segments in all, so every K of Table I (Source up to
        1,024, All up to 2,048, Oracle included) is below its pool and a real choice; the paper scores
        4 s segments (IV-A) and draws its smoothing per section (Fig. 3, 4; Fig. 5 keeps each section's
        ratios). ``level="clip"`` (one f_D and a_G per clip: the mean over its crops; 200 / 400 per
        section: every K >= 256 / 512 saturates) and ``pool="machine_type"`` (all sections of the type in
        the same part, as the kNN back-end of ASDKit by default; 600 / 1,200 clips, 4,200 / 8,400
        segments) are the other readings.
    gmm_clusters, gmm_datas, gmm_covariance, gmm_reg_covar :
        SerialOE's inlier model h: a GMM per section on f_D of the training clips; clusters and data chosen
        on sections 00-02 (Table I lists 2-32 clusters; the grid is powers of two 1-32); covariance and
        regulariser are scikit-learn's defaults (not stated in the paper).
    fractions, n_draws, fraction_selection :
        Fig. 5: 5 %, 10 %, ..., 100 %, 20 draws; "per_fraction": per fraction and machine type the (data, K)
        with the best mean over the draws ("We always gave the best hyperparameter"), or "oracle": the
        Oracle setting of the full test set.
    validate_every :
        Epochs between validation losses (0: after the last epoch only).
    jit_compile :
        Keras ``jit_compile`` of both networks ("auto"; False saves the XLA compilation on CPU quick runs).
    """

    source_fraction: float = 0.85
    n_target_fit: int = 2
    standardize_amplitude: bool = True
    clip_seconds: float = 10.0
    k_min: int = 2
    k_max: int = 2048
    datas: tuple = ("source", "all")
    metric: str = "cosine"
    pool: str = "section"
    level: str = "segment"
    gmm_clusters: tuple = (1, 2, 4, 8, 16, 32)
    gmm_datas: tuple = ("source", "all")
    gmm_covariance: str = "full"
    gmm_reg_covar: float = 1e-6
    fractions: tuple = FIG5_FRACTIONS
    n_draws: int = 20
    fraction_selection: str = "per_fraction"
    validate_every: int = 10
    jit_compile: object = "auto"

    def quick(self) -> "ProtocolConfig":
        """CPU-sized: 1-4 GMM clusters, four fractions x 5 draws for Fig. 5, no XLA."""
        return replace(self, gmm_clusters=(1, 2, 4), fractions=QUICK_FRACTIONS, n_draws=5, validate_every=0,
                       jit_compile=False)

    def check(self) -> "ProtocolConfig":
        if self.pool not in ("section", "machine_type"):
            raise _err(f"pool must be 'section' or 'machine_type', got {self.pool!r}")
        if self.level not in ("clip", "segment"):
            raise _err(f"level must be 'clip' or 'segment', got {self.level!r}")
        if self.fraction_selection not in ("per_fraction", "oracle"):
            raise _err(f"fraction_selection must be 'per_fraction' or 'oracle', got {self.fraction_selection!r}")
        for name in ("datas", "gmm_datas"):
            values = tuple(getattr(self, name))
            if not values or any(v not in ("source", "all") for v in values):
                raise _err(f"{name} must list 'source' and/or 'all', got {values}")
        if not self.gmm_clusters or any(int(c) < 1 for c in self.gmm_clusters):
            raise _err(f"gmm_clusters must be positive integers, got {self.gmm_clusters}")
        if not self.fractions or any(not 0 < float(f) <= 1 for f in self.fractions):
            raise _err(f"fractions must lie in (0, 1], got {self.fractions}")
        if int(self.n_draws) < 1:
            raise _err(f"n_draws must be >= 1, got {self.n_draws}")
        return self


def _ae_config():
    from smoothing.autoencoder import AEConfig

    return AEConfig()


def _serial_oe_config():
    from smoothing.serial_oe import SerialOEConfig

    return SerialOEConfig()


@dataclass(frozen=True)
class SmoothingConfig:
    """The command's settings: the protocol, a_G (:class:`smoothing.autoencoder.AEConfig`, paper IV-A) and f_D
    (:class:`smoothing.serial_oe.SerialOEConfig`, IV-A). A ``--config`` YAML file holds mappings under the
    keys ``protocol``, ``ae`` and ``serial_oe``; unknown keys are refused."""

    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    ae: object = field(default_factory=_ae_config)
    serial_oe: object = field(default_factory=_serial_oe_config)

    def __post_init__(self):
        for name, kind in (("protocol", ProtocolConfig), ("ae", type(_ae_config())),
                           ("serial_oe", type(_serial_oe_config()))):
            if not isinstance(getattr(self, name), kind):
                raise ASDError(f"config section '{name}' must be a mapping of settings, got {getattr(self, name)!r}")


def quick_config() -> SmoothingConfig:
    """CPU-sized: the quick protocol; the autoencoder with 10 epochs instead of 1500 and three 4 s crops per
    clip at inference instead of seven (0-4, 3-7, 6-10 s: the whole clip, less overlap); SerialOE with the
    light CNN instead of EfficientNet-B0, 4 epochs, batches of 32 segments, a coarser mel input (64 bins,
    32 ms hop: about 7x cheaper than the paper's 224 bins / 16 ms) and three crops at inference."""
    paper = SmoothingConfig()
    return SmoothingConfig(paper.protocol.quick(), replace(paper.ae, epochs=10, n_segments=3),
                           replace(paper.serial_oe, backbone="light", epochs=4, batch_size=32, n_mels=64,
                                   hop_length=512, n_segments=3))


def load_configs(yaml_path=None, quick: bool = False):
    """(ProtocolConfig, AEConfig, SerialOEConfig): the paper's settings (the quick ones with ``quick``), then
    the YAML file's sections ``protocol``, ``ae``, ``serial_oe``."""
    from asdcore.experiment import resolve_config

    config = resolve_config(quick_config() if quick else SmoothingConfig(), yaml_path)
    return config.protocol.check(), config.ae, config.serial_oe


# ------------------------------------------------------------------------------------------ the method
class Smoothing(Method):
    command = "smoothing"
    year = 2021
    title = "Discriminative neighbourhood smoothing (Fujimura et al.)"

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
        for mel in ctx.state["mels"].values():  # cached; unreadable clips (--skip-bad-files) leave the table here
            ctx.features(mel)
        ctx.table = ctx.table.reset_index(drop=True)
        ctx.state["role"] = training_split(ctx.table, c.protocol.source_fraction, c.protocol.n_target_fit, ctx.seed)

    def units(self, ctx):
        types = sorted(ctx.table["machine_type"].unique())
        networks = (["ae"] if ctx.args.generative == "ae" else []) + ["serial_oe"]
        return [ctx.unit(f"{net}_{t}", {"network": net, "machine_type": t}) for net in networks for t in types]

    def train_unit(self, ctx, unit):
        from asdcore.experiment import atomic_write_csv

        c, t = ctx.config, unit.spec["machine_type"]
        role = ctx.state["role"]
        fit, val, test, of_type = role == "fit", role == "val", ctx.mask(split="test"), ctx.mask(machine_type=t)
        options = dict(seed=unit.seed, validate_every=c.protocol.validate_every, jit_compile=c.protocol.jit_compile,
                       cache=ctx.state.setdefault("model_cache", ModelCache()))  # compiled once per process
        started = time.perf_counter()
        if unit.spec["network"] == "ae":
            from smoothing.autoencoder import score_clips, train_autoencoder

            need = of_type & (fit | val | test)
            x = _clips(ctx, "ae", need)
            model, history = train_autoencoder(x[fit[need]], x[val[need]], c.ae, **options)
            _, segments = score_clips(model, x[test[need]], c.ae)
            np.save(unit.folder / "segment_scores.npy", segments)
        else:
            from smoothing.serial_oe import embed_clips, train_serial_oe

            need = fit | val | (test & of_type)  # other machine types' training clips are the outliers
            x = _clips(ctx, "serial_oe", need)
            sections = sorted(ctx.table.loc[of_type, "unit"].unique())
            section_ids = np.where(of_type, ctx.table["unit"].map({s: i for i, s in enumerate(sections)}), 0)
            section_ids = section_ids.astype(np.int64)
            mine, other = of_type[need], ~of_type[need]
            ids = section_ids[need]
            model, history = train_serial_oe(
                x[fit[need] & mine], ids[fit[need] & mine], x[fit[need] & other], len(sections), c.serial_oe,
                val=(x[val[need] & mine], ids[val[need] & mine], x[val[need] & other]), **options)
            np.save(unit.folder / "embeddings.npy", embed_clips(model, x[(test | fit)[need] & mine], c.serial_oe))
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

        def report(ctx, per_unit, summary):
            text = []
            if ctx.args.experiment in ("table", "all"):
                text += _table_sections(ctx, summary, systems, chosen, saturated, toycar5, generative_name, notes)
            if fig5 is not None:
                text += _fraction_section(ctx, fig5, notes)
            return text

        def claims(confidence):
            from smoothing.claims import claims_for

            return claims_for(confidence, generative_name)

        table_systems = systems if ctx.args.experiment in ("table", "all") else {}
        return Assembled(table_systems, report=report, plots=not ctx.quick,  # quick: no per-system ROC plots
                         claims=claims)


METHOD = Smoothing()


# ------------------------------------------------------------------------------------------ helpers
def _parts(ctx) -> dict:
    """Labelled test clips of sections 00-02 ("dev") and 03-05 ("eval"), where there are any."""
    from asdcore.selection import labelled_test

    parts = {p: labelled_test(ctx.table) & ctx.mask(part=p) for p in ("dev", "eval")}
    return {p: rows for p, rows in parts.items() if rows.any()}


def _clips(ctx, network: str, rows) -> np.ndarray:
    """The features of network ``network`` of the clips ``rows`` (a copy), amplitude-standardised (IV-A)."""
    from asdcore.amplitude import waveform_std
    from asdcore.experiment import cache_root

    mel = ctx.state["mels"][network]
    x = np.array(ctx.features(mel)[rows], dtype=np.float32)
    if ctx.config.protocol.standardize_amplitude:
        if "std" not in ctx.state:
            ctx.state["std"] = waveform_std(ctx.table["path"], cache_root(ctx.args.cache_dir) / "amplitude",
                                            ctx.config.serial_oe.sr)
        standardize_features(x, ctx.state["std"][rows], mel)
    return x


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


def _serial_oe_grid(table, emb, fit, test, protocol, seed, log) -> tuple[dict, list]:
    """SerialOE scores of every test clip for every (data, clusters): a GMM per section on f_D of the
    section's training clips (all their 4 s crops)."""
    from asdcore.selection import unit_keys
    from smoothing.serial_oe import SerialOEScorer

    source = (table["domain"] == "source").to_numpy()
    keys = unit_keys(table)
    smallest = min(int((fit & (keys == key) & (source if data == "source" else True)).sum())
                   for key in np.unique(keys[test]) for data in protocol.gmm_datas) * emb.shape[1]
    clusters = [int(c) for c in protocol.gmm_clusters if int(c) <= smallest]
    if not clusters:
        raise ASDError(f"SerialOE's GMM: a section has only {smallest} training crops, fewer than "
                       f"{min(protocol.gmm_clusters)} clusters; lower gmm_clusters in --config")
    if len(clusters) < len(protocol.gmm_clusters):
        log.warning("GMM clusters %s dropped: a section has only %d training crops",
                    [c for c in protocol.gmm_clusters if int(c) > smallest], smallest)
    grid = {(data, c): np.full(len(table), np.nan) for data in protocol.gmm_datas for c in clusters}
    for key in np.unique(keys[test]):
        rows = test & (keys == key)
        for data in protocol.gmm_datas:
            train = fit & (keys == key) & (source if data == "source" else True)
            for c in clusters:
                scorer = SerialOEScorer(n_components=c, covariance_type=protocol.gmm_covariance,
                                        reg_covar=protocol.gmm_reg_covar, random_state=seed)
                grid[(data, c)][rows] = scorer.fit(emb[train]).score(emb[rows])
    return grid, clusters


def _log_saturation(log, saturated, sizes, protocol):
    """One log line: the pool sizes and, per data choice, the K from which every pool is saturated."""
    first = {}
    for data in protocol.datas:
        rows = saturated[(saturated["data"] == data) & saturated["saturated"]]
        n_groups = saturated[saturated["data"] == data].groupby(["part", "machine_type"]).ngroups
        full = [int(k) for k, n in rows.groupby("k").size().items() if n == n_groups]
        first[data] = f"K >= {min(full)}" if full else "none"
    log.info("smoothing pools (%s, level %s): %d pools of %d-%d items (%d-%d source); saturated K (a_prop "
             "the same for every candidate, reported, not a tuned choice): %s", protocol.pool, protocol.level,
             len(sizes), sizes["all"].min(), sizes["all"].max(), sizes["source"].min(), sizes["source"].max(),
             ", ".join(f"{data}: {text}" for data, text in first.items()))


def _systems(ctx, emb, gen_clip, gen_seg, fit, test, generative_name):
    """Every setting of Proposed and SerialOE scored; the chosen ones composed into the systems."""
    from smoothing import protocol as P

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
    saturated = P.saturation_frame(table[test], domains, pools, clip_index, ks, protocol.datas)
    _log_saturation(log, saturated, P.pool_sizes(domains, pools), protocol)
    grid_prop = {}
    for setting, values in P.smooth_grid(features, scores, domains, pools, clip_index, int(test.sum()), ks,
                                         protocol.datas, protocol.metric).items():
        grid_prop[setting] = np.full(len(table), np.nan)
        grid_prop[setting][test] = values
    names_prop = ("data", "k")
    table_prop = P.grid_table(evaluators, grid_prop, names_prop, rows_of)
    chosen = {"Proposed": P.select_best(table_prop, names_prop, "dev")}
    toycar5 = None
    if "eval" in parts:
        chosen["Proposed_Oracle"] = P.select_best(table_prop, names_prop, "eval")
        toycar5 = P.toycar5_oracle(table, grid_prop)

    # SerialOE: GMM clusters and data chosen on dev
    grid_oe, clusters = _serial_oe_grid(table, emb, fit, test, protocol, ctx.seed, log)
    names_oe = ("data", "n_clusters")
    table_oe = P.grid_table(evaluators, grid_oe, names_oe, rows_of)
    chosen["SerialOE"] = P.select_best(table_oe, names_oe, "dev")
    log.info("K grid %s, GMM clusters %s: settings scored in %.1f s", ks, clusters, time.perf_counter() - t0)

    selection = pd.concat([table_prop.assign(system="Proposed", n_clusters=np.nan),
                           table_oe.assign(system="SerialOE", k=np.nan)], ignore_index=True)
    selection = selection[["system", "part", "data", "k", "n_clusters", "machine_type", "score"]].assign(mode=ctx.mode)
    selection[["k", "n_clusters"]] = selection[["k", "n_clusters"]].astype("Int64")
    ctx.run.write_csv("selection.csv", P.with_saturation(selection, saturated))

    systems = {"SerialOE": P.compose(types_col, chosen["SerialOE"], grid_oe, names_oe), generative_name: gen_clip,
               "Proposed": P.compose(types_col, chosen["Proposed"], grid_prop, names_prop)}
    if "Proposed_Oracle" in chosen:
        systems["Proposed_Oracle"] = P.compose(types_col, chosen["Proposed_Oracle"], grid_prop, names_prop)
    return systems, chosen, saturated, toycar5


def _fraction(ctx, emb, gen_clip, gen_seg, oracle, generative_name) -> pd.DataFrame:
    """Fig. 5: the curve (written to fraction.csv, fraction_draws.csv and plots/fig5_fraction.png)."""
    from asdcore.experiment import QUICK_BANNER
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
                                  generative=gen_clip[rows])
    curve["system"] = curve["system"].replace({"generative": generative_name})
    ctx.run.write_csv("fraction.csv", curve.assign(mode=ctx.mode))
    ctx.run.write_csv("fraction_draws.csv", draws.assign(mode=ctx.mode))
    bands = curve.assign(percent=100 * curve["fraction"], low=curve["mean"] - curve["std"],
                         high=curve["mean"] + curve["std"])
    plot_grid(bands, "percent", "mean", ctx.run.file("plots", "fig5_fraction.png"), low="low", high="high",
              panel_titles={"all": "All-hmean"}, n_cols=4, xlabel="test clips used (%)", ylabel="hmean AUC, pAUC (%)",
              title="Fig. 5: smoothing with a fraction of the test clips (sections 03-05)"
                    + (f"\n{QUICK_BANNER}" if ctx.quick else ""))
    ctx.log.info("Fig. 5: %d fractions x %d draws in %.1f s", len(protocol.fractions), protocol.n_draws,
                 time.perf_counter() - t0)
    return curve


# ------------------------------------------------------------------------------------------ the report
def _notes(ctx, generative_name) -> list[str]:
    from asdcore.experiment import QUICK_BANNER

    notes = [ctx.source.description]
    if ctx.quick:
        notes.append(f"{QUICK_BANNER}: AE and SerialOE epochs, backbone and input reduced (see config.yaml)")
    notes.append("EfficientNet-B0 starts from random weights (no pretrained weights can be downloaded here)"
                 if not ctx.quick else "SerialOE backbone: the light CNN of smoothing/serial_oe.py, random init")
    if generative_name != "AE":
        notes.append(f"a_G = the given scores of {ctx.args.generative_scores} (sub-cluster AdaCos, multiple "
                     "distributions): a combination the paper did not try; the paper's AE, Proposed and "
                     "Proposed (Oracle) rows are its own (a_G = AE)")
    return notes


def _labels(generative_name) -> dict:
    """Our system -> its row label in Table II (the paper's method name where it is the paper's method)."""
    if generative_name == "AE":
        return dict(_PAPER_METHOD)
    return {"SerialOE": "SerialOE", generative_name: "sub-cluster AdaCos (given scores)",
            "Proposed": "Proposed, a_G = sub-cluster AdaCos",
            "Proposed_Oracle": "Proposed (Oracle), a_G = sub-cluster AdaCos"}


#: Table II's note: "Hyperparameters of Proposed (Oracle) on the ToyCar-5 are 128 for K and All for Data".
PAPER_TOYCAR5_ORACLE = {"data": "all", "k": 128}
_DATA = {"source": "Source", "all": "All"}


def table2_spec(systems, labels, part: str, toycar5: dict | None = None):
    """Table II (``part="eval"``: sections 03-05) or the same statistic on sections 00-02 (``"dev"``, which the
    paper does not print): per method and machine type the harmonic mean of AUC and pAUC over the sections
    and domains, "all" = All-hmean. Hook: ToyCar-5 (AUC of ToyCar section 05, both domains together;
    ``toycar5`` = our value per row label) beside the paper's, on the ToyCar rows."""
    from asdcore.published import load_table
    from asdcore.tables import TableSpec

    def extra(wide):
        if part == "dev":  # the paper prints nothing for sections 00-02
            return wide.drop(columns=[c for c in wide.columns if c.endswith("(paper)")])
        paper = load_table("fujimura2021_table2")
        paper = paper[paper["unit"] == "section_05"].set_index("method")["value"]
        toycar = (wide["machine type"] == "ToyCar").to_numpy()
        wide["ToyCar-5 AUC (ours)"] = np.where(toycar, wide["method"].map(toycar5 or {}).astype(float), np.nan)
        wide["ToyCar-5 AUC (paper)"] = np.where(toycar, wide["method"].map(paper).astype(float), np.nan)
        return wide

    title = ("Table II: harmonic mean of AUC and pAUC over sections 03-05 (%)" if part == "eval" else
             "Sections 00-02 (where the hyper-parameters are chosen; the paper prints none, %)")
    return TableSpec("fujimura2021_table2", title, row_columns=("method",),
                     systems={s: {"method": labels.get(s, s)} for s in systems},
                     filters={"statistic": "harmonic mean", "unit": "all", "domain": "all"}, metrics=("score",),
                     sets=(part,), extra_columns=extra)


def table1_spec(chosen, saturated=None, toycar5=None):
    """Table I: per method and machine type the chosen GMM clusters (SerialOE, on sections 00-02) or K
    (Proposed on 00-02, Oracle on 03-05) beside the paper's. Hooks: the chosen "Data" (ours, paper), whether
    our K saturates its pools (``saturated``, :func:`smoothing.protocol.saturation_frame`), and a row
    "ToyCar-5 (section 05)": the Oracle's own setting for that section (``toycar5``; Table II's note)."""
    from asdcore.published import load_table
    from asdcore.tables import TableSpec

    label = {system: {"method": _PAPER_METHOD[system]} for system in ("SerialOE", "Proposed", "Proposed_Oracle")}
    ours = {(_PAPER_METHOD[s], r.machine_type): r for s, c in chosen.items() for r in c.itertuples()}

    def is_saturated(part, machine_type, data, k):
        if saturated is None:
            return None
        hit = saturated[(saturated["part"] == part) & (saturated["machine_type"] == machine_type)
                        & (saturated["data"] == data) & (saturated["k"] == int(k))]
        return bool(hit["saturated"].iloc[0]) if len(hit) else None

    def extra(wide):
        paper = load_table("fujimura2021_table1").set_index(["method", "machine_type"])["data"]
        wide = wide.drop(columns=[c for c in wide.columns if c.startswith("eval clusters")])
        keys = list(zip(wide["method"], wide["machine type"]))
        wide["Data (ours)"] = [_DATA[ours[k].data] if k in ours else None for k in keys]
        wide["Data (paper)"] = [_DATA[paper[k]] if k in paper.index else None for k in keys]
        wide["saturated (ours)"] = [
            is_saturated("eval" if k[0] == "Proposed (Oracle)" else "dev", k[1], ours[k].data, ours[k].k)
            if k in ours and k[0] != "SerialOE" else None for k in keys]
        if toycar5 is not None:
            row = {"method": "Proposed (Oracle)", "machine type": "ToyCar-5 (section 05)",
                   "eval K (ours)": toycar5["k"], "eval K (paper)": PAPER_TOYCAR5_ORACLE["k"],
                   "Data (ours)": _DATA[toycar5["data"]], "Data (paper)": _DATA[PAPER_TOYCAR5_ORACLE["data"]],
                   "saturated (ours)": is_saturated("eval", "ToyCar", toycar5["data"], toycar5["k"])}
            wide = pd.concat([wide, pd.DataFrame([row])], ignore_index=True)
        for column in wide.columns:
            if column.endswith(("(ours)", "(paper)")) and ("K" in column or "clusters" in column):
                wide[column] = wide[column].astype(float).round().astype("Int64")
        wide["saturated (ours)"] = wide["saturated (ours)"].astype("boolean")
        return wide

    return TableSpec("fujimura2021_table1", "Table I: hyper-parameters chosen per machine type (SerialOE and "
                     "Proposed on sections 00-02, Oracle on 03-05)", row_columns=("method",), systems=label,
                     metrics=("n_clusters", "K"), sets=("dev", "eval"), extra_columns=extra)


def table1_ours(chosen) -> pd.DataFrame:
    """Our chosen hyper-parameters in the published CSVs' tidy vocabulary (set = where they were chosen)."""
    records = []
    for system, choice in chosen.items():
        metric, value = ("n_clusters", "n_clusters") if system == "SerialOE" else ("K", "k")
        for r in choice.itertuples():
            records.append({"system": system, "set": "eval" if system == "Proposed_Oracle" else "dev",
                            "machine_type": r.machine_type, "metric": metric, "value": float(getattr(r, value))})
    return pd.DataFrame(records, columns=["system", "set", "machine_type", "metric", "value"])


def _print(title, frame):
    print(f"\n{title}")
    print(frame.astype(object).where(frame.notna(), "-").to_string(index=False))


def _table_sections(ctx, summary, systems, chosen, saturated, toycar5, generative_name, notes) -> list[str]:
    from asdcore.tables import render_markdown, tidy_results
    from smoothing.protocol import toycar5_auc

    if summary.empty:
        return ["No labelled test clips: submission files only.", ""]
    labels = _labels(generative_name)
    ours5 = {labels[s]: toycar5_auc(ctx.table, scores) for s, scores in systems.items()}
    if toycar5 is not None:
        ours5[labels["Proposed_Oracle"]] = toycar5["auc"]  # its own best setting for the section, as the paper
    text = []
    parts = set(summary["part"])
    tidy = tidy_results(summary)
    for part in ("eval", "dev"):
        if part not in parts:
            continue
        extra = ["per machine type the harmonic mean of all AUC and pAUC values of its sections and domains "
                 "(DCASE 2021: one AUC/pAUC per section and domain); machine type 'all' = All-hmean",
                 "ToyCar-5: AUC of ToyCar section 05, source and target test clips together; Proposed (Oracle) "
                 "with its own best setting for that section (as the paper; see Table I, row ToyCar-5)"] \
            if part == "eval" else []
        spec = table2_spec(systems, labels, part, ours5)
        markdown, frame = render_markdown(spec, tidy, notes + extra)
        text.append(markdown)
        _print(spec.title, frame)
    spec = table1_spec(chosen, saturated, toycar5)
    markdown, frame = render_markdown(spec, table1_ours(chosen), notes + [
        "saturated: our K covers every candidate of its smoothing pools, so a_prop is the same for every "
        "candidate clip (not a tuned choice); see selection.csv for every setting"])
    ctx.run.write_csv("table1.csv", frame.assign(mode=ctx.mode))
    text.append(markdown)
    _print(spec.title, frame)
    return text


def _fraction_section(ctx, curve, notes) -> list[str]:
    from asdcore.report import comparison_markdown

    protocol = ctx.config.protocol
    all_rows = curve[curve["machine_type"] == "all"]
    mean = all_rows.pivot(index="fraction", columns="system", values="mean").mul(100)
    spread = all_rows.pivot(index="fraction", columns="system", values="std").mul(100)
    frame = pd.DataFrame({"test clips (%)": (mean.index * 100).round().astype(int)})
    for system in mean.columns:
        frame[f"{system} All-hmean mean"] = mean[system].to_numpy()
        frame[f"{system} All-hmean std"] = spread[system].to_numpy()
    title = f"Fig. 5: All-hmean with a fraction of the test clips of sections 03-05 ({protocol.n_draws} draws, %)"
    _print(title, frame)
    return [comparison_markdown(title, frame, notes + [
        f"hyper-parameters: {protocol.fraction_selection.replace('_', ' ')} (see smoothing/protocol.py); "
        "plot: plots/fig5_fraction.png; per machine type: fraction.csv"])]
