"""The ``ddcsad`` command of ``run_dcase2020.py``: Table II and Fig. 2 of Kuroyanagi et al.

``python run_dcase2020.py ddcsad [--losses bce,dsad,ddcsad,bce+dsad,bce+ddcsad] [--anomalies 0,1,2,4,...,64]
[--backbone resnet38|light] [--data-root ROOT] [--out DIR] [--quick|--full] [--seed N] [--config YAML]
[--workers N] [--plan] [--resume RUN_DIR]``

Run through :mod:`asdcore.runner`. One unit of work per loss and machine ID, named
``<type>-<id>-<loss>`` (``+`` written ``_``, e.g. ``fan-id_00-bce_ddcsad``): it trains the ID's model
without anomalies (Table II) and then, from its weights, the fine-tuned models with 1, 2, 4, ... real
anomalous clips (Sec. IV-C, Fig. 2), all in :func:`ddcsad.training.train_id_models`, and writes their
crop outputs (``outputs.npz``) and, with ``save_models``, weights into ``units/<name>/``. :meth:`DDCSAD.assemble`
then chooses alpha (Table I), scores every loss with eq. (5) and evaluates the few-anomaly models.

Run folder (``<out>/2020/ddcsad/<timestamp>/``): ``config.yaml``, ``run.log``, ``units.csv``, ``units/``,
``scores/<loss>/`` (DCASE submission files), ``results.csv`` (organisers' per-ID AUC/pAUC and means),
``table2.csv`` and ``comparison.md`` (per machine type AUC +/- 95 % interval beside Table II), ``alpha.csv``
(Table I and validation-chosen alpha), ``amplitude.csv``, ``training.csv`` (one line per trained model),
``models/<loss>[_anomalies<k>]/<type>_<id>.weights.npz`` (links to the unit folders' weights, only with
``save_models: base`` or ``all``), ``plots/``; with anomalies also ``few_anomalies/`` (its own
``scores/<loss>_anomalies<k>/`` and ``results.csv``), ``fig2.csv`` and ``plots/fig2_<part>.png``.

Without ``--data-root`` the command runs on the synthetic DCASE 2020 set in quick mode (``--full`` forces
the paper's settings there); ``--quick`` shrinks the settings on any data. Quick mode is stated in the
log, ``config.yaml``, ``QUICK_MODE.txt``, every CSV written here (column ``mode``), ``comparison.md`` and
every plot title.

Keras is imported only by the units and assemble (:mod:`ddcsad.training`, :mod:`ddcsad.scoring`), so
``--help`` is fast.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from asdcore.errors import ASDError
from asdcore.runner import Assembled, Method

__all__ = ["DDCSADConfig", "PAPER_CONFIG", "QUICK_CONFIG", "parse_losses", "parse_counts", "DDCSAD", "METHOD"]

VARIANTS = ("bce", "dsad", "ddcsad", "bce+dsad", "bce+ddcsad")
"""The five losses of Table II (= ``ddcsad.losses.VARIANTS``; repeated so that ``--help`` needs no Keras)."""

PAPER_COUNTS = (0, 1, 2, 4, 8, 16, 32, 64)
"""Numbers of real anomalies per ID of Fig. 2 (Sec. IV-C: "[1, 2, 4, ..., 64]"; 0 = Table II)."""


SAVE_MODELS = ("base", "all", "none")
AMPLITUDE_LEVELS = ("machine", "type", "clip", "none")  # = ddcsad.data.AMPLITUDE_LEVELS (no Keras for --help)
EPOCH_DEFINITIONS = ("dataset", "normal")  # = ddcsad.data.EPOCH_DEFINITIONS
MINMAX_OVER = ("crops", "clips")  # = ddcsad.scoring.MINMAX_OVER


# ------------------------------------------------------------------------------------------ settings

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


def _check_config(c) -> None:
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

    def __post_init__(self):
        """Normalise the flags' and YAML's forms and reject bad values with one line (before any data is read)."""
        for name, value in (("losses", parse_losses(self.losses)), ("anomalies", parse_counts(self.anomalies)),
                            ("parts", tuple(self.parts)), ("machine_types", tuple(self.machine_types or ()))):
            object.__setattr__(self, name, value)
        _check_config(self)


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


# ------------------------------------------------------------------------------------------ the method

TYPE_ORDER = ("fan", "pump", "slider", "ToyCar", "ToyConveyor", "valve", "Machine Average")
"""Row order of Table II."""


def unit_name(loss: str, machine_type: str, unit: str) -> str:
    """The unit of one loss and machine ID: ``fan-id_00-bce_ddcsad``."""
    return f"{machine_type}-{unit}-{loss.replace('+', '_')}"


class DDCSAD(Method):
    """Kuroyanagi et al. (DCASE 2020): five losses (Table II, alpha of Table I) and few real anomalies (Fig. 2)."""

    command = "ddcsad"
    year = 2020
    title = "BCE + DDCSAD (Kuroyanagi et al., DCASE 2020 task 2): Table II and Fig. 2"

    def default_config(self, quick):
        return QUICK_CONFIG if quick else PAPER_CONFIG

    def add_arguments(self, parser):
        parser.add_argument("--losses", default=None,
                            help="comma-separated losses of Table II (default: all five: " + ",".join(VARIANTS) + ")")
        parser.add_argument("--anomalies", default=None, help="real anomalies per ID for Fig. 2, e.g. 0,1,2,4,...,64 "
                                                              "or 'paper' (default 0: Table II only)")
        parser.add_argument("--backbone", choices=("resnet38", "light"), default=None,
                            help="feature extractor: resnet38 (paper) or light (CPU); default resnet38, quick: light")

    def overrides(self, args):
        return {"losses": None if args.losses is None else parse_losses(args.losses),
                "anomalies": None if args.anomalies is None else parse_counts(args.anomalies),
                "backbone": args.backbone}

    def prepare(self, ctx):
        """Features of the train clips and of the test clips of the IDs with a model (every frame,
        amplitude-normalised per machine ID) and the Fig. 2 anomaly pools."""
        from asdcore.experiment import cache_root
        from asdcore.features import LogMelConfig, valid_frames
        from asdcore.pipeline import load_features
        from asdcore.selection import unit_keys
        from ddcsad import data

        config, log = ctx.config, ctx.log
        ids = data.select_units(ctx.table, config.parts, config.units_per_type, config.machine_types)
        if not ids:
            raise ASDError(f"no machine ID with training clips in parts {config.parts}; check --data-root and parts")
        feature_config = LogMelConfig(n_fft=config.n_fft, hop_length=config.hop_length, n_mels=config.n_mels,
                                      n_frames=config.feature_frames)
        with_model = {f"{t}/{u}" for _, t, u in ids}
        wanted = ctx.mask(split="train") | np.isin(unit_keys(ctx.table), list(with_model))
        ctx.table = ctx.table[wanted].reset_index(drop=True)
        # every frame of clips of different lengths: NaN-padded (ctx.features keeps a fixed frame count)
        ctx.table, features = load_features(ctx.table, feature_config, ctx.args, ctx.run, ragged="pad")
        features, lengths = data.fit_short_clips(features, valid_frames(features), config.crop_frames)
        log.info("features: %d clips of %d-%d frames (crops span each whole clip)", len(lengths),
                 int(lengths.min()) if len(lengths) else 0, int(lengths.max()) if len(lengths) else 0)
        offsets, amplitudes = data.amplitude_normalisation(
            ctx.table, config.amplitude_norm, cache_dir=cache_root(ctx.args.cache_dir) / "amplitude",
            sr=feature_config.sr, skip_bad_files=ctx.args.skip_bad_files)
        features = data.normalise_amplitude(features, offsets)
        counts = [k for k in config.anomalies if k > 0]
        pool, dropped = {}, []
        if counts:
            pool = data.anomaly_pool(ctx.table, ids, config.anomaly_pool, config.anomaly_pool_max_fraction, ctx.seed)
            pool = {key: rows for key, rows in pool.items() if len(rows)}  # IDs without labelled anomalies: no study
            smallest = min((len(v) for v in pool.values()), default=0)
            dropped = [k for k in counts if k > smallest]
            counts = [k for k in counts if k <= smallest]
            if dropped:
                log.warning("anomaly counts %s dropped: the smallest pool holds %d anomalous clips per ID%s", dropped,
                            smallest, " (the synthetic data have few anomalies)" if ctx.source.synthetic else "")
        ctx.state.update(ids=ids, features=features, lengths=lengths, amplitudes=amplitudes, pool=pool,
                         counts=counts, dropped=dropped)

    def units(self, ctx):
        pool, counts = ctx.state["pool"], ctx.state["counts"]
        return [ctx.unit(unit_name(loss, t, u), {"loss": loss, "part": part, "machine_type": t, "unit": u,
                                                 "anomalies": counts if f"{t}/{u}" in pool else []})
                for loss in ctx.config.losses for part, t, u in ctx.state["ids"]]

    def estimate(self, ctx, units):
        config = ctx.config
        steps = sum(config.iterations + config.finetune_iterations * len(u.spec["anomalies"]) for u in units)
        if config.save_models != "none" and any(not u.done for u in units):
            from ddcsad.training import LossTrainer, plan_model_files

            trainer = LossTrainer(config.losses[0], config, (config.crop_frames, ctx.state["features"].shape[2]))
            n_finetuned = sum(len(u.spec["anomalies"]) for u in units)
            plan_model_files(config, len(units), n_finetuned, trainer.model, ctx.run.path, ctx.log)
        return {"steps": steps}

    def train_unit(self, ctx, unit):
        from ddcsad.training import train_id_models

        s = unit.spec
        rows = train_id_models(ctx.config, s["loss"], ctx.state["features"], ctx.state["lengths"], ctx.table,
                               s["machine_type"], s["unit"], ctx.state["pool"], s["anomalies"], seed=unit.seed,
                               init_seed=ctx.seed_for("initial network"), folder=unit.folder, log=ctx.log)
        return {"n_clips": len(ctx.table), "training": rows}

    def assemble(self, ctx, units):
        from asdcore.experiment import QUICK_BANNER
        from ddcsad.scoring import alpha_table, id_scores, table2_frame
        from ddcsad.training import load_outputs

        config, ids, pool, counts = ctx.config, ctx.state["ids"], ctx.state["pool"], ctx.state["counts"]
        outputs = {}  # (loss, k) -> {"<type>/<id>": (rows, logit, d)}
        for unit in units:
            if unit.result()["n_clips"] != len(ctx.table):
                raise ASDError(f"unit {unit.name} was trained on another clip table; rerun it (remove its folder)")
            for k, out in load_outputs(unit.folder).items():
                outputs.setdefault((unit.spec["loss"], k), {})[f"{unit.spec['machine_type']}/{unit.spec['unit']}"] = out
        _link_weights(ctx, units)
        if ctx.quick:
            ctx.run.write_text("QUICK_MODE.txt", f"{QUICK_BANNER}\nreason: {ctx.why}\n")
        mode = ctx.mode
        ctx.run.write_csv("amplitude.csv", ctx.state["amplitudes"].assign(level=config.amplitude_norm, mode=mode))
        ctx.run.write_csv("training.csv", pd.DataFrame([r for u in units for r in u.result()["training"]])
                          .assign(mode=mode))
        # ---- Table II: the models trained without anomalies, on every test clip
        alphas = alpha_table(config.losses, ctx.table, ids, {loss: outputs[(loss, 0)] for loss in config.losses},
                             config.alpha, config.minmax_over, ctx.log)
        ctx.run.write_csv("alpha.csv", alphas.assign(mode=mode))
        systems = {loss: id_scores(loss, len(ctx.table), ids, outputs[(loss, 0)], alphas, config.minmax_over)
                   for loss in config.losses}
        table2 = table2_frame(ctx.table, systems)
        if len(table2):
            ctx.run.write_csv("table2.csv", table2.assign(mode=mode))
        # ---- Fig. 2: fine-tuned with k anomalies, evaluated without the pooled clips
        fig2 = _few_anomalies(ctx, outputs, alphas, pool, counts) if counts else pd.DataFrame()

        def report(ctx, per_unit, summary):
            return _report(ctx, table2, summary, alphas, fig2)

        def claims(confidence):
            from ddcsad.claims import claims_for

            return claims_for(confidence, config, ctx.state.get("few_anomalies_per_unit"))

        return Assembled(systems, report=report, claims=claims)


def _link_weights(ctx, units) -> None:
    """``models/<loss>[_anomalies<k>]/<type>_<id>.weights.npz``: hard links to the unit folders' files."""
    for unit in units:
        for path in sorted(unit.folder.glob("*.weights.npz")):
            system = unit.spec["loss"] + ("" if path.name == "model.weights.npz" else
                                          "_" + path.name.split(".")[0])
            target = ctx.run.file("models", system, f"{unit.spec['machine_type']}_{unit.spec['unit']}.weights.npz")
            if target.exists():
                continue
            try:
                os.link(path, target)
            except OSError:  # another file system: a relative link
                target.symlink_to(os.path.relpath(path, target.parent))


def _few_anomalies(ctx, outputs, alphas, pool, counts) -> pd.DataFrame:
    """Evaluate the fine-tuned models (and the base models) without the pooled clips; Fig. 2 data and plot."""
    from asdcore.experiment import QUICK_BANNER, RunFolder
    from asdcore.pipeline import evaluate_systems
    from asdcore.report import plot_grid
    from asdcore.selection import unit_keys
    from ddcsad.scoring import PAPER_NAMES, id_scores, type_auc

    config, table = ctx.config, ctx.table
    ids = [i for i in ctx.state["ids"] if f"{i[1]}/{i[2]}" in pool]  # IDs with labelled anomalies
    keep = ctx.mask(split="test") & np.isin(unit_keys(table), [f"{t}/{u}" for _, t, u in ids])
    keep[np.concatenate(list(pool.values()))] = False
    reduced = table[keep].reset_index(drop=True)
    systems, frames = {}, []
    for loss in config.losses:
        for k in [0] + list(counts):
            scores = id_scores(loss, len(table), ids, outputs[(loss, k)], alphas, config.minmax_over,
                               pool=pool if k == 0 else None)[keep]
            systems[f"{loss}_anomalies{k}"] = scores
            per_type = type_auc(reduced, scores)
            per_type.insert(0, "anomalies", k)
            per_type.insert(0, "method", PAPER_NAMES[loss])
            per_type.insert(0, "loss", loss)
            frames.append(per_type)
    sub = RunFolder(ctx.run.path / "few_anomalies")
    sub.path.mkdir(parents=True, exist_ok=True)
    few_per_unit, _ = evaluate_systems(sub, reduced, systems, 2020, quick=ctx.quick, plots=False)
    ctx.state["few_anomalies_per_unit"] = few_per_unit  # for the claims list (ddcsad.claims)
    fig2 = pd.concat(frames, ignore_index=True)
    ctx.run.write_csv("fig2.csv", fig2.assign(mode=ctx.mode))
    for part in sorted(fig2["part"].unique()):
        title = f"AUC vs. real anomalies in training ({part} set, 95 % CI)" + (f"\n{QUICK_BANNER}" if ctx.quick else "")
        plot_grid(fig2[fig2["part"] == part], "anomalies", "auc", ctx.run.file("plots", f"fig2_{part}.png"),
                  low="auc_ci_low", high="auc_ci_high", line="method", panels=TYPE_ORDER, categorical_x=True,
                  xlabel="anomalous clips per ID", ylabel="AUC [%]", title=title)
    return fig2


# ------------------------------------------------------------------------------------------ paper tables

def _fmt(auc, half) -> str:
    if auc is None or not np.isfinite(auc):
        return "-"
    return f"{100 * auc:.2f}" + (f" ± {100 * half:.2f}" if half is not None and np.isfinite(half) else "")


def _table2_spec(part: str, table2: pd.DataFrame, with_paper: bool):
    """Table II as a :class:`asdcore.tables.TableSpec`: rows machine types, columns ``<METHOD> (ours)`` /
    ``(paper)`` as 'AUC ± CI'; the intervals and the paper's layout come from the extra_columns hook."""
    from asdcore.published import load_table
    from asdcore.tables import TableSpec

    ours = table2[table2["part"] == part]
    methods = list(dict.fromkeys(ours["method"]))
    types = [t for t in TYPE_ORDER if t in set(ours["machine_type"])]
    key = {"Machine Average": "all"}
    ci_ours = {(m, key.get(t, t)): c for m, t, c in zip(ours["method"], ours["machine_type"], ours["ci95"])}
    paper = load_table("kuroyanagi2020_table2")
    paper = paper[paper["metric"] == "auc_ci95"]
    ci_paper = {(m, t): v / 100 for m, t, v in zip(paper["method"], paper["machine_type"], paper["value"])}

    def layout(wide):
        cells = {(m, t): (a, b) for m, t, a, b in zip(wide["method"], wide["machine type"],
                                                       wide[f"{part} AUC (ours)"], wide[f"{part} AUC (paper)"])}
        out = pd.DataFrame({"machine type": types})
        for method in methods:
            values = [cells.get((method, key.get(t, t)), (np.nan, np.nan)) for t in types]
            out[f"{method} (ours)"] = [_fmt(a / 100, ci_ours.get((method, key.get(t, t)))) for (a, _), t
                                       in zip(values, types)]
            if with_paper:
                out[f"{method} (paper)"] = [_fmt(b / 100, ci_paper.get((method, key.get(t, t)))) for (_, b), t
                                            in zip(values, types)]
        return out

    title = ("Table II: AUC [%] per machine type (evaluation set)" if part == "eval"
             else "Development (validation) set: AUC [%] per machine type (the paper prints none)")
    spec = TableSpec("kuroyanagi2020_table2", title, row_columns=("method",), metrics=("auc",), sets=(part,),
                     systems={loss: {"method": m} for loss, m in dict(zip(ours["loss"], ours["method"])).items()},
                     filters={"method": tuple(methods), "machine_type": tuple(key.get(t, t) for t in types)},
                     extra_columns=layout)
    tidy = ours.assign(system=ours["loss"], set=part, metric="auc", value=100 * ours["auc"],
                       machine_type=ours["machine_type"].replace(key))
    return spec, tidy[["system", "method", "machine_type", "set", "metric", "value"]]


def _table1_spec(alphas: pd.DataFrame):
    """Table I beside the alpha chosen on our development IDs (extra columns: its AUC, the alpha used)."""
    from asdcore.tables import TableSpec

    show = alphas[alphas["alpha_table1"].notna() & alphas["loss"].isin(["bce+dsad", "bce+ddcsad"])]
    used = {(m, t): (a, u) for m, t, a, u in zip(show["method"], show["machine_type"], show["validation_auc"],
                                                 show["alpha_used"])}

    def extra(wide):
        pairs = [used.get((m, t), (np.nan, np.nan)) for m, t in zip(wide["method"], wide["machine type"])]
        return wide.assign(**{"validation AUC": [a for a, _ in pairs], "alpha used": [u for _, u in pairs]})

    spec = TableSpec("kuroyanagi2020_table1", "Table I: alpha of eq. (5) - paper vs. chosen on our development "
                     "(validation) IDs", row_columns=("method",), metrics=("alpha",), sets=("dev",),
                     systems={loss: {"method": m} for loss, m in dict(zip(show["loss"], show["method"])).items()},
                     filters={"method": tuple(show["method"].unique()), "machine_type": tuple(show["machine_type"])},
                     extra_columns=extra)
    tidy = show.assign(system=show["loss"], set="dev", metric="alpha", value=show["alpha_validation"])
    return spec, tidy[["system", "method", "machine_type", "set", "metric", "value"]]


def _report(ctx, table2, summary, alphas, fig2) -> list[str]:
    from asdcore.experiment import QUICK_BANNER
    from asdcore.report import comparison_markdown
    from asdcore.tables import render_markdown

    config, ids = ctx.config, ctx.state["ids"]
    notes = [f"{len(ids)} machine IDs ({', '.join(sorted({p for p, _, _ in ids}))}), backbone {config.backbone}, "
             f"{config.iterations} iterations, batches {':'.join(map(str, config.batch_composition))}, "
             f"alpha: {config.alpha}, amplitude normalisation per {config.amplitude_norm}",
             "AUC of the pooled test clips of all IDs of a type, ± 1.96 SE (Hanley & McNeil); the paper's "
             "Table II set is inferred to be the evaluation set; organisers' per-ID means are in results.csv"]
    lines, printable = [], None
    parts = [p for p in ("eval", "dev") if len(table2) and (table2["part"] == p).any()]
    for part in parts:
        spec, ours = _table2_spec(part, table2, with_paper=part == "eval")
        text, frame = render_markdown(spec, ours, notes if part == parts[0] else None)
        lines.append(text)
        printable = frame if printable is None else printable
    if summary is not None and len(summary):
        org = summary[summary["statistic"].isin(["arithmetic mean", "arithmetic mean of type means"])].copy()
        org = org[(org["machine_type"] != "all") | (org["statistic"] == "arithmetic mean of type means")]
        org["auc"], org["pauc"] = 100 * org["auc"], 100 * org["pauc"]
        wide = org.pivot_table(index=["part", "machine_type"], columns="system", values=["auc", "pauc"], sort=False)
        wide.columns = [f"{s} {m.upper() if m == 'auc' else 'pAUC'}" for m, s in wide.columns]
        lines.append(comparison_markdown("Organisers' statistics: mean over IDs of the per-ID AUC / pAUC [%]",
                                         wide.reset_index(), ["'all' = mean of the per-type means"]))
    spec, ours = _table1_spec(alphas)
    if len(ours):
        lines.append(render_markdown(spec, ours, [f"used: alpha = {config.alpha}"])[0])
    if len(fig2):
        f = fig2.assign(**{"AUC [%]": [_fmt(a, h) for a, h in zip(fig2["auc"], fig2["ci95"])]})
        wide = f.pivot_table(index=["part", "method", "machine_type"], columns="anomalies", values="AUC [%]",
                             aggfunc="first", sort=False).reset_index()
        wide.columns = [str(c) for c in wide.columns]
        notes2 = ["columns: real anomalous clips per ID used in training (0 = the Table II model); all evaluated "
                  "without the pooled clips; plot: plots/fig2_<part>.png"]
        if ctx.state["dropped"]:
            notes2.append(f"counts {ctx.state['dropped']} left out: some ID has fewer pooled anomalies")
        if ctx.quick:
            notes2.insert(0, QUICK_BANNER)
        lines.append(comparison_markdown("Fig. 2: AUC [%] ± 95 % CI against the number of real anomalies",
                                         wide, notes2))
    if printable is not None:
        print(("QUICK MODE - " if ctx.quick else "")
              + "AUC [%] +/- 95 % CI per machine type (pooled IDs), ours vs paper:")
        print(printable.to_string(index=False))
    return lines


METHOD = DDCSAD()
