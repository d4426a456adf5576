"""The ``ddcsad`` command of ``run_dcase2020.py``: Table II and Fig. 2 of Kuroyanagi et al.

``python run_dcase2020.py ddcsad [--losses bce,dsad,ddcsad,bce+dsad,bce+ddcsad] [--anomalies 0,1,2,4,...,64]
[--backbone resnet38|light] [--data-root ROOT] [--out DIR] [--quick|--full] [--seed N] [--config YAML]``

For every loss and every machine ID one model is trained (:mod:`ddcsad.data`, :mod:`ddcsad.model`) and its
test clips are scored (:mod:`ddcsad.scoring`). With ``--anomalies`` counts above 0, each ID's model is
then fine-tuned with 1, 2, 4, ... real anomalous clips (Sec. IV-C, Fig. 2).

Run folder (``<out>/2020/ddcsad/<timestamp>/``): ``config.yaml``, ``run.log``, ``scores/<loss>/`` (DCASE
submission files), ``results.csv`` (organisers' per-ID AUC/pAUC and means), ``table2.csv`` and
``comparison.md`` (per machine type AUC +/- 95 % interval beside Table II), ``alpha.csv`` (Table I and
validation-chosen alpha), ``amplitude.csv``, ``training.csv`` (one line per trained model), ``models/``
(weights files, only with ``save_models: base`` or ``all``), ``plots/``; with anomalies also ``few_anomalies/`` (its own ``scores/<loss>_anomalies<k>/`` and
``results.csv``), ``fig2.csv`` and ``plots/fig2_<part>.png``.

Without ``--data-root`` the command runs on the synthetic DCASE 2020 set in quick mode (``--full`` forces
the paper's settings there); ``--quick`` shrinks the settings on any data. Quick mode is stated in the
log, ``config.yaml``, ``QUICK_MODE.txt``, every CSV written here (column ``mode``), ``comparison.md`` and
every plot title.

TensorFlow is imported inside the functions that need it, so ``--help`` is fast.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from asdcore.errors import ASDError

VARIANTS = ("bce", "dsad", "ddcsad", "bce+dsad", "bce+ddcsad")
"""The five losses of Table II (= ``ddcsad.losses.VARIANTS``; repeated so that ``--help`` needs no Keras)."""

__all__ = ["DDCSADConfig", "PAPER_CONFIG", "QUICK_CONFIG", "parse_losses", "parse_counts", "build_encoder",
           "LossTrainer", "add_arguments", "run"]

PAPER_COUNTS = (0, 1, 2, 4, 8, 16, 32, 64)
"""Numbers of real anomalies per ID of Fig. 2 (Sec. IV-C: "[1, 2, 4, ..., 64]"; 0 = Table II)."""


@dataclass(frozen=True)
class DDCSADConfig:
    """Every setting of the experiment; defaults = the paper (section or table beside each)."""

    # --- what is run
    losses: tuple = VARIANTS  # Table II columns (Sec. IV-A)
    anomalies: tuple = (0,)  # Fig. 2 counts per ID (Sec. IV-C: 1, 2, 4, ..., 64); 0 = Table II only
    parts: tuple = ("dev", "eval")  # IDs that get models: dev = validation (alpha), eval = Table II/Fig. 2
    machine_types: tuple = ()  # empty = all six
    units_per_type: int | None = None  # None = every ID (Sec. IV-A: one model per machine ID)
    # --- features (Sec. IV-A)
    n_mels: int = 128  # "128-dimensional logarithmic Mel filter-banks"
    n_fft: int = 1024  # "1,024-sample windows"
    hop_length: int = 512  # "a hop-size of 512 samples"
    feature_frames: int | None = None  # None: every frame ("divided ... each sample's ... series"); 313: last 313
    amplitude_norm: str = "machine"  # "each machine's amplitude ... mean of 0 and variance of 1" (ddcsad.data)
    # --- network (Sec. IV-A)
    backbone: str = "resnet38"  # "we used the ResNet38 framework ... proposed for PANNs"; "light" = CPU demo
    light_channels: tuple = (16, 32, 64, 128)  # light encoder only (not in the paper)
    light_input_pool: int = 1  # light encoder only: average-pool the input by this factor first
    # --- losses (Sec. III, IV-A)
    lam: float = 1.0  # lambda of eq. (4)
    eta: float = 2.0  # eta of eqs. (2)-(3)
    epsilon: float = 1e-6  # inside the inverse distances (not in the paper; Deep SAD's value)
    dsad_centroid: str = "fixed"  # DSAD's c: computed once from the random network (Sec. II-B, IV-A)
    anomaly_label: str = "anomaly"  # real anomalies in the labelled set X~ (eta-weighted) or "outlier"
    # --- optimisation (Sec. IV-A, IV-C)
    iterations: int = 4000  # "We set the total number of iterations to 4,000"
    finetune_iterations: int = 2000  # "halved the total number of iterations to 2,000" (with anomalies)
    encoder_learning_rate: float = 1e-4  # "0.0001 for the convolutional layer"
    head_learning_rate: float = 1e-3  # "0.001 for the full connection layer"
    halve_every: int = 1000  # "multiplied the learning rate by 0.5 after every 1,000 iterations"
    batch_composition: tuple = (32, 32)  # normal : outlier; balanced, batch 64 as in Sec. IV-C
    batch_composition_anomalies: tuple = (32, 31, 1)  # normal : outlier : anomaly (Sec. IV-C)
    crop_frames: int = 256  # random training crops of the inference crop length (open choice)
    epoch: str = "dataset"  # centroid updates: one pass over the unit's training set (ddcsad.data)
    steps_per_epoch: int | None = None  # overrides `epoch` when set
    centroid_crops: int = 1  # crops per clip for the centroids (1 = the centre 256 frames)
    bn_calibration_batches: int = 10  # BN statistics of training batches before the first centroids; 0 = initial
    # --- scoring (Sec. III eq. 5, IV-A, Table I)
    n_crops: int = 10  # "divided ... into ten sections ... frame length was equal to 256"
    alpha: object = "table1"  # "table1", "validation" (chosen on dev IDs) or a number in [0, 1]
    minmax_over: str = "crops"  # d' over all crops (literal reading) or over clip means ("clips")
    # --- few real anomalies (Sec. IV-C)
    anomaly_pool: int = 64  # "64 samples were randomly selected" per ID
    anomaly_pool_max_fraction: float = 0.75  # never pool more than this share of an ID's anomalies
    # --- outputs and speed
    save_models: str = "none"  # weights files: "none" (no later step reads them), "base", "all"
    inference_batch_size: int = 64


PAPER_CONFIG = DDCSADConfig()

QUICK_CONFIG = dataclasses.replace(
    PAPER_CONFIG,
    units_per_type=1,  # the first ID of each machine type in each part: 12 models per loss
    backbone="light",
    light_channels=(8, 16, 32),
    light_input_pool=2,
    iterations=40,
    finetune_iterations=20,
    halve_every=10,  # the paper's schedule shape: four halvings-intervals
    batch_composition=(8, 8),
    batch_composition_anomalies=(8, 7, 1),
    save_models="base",  # light models: ~40 kB of weights each
)
"""``--quick``: a light CNN and 40 iterations of 16-clip batches, one ID per type and part (CPU minutes)."""

SAVE_MODELS = ("base", "all", "none")


# ------------------------------------------------------------------------------------------ flags

def parse_losses(text) -> tuple:
    """``"bce,bce+ddcsad"`` -> ("bce", "bce+ddcsad"); "all" = the five of Table II."""
    if isinstance(text, (list, tuple)):
        items = [str(t) for t in text]
    else:
        items = [t for t in str(text).replace(" ", "").split(",") if t]
    if items == ["all"]:
        return VARIANTS
    out = []
    for item in items:
        name = item.strip().lower()
        if name not in VARIANTS:
            raise ASDError(f"--losses: unknown loss {item!r}; use a comma-separated subset of {','.join(VARIANTS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ASDError("--losses: give at least one loss")
    return tuple(out)


def parse_counts(text) -> tuple:
    """``"0,1,2,4,...,64"`` -> (0, 1, 2, 4, 8, 16, 32, 64); "paper" = those counts. Sorted, unique."""
    if isinstance(text, (list, tuple)):
        items = [str(t) for t in text]
    else:
        items = [t for t in str(text).replace(" ", "").split(",") if t]
    if items == ["paper"]:
        return PAPER_COUNTS
    values = []
    for i, item in enumerate(items):
        if item == "...":
            if len(values) < 1 or i + 1 >= len(items):
                raise ASDError("--anomalies: '...' needs a number before and after it (e.g. 0,1,2,4,...,64)")
            last, stop = values[-1], int(items[i + 1])
            step = 2 * last if last > 0 else 1
            while step < stop:
                values.append(step)
                step *= 2
            continue
        try:
            values.append(int(item))
        except ValueError:
            raise ASDError(f"--anomalies: {item!r} is not a number; give counts like 0,1,2,4,...,64") from None
    if not values or min(values) < 0:
        raise ASDError("--anomalies: give counts >= 0, e.g. 0 or 0,1,2,4,...,64")
    return tuple(sorted(set(values)))


def add_arguments(parser, year):
    from asdcore.experiment import add_common_arguments

    add_common_arguments(parser)
    parser.add_argument("--losses", default=None,
                        help="comma-separated losses of Table II (default: all five: " + ",".join(VARIANTS) + ")")
    parser.add_argument("--anomalies", default=None,
                        help="real anomalies per ID for Fig. 2, e.g. 0,1,2,4,...,64 or 'paper' (default 0: Table II only)")
    parser.add_argument("--backbone", choices=("resnet38", "light"), default=None,
                        help="feature extractor: resnet38 (paper) or light (CPU); default resnet38, quick: light")


# ------------------------------------------------------------------------------------------ model

def build_encoder(config: DDCSADConfig, input_shape):
    """The feature extractor phi_z of the chosen backbone (``ddcsad.backbones``)."""
    import keras
    from keras import layers

    from ddcsad.backbones import build_light_encoder, build_resnet38

    if config.backbone == "resnet38":
        return build_resnet38(input_shape)
    if config.backbone != "light":
        raise ASDError(f"backbone {config.backbone!r}: use resnet38 or light")
    pool = int(config.light_input_pool)
    if pool <= 1:
        return build_light_encoder(input_shape, channels=config.light_channels)
    frames, mels = (int(s) for s in input_shape)
    inner = build_light_encoder((frames // pool, mels // pool, 1), channels=config.light_channels)
    inp = keras.Input((frames, mels), name="logmel")
    x = layers.Reshape((frames, mels, 1), name="add_channel")(inp)
    x = layers.AveragePooling2D(pool, name="input_pool")(x)
    return keras.Model(inp, inner(x), name=f"light_encoder_pool{pool}")


class _StopAfter:
    """Keras callback factory: stop ``fit`` after exactly ``n`` iterations (the last epoch may be short;
    its ``on_epoch_end``, hence the centroid update, still runs)."""

    @staticmethod
    def make(n: int):
        import keras

        class StopAfter(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.done = 0

            def on_train_batch_end(self, batch, logs=None):
                self.done += 1
                if self.done >= n:
                    self.model.stop_training = True

        return StopAfter()


class LossTrainer:
    """One :class:`ddcsad.model.DDCSADModel` for one loss, reused for every machine ID.

    Building and tracing a model costs seconds (much more for ResNet38), so the model is built and
    compiled once per loss; before each ID it gets back its initial random weights (the same for every
    ID, drawn from ``seed``), zeroed centroids and fresh Adam states (:meth:`reset`). Fine-tuning
    (Sec. IV-C) resets to the ID's trained weights instead (its centroids included) with fresh Adam states:
    the learning-rate schedule restarts at 1e-4 / 1e-3.
    """

    def __init__(self, variant: str, config: DDCSADConfig, input_shape, seed: int = 0):
        import keras

        from ddcsad.model import DDCSADModel

        self.variant = variant
        self.config = config
        keras.utils.set_random_seed(seed)
        self.model = DDCSADModel(build_encoder(config, input_shape), variant=variant, lam=config.lam,
                                 eta=config.eta, epsilon=config.epsilon, dsad_centroid=config.dsad_centroid)
        self.model.compile(encoder_learning_rate=config.encoder_learning_rate,
                           head_learning_rate=config.head_learning_rate, halve_every=config.halve_every)
        self.initial_weights = self.model.get_weights()

    def reset(self, weights=None) -> None:
        """Load ``weights`` (default: the initial random weights) and zero both optimizers' state."""
        self.model.set_weights(self.initial_weights if weights is None else weights)
        for optimizer in (self.model.encoder_optimizer, self.model.head_optimizer):
            for variable in optimizer.variables:
                variable.assign(np.zeros(variable.shape, dtype=variable.dtype))

    def train(self, features, sets, iterations: int, composition, seed: int, lengths=None) -> dict:
        """Train on one ID's clips for ``iterations`` iterations; returns the last epoch's losses.

        ``lengths``: valid frames of every clip of ``features`` (default all frames). Before the first
        centroids the BN statistics are calibrated on ``bn_calibration_batches`` batches of a second
        sampler (its own seed: the training stream is the same with and without calibration).
        """
        from ddcsad import data
        from ddcsad.losses import ANOMALY, OUTLIER
        from ddcsad.model import CentroidUpdate

        cfg = self.config
        label = ANOMALY if cfg.anomaly_label == "anomaly" else OUTLIER
        sampler = data.BalancedBatches(features, sets, composition, cfg.crop_frames, seed=seed, anomaly_label=label,
                                       lengths=lengths)
        calibration = None
        if cfg.bn_calibration_batches > 0:
            calibration = data.BalancedBatches(features, sets, composition, cfg.crop_frames, seed=seed + 104729,
                                               anomaly_label=label, lengths=lengths)
        steps = data.steps_per_epoch(sets, sampler.batch_size, cfg.epoch, sampler.composition[0],
                                     cfg.steps_per_epoch)
        epochs = int(math.ceil(iterations / steps))
        centroids = data.centroid_dataset(features, sets, cfg.crop_frames, cfg.inference_batch_size,
                                          cfg.centroid_crops, lengths=lengths)
        updater = CentroidUpdate(centroids, calibration=calibration, calibration_batches=cfg.bn_calibration_batches)
        history = self.model.fit(sampler.dataset(), steps_per_epoch=steps, epochs=epochs, verbose=0, shuffle=False,
                                 callbacks=[updater, _StopAfter.make(iterations)])
        last = {k: float(v[-1]) for k, v in history.history.items() if v}
        last.update(steps_per_epoch=steps, epochs=epochs, bn_calibration_batches=updater.calibrated_with,
                    centroid_updates=int(np.asarray(self.model.centroid_updates.numpy())))
        return last


# ------------------------------------------------------------------------------------------ the run

def _config_from_args(args) -> tuple[DDCSADConfig, bool, str]:
    from asdcore.experiment import resolve_config, resolve_quick

    quick, why = resolve_quick(args)
    overrides = {}
    if args.losses is not None:
        overrides["losses"] = parse_losses(args.losses)
    if args.anomalies is not None:
        overrides["anomalies"] = parse_counts(args.anomalies)
    if args.backbone is not None:
        overrides["backbone"] = args.backbone
    config = resolve_config(QUICK_CONFIG if quick else PAPER_CONFIG, args.config, overrides)
    config = dataclasses.replace(config, losses=parse_losses(config.losses), anomalies=parse_counts(config.anomalies),
                                 parts=tuple(config.parts), machine_types=tuple(config.machine_types or ()))
    _check_config(config)
    return config, quick, why


def _check_config(c: DDCSADConfig) -> None:
    from ddcsad.data import AMPLITUDE_LEVELS, EPOCH_DEFINITIONS
    from ddcsad.scoring import MINMAX_OVER

    if c.amplitude_norm not in AMPLITUDE_LEVELS:
        raise ASDError(f"amplitude_norm {c.amplitude_norm!r}: use one of {', '.join(AMPLITUDE_LEVELS)}")
    if c.epoch not in EPOCH_DEFINITIONS:
        raise ASDError(f"epoch {c.epoch!r}: use one of {', '.join(EPOCH_DEFINITIONS)}")
    if c.minmax_over not in MINMAX_OVER:
        raise ASDError(f"minmax_over {c.minmax_over!r}: use one of {', '.join(MINMAX_OVER)}")
    if c.save_models not in SAVE_MODELS:
        raise ASDError(f"save_models {c.save_models!r}: use one of {', '.join(SAVE_MODELS)}")
    if c.anomaly_label not in ("anomaly", "outlier"):
        raise ASDError(f"anomaly_label {c.anomaly_label!r}: use anomaly or outlier")
    if not (c.alpha in ("table1", "validation") or (isinstance(c.alpha, (int, float)) and 0 <= c.alpha <= 1)):
        raise ASDError(f"alpha {c.alpha!r}: use table1, validation or a number between 0 and 1")
    if c.bn_calibration_batches < 0:
        raise ASDError(f"bn_calibration_batches {c.bn_calibration_batches}: use 0 (initial statistics) or more")
    if c.feature_frames is not None and c.feature_frames < c.crop_frames:
        raise ASDError(f"feature_frames {c.feature_frames} < crop_frames {c.crop_frames}: use null (every frame)")
    if c.iterations < 1 or c.finetune_iterations < 1:
        raise ASDError("iterations and finetune_iterations must be at least 1")
    bad_parts = [p for p in c.parts if p not in ("dev", "eval")]
    if bad_parts or not c.parts:
        raise ASDError(f"parts {c.parts}: use dev and/or eval")


def run(args) -> int:
    from asdcore.experiment import RunFolder, get_logger, set_seed

    config, quick, why = _config_from_args(args)
    set_seed(args.seed)
    log = get_logger()
    run_folder = RunFolder.create(args.out, 2020, "ddcsad")
    try:
        _run(args, config, quick, why, run_folder, log)
    finally:
        run_folder.close()
    return 0


def _run(args, config, quick, why, run_folder, log):
    from asdcore.experiment import QUICK_BANNER, cache_root
    from asdcore.features import LogMelConfig, valid_frames
    from asdcore.pipeline import evaluate_systems, load_features, open_data
    from ddcsad import data

    t_start = time.time()
    mode = "QUICK" if quick else "full"  # the `mode` column of every CSV (as results.csv)
    if quick:
        log.info("%s [%s]", QUICK_BANNER, why)
        run_folder.write_text("QUICK_MODE.txt", f"{QUICK_BANNER}\nreason: {why}\n")
    source, table = open_data(args, 2020)
    feature_config = LogMelConfig(n_fft=config.n_fft, hop_length=config.hop_length, n_mels=config.n_mels,
                                  n_frames=config.feature_frames)
    units = data.select_units(table, config.parts, config.units_per_type, config.machine_types)
    if not units:
        raise ASDError(f"no machine ID with training clips in parts {config.parts}; check --data-root and parts")
    run_folder.write_config({"experiment": "ddcsad", "paper": "Kuroyanagi et al., BCE + DDCSAD (DCASE 2020)",
                             "mode": QUICK_BANNER if quick else "paper settings", "quick_reason": why,
                             "data": source.description, "seed": args.seed, "settings": config,
                             "features": feature_config, "units": [list(u) for u in units]})
    # train clips of every ID (outliers) + test clips of the IDs that get a model
    unit_set = {(t, u) for _, t, u in units}
    wanted = (table["split"] == "train").to_numpy() | np.array(
        [(t, u) in unit_set for t, u in zip(table["machine_type"], table["unit"])])
    table = table[wanted].reset_index(drop=True)
    table, features = load_features(table, feature_config, args, run_folder, ragged="pad")
    features, lengths = data.fit_short_clips(features, valid_frames(features), config.crop_frames)
    log.info("features: %d clips of %d-%d frames (crops span each whole clip)", len(lengths),
             int(lengths.min()) if len(lengths) else 0, int(lengths.max()) if len(lengths) else 0)
    offsets, amplitudes = data.amplitude_normalisation(
        table, config.amplitude_norm, cache_dir=cache_root(args.cache_dir) / "amplitude",
        sr=feature_config.sr, skip_bad_files=args.skip_bad_files)
    data.normalise_amplitude(features, offsets)
    run_folder.write_csv("amplitude.csv", amplitudes.assign(level=config.amplitude_norm, mode=mode))
    log.info("amplitude normalisation per %s: %d groups, |mean|/std <= %.2g", config.amplitude_norm,
             len(amplitudes), float((amplitudes["mean"].abs() / amplitudes["std"].clip(lower=1e-12)).max())
             if len(amplitudes) else 0.0)

    counts = [k for k in config.anomalies if k > 0]
    pool, dropped = {}, []
    if counts:
        pool = data.anomaly_pool(table, units, config.anomaly_pool, config.anomaly_pool_max_fraction, args.seed)
        pool = {key: rows for key, rows in pool.items() if len(rows)}  # IDs without labelled anomalies: no study
        smallest = min((len(v) for v in pool.values()), default=0)
        dropped = [k for k in counts if k > smallest]
        counts = [k for k in counts if k <= smallest]
        if dropped:
            log.warning("anomaly counts %s dropped: the smallest pool holds %d anomalous clips per ID%s", dropped,
                        smallest, " (the synthetic data have few anomalies)" if source.synthetic else "")
        if counts:
            log.info("few-anomaly study: counts %s on %d IDs, pools of %d-%d clips per ID", counts, len(pool),
                     smallest, max(len(v) for v in pool.values()))

    outputs, train_rows = _train_all(config, features, lengths, table, units, pool, counts, run_folder, args.seed,
                                     log)
    run_folder.write_csv("training.csv", pd.DataFrame(train_rows).assign(mode=mode))

    # ---- Table II: scores of the models trained without anomalies, on every test clip
    alphas = _alphas(config, table, units, outputs, log)
    run_folder.write_csv("alpha.csv", alphas.assign(mode=mode))
    systems = {loss: _scores(config, table, units, outputs[(loss, 0)], alphas, loss, pool=None)
               for loss in config.losses}
    per_unit, summary = evaluate_systems(run_folder, table, systems, 2020, quick=quick)
    table2 = _table2(table, systems)
    if len(table2):
        run_folder.write_csv("table2.csv", table2.assign(mode=mode))

    # ---- Fig. 2: fine-tuned with k anomalies, evaluated without the pooled clips
    fig2 = pd.DataFrame()
    if counts:
        fig2 = _few_anomalies(config, table, units, outputs, alphas, pool, counts, run_folder, quick, mode)

    text = _comparison(config, source, quick, why, table2, summary, alphas, fig2, dropped, units)
    run_folder.write_text("comparison.md", text)
    printable = _table2_layout(table2, "eval") if (len(table2) and (table2["part"] == "eval").any()) else \
        (_table2_layout(table2, "dev") if len(table2) else pd.DataFrame())
    if len(printable):
        print(("QUICK MODE - " if quick else "") + "AUC [%] +/- 95 % CI per machine type (pooled IDs), ours vs paper:")
        print(printable.to_string(index=False))
    print(f"run folder: {run_folder.path}  ({time.time() - t_start:.0f} s)")


def plan_model_files(config, n_base: int, n_finetuned: int, model, folder, log=None) -> int:
    """How many weights files the run will write; logs their size and stops early when the disk is short.

    ``save_models``: ``"none"`` writes nothing, ``"base"`` one file per model trained without anomalies,
    ``"all"`` also one per fine-tuned model. Each file holds the model's variables only
    (:func:`ddcsad.model.save_model_weights`, at most :func:`ddcsad.model.weights_file_bytes`: ~274 MB
    for ResNet38, no optimizer state). Raises :class:`ASDError` (one line) when ``folder``'s free space is below the total plus
    5 %.
    """
    import shutil

    from ddcsad.model import weights_file_bytes

    n_files = {"none": 0, "base": n_base, "all": n_base + n_finetuned}[config.save_models]
    if n_files == 0:
        return 0
    each = weights_file_bytes(model)
    total = n_files * each
    free = shutil.disk_usage(folder).free
    if log is not None:
        log.info("saving %d weights files of %.3f MB each, %.2f GB in all, under models/ (save_models: %s; "
                 "%.1f GB free)", n_files, each / 1e6, total / 1e9, config.save_models, free / 1e9)
    if free < 1.05 * total:
        raise ASDError(f"save_models: {config.save_models} needs {total / 1e9:.1f} GB for {n_files} weights files "
                       f"but {folder} has {free / 1e9:.1f} GB free; set save_models: none (or base) in --config, "
                       "or use --out on a larger disk")
    return n_files


def _train_all(config, features, lengths, table, units, pool, counts, run_folder, seed, log):
    """Train every loss on every ID (and fine-tune per count); crop outputs of the evaluated clips."""
    from ddcsad import data
    from ddcsad.model import save_model_weights
    from ddcsad.scoring import crop_outputs

    input_shape = (config.crop_frames, int(features.shape[2]))
    outputs = {}  # (loss, k) -> {unit key: (rows, logit, d)}
    rows_log = []
    n_finetuned = len(config.losses) * len(counts) * sum(f'{t}/{u}' in pool for _, t, u in units)
    n_models = len(config.losses) * len(units) + n_finetuned
    done = 0
    for loss in config.losses:
        t0 = time.time()
        trainer = LossTrainer(loss, config, input_shape, seed=seed)  # same initial network for every loss
        log.info("%s: model built (%s backbone) in %.1f s", loss, config.backbone, time.time() - t0)
        if loss == config.losses[0]:
            plan_model_files(config, len(config.losses) * len(units), n_finetuned, trainer.model,
                             run_folder.path, log)
        for ui, (part, machine_type, unit) in enumerate(units):
            sets = data.unit_sets(table, machine_type, unit, pool)
            t0 = time.time()
            trainer.reset()
            info = trainer.train(features, sets, config.iterations, config.batch_composition,
                                 seed=seed * 7919 + ui, lengths=lengths)
            test_rows = np.flatnonzero((table["split"] == "test").to_numpy()
                                       & (table["machine_type"] == machine_type).to_numpy()
                                       & (table["unit"] == unit).to_numpy())
            logit, d = crop_outputs(trainer.model, features, test_rows, config.n_crops, config.crop_frames,
                                    config.inference_batch_size, lengths=lengths)
            outputs.setdefault((loss, 0), {})[sets.key] = (test_rows, logit, d)
            if config.save_models != "none":
                save_model_weights(trainer.model, run_folder.file("models", loss,
                                                                  f"{machine_type}_{unit}.weights.npz"))
            done += 1
            rows_log.append(_train_row(loss, part, machine_type, unit, 0, sets, config.iterations, info, t0))
            log.info("[%d/%d] %s %s %s %s: %d it, loss %.4g, %d centroid updates, %.1f s", done, n_models, loss,
                     part, machine_type, unit, config.iterations, info.get("loss", float("nan")),
                     info["centroid_updates"], time.time() - t0)
            if not counts or sets.key not in pool:
                continue
            base = trainer.model.get_weights()
            for k in counts:
                sets_k = data.unit_sets(table, machine_type, unit, pool, n_anomalies=k)
                t0 = time.time()
                trainer.reset(base)
                info = trainer.train(features, sets_k, config.finetune_iterations,
                                     config.batch_composition_anomalies, seed=seed * 7919 + ui * 131 + k,
                                     lengths=lengths)
                logit, d = crop_outputs(trainer.model, features, sets_k.test, config.n_crops, config.crop_frames,
                                        config.inference_batch_size, lengths=lengths)
                outputs.setdefault((loss, k), {})[sets.key] = (sets_k.test, logit, d)
                if config.save_models == "all":
                    save_model_weights(trainer.model, run_folder.file("models", f"{loss}_anomalies{k}",
                                                                      f"{machine_type}_{unit}.weights.npz"))
                done += 1
                rows_log.append(_train_row(loss, part, machine_type, unit, k, sets_k, config.finetune_iterations,
                                           info, t0))
                log.info("[%d/%d] %s %s %s %s + %d anomalies: %d it, loss %.4g, %.1f s", done, n_models, loss,
                         part, machine_type, unit, k, config.finetune_iterations, info.get("loss", float("nan")),
                         time.time() - t0)
        del trainer
    return outputs, rows_log


def _train_row(loss, part, machine_type, unit, k, sets, iterations, info, t0):
    return {"loss": loss, "part": part, "machine_type": machine_type, "unit": unit, "anomalies": k,
            "n_normal": len(sets.normal), "n_outlier": len(sets.outlier), "n_anomaly": len(sets.anomaly),
            "n_test": len(sets.test), "iterations": iterations, "steps_per_epoch": info["steps_per_epoch"],
            "centroid_updates": info["centroid_updates"], "final_loss": info.get("loss"),
            "final_bce": info.get("bce"), "final_centroid_loss": info.get("centroid_loss"),
            "seconds": round(time.time() - t0, 2)}


def _labelled(table, rows):
    labels = table["label"].to_numpy()[rows]
    keep = np.isin(labels, ["normal", "anomaly"])
    return keep, labels == "anomaly"


def _alphas(config, table, units, outputs, log) -> pd.DataFrame:
    """alpha per (loss, machine type): Table I, chosen on the dev IDs, and the one used."""
    from ddcsad.scoring import ALPHA_GRID, PAPER_NAMES, choose_alpha, fixed_alpha, table1_alpha

    rows = []
    types = sorted({t for _, t, _ in units})
    for loss in config.losses:
        for machine_type in types:
            row = {"loss": loss, "method": PAPER_NAMES[loss], "machine_type": machine_type}
            fixed = fixed_alpha(loss)
            row["alpha_table1"] = table1_alpha(loss, machine_type)
            sets = []
            for part, t, u in units:
                if part != "dev" or t != machine_type:
                    continue
                rows_u, logit, d = outputs[(loss, 0)][f"{t}/{u}"]
                keep, y = _labelled(table, rows_u)
                if keep.any() and y[keep].any() and not y[keep].all():
                    sets.append((logit[keep], d[keep], y[keep]))
            row["alpha_validation"], row["validation_auc"] = np.nan, np.nan
            if fixed is None and sets:
                try:
                    best, curve = choose_alpha(sets, ALPHA_GRID, config.minmax_over)
                    row["alpha_validation"] = best
                    row["validation_auc"] = float(curve["auc"].max())
                except ASDError as err:  # e.g. one class only among the pooled dev clips
                    log.warning("alpha for %s %s not chosen: %s", loss, machine_type, err)
            if fixed is not None:
                used = fixed
            elif config.alpha == "table1":
                used = row["alpha_table1"]
            elif config.alpha == "validation":
                if np.isnan(row["alpha_validation"]):
                    raise ASDError(f"alpha: validation needs labelled dev test clips of {machine_type}; "
                                   "train dev IDs (parts: [dev, eval]) or use alpha: table1")
                used = row["alpha_validation"]
            else:
                used = float(config.alpha)
            row["alpha_used"] = used
            rows.append(row)
    return pd.DataFrame(rows)


def _alpha_of(alphas, loss, machine_type) -> float:
    row = alphas[(alphas["loss"] == loss) & (alphas["machine_type"] == machine_type)]
    return float(row["alpha_used"].iloc[0])


def _scores(config, table, units, unit_outputs, alphas, loss, pool=None) -> np.ndarray:
    """Scores aligned with ``table`` (NaN where not scored), eq. (5) per ID over its evaluated clips."""
    from ddcsad.scoring import variant_scores

    scores = np.full(len(table), np.nan)
    for _part, machine_type, unit in units:
        key = f"{machine_type}/{unit}"
        rows, logit, d = unit_outputs[key]
        if pool is not None:  # the base model evaluated without the pooled clips (Fig. 2 at 0 anomalies)
            keep = ~np.isin(rows, pool.get(key, []))
            rows, logit, d = rows[keep], logit[keep], d[keep]
        scores[rows] = variant_scores(loss, logit, d, _alpha_of(alphas, loss, machine_type), config.minmax_over)
    return scores


def _table2(table, systems) -> pd.DataFrame:
    from ddcsad.scoring import PAPER_NAMES, machine_average, type_auc

    frames = []
    for loss, scores in systems.items():
        per_type = type_auc(table, scores)
        if per_type.empty:
            continue
        both = pd.concat([per_type, machine_average(per_type)], ignore_index=True)
        both.insert(0, "method", PAPER_NAMES[loss])
        both.insert(0, "loss", loss)
        frames.append(both)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _fmt(auc, half) -> str:
    if auc is None or not np.isfinite(auc):
        return "-"
    return f"{100 * auc:.2f}" + (f" ± {100 * half:.2f}" if half is not None and np.isfinite(half) else "")


TYPE_ORDER = ("fan", "pump", "slider", "ToyCar", "ToyConveyor", "valve", "Machine Average")
"""Row order of Table II."""


def _table2_layout(table2: pd.DataFrame, part: str, with_paper: bool = True) -> pd.DataFrame:
    """Rows = machine types (Table II order), columns ``<METHOD> (ours)`` / ``(paper)`` as 'AUC ± CI'."""
    from asdcore.published import load_table

    ours = table2[table2["part"] == part]
    paper = load_table("kuroyanagi2020_table2", wide=True) if with_paper else None
    types = [t for t in TYPE_ORDER if t in set(ours["machine_type"])]
    out = pd.DataFrame({"machine type": types})
    for method in dict.fromkeys(ours["method"]):
        mine = ours[ours["method"] == method].set_index("machine_type")
        out[f"{method} (ours)"] = [_fmt(mine.at[t, "auc"], mine.at[t, "ci95"] if "ci95" in mine else None)
                                   for t in types]
        if paper is not None:
            theirs = paper[paper["method"] == method]
            values = []
            for t in types:
                key = "all" if t == "Machine Average" else t
                r = theirs[theirs["machine_type"] == key]
                values.append(_fmt(r["auc"].iloc[0] / 100, r["auc_ci95"].iloc[0] / 100 if "auc_ci95" in r else None)
                              if len(r) else "-")
            out[f"{method} (paper)"] = values
    return out


def _few_anomalies(config, table, units, outputs, alphas, pool, counts, run_folder, quick, mode) -> pd.DataFrame:
    """Evaluate the fine-tuned models (and the base models) without the pooled clips; Fig. 2 data and plot."""
    from asdcore.experiment import RunFolder
    from asdcore.pipeline import evaluate_systems
    from ddcsad.scoring import PAPER_NAMES, type_auc

    units = [u for u in units if f"{u[1]}/{u[2]}" in pool]  # IDs with labelled anomalies
    keys = {f"{t}/{u}" for _, t, u in units}
    keep = (table["split"] == "test").to_numpy() & np.isin(pd.Series(table["machine_type"] + "/" + table["unit"]), list(keys))
    keep[np.concatenate(list(pool.values()))] = False
    reduced = table[keep].reset_index(drop=True)
    systems, frames = {}, []
    for loss in config.losses:
        for k in [0] + list(counts):
            full = _scores(config, table, units, outputs[(loss, k)], alphas, loss, pool=pool if k == 0 else None)
            scores = full[keep]
            systems[f"{loss}_anomalies{k}"] = scores
            per_type = type_auc(reduced, scores)
            per_type.insert(0, "anomalies", k)
            per_type.insert(0, "method", PAPER_NAMES[loss])
            per_type.insert(0, "loss", loss)
            frames.append(per_type)
    sub = RunFolder(run_folder.path / "few_anomalies")
    sub.path.mkdir(parents=True, exist_ok=True)
    evaluate_systems(sub, reduced, systems, 2020, quick=quick, plots=False)
    fig2 = pd.concat(frames, ignore_index=True)
    run_folder.write_csv("fig2.csv", fig2.assign(mode=mode))
    for part in sorted(fig2["part"].unique()):
        _plot_fig2(fig2[fig2["part"] == part], run_folder.file("plots", f"fig2_{part}.png"), part, quick)
    return fig2


def _plot_fig2(fig2: pd.DataFrame, path, part: str, quick: bool) -> None:
    """AUC [%] against the number of anomalies per ID, one panel per machine type, one line per loss,
    95 % Hanley-McNeil bands (Fig. 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from asdcore.experiment import QUICK_BANNER

    types = [t for t in TYPE_ORDER if t in set(fig2["machine_type"])]
    ncols = 3
    nrows = max(1, math.ceil(len(types) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    counts = sorted(fig2["anomalies"].unique())
    xpos = {k: i for i, k in enumerate(counts)}
    for ax, machine_type in zip(axes.ravel(), types):
        rows = fig2[fig2["machine_type"] == machine_type]
        for method, r in rows.groupby("method", sort=False):
            r = r.sort_values("anomalies")
            x = [xpos[k] for k in r["anomalies"]]
            line, = ax.plot(x, 100 * r["auc"], marker="o", ms=3, lw=1.2, label=method)
            ax.fill_between(x, 100 * r["auc_ci_low"], 100 * r["auc_ci_high"], color=line.get_color(), alpha=0.15)
        ax.set_xticks(range(len(counts)), [str(k) for k in counts])
        ax.set(title=machine_type, xlabel="anomalous clips per ID", ylabel="AUC [%]")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(types):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    title = f"AUC vs. real anomalies in training ({part} set, 95 % CI)"
    if quick:
        title += f"\n{QUICK_BANNER}"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _comparison(config, source, quick, why, table2, summary, alphas, fig2, dropped, units) -> str:
    from asdcore.experiment import QUICK_BANNER
    from asdcore.report import comparison_markdown

    lines = ["# BCE + DDCSAD (Kuroyanagi et al., DCASE 2020 task 2): Table II and Fig. 2", ""]
    notes = [source.description]
    if quick:
        notes.insert(0, f"**{QUICK_BANNER}** ({why})")
    n_parts = sorted({p for p, _, _ in units})
    notes.append(f"{len(units)} machine IDs ({', '.join(n_parts)}), backbone {config.backbone}, "
                 f"{config.iterations} iterations, batches {':'.join(map(str, config.batch_composition))}, "
                 f"alpha: {config.alpha}, amplitude normalisation per {config.amplitude_norm}")
    notes.append("AUC of the pooled test clips of all IDs of a type, ± 1.96 SE (Hanley & McNeil); the paper's "
                 "Table II set is inferred to be the evaluation set; organisers' per-ID means are in results.csv")
    if len(table2):
        for part in ("eval", "dev"):
            if not (table2["part"] == part).any():
                continue
            title = ("Table II: AUC [%] per machine type (evaluation set)" if part == "eval"
                     else "Development (validation) set: AUC [%] per machine type (the paper prints none)")
            lines.append(comparison_markdown(title, _table2_layout(table2, part, with_paper=(part == "eval")),
                                             notes if part == "eval" or not (table2["part"] == "eval").any()
                                             else None))
    if summary is not None and len(summary):
        org = summary[summary["statistic"].isin(["arithmetic mean", "arithmetic mean of type means"])].copy()
        org = org[(org["machine_type"] != "all") | (org["statistic"] == "arithmetic mean of type means")]
        org["auc"] = 100 * org["auc"]
        org["pauc"] = 100 * org["pauc"]
        wide = org.pivot_table(index=["part", "machine_type"], columns="system", values=["auc", "pauc"], sort=False)
        wide.columns = [f"{s} {m.upper() if m == 'auc' else 'pAUC'}" for m, s in wide.columns]
        lines.append(comparison_markdown("Organisers' statistics: mean over IDs of the per-ID AUC / pAUC [%]",
                                         wide.reset_index(), ["'all' = mean of the per-type means"]))
    if len(alphas):
        show = alphas[alphas["alpha_table1"].notna() & alphas["loss"].isin(["bce+dsad", "bce+ddcsad"])]
        if len(show):
            lines.append(comparison_markdown(
                "Table I: alpha of eq. (5) - paper vs. chosen on our development (validation) IDs",
                show[["method", "machine_type", "alpha_table1", "alpha_validation", "validation_auc", "alpha_used"]],
                [f"used: alpha = {config.alpha}"]))
    if len(fig2):
        f = fig2.copy()
        f["AUC [%]"] = [_fmt(a, h) for a, h in zip(f["auc"], f["ci95"])]
        wide = f.pivot_table(index=["part", "method", "machine_type"], columns="anomalies", values="AUC [%]",
                             aggfunc="first", sort=False).reset_index()
        wide.columns = [str(c) for c in wide.columns]
        notes2 = ["columns: real anomalous clips per ID used in training (0 = the Table II model); all evaluated "
                  "without the pooled clips; plot: plots/fig2_<part>.png"]
        if dropped:
            notes2.append(f"counts {dropped} left out: some ID has fewer pooled anomalies")
        if quick:
            notes2.insert(0, QUICK_BANNER)
        lines.append(comparison_markdown("Fig. 2: AUC [%] ± 95 % CI against the number of real anomalies",
                                         wide, notes2))
    return "\n".join(lines)
