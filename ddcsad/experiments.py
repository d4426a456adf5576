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

The settings live in :mod:`ddcsad.settings`, the paper tables in :mod:`ddcsad.tables`; this module keeps
the protocol (re-exporting the settings' names). Keras is imported only by the units and assemble
(:mod:`ddcsad.training`, :mod:`ddcsad.scoring`), so ``--help`` is fast.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd

from asdcore.errors import ASDError
from asdcore.runner import Assembled, Method
from ddcsad.settings import PAPER_CONFIG, QUICK_CONFIG, VARIANTS, DDCSADConfig, parse_counts, parse_losses
from ddcsad.tables import TYPE_ORDER, _report

__all__ = ["DDCSADConfig", "PAPER_CONFIG", "QUICK_CONFIG", "parse_losses", "parse_counts", "DDCSAD", "METHOD"]


# ------------------------------------------------------------------------------------------ the method

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
        # the waveforms' statistics first: the features are computed from the standardised waveforms
        _, amplitudes = data.amplitude_normalisation(
            ctx.table, config.amplitude_norm, cache_dir=cache_root(ctx.cache_dir) / "amplitude",
            sr=feature_config.sr, skip_bad_files=ctx.skip_bad_files)
        on_waves = config.amplitude_method == "waveform" and config.amplitude_norm != "none"
        affine = data.amplitude_affine(ctx.table, amplitudes, config.amplitude_norm) if on_waves else None
        # every frame of clips of different lengths: NaN-padded (ctx.features keeps a fixed frame count)
        ctx.table, features = load_features(ctx.table, feature_config, cache_dir=ctx.cache_dir,
                                            skip_bad_files=ctx.skip_bad_files, run=ctx.run, ragged="pad",
                                            wave_affine=affine)
        if not on_waves:  # "logmel_shift": the log-mel features shifted by -10 log10(sigma^2) dB
            features = data.normalise_amplitude(
                features, data.amplitude_offsets_db(ctx.table, amplitudes, config.amplitude_norm))
        features, lengths = data.fit_short_clips(features, valid_frames(features), config.crop_frames)
        log.info("features: %d clips of %d-%d frames (crops span each whole clip), amplitude %s (%s)",
                 len(lengths), int(lengths.min()) if len(lengths) else 0, int(lengths.max()) if len(lengths) else 0,
                 config.amplitude_norm, config.amplitude_method)
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
        return {"steps": steps, "trainer": f"ddcsad-{config.backbone}"}

    def train_unit(self, ctx, unit):
        from ddcsad.training import train_id_models

        s = unit.spec
        rows = train_id_models(ctx.config, s["loss"], ctx.state["features"], ctx.state["lengths"], ctx.table,
                               s["machine_type"], s["unit"], ctx.state["pool"], s["anomalies"], seed=unit.seed,
                               init_seed=ctx.seed_for("initial network"), folder=unit.folder, log=ctx.log)
        return {"n_clips": len(ctx.table), "training": rows}

    def assemble(self, ctx, units):
        from asdcore.classification import with_sections
        from asdcore.experiment import QUICK_BANNER
        from ddcsad.maps import diagnostics
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
        labels = ctx.labels  # mode and data columns
        ctx.run.write_csv("amplitude.csv", ctx.state["amplitudes"].assign(level=config.amplitude_norm, **labels))
        ctx.run.write_csv("training.csv", pd.DataFrame([r for u in units for r in u.result()["training"]])
                          .assign(**labels))
        # ---- Table II: the models trained without anomalies, on every test clip
        alphas = alpha_table(config.losses, ctx.table, ids, {loss: outputs[(loss, 0)] for loss in config.losses},
                             config.alpha, config.minmax_over, ctx.log)
        ctx.run.write_csv("alpha.csv", alphas.assign(**labels))
        systems = {loss: id_scores(loss, len(ctx.table), ids, outputs[(loss, 0)], alphas, config.minmax_over)
                   for loss in config.losses}
        table2 = table2_frame(ctx.table, systems)
        if len(table2):
            ctx.run.write_csv("table2.csv", table2.assign(**labels))
        # ---- Fig. 2: fine-tuned with k anomalies, evaluated without the pooled clips
        fig2 = _few_anomalies(ctx, outputs, alphas, pool, counts) if counts else pd.DataFrame()

        maps_and_accuracy = diagnostics(ctx, units)  # plots/embeddings, classification.csv

        def report(ctx, per_unit, summary):
            return _report(ctx, table2, summary, alphas, fig2)

        def claims(confidence):
            from ddcsad.claims import claims_for

            return claims_for(table2, dataclasses.replace(config, anomalies=(0, *counts)), fig2)

        return Assembled(systems, report=with_sections(report, maps_and_accuracy), claims=claims)


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
    from asdcore.experiment import RunFolder
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
    evaluate_systems(sub, reduced, systems, 2020, quick=ctx.quick, plots=False, data=ctx.data)
    fig2 = pd.concat(frames, ignore_index=True)
    ctx.run.write_csv("fig2.csv", fig2.assign(**ctx.labels))
    for part in sorted(fig2["part"].unique()):
        title = f"AUC vs. real anomalies in training ({part} set, 95 % CI)\n{ctx.tag}"
        plot_grid(fig2[fig2["part"] == part], "anomalies", "auc", ctx.run.file("plots", f"fig2_{part}.png"),
                  low="auc_ci_low", high="auc_ci_high", line="method", panels=TYPE_ORDER, categorical_x=True,
                  xlabel="anomalous clips per ID", ylabel="AUC [%]", title=title)
    return fig2


METHOD = DDCSAD()
