"""The ``smoothing`` command of ``run_dcase2021.py``: the experiments of Fujimura, Imoto and Toda,
"Discriminative neighborhood smoothing for generative anomalous sound detection" (DCASE 2021 data).

``--experiment`` and what each reproduces:

- ``table``: Table II (SerialOE, AE, Proposed, Proposed (Oracle): per machine type the harmonic mean of
  AUC and pAUC over sections 03-05, All-hmean, ToyCar-5) and Table I (the hyper-parameters chosen on
  sections 00-02: GMM clusters and data of SerialOE, K and data of the proposed method; the Oracle's on
  sections 03-05);
- ``fraction``: Fig. 5, the proposed method when only 5 %, 10 %, ..., 100 % of the test clips of
  sections 03-05 are observed (20 random draws, mean and standard deviation);
- ``all`` (default): both; the networks are trained once.

Steps (paper section IV-A; :mod:`smoothing.protocol` for the protocol itself):

1. Clips read at 16 kHz, amplitude standardised per clip to mean 0 and variance 1 ("we standardized its
   amplitude"): the cached (log-)mel features are rescaled by the clip's waveform standard deviation, which
   is exact because the mean (DC) lies outside the 50-7800 Hz band of both front ends.
2. Per section, 85 % of the source training clips and two target training clips train the models, the rest
   validates (:func:`smoothing.protocol.training_split`; validation losses are logged, not used to pick
   epochs: the paper does not say it did).
3. Per machine type: a_G = the DCASE baseline autoencoder (:mod:`smoothing.autoencoder`) and f_D = SerialOE
   (:mod:`smoothing.serial_oe`; other machine types are the pseudo-anomalies). Training takes one random
   4 s crop of every training clip per epoch (the batches hold 4 s segments, paper IV-A); inference uses
   the seven evenly spaced 4 s crops of each clip (75 % overlap) and averages.
4. Smoothing (eq. 7, :mod:`smoothing.knn`) among the 4 s test segments of the same machine type and
   section (then the mean per clip; ``ProtocolConfig.pool`` / ``level`` for the other readings), for every
   K of the power-of-two grid 2-2048 and both "Data" choices; saturated settings (K covering the whole
   pool) are listed in the log, ``selection.csv`` and ``table1.csv``. Per machine type the best on
   sections 00-02 is "Proposed", the best on sections 03-05 "Proposed (Oracle)"; the Oracle's ToyCar-5
   uses its own best setting for that section (Table II's note). SerialOE: a GMM per section on f_D of
   the training clips, clusters and data chosen on sections 00-02 the same way.

Outputs (in ``<out>/2021/smoothing-<experiment>[-QUICK]/<time>/``): ``scores/<system>/`` (DCASE 2021
submission files of SerialOE, AE, Proposed, Proposed_Oracle), ``results.csv``, ``comparison.md`` (Tables I
and II beside the paper's numbers, Fig. 5 as a table), ``selection.csv`` (every setting's score),
``table1.csv`` (Table I, ours beside the paper's, with saturation flags), ``fraction.csv`` and
``plots/fig5_fraction.png`` (Fig. 5), ``models/`` (the networks, their losses and the
training split), ``config.yaml`` and ``run.log``.

``--generative subcluster-adacos`` smooths the scores of the multi-distribution system (Wilkinghoff 2021,
``run_dcase2021.py multi-distribution``) instead of the autoencoder's: a combination the paper did not try,
reported beside the others. Its scores are read from ``--generative-scores DIR`` (DCASE 2021 anomaly score
files).
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from asdcore.amplitude import waveform_std
from asdcore.errors import ASDError
from smoothing.protocol import FIG5_FRACTIONS
from smoothing.training import ModelCache, crop_frames

__all__ = ["ProtocolConfig", "load_configs", "add_arguments", "run", "EXPERIMENTS", "GENERATIVE"]

EXPERIMENTS = ("table", "fraction")
GENERATIVE = ("ae", "subcluster-adacos")
#: Column order of Table II.
TABLE_TYPES = ("fan", "gearbox", "pump", "slider", "ToyCar", "ToyTrain", "valve")
QUICK_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


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


def quick_ae(config):
    """CPU-sized autoencoder: 10 epochs instead of 1500 and three 4 s crops per clip at inference instead of
    seven (0-4, 3-7, 6-10 s: the whole clip, less overlap); everything else as the paper."""
    return replace(config, epochs=10, n_segments=3)


def quick_serial_oe(config):
    """CPU-sized SerialOE: the light CNN instead of EfficientNet-B0, 4 epochs, batches of 32 segments, a
    coarser mel input (64 bins, 32 ms hop: about 7x cheaper than the paper's 224 bins / 16 ms) and three 4 s
    crops per clip at inference."""
    return replace(config, backbone="light", epochs=4, batch_size=32, n_mels=64, hop_length=512, n_segments=3)


def load_configs(yaml_path=None, quick: bool = False):
    """(ProtocolConfig, AEConfig, SerialOEConfig): the paper's settings, the quick ones with ``quick``, then
    the YAML file's overrides (top-level keys ``protocol``, ``ae``, ``serial_oe``, each a mapping)."""
    import yaml

    from asdcore.experiment import resolve_config
    from smoothing.autoencoder import AEConfig
    from smoothing.serial_oe import SerialOEConfig

    protocol, ae, oe = ProtocolConfig(), AEConfig(), SerialOEConfig()
    if quick:
        protocol, ae, oe = protocol.quick(), quick_ae(ae), quick_serial_oe(oe)
    sections = {}
    if yaml_path is not None:
        path = Path(yaml_path)
        if not path.is_file():
            raise ASDError(f"{path}: config file not found (give the path of a YAML file)")
        sections = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(sections, dict) or any(not isinstance(v, dict) for v in sections.values()):
            raise ASDError(f"{path}: expected mappings under 'protocol', 'ae' and/or 'serial_oe'")
        unknown = sorted(set(sections) - {"protocol", "ae", "serial_oe"})
        if unknown:
            raise ASDError(f"{path}: unknown section(s) {', '.join(unknown)}; use protocol, ae, serial_oe")
    protocol = resolve_config(protocol, None, sections.get("protocol"))
    ae = resolve_config(ae, None, sections.get("ae"))
    oe = resolve_config(oe, None, sections.get("serial_oe"))
    return protocol.check(), ae, oe


# ------------------------------------------------------------------------------------------ helpers
def _seed_for(seed: int, *keys) -> int:
    return (int(seed) * 7919 + zlib.crc32("/".join(map(str, keys)).encode())) % (2 ** 31 - 1)


def standardize_features(features: np.ndarray, std: np.ndarray, mel_config) -> np.ndarray:
    """Features of the clips scaled to unit waveform variance (in place when ``features`` is writable, else
    into a new array): the mel power scales by ``std ** -power``; in dB that is a shift of
    ``-10 * power * log10(std)``."""
    std = np.where(std > 0, std, 1.0)
    if not features.flags.writeable:
        features = np.array(features)
    if mel_config.log:
        features -= (10.0 * mel_config.power * np.log10(std)).astype(np.float32)[:, None, None]
    else:
        features /= (std ** mel_config.power).astype(np.float32)[:, None, None]
    return features


def ae_scores(model, clips, config, chunk: int = 32):
    """a_G of every clip (mean over the seven 4 s crops) and of every crop: ``(clips,), (clips, 7)``."""
    from asdcore.features import crops, stack_frames
    from smoothing.autoencoder import anomaly_score_ae

    crop = crop_frames(config.segment_seconds, config.sr, config.hop_length)
    per_segment = []
    for start in range(0, len(clips), chunk):
        segments = crops(clips[start:start + chunk], config.n_segments, crop)
        n, s = segments.shape[:2]
        stacked = stack_frames(segments.reshape((n * s,) + segments.shape[2:]), config.n_frames)
        _, seg = anomaly_score_ae(model, stacked.reshape((n, s) + stacked.shape[1:]), return_segments=True)
        per_segment.append(seg)
    per_segment = np.concatenate(per_segment)
    return per_segment.mean(axis=1), per_segment


def embed_clips(model, clips, config, chunk: int = 64) -> np.ndarray:
    """f_D of every 4 s crop of every clip: ``(clips, 7, dim)``."""
    from asdcore.features import crops
    from smoothing.serial_oe import embed

    crop = crop_frames(config.segment_seconds, config.sr, config.hop_length)
    return np.concatenate([embed(model, crops(clips[s:s + chunk], config.n_segments, crop), batch_size=256)
                           for s in range(0, len(clips), chunk)])


# ------------------------------------------------------------------------------------------ the command
def add_arguments(parser, year):
    from asdcore.experiment import add_common_arguments

    parser.add_argument("--experiment", default="all", choices=list(EXPERIMENTS) + ["all"],
                        help="table: Tables I and II; fraction: Fig. 5; all: both (default)")
    parser.add_argument("--generative", default="ae", choices=GENERATIVE,
                        help="a_G: the paper's autoencoder (default) or the multi-distribution sub-cluster AdaCos "
                             "system's scores (needs --generative-scores)")
    parser.add_argument("--generative-scores", type=Path, default=None, metavar="DIR",
                        help="folder of DCASE 2021 anomaly_score_*.csv files of the generative system, e.g. "
                             "scores/<system>/ of a run_dcase2021.py multi-distribution run")
    add_common_arguments(parser)


def _check_arguments(args):
    if args.generative == "subcluster-adacos" and args.generative_scores is None:
        raise ASDError("--generative subcluster-adacos needs --generative-scores DIR: run `run_dcase2021.py "
                       "multi-distribution` first and pass its scores folder (runs/2021/.../scores/<system>/)")
    if args.generative == "ae" and args.generative_scores is not None:
        raise ASDError("--generative-scores is only used with --generative subcluster-adacos; drop it or add "
                       "--generative subcluster-adacos")


def run(args) -> int:
    from asdcore.experiment import QUICK_BANNER, RunFolder, get_logger, resolve_quick, set_seed

    _check_arguments(args)
    quick, why = resolve_quick(args)  # --quick, or the synthetic data without --full
    protocol, ae_config, oe_config = load_configs(args.config, quick)
    paired = (ae_config.n_segments, ae_config.segment_seconds) == (oe_config.n_segments, oe_config.segment_seconds)
    if protocol.level == "segment" and args.generative == "ae" and not paired:
        raise ASDError("level 'segment' pairs a_G and f_D crop by crop: give the autoencoder and SerialOE the same "
                       "n_segments and segment_seconds in --config")
    set_seed(args.seed)
    log = get_logger()
    experiments = list(EXPERIMENTS) if args.experiment == "all" else [args.experiment]
    name = f"smoothing-{args.experiment}" + ("-QUICK" if quick else "")
    run_folder = RunFolder.create(args.out, 2021, name)
    started = time.perf_counter()
    if quick:
        log.info("%s (%s)", QUICK_BANNER, why)
    try:
        result = _run(args, run_folder, protocol, ae_config, oe_config, quick, experiments, log)
    finally:
        log.info("elapsed %.1f s", time.perf_counter() - started)
        run_folder.close()
    print(f"run folder: {run_folder.path}")
    return result


def _run(args, run_folder, protocol, ae_config, oe_config, quick, experiments, log) -> int:
    from asdcore.experiment import QUICK_BANNER, cache_root
    from asdcore.pipeline import load_features, open_data

    source, table = open_data(args, 2021)
    run_folder.write_config({"command": "smoothing", "experiments": experiments, "generative": args.generative,
                             "generative_scores": args.generative_scores, "quick": quick,
                             "mode": QUICK_BANNER if quick else "paper settings",
                             "data": source.description, "seed": args.seed, "protocol": protocol,
                             "autoencoder": ae_config, "serial_oe": oe_config})
    machine_types = sorted(table["machine_type"].unique())
    if len(machine_types) < 2:
        raise ASDError("SerialOE needs at least two machine types (the others are its pseudo-anomalies); "
                       f"the data hold only {machine_types}")
    labelled = table["label"].isin(["normal", "anomaly"]).to_numpy()
    test = (table["split"] == "test").to_numpy()
    parts = {p: test & labelled & (table["part"] == p).to_numpy() for p in ("dev", "eval")}
    if not parts["dev"].any():
        raise ASDError("no labelled development test clips (sections 00-02): the hyper-parameters are chosen "
                       "there; give a data root with dev_data/")
    if not parts["eval"].any():
        if "fraction" in experiments:
            raise ASDError("Fig. 5 (--experiment fraction/all) needs labelled evaluation test clips (sections "
                           "03-05): give --ground-truth with the eval labels, or use --experiment table")
        log.warning("no labelled evaluation test clips: Proposed (Oracle) is skipped (give --ground-truth with "
                    "the eval labels)")

    # ---- features (cached), amplitude standardisation ------------------------------------------------
    t0 = time.perf_counter()
    ae_mel = replace(ae_config.logmel_config(),
                     n_frames=crop_frames(protocol.clip_seconds, ae_config.sr, ae_config.hop_length))
    oe_mel = replace(oe_config.logmel_config(),
                     n_frames=crop_frames(protocol.clip_seconds, oe_config.sr, oe_config.hop_length))
    need_ae = args.generative == "ae"
    if need_ae:
        table, ae_feats = load_features(table, ae_mel, args, run_folder)
    kept, oe_feats = load_features(table, oe_mel, args, run_folder)
    if len(kept) != len(table):  # a file skipped by the second front end only
        keep = table["path"].isin(kept["path"]).to_numpy()
        table, ae_feats = kept, (ae_feats[keep] if need_ae else None)
    table = table.reset_index(drop=True)
    if protocol.standardize_amplitude:
        std = waveform_std(table["path"], cache_root(args.cache_dir) / "amplitude", oe_config.sr)
        if need_ae:
            standardize_features(ae_feats, std, ae_mel)
        standardize_features(oe_feats, std, oe_mel)
    log.info("features ready in %.1f s", time.perf_counter() - t0)
    labelled = table["label"].isin(["normal", "anomaly"]).to_numpy()
    test = (table["split"] == "test").to_numpy()
    parts = {p: test & labelled & (table["part"] == p).to_numpy() for p in ("dev", "eval")}
    parts = {p: rows for p, rows in parts.items() if rows.any()}

    # ---- training split ------------------------------------------------------------------------------
    from smoothing.protocol import training_split

    role = training_split(table, protocol.source_fraction, protocol.n_target_fit, args.seed)
    run_folder.write_csv("models/split.csv", table.loc[role != "", ["file", "part", "machine_type", "unit",
                                                                     "domain"]].assign(role=role[role != ""]))
    fit, val = role == "fit", role == "val"

    # ---- a_G -----------------------------------------------------------------------------------------
    generative_name = "AE" if need_ae else "SubclusterAdaCos"
    n_seg = ae_config.n_segments
    gen_clip = np.full(len(table), np.nan)
    gen_seg = np.full((len(table), n_seg), np.nan)
    types_col = table["machine_type"].to_numpy()
    cache = ModelCache()
    from smoothing.autoencoder import train_autoencoder
    from smoothing.serial_oe import train_serial_oe

    if need_ae:
        for machine_type in machine_types:
            t1 = time.perf_counter()
            of_type = types_col == machine_type
            model, history = train_autoencoder(ae_feats[fit & of_type], ae_feats[val & of_type], ae_config,
                                               seed=_seed_for(args.seed, "ae", machine_type),
                                               validate_every=protocol.validate_every,
                                               jit_compile=protocol.jit_compile, cache=cache)
            rows = test & of_type
            gen_clip[rows], gen_seg[rows] = ae_scores(model, ae_feats[rows], ae_config)
            model.save(run_folder.file("models", f"ae_{machine_type}.keras"))
            run_folder.write_csv(f"models/ae_{machine_type}_history.csv", history)
            log.info("AE %s: %d epochs, loss %.4g, val %.4g (%.1f s)", machine_type, ae_config.epochs,
                     history["loss"].iloc[-1], history["val_loss"].dropna().iloc[-1]
                     if history["val_loss"].notna().any() else np.nan, time.perf_counter() - t1)
        del ae_feats
    else:
        gen_clip = _given_scores(table, args.generative_scores)
        # per-clip scores: at level "segment" every 4 s segment of a clip carries its clip's score
        gen_seg = np.repeat(gen_clip[:, None], oe_config.n_segments, axis=1)
        if protocol.level == "segment":
            log.info("given per-clip scores: each 4 s segment carries its clip's a_G (level 'segment')")

    # ---- f_D -----------------------------------------------------------------------------------------
    emb = np.full((len(table), oe_config.n_segments, oe_config.embedding_dim), np.nan, dtype=np.float32)
    units_col = table["unit"].to_numpy()
    for machine_type in machine_types:
        t1 = time.perf_counter()
        of_type = types_col == machine_type
        sections = sorted(table.loc[of_type, "unit"].unique())
        index = {s: i for i, s in enumerate(sections)}
        section_ids = np.zeros(len(table), dtype=np.int64)
        section_ids[of_type] = [index[u] for u in units_col[of_type]]
        model, history = train_serial_oe(
            oe_feats[fit & of_type], section_ids[fit & of_type], oe_feats[fit & ~of_type], len(sections), oe_config,
            val=(oe_feats[val & of_type], section_ids[val & of_type], oe_feats[val & ~of_type]),
            seed=_seed_for(args.seed, "serial_oe", machine_type), validate_every=protocol.validate_every,
            jit_compile=protocol.jit_compile, cache=cache)
        rows = (test | fit) & of_type
        emb[rows] = embed_clips(model, oe_feats[rows], oe_config)
        model.save(run_folder.file("models", f"serial_oe_{machine_type}.keras"))
        run_folder.write_csv(f"models/serial_oe_{machine_type}_history.csv", history)
        log.info("SerialOE %s: %d epochs, loss %.4g, val %.4g (%.1f s)", machine_type, oe_config.epochs,
                 history["loss"].iloc[-1], history["val_loss"].dropna().iloc[-1]
                 if history["val_loss"].notna().any() else np.nan, time.perf_counter() - t1)
    del oe_feats

    # ---- systems -------------------------------------------------------------------------------------
    # One BLAS thread for the many small distance matrices of quick runs: on a busy CPU, spinning BLAS
    # threads make them many times slower (the GMM back-end limits itself).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1 if quick else None, user_api="blas"):
        return _evaluate(args, run_folder, table, protocol, quick, experiments, log, source, parts, fit, test,
                         gen_clip, gen_seg, emb, generative_name)


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
    from smoothing.serial_oe import SerialOEScorer

    source = (table["domain"] == "source").to_numpy()
    keys = (table["machine_type"] + "/" + table["unit"]).to_numpy()
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


def _items(table, emb, gen_clip, gen_seg, rows, protocol):
    """Items smoothed together (clips or 4 s crops) of the clip-table rows ``rows``."""
    sub = table[rows]
    n = len(sub)
    domains = sub["domain"].astype(str).to_numpy()
    if protocol.pool == "section":
        pools = (sub["machine_type"] + "/" + sub["unit"]).to_numpy()
    else:
        pools = (sub["machine_type"] + "/" + sub["part"]).to_numpy()
    if protocol.level == "clip":
        return emb[rows].mean(axis=1), gen_clip[rows], domains, pools, np.arange(n)
    s = emb.shape[1]
    return (emb[rows].reshape(n * s, -1), gen_seg[rows].reshape(-1), np.repeat(domains, s), np.repeat(pools, s),
            np.repeat(np.arange(n), s))


def saturation_frame(test_table, domains, pools, clip_index, ks, datas) -> pd.DataFrame:
    """Per (part, machine type, data, K) whether K saturates every smoothing pool of that part and type
    (:func:`smoothing.protocol.saturated_settings`; items are mapped to their clip's part and type)."""
    from smoothing import protocol as P

    parts = test_table["part"].astype(str).to_numpy()[clip_index]
    types = test_table["machine_type"].astype(str).to_numpy()[clip_index]
    records = []
    for part, machine_type in sorted(set(zip(parts, types))):
        rows = (parts == part) & (types == machine_type)
        for (data, k), value in P.saturated_settings(domains[rows], pools[rows], ks, datas).items():
            records.append({"part": part, "machine_type": machine_type, "data": data, "k": k, "saturated": value})
    return pd.DataFrame(records, columns=["part", "machine_type", "data", "k", "saturated"])


def _log_saturation(log, saturated, sizes, protocol):
    """One log line: the pool sizes and, per data choice, the K from which every pool is saturated."""
    first = {}
    for data in protocol.datas:
        rows = saturated[(saturated["data"] == data) & saturated["saturated"]]
        by_k = rows.groupby("k").size()
        n_groups = saturated[saturated["data"] == data].groupby(["part", "machine_type"]).ngroups
        full = [int(k) for k, n in by_k.items() if n == n_groups]
        first[data] = f"K >= {min(full)}" if full else "none"
    log.info("smoothing pools (%s, level %s): %d pools of %d-%d items (%d-%d source); saturated K (a_prop "
             "the same for every candidate, reported, not a tuned choice): %s", protocol.pool, protocol.level,
             len(sizes), sizes["all"].min(), sizes["all"].max(), sizes["source"].min(), sizes["source"].max(),
             ", ".join(f"{data}: {text}" for data, text in first.items()))


def _with_saturation(selection, saturated) -> pd.DataFrame:
    """``selection.csv`` with a ``saturated`` column (True/False for Proposed rows, empty for SerialOE and the
    "all" rows that span several machine types)."""
    keys = saturated.assign(k=saturated["k"].astype("Int64"), system="Proposed")
    out = selection.merge(keys, on=["system", "part", "machine_type", "data", "k"], how="left")
    all_rows = (out["system"] == "Proposed") & (out["machine_type"] == "all")
    if all_rows.any():  # "all": saturated when saturated for every machine type of that part
        every = saturated.groupby(["part", "data", "k"])["saturated"].all().rename("every").reset_index()
        every["k"] = every["k"].astype("Int64")
        merged = out[all_rows].merge(every, on=["part", "data", "k"], how="left")["every"].to_numpy()
        out.loc[all_rows, "saturated"] = merged
    out["saturated"] = out["saturated"].astype("boolean")
    return out


def toycar5_oracle(table, grid_prop) -> dict | None:
    """The Oracle's ToyCar-5 (Table II note: "Hyperparameters of Proposed (Oracle) on the ToyCar-5 are 128
    for K and All for Data"): the (data, K) with the highest AUC of ToyCar section 05 itself, ties to the
    setting listed first. ``{"data", "k", "auc"}`` (AUC in %) or None without ToyCar section 05."""
    best = None
    for (data, k), scores in grid_prop.items():
        value = _toycar5(table, scores)
        if np.isfinite(value) and (best is None or value > best["auc"]):
            best = {"data": data, "k": int(k), "auc": float(value)}
    return best


def _evaluate(args, run_folder, table, protocol, quick, experiments, log, source, parts, fit, test, gen_clip,
              gen_seg, emb, generative_name) -> int:
    from asdcore.experiment import QUICK_BANNER
    from asdcore.pipeline import evaluate_systems
    from smoothing import protocol as P

    mode = "QUICK" if quick else "full"
    t0 = time.perf_counter()
    evaluators = {p: P.UnitEvaluator(table[rows]) for p, rows in parts.items()}
    rows_of = {p: np.flatnonzero(rows) for p, rows in parts.items()}
    types_col = table["machine_type"].to_numpy()

    # Proposed: every (data, K), chosen per machine type on dev (Proposed) and eval (Oracle)
    features, scores, domains, pools, clip_index = _items(table, emb, gen_clip, gen_seg, test, protocol)
    ks = P.k_grid(protocol.k_min, protocol.k_max)
    saturated = saturation_frame(table[test], domains, pools, clip_index, ks, protocol.datas)
    _log_saturation(log, saturated, P.pool_sizes(domains, pools), protocol)
    smoothed = P.smooth_grid(features, scores, domains, pools, clip_index, int(test.sum()), ks, protocol.datas,
                             protocol.metric)
    grid_prop = {}
    for setting, values in smoothed.items():
        full = np.full(len(table), np.nan)
        full[test] = values
        grid_prop[setting] = full
    names_prop = ("data", "k")
    table_prop = P.grid_table(evaluators, grid_prop, names_prop, rows_of)
    chosen = {"Proposed": P.select_best(table_prop, names_prop, "dev")}
    toycar5 = None
    if "eval" in parts:
        chosen["Proposed_Oracle"] = P.select_best(table_prop, names_prop, "eval")
        toycar5 = toycar5_oracle(table, grid_prop)

    # SerialOE: GMM clusters and data chosen on dev
    grid_oe, clusters = _serial_oe_grid(table, emb, fit, test, protocol, args.seed, log)
    names_oe = ("data", "n_clusters")
    table_oe = P.grid_table(evaluators, grid_oe, names_oe, rows_of)
    chosen["SerialOE"] = P.select_best(table_oe, names_oe, "dev")
    log.info("K grid %s, GMM clusters %s: settings scored in %.1f s", ks, clusters, time.perf_counter() - t0)

    selection = pd.concat([table_prop.assign(system="Proposed", n_clusters=np.nan),
                           table_oe.assign(system="SerialOE", k=np.nan)], ignore_index=True)
    selection = selection[["system", "part", "data", "k", "n_clusters", "machine_type", "score"]].assign(mode=mode)
    selection[["k", "n_clusters"]] = selection[["k", "n_clusters"]].astype("Int64")
    selection = _with_saturation(selection, saturated)
    run_folder.write_csv("selection.csv", selection)

    systems = {"SerialOE": P.compose(types_col, chosen["SerialOE"], grid_oe, names_oe),
               generative_name: gen_clip,
               "Proposed": P.compose(types_col, chosen["Proposed"], grid_prop, names_prop)}
    if "Proposed_Oracle" in chosen:
        systems["Proposed_Oracle"] = P.compose(types_col, chosen["Proposed_Oracle"], grid_prop, names_prop)
    notes = [source.description]
    if quick:
        notes.append(f"{QUICK_BANNER}: AE and SerialOE epochs, backbone and input reduced (see config.yaml)")
    notes.append("EfficientNet-B0 starts from random weights (no pretrained weights can be downloaded here)"
                 if not quick else "SerialOE backbone: the light CNN of smoothing/serial_oe.py, random init")
    if generative_name != "AE":
        notes.append(f"a_G = the given scores of {args.generative_scores} (sub-cluster AdaCos, multiple "
                     "distributions): a combination the paper did not try")
    text = [f"# Discriminative neighbourhood smoothing (Fujimura et al.){' - ' + QUICK_BANNER if quick else ''}",
            ""]
    if "table" in experiments:
        t0 = time.perf_counter()
        # quick runs skip the per-system ROC/histogram plots (tens of seconds on a busy CPU)
        per_unit, summary = evaluate_systems(run_folder, table, systems, 2021, quick=quick, plots=not quick)
        log.info("systems written and evaluated in %.1f s", time.perf_counter() - t0)
        text += _table_sections(summary, table, systems, chosen, generative_name, notes, parts, saturated,
                                toycar5, run_folder, mode)
    if "fraction" in experiments:
        text += _fraction_section(args, run_folder, table, emb, gen_clip, gen_seg, parts, protocol, ks,
                                  chosen.get("Proposed_Oracle"), quick, notes, generative_name, log)
    run_folder.write_text("comparison.md", "\n".join(text))
    return 0


# ------------------------------------------------------------------------------------------ the report
_PAPER_METHOD = {"SerialOE": "SerialOE", "AE": "AE", "Proposed": "Proposed", "Proposed_Oracle": "Proposed (Oracle)"}


def _labels(generative_name):
    if generative_name == "AE":
        return dict(_PAPER_METHOD)
    return {"SerialOE": "SerialOE", generative_name: "sub-cluster AdaCos (given scores)",
            "Proposed": "Proposed, a_G = sub-cluster AdaCos",
            "Proposed_Oracle": "Proposed (Oracle), a_G = sub-cluster AdaCos"}


def _toycar5(table, scores) -> float:
    """AUC of ToyCar section 05 (Table II "ToyCar-5"): both domains' test clips together (the paper does
    not say whether it pooled the domains)."""
    from asdcore.metrics import auc

    rows = ((table["machine_type"] == "ToyCar") & (table["unit"] == "section_05") & (table["split"] == "test")
            & table["label"].isin(["normal", "anomaly"])).to_numpy()
    if not rows.any() or table.loc[rows, "label"].nunique() < 2:
        return np.nan
    return 100 * auc(table.loc[rows, "label"].to_numpy(), np.asarray(scores)[rows])


def _paper_row(paper, method, label, present) -> dict:
    rows = paper[paper["method"] == method]
    overall = rows[rows["unit"] == "all"]
    values = dict(zip(overall["machine_type"], overall["value"]))
    record = {"method": label, "source": "paper"}
    record.update({t: values.get(t, np.nan) for t in present})
    record["All-hmean"] = values.get("all", np.nan)
    toycar5 = rows.loc[rows["unit"] == "section_05", "value"]
    record["ToyCar-5"] = float(toycar5.iloc[0]) if len(toycar5) else np.nan
    return record


def table2_frame(summary, table, systems, generative_name, part, toycar5=None) -> pd.DataFrame:
    """Table II's layout: one row per method and source (ours / paper), per machine type the harmonic mean
    of AUC and pAUC over the sections (and domains) of ``part`` in %, All-hmean, ToyCar-5.

    ToyCar-5 of Proposed (Oracle) is the AUC under its own best setting for that section (``toycar5``,
    :func:`toycar5_oracle`), as the paper reports it, not under the ToyCar Oracle's setting."""
    from asdcore import published

    labels = _labels(generative_name)
    rows = summary[(summary["part"] == part) & (summary["domain"] == "all")
                   & (summary["statistic"] == "harmonic mean")]
    present = [t for t in TABLE_TYPES if t in set(rows["machine_type"])]
    present += sorted(set(rows["machine_type"]) - set(TABLE_TYPES) - {"all"})
    columns = present + ["All-hmean", "ToyCar-5"]
    paper = published.load_table("fujimura2021_table2") if part == "eval" else None
    out = []
    for system, scores in systems.items():
        mine = rows[rows["system"] == system].set_index("machine_type")["score"]
        record = {"method": labels.get(system, system), "source": "ours"}
        record.update({t: 100 * mine.get(t, np.nan) for t in present})
        record["All-hmean"] = 100 * mine.get("all", np.nan)
        record["ToyCar-5"] = _toycar5(table, scores) if part == "eval" else np.nan
        if part == "eval" and system == "Proposed_Oracle" and toycar5 is not None:
            record["ToyCar-5"] = toycar5["auc"]
        out.append(record)
        same_method = generative_name == "AE" or system == "SerialOE"
        if paper is not None and same_method and system in _PAPER_METHOD:
            out.append(_paper_row(paper, _PAPER_METHOD[system], _PAPER_METHOD[system], present))
    if paper is not None and generative_name != "AE":  # the paper's AE-based rows, for reference
        for method in ("AE", "Proposed", "Proposed (Oracle)"):
            out.append(_paper_row(paper, method, f"{method} (a_G = AE)", present))
    return pd.DataFrame(out, columns=["method", "source"] + columns)


#: Table II's note: "Hyperparameters of Proposed (Oracle) on the ToyCar-5 are 128 for K and All for Data".
PAPER_TOYCAR5_ORACLE = {"data": "all", "k": 128}


def table1_frame(chosen, saturated=None, toycar5=None) -> pd.DataFrame:
    """Table I's layout: per machine type the chosen SerialOE clusters/data, Proposed K/data and Oracle K/data,
    ours beside the paper's; ``Proposed saturated`` / ``Proposed (Oracle) saturated``: whether our chosen K
    covers every candidate of its pools (:func:`saturation_frame`; on sections 00-02 / 03-05). With
    ``toycar5`` (:func:`toycar5_oracle`), one more row "ToyCar-5": the Oracle's own setting for ToyCar
    section 05 (Table II's note)."""
    from asdcore import published

    paper = published.load_table("fujimura2021_table1")
    show = {"source": "Source", "all": "All"}
    types = sorted(set().union(*[set(c["machine_type"]) for c in chosen.values()]),
                   key=lambda t: (TABLE_TYPES.index(t) if t in TABLE_TYPES else 99, t))

    def is_saturated(part, machine_type, data, k):
        if saturated is None:
            return None
        hit = saturated[(saturated["part"] == part) & (saturated["machine_type"] == machine_type)
                        & (saturated["data"] == data) & (saturated["k"] == int(k))]
        return bool(hit["saturated"].iloc[0]) if len(hit) else None

    records = []
    for t in types:
        record = {"machine type": t}
        for system, method, value in (("SerialOE", "SerialOE", "n_clusters"), ("Proposed", "Proposed", "k"),
                                      ("Proposed_Oracle", "Proposed (Oracle)", "k")):
            label = "clusters" if value == "n_clusters" else "K"
            c = chosen.get(system)
            mine = c[c["machine_type"] == t] if c is not None else pd.DataFrame()
            p = paper[(paper["method"] == method) & (paper["machine_type"] == t)]
            record[f"{method} {label} (ours)"] = int(mine[value].iloc[0]) if len(mine) else None
            record[f"{method} {label} (paper)"] = int(p["value"].iloc[0]) if len(p) else None
            record[f"{method} Data (ours)"] = show[mine["data"].iloc[0]] if len(mine) else None
            record[f"{method} Data (paper)"] = show[p["data"].iloc[0]] if len(p) else None
            if value == "k":
                part = "eval" if system == "Proposed_Oracle" else "dev"
                record[f"{method} saturated (ours)"] = (is_saturated(part, t, mine["data"].iloc[0], mine["k"].iloc[0])
                                                        if len(mine) else None)
        records.append(record)
    if toycar5 is not None:
        records.append({"machine type": "ToyCar-5 (section 05)",
                        "Proposed (Oracle) K (ours)": toycar5["k"],
                        "Proposed (Oracle) K (paper)": PAPER_TOYCAR5_ORACLE["k"],
                        "Proposed (Oracle) Data (ours)": show[toycar5["data"]],
                        "Proposed (Oracle) Data (paper)": show[PAPER_TOYCAR5_ORACLE["data"]],
                        "Proposed (Oracle) saturated (ours)": is_saturated("eval", "ToyCar", toycar5["data"],
                                                                           toycar5["k"])})
    frame = pd.DataFrame(records)
    for column in frame.columns:
        if column.endswith(("K (ours)", "K (paper)", "clusters (ours)", "clusters (paper)")):
            frame[column] = frame[column].astype("Int64")
        elif "saturated" in column:
            frame[column] = frame[column].astype("boolean")
    return frame


def _table_sections(summary, table, systems, chosen, generative_name, notes, parts, saturated=None, toycar5=None,
                    run_folder=None, mode="") -> list[str]:
    from asdcore.report import comparison_markdown

    text = []
    if summary.empty:
        return ["No labelled test clips: submission files only.", ""]
    for part, title in (("eval", "Table II: harmonic mean of AUC and pAUC over sections 03-05 (%)"),
                        ("dev", "Sections 00-02 (where the hyper-parameters are chosen; the paper prints none, %)")):
        if part not in parts:
            continue
        frame = table2_frame(summary, table, systems, generative_name, part, toycar5)
        if part == "dev":
            frame = frame.drop(columns=["ToyCar-5"])
        extra = ["per machine type the harmonic mean of all AUC and pAUC values of its sections and domains "
                 "(DCASE 2021: one AUC/pAUC per section and domain); All-hmean over every machine type",
                 "ToyCar-5: AUC of ToyCar section 05, source and target test clips together; Proposed (Oracle) "
                 "with its own best setting for that section (as the paper; see Table I, row ToyCar-5)"] \
            if part == "eval" else []
        text.append(comparison_markdown(title, frame, notes + extra))
        print(f"\n{title}")
        print(frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"))
    frame = table1_frame(chosen, saturated, toycar5)
    if run_folder is not None:
        run_folder.write_csv("table1.csv", frame.assign(mode=mode))
    title = ("Table I: hyper-parameters chosen per machine type (SerialOE and Proposed on sections 00-02, "
             "Oracle on 03-05)")
    text.append(comparison_markdown(title, frame, notes + [
        "saturated: our K covers every candidate of its smoothing pools, so a_prop is the same for every "
        "candidate clip (not a tuned choice); see selection.csv for every setting"]))
    print(f"\n{title}")
    print(frame.astype(object).where(frame.notna(), "-").to_string(index=False))
    return text


def _fraction_section(args, run_folder, table, emb, gen_clip, gen_seg, parts, protocol, ks, oracle, quick,
                      notes, generative_name, log) -> list[str]:
    from asdcore.experiment import QUICK_BANNER
    from asdcore.report import comparison_markdown
    from smoothing.protocol import fraction_curve

    t0 = time.perf_counter()
    rows = parts["eval"]
    sub = table[rows].reset_index(drop=True)
    features, scores, domains, pools, clip_index = _items(table, emb, gen_clip, gen_seg, rows, protocol)
    curve, draws = fraction_curve(sub, features, scores, domains, pools, clip_index, ks, protocol.datas,
                                  fractions=protocol.fractions, n_draws=protocol.n_draws, seed=args.seed,
                                  metric=protocol.metric, selection=protocol.fraction_selection, oracle=oracle,
                                  generative=gen_clip[rows])
    curve["system"] = curve["system"].replace({"generative": generative_name})
    mode = "QUICK" if quick else "full"
    run_folder.write_csv("fraction.csv", curve.assign(mode=mode))
    run_folder.write_csv("fraction_draws.csv", draws.assign(mode=mode))
    path = plot_fraction(curve, run_folder.file("plots", "fig5_fraction.png"),
                         title="Fig. 5: smoothing with a fraction of the test clips (sections 03-05)"
                               + (f"\n{QUICK_BANNER}" if quick else ""))
    log.info("Fig. 5: %d fractions x %d draws in %.1f s", len(protocol.fractions), protocol.n_draws,
             time.perf_counter() - t0)
    all_rows = curve[curve["machine_type"] == "all"]
    frame = all_rows.pivot(index="fraction", columns="system", values="mean").mul(100)
    spread = all_rows.pivot(index="fraction", columns="system", values="std").mul(100)
    table_ = pd.DataFrame({"test clips (%)": (frame.index * 100).round().astype(int)})
    for system in frame.columns:
        table_[f"{system} All-hmean mean"] = frame[system].to_numpy()
        table_[f"{system} All-hmean std"] = spread[system].to_numpy()
    title = f"Fig. 5: All-hmean with a fraction of the test clips of sections 03-05 ({protocol.n_draws} draws, %)"
    extra = [f"hyper-parameters: {protocol.fraction_selection.replace('_', ' ')} (see smoothing/protocol.py); "
             f"plot: {path.relative_to(run_folder.path)}; per machine type: fraction.csv"]
    print(f"\n{title}")
    print(table_.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return [comparison_markdown(title, table_, notes + extra)]


def plot_fraction(curve: pd.DataFrame, path, title: str = "") -> Path:
    """Fig. 5: mean +/- std over the draws against the share of test clips, All-hmean and per machine type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = ["all"] + [t for t in TABLE_TYPES if t in set(curve["machine_type"])]
    types += sorted(set(curve["machine_type"]) - set(types))
    n_cols = 4
    n_rows = int(np.ceil(len(types) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.4 * n_cols, 2.8 * n_rows), squeeze=False)
    for ax, machine_type in zip(axes.ravel(), types):
        for (system, rows), colour in zip(curve[curve["machine_type"] == machine_type].groupby("system", sort=False),
                                          ("tab:red", "tab:blue", "tab:green")):
            x = 100 * rows["fraction"].to_numpy()
            mean, std = 100 * rows["mean"].to_numpy(), 100 * rows["std"].to_numpy()
            ax.plot(x, mean, color=colour, marker="o", ms=3, lw=1.2, label=system)
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
        ax.set_title("All-hmean" if machine_type == "all" else machine_type, fontsize=9)
        ax.set_xlabel("test clips used (%)", fontsize=8)
        ax.set_ylabel("hmean AUC, pAUC (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(types):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
