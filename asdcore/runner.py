"""One run sequence for every experiment command (ARCHITECTURE.md, "One run sequence").

    parse -> resolve config (paper defaults <- YAML <- flags) -> seed -> run folder -> data -> features
    -> units of work (trained serially, in worker processes, or by a cluster job array)
    -> systems fit / score -> evaluate -> paper tables -> plots

A method contributes only what is its own, as a :class:`Method`: its config (paper defaults), its flags,
the units of work it needs (networks or per-ID models), how one unit is trained, and how the finished
units become systems and paper tables (:meth:`Method.assemble`). Everything else is here, once.

Units of work
-------------
A unit (:class:`Unit`) has a name, a seed (:func:`asdcore.experiment.seed_for` of the run's ``--seed`` and
the name, never its position), a JSON-able ``spec`` and its own folder ``units/<name>/``. Training writes
into that folder and ends by writing ``unit.json`` atomically; a unit with ``unit.json`` is finished and is
never trained again, so a killed run resumed with ``--resume RUN_DIR`` redoes only the unfinished units.
Units run

- one after another in this process (default);
- in ``--workers N`` local processes, each running ``<script> train-unit RUN_DIR NAME`` (standard library
  ``subprocess`` + ``concurrent.futures``); with several GPUs each worker sees one
  (``CUDA_VISIBLE_DEVICES``);
- on a cluster: ``<script> COMMAND ... --plan`` makes the run folder and lists the units in
  ``units.csv``; a job array runs ``<script> train-unit RUN_DIR --index $TASK_ID``; then
  ``<script> assemble RUN_DIR`` scores, evaluates and writes the tables.

Every unit is seeded from its name and re-seeds the global generators before training, so serial,
parallel and job-array runs give the same units, hence the same scores.

Killed at any moment
--------------------
A process may die anywhere (a scheduler's time limit, the out-of-memory killer, a lost node: SIGKILL, no
clean-up). Every file is written atomically; a unit without ``unit.json`` is trained again (Keras
trainers continue from their last epoch backup); an assembly writes ``assembly.json`` first and
``assembled.json`` last (:class:`asdcore.experiment.RunFolder`), and one started again removes what the
interrupted one left before writing anything. So ``--resume RUN_DIR``, ``train-unit`` and ``assemble``
finish any interrupted run, and a finished run is never written again. :mod:`asdcore.kill_points` is the
test hook that kills a process at named points.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from asdcore.errors import ASDError
from asdcore.atomic_io import atomic_write_text
from asdcore.estimates import current_progress, human_duration, start_progress, stop_progress
from asdcore.kill_points import kill_point
from asdcore.experiment import (QUICK_BANNER, RunFolder, add_common_arguments, config_to_dict, get_logger,
                                resolve_config, resolve_quick, seed_for, set_seed)

__all__ = ["Unit", "Method", "RunContext", "Assembled", "run_method", "train_unit_command", "assemble_command",
           "add_runner_arguments", "load_method", "run_command"]

INVOCATION_FILE = "invocation.json"
UNIT_DONE_FILE = "unit.json"


@dataclasses.dataclass
class Unit:
    """One independent piece of training: a network, or one per-ID model.

    Attributes
    ----------
    name : str
        Unique within the run; names the folder and derives the seed.
    seed : int
        ``seed_for(run seed, name)``.
    folder : pathlib.Path
        ``<run>/units/<name>/``: everything the unit writes.
    spec : dict
        What to train (JSON-able: it is written to ``units.csv`` and read back by ``train-unit``).
    """

    name: str
    seed: int
    folder: Path
    spec: dict

    @property
    def done(self) -> bool:
        return (self.folder / UNIT_DONE_FILE).is_file()

    def result(self) -> dict:
        """What :meth:`Method.train_unit` returned (read from ``unit.json``)."""
        if not self.done:
            raise ASDError(f"unit {self.name} has not finished ({self.folder}); train it first (train-unit)")
        return json.loads((self.folder / UNIT_DONE_FILE).read_text(encoding="utf-8"))["result"]


@dataclasses.dataclass
class Assembled:
    """What a method hands back to the runner once every unit is finished.

    Attributes
    ----------
    systems : dict
        system name -> anomaly scores, one per row of ``ctx.table`` (NaN where not scored).
    decisions : dict
        system name -> 0/1 decisions aligned like the scores (DCASE 2021).
    report : callable
        ``report(ctx, per_unit, summary) -> list[str]``: the markdown sections of ``comparison.md``
        (paper tables, notes); called after the runner has evaluated the systems.
    evaluate : bool
        False when the method evaluates its systems itself (e.g. per-domain protocols): then ``systems`` are
        only written as submission files.
    plots : bool
        Per-system ROC / score-histogram plots (``plots/<system>/``); False skips them (quick runs).
    claims : callable
        ``claims(confidence) -> list[asdcore.claims.Claim]``: the paper's qualitative claims checked on the
        run's mean AUCs (``confidence`` = :func:`asdcore.confidence.confidence_table`); rendered as the
        "claims" list of ``comparison.md``.
    """

    systems: dict
    decisions: dict = dataclasses.field(default_factory=dict)
    report: object = None
    evaluate: bool = True
    plots: bool = True
    claims: object = None


class Method:
    """A method's plug-in. Subclasses set the class attributes and override the hooks they need."""

    #: sub-command name (``run_dcase2020.py <command>``)
    command: str = ""
    #: DCASE year of the data
    year: int = 2020
    #: title of comparison.md
    title: str = ""
    #: whether units train Keras models (then every unit also seeds Keras and its back-end)
    uses_keras: bool = True
    #: clear the Keras session before each unit (asdcore.keras_utils.reset_for_unit); False for a method
    #: that reuses compiled networks across the units of one process
    clear_session_between_units: bool = True

    # --- configuration ---------------------------------------------------------------------------------
    def default_config(self, quick: bool):
        """The paper's settings (a frozen dataclass with the section / table cited beside each field), or
        the reduced quick-mode variant."""
        raise NotImplementedError

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The method's own flags (the common ones are added by the runner)."""

    def overrides(self, args) -> dict:
        """Config fields set by the method's flags (None values are ignored)."""
        return {}

    def experiment_name(self, args) -> str:
        """Run folder name under ``<out>/<year>/``."""
        return self.command

    def check(self, ctx: "RunContext") -> None:
        """Validate settings against the data (raise :class:`ASDError` with the fix)."""

    # --- the run ---------------------------------------------------------------------------------------
    def prepare(self, ctx: "RunContext") -> None:
        """Data-dependent state every process needs (features, labels): called once per process before
        units are listed, trained or assembled; store what you need on ``ctx.state``."""

    def units(self, ctx: "RunContext") -> list[Unit]:
        """The units of work of this run, in training order (use :meth:`RunContext.unit`)."""
        return []

    def estimate(self, ctx: "RunContext", units: list[Unit]) -> dict:
        """Optional ``{"steps": total training steps, "disk_bytes": run folder size, "trainer": a key of
        asdcore.estimates.STEP_SECONDS, "networks": the networks those steps train (default: the units)}`` shown before training (at full settings with an estimate of the
        CPU-hours from the benchmarks' seconds per step; refined from the measured steps as units finish)."""
        return {}

    def train_unit(self, ctx: "RunContext", unit: Unit) -> dict:
        """Train one unit into ``unit.folder``; return a small JSON-able summary (saved in unit.json)."""
        raise NotImplementedError

    def assemble(self, ctx: "RunContext", units: list[Unit]) -> Assembled:
        """Score with the finished units (systems fit / score) and describe the paper tables."""
        raise NotImplementedError


class RunContext:
    """Everything a run knows, built once from the command line (or from a run folder's invocation).

    Attributes
    ----------
    args : argparse.Namespace
    method : Method
    quick : bool
        Reduced settings; ``why`` says what chose them.
    settings_label : str
        ``"paper settings"``, ``"paper settings with overrides (...)"`` or the quick banner: written into
        config.yaml, run.log and every comparison.md.
    config
        The resolved config (paper defaults <- YAML <- flags).
    seed : int
    run : RunFolder
    source : asdcore.pipeline.DataSource
    table : pandas.DataFrame
        The clip table (rows of unreadable files dropped when ``--skip-bad-files``).
    cache_dir : pathlib.Path or None
        ``--cache-dir`` (None: :func:`asdcore.experiment.cache_root` decides).
    skip_bad_files : bool
        ``--skip-bad-files``.
    state : dict
        Free space for the method's prepared data (features, labels, ...).

    This is the one place of the core that reads the command line's namespace (``args``): the core's
    functions (:func:`asdcore.pipeline.open_data`, :func:`~asdcore.pipeline.load_features`,
    :func:`asdcore.experiment.resolve_quick`) take explicit keyword arguments.
    """

    def __init__(self, method: Method, args, run: RunFolder, log=None):
        self.method = method
        self.args = args
        #: the DCASE edition of the data (its layout and official scores): ``--year``, or detected from
        #: ``--data-root`` (asdcore.layouts.resolve_year); the method's own year otherwise
        self.year = data_year(method, args)
        self.log = log or get_logger()
        self.quick, self.why = _quick_mode(args)
        overrides = {k: v for k, v in method.overrides(args).items() if v is not None}
        self.config = resolve_config(method.default_config(self.quick), getattr(args, "config", None), overrides)
        self.precision = getattr(args, "precision", "float32")
        self.deviations = _deviations(method, self.config, overrides, getattr(args, "config", None),
                                      self.quick, self.precision)
        if self.quick:
            self.settings_label = f"{QUICK_BANNER} ({self.why})"
        elif self.deviations:
            self.settings_label = "not the paper's settings: " + deviations_text(self.deviations)
        else:
            self.settings_label = "paper settings"
        self.seed = int(getattr(args, "seed", 0))
        if self.precision != "float32":
            from asdcore.experiment import apply_precision

            apply_precision(self.precision)
        self.cache_dir = getattr(args, "cache_dir", None)
        self.skip_bad_files = bool(getattr(args, "skip_bad_files", False))
        self.run = run
        self.state: dict = {}
        self._features: dict = {}
        from asdcore.pipeline import open_data

        self.source, self.table = open_data(self.year, data_root=getattr(args, "data_root", None),
                                            synthetic_preset=getattr(args, "synthetic_preset", "quick"),
                                            cache_dir=self.cache_dir, ground_truth=getattr(args, "ground_truth", None),
                                            revealed_attributes=getattr(args, "revealed_attributes", None))

    @property
    def mode(self) -> str:
        """The ``mode`` column of every CSV: QUICK or full."""
        return "QUICK" if self.quick else "full"

    @property
    def data(self) -> str:
        """The ``data`` column of every CSV: synthetic (made by :mod:`asdcore.synthetic`) or real."""
        return "synthetic" if self.source.synthetic else "real"

    @property
    def labels(self) -> dict:
        """``{"mode": ..., "data": ...}``: the columns every result CSV of the run carries."""
        return {"mode": self.mode, "data": self.data}

    @property
    def tag(self) -> str:
        """What every figure's title says about the run's data and settings (:func:`asdcore.report.run_tag`),
        e.g. ``SYNTHETIC data, QUICK mode``."""
        from asdcore.report import run_tag

        preset = getattr(self.args, "synthetic_preset", None) if getattr(self.args, "data_root", None) is None \
            else None
        return run_tag(self.source.synthetic, self.quick, preset,
                       overrides=self.settings_label.startswith("paper settings with overrides"))

    def seed_for(self, *names) -> int:
        """The seed of a unit of work: ``seed_for(--seed, *names)`` (by name, never by position)."""
        return seed_for(self.seed, *names)

    def unit(self, name: str, spec: dict | None = None) -> Unit:
        """A unit of this run, named ``name`` (letters, digits, ``-_.=`` only: it names a folder)."""
        if not name or any(not (c.isalnum() or c in "-_.=") for c in name):
            raise ASDError(f"unit name {name!r}: use letters, digits and -_.= only")
        return Unit(name=name, seed=self.seed_for(name), folder=self.run.path / "units" / name, spec=dict(spec or {}))

    def mask(self, **conditions):
        """Boolean row mask of the clip table: ``ctx.mask(split="train", part="dev")`` (a list value means
        "any of"; :func:`asdcore.selection.rows`)."""
        from asdcore.selection import rows

        return rows(self.table, **conditions)

    def features(self, feature_config):
        """Features of every clip of ``table`` for ``feature_config`` (cached on disk; a read-only memory
        map when the frame count is fixed). Unreadable clips are dropped from ``table`` (and listed in
        bad_files.csv) when ``--skip-bad-files`` is given."""
        key = feature_config.key()
        if key not in self._features:
            from asdcore.pipeline import load_features

            table, features = load_features(self.table, feature_config, cache_dir=self.cache_dir,
                                            skip_bad_files=self.skip_bad_files, run=self.run)
            if len(table) != len(self.table):
                if self._features:
                    raise ASDError("unreadable clips differ between two feature configurations; "
                                   "remove the bad files from the data root")
                self.table = table
            self._features[key] = features
        return self._features[key]


# --- command-line plumbing ------------------------------------------------------------------------------

def data_year(method: Method, args) -> int:
    """The edition a run works with: ``--year``, else a 2022-2025 ``--data-root``'s, else the method's year."""
    from asdcore.layouts import resolve_year

    return resolve_year(method.year, getattr(args, "data_root", None), getattr(args, "data_year", None))


def later_year_report(ctx: "RunContext", per_unit: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """``comparison.md`` of a run on DCASE 2022-2025 data: the official scores per system, part and machine type,
    and the statement that the paper published no numbers for that edition (nothing to compare with)."""
    rule = ("AUC per domain over that domain's normal clips and all anomalous clips of the section, one pAUC per "
            "section over all its clips, official score = harmonic mean of all of them" if ctx.year >= 2022 else
            "see asdcore/metrics.py")
    lines = [f"Data and official scores of **DCASE {ctx.year}** (its layout and its evaluator's rule: {rule}).", "",
             f"There are **no published numbers** of this paper for DCASE {ctx.year} data (the paper predates "
             "it), so no side-by-side table is shown; the adaptations used are listed in docs/later-dcase.md.", ""]
    if summary is None or summary.empty:
        return lines + ["No labelled test clips were scored (give --ground-truth for the evaluation set)."]
    rows = summary[summary["statistic"] == "harmonic mean"]
    table = []
    for (system, part), group in rows.groupby(["system", "part"], sort=True):
        for machine_type, r in group.groupby("machine_type", sort=False):
            pick = {d: r[r["domain"] == d] for d in ("source", "target", "all")}
            if any(v.empty for v in pick.values()):
                continue
            table.append([system, part, machine_type, f"{100 * pick['source']['auc'].iloc[0]:.2f}",
                          f"{100 * pick['target']['auc'].iloc[0]:.2f}", f"{100 * pick['all']['pauc'].iloc[0]:.2f}",
                          f"{100 * pick['all']['score'].iloc[0]:.2f}"])
    header = ["system", "part", "machine type", "AUC source (h-mean)", "AUC target (h-mean)", "pAUC (h-mean)",
              "score (h-mean)"]
    body = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    body += ["| " + " | ".join(row) + " |" for row in table]
    return lines + [f"Harmonic means in %; the row 'all' holds the official DCASE {ctx.year} score. {ctx.mode} run.",
                    ""] + body + [""]


def _deviations(method: Method, config, overrides: dict, config_file, quick: bool, precision: str) -> dict:
    """Every setting of the run that differs from the paper's (the method's full-mode defaults), by key:
    ``{key: {"paper": value, "ours": value, "set by": "command line" | "--config FILE" | "quick mode"}}``,
    plus ``precision`` when ``--precision`` is not the papers' float32."""
    from asdcore.experiment import config_deviations

    from_file = set()
    if config_file is not None:
        import yaml

        from_file = set(yaml.safe_load(Path(config_file).read_text(encoding="utf-8")) or {})
    out = {}
    for key, (paper, ours) in config_deviations(method.default_config(False), config).items():
        top = key.split(".")[0]
        source = ("command line" if top in overrides else f"--config {config_file}" if top in from_file
                  else "quick mode" if quick else "defaults")
        out[key] = {"paper": paper, "ours": ours, "set by": source}
    if precision != "float32":
        out["precision"] = {"paper": "float32", "ours": precision, "set by": "--precision"}
    return out


def _shown(value) -> str:
    return "[" + ", ".join(map(_shown, value)) + "]" if isinstance(value, (tuple, list)) else str(value)


def deviations_text(deviations: dict) -> str:
    """One line naming each deviation by key: ``epochs = 3 (paper: 400; command line), ...``."""
    return ", ".join(f"{key} = {_shown(d['ours'])} (paper: {_shown(d['paper'])}; {d['set by']})"
                     for key, d in deviations.items())


def _quick_mode(args) -> tuple[bool, str]:
    """:func:`asdcore.experiment.resolve_quick` of the flags ``--quick``, ``--full`` and ``--data-root``."""
    return resolve_quick(quick=bool(getattr(args, "quick", False)), full=bool(getattr(args, "full", False)),
                         data_root=getattr(args, "data_root", None))


def add_runner_arguments(parser: argparse.ArgumentParser, ground_truth: bool = True) -> None:
    """The common flags plus the runner's: ``--resume``, ``--workers``, ``--plan``, ``--embedding-maps``."""
    add_common_arguments(parser, ground_truth=ground_truth)
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue an interrupted run in its folder: finished units are not trained again")
    parser.add_argument("--workers", type=int, default=1,
                        help="train units in N worker processes (default 1: one after another in this process); "
                             "with several GPUs each worker uses one")
    parser.add_argument("--plan", action="store_true",
                        help="make the run folder and list its units in units.csv, train nothing (for a cluster "
                             "job array: then train-unit RUN_DIR --index I for each unit, and assemble RUN_DIR)")
    parser.add_argument("--embedding-maps", choices=("pca", "tsne", "none"), default="pca",
                        help="plots/embeddings/<type>.png: the test clips' embeddings in 2-D by PCA (default) or "
                             "t-SNE (slower), or none")


def _invocation(method: Method, argv: list[str]) -> dict:
    return {"command": method.command, "year": method.year, "method": type(method).__module__, "argv": list(argv)}


def load_method(module_name: str) -> Method:
    """The :class:`Method` a module exposes as ``METHOD`` (every method module does)."""
    import importlib

    try:
        method = getattr(importlib.import_module(module_name), "METHOD")
    except (ImportError, AttributeError) as exc:
        raise ASDError(f"cannot load the method of module {module_name!r} ({exc}); is the project installed?")
    if not isinstance(method, Method):
        raise ASDError(f"{module_name}.METHOD is not an asdcore.runner.Method")
    return method


def _parse_method_args(method: Method, argv: list[str]):
    parser = argparse.ArgumentParser(prog=f"run_dcase{method.year}.py {method.command}")
    add_runner_arguments(parser)
    method.add_arguments(parser)
    return parser.parse_args(argv)


def _context_for_run(method: Method, run: RunFolder, argv: list[str]) -> RunContext:
    args = _parse_method_args(method, argv)
    args.command, args.year = method.command, method.year
    ctx = RunContext(method, args, run)
    method.check(ctx)
    method.prepare(ctx)
    return ctx


def _write_units_csv(ctx: RunContext, units: list[Unit]) -> None:
    frame = pd.DataFrame([{"index": i, "name": u.name, "seed": u.seed, "spec": json.dumps(u.spec, sort_keys=True)}
                          for i, u in enumerate(units)], columns=["index", "name", "seed", "spec"])
    atomic_write_text(ctx.run.path / "units.csv", frame.to_csv(index=False), overwrite=True)


def _train_one(ctx: RunContext, unit: Unit) -> dict:
    """Train ``unit`` in this process (re-seeding first) and mark it finished."""
    unit.folder.mkdir(parents=True, exist_ok=True)
    if ctx.method.uses_keras:
        from asdcore.keras_utils import reset_for_unit

        reset_for_unit(unit.seed, clear_session=ctx.method.clear_session_between_units)
    else:
        set_seed(unit.seed, keras=False)
    progress = current_progress()
    if progress is not None:
        progress.label = unit.name
    started = time.time()
    result = ctx.method.train_unit(ctx, unit)
    record = {"name": unit.name, "seed": unit.seed, "spec": unit.spec, "seconds": round(time.time() - started, 3),
              "result": config_to_dict(result or {})}
    atomic_write_text(unit.folder / UNIT_DONE_FILE, json.dumps(record, indent=1, default=str), overwrite=True)
    kill_point("unit-done")
    return record


def _gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def _worker_command() -> list[str]:
    # -c rather than -m: run as __main__, the module's classes would differ from the imported ones
    return [sys.executable, "-c", "import sys; from asdcore.runner import main; sys.exit(main())"]


def _train_in_workers(ctx: RunContext, todo: list[Unit], workers: int) -> None:
    """Each unit in a fresh process (``train-unit``); at most ``workers`` at a time."""
    log = ctx.log
    gpus = _gpu_count()
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    slots = list(range(workers))

    def launch(args):
        slot, unit = args
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = visible[slot % gpus] if visible else str(slot % gpus)
        log_path = unit.folder / "worker.log"
        unit.folder.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w", encoding="utf-8") as out:
            code = subprocess.run(_worker_command() + ["train-unit", str(ctx.run.path), unit.name],
                                  stdout=out, stderr=subprocess.STDOUT, env=env).returncode
        return unit, code, log_path

    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        free = list(slots)
        pending = {}
        queue = list(todo)
        finished = 0
        while queue or pending:
            while queue and free:
                unit = queue.pop(0)
                slot = free.pop(0)
                pending[pool.submit(launch, (slot, unit))] = slot
                log.info("unit %s started in worker %d", unit.name, slot)
            done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                free.append(pending.pop(future))
                unit, code, log_path = future.result()
                finished += 1
                if code != 0 or not unit.done:
                    failures.append(f"{unit.name} (exit {code}, see {log_path})")
                    log.warning("unit %s failed (exit %d): see %s", unit.name, code, log_path)
                else:
                    log.info("[%d/%d] unit %s finished", finished, len(todo), unit.name)
    if failures:
        raise ASDError(f"{len(failures)} unit(s) failed: {'; '.join(failures[:3])}; fix the cause and resume with "
                       f"--resume {ctx.run.path}")


def train_units(ctx: RunContext, units: list[Unit], workers: int = 1, total_steps: int = 0) -> None:
    """Train the unfinished units, serially or in ``workers`` processes.

    ``total_steps`` (``Method.estimate`` over all units) starts the run's progress
    (:func:`asdcore.estimates.start_progress`) for the units still to train, so the epoch lines of the
    trainers show the ETA of the whole run (serial training; each worker process shows its unit's own).
    """
    todo = [u for u in units if not u.done]
    if len(todo) < len(units):
        ctx.log.info("%d of %d units already finished (not trained again)", len(units) - len(todo), len(units))
    if not todo:
        return
    if workers > 1 and len(todo) > 1:
        _train_in_workers(ctx, todo, min(workers, len(todo)))
        return
    start_progress(int(round(total_steps * len(todo) / len(units))))
    started = time.time()
    try:
        for i, unit in enumerate(todo, 1):
            ctx.log.info("[%d/%d] unit %s (seed %d)", i, len(todo), unit.name, unit.seed)
            record = _train_one(ctx, unit)
            elapsed = time.time() - started
            left = elapsed / i * (len(todo) - i)
            ctx.log.info("[%d/%d] unit %s finished in %s; about %s left for the other units", i, len(todo),
                         unit.name, human_duration(record["seconds"]), human_duration(left))
    finally:
        stop_progress()


def _announce(ctx: RunContext, units: list[Unit]) -> dict:
    """Log the number of units, the total steps and the disk estimate; returns ``Method.estimate``'s dict."""
    from asdcore.estimates import check_free_disk, human_bytes

    estimate = ctx.method.estimate(ctx, units) or {}
    todo = sum(not u.done for u in units)
    ctx.log.info("%d unit(s) of work (%d to train): %s", len(units), todo,
                 ", ".join(u.name for u in units[:8]) + (" ..." if len(units) > 8 else ""))
    if estimate.get("steps"):
        ctx.log.info("about %d training steps in all; the time estimate follows the first measured steps",
                     int(estimate["steps"]))
        if estimate.get("trainer") and not ctx.quick:  # full settings: time from the benchmarks' step times
            from asdcore.estimates import compute_estimate

            ctx.log.info(compute_estimate(estimate.get("trainer_steps", estimate["steps"]), estimate["trainer"],
                                          estimate.get("networks", len(units))))
    if estimate.get("disk_bytes"):
        ctx.log.info("the run folder will take about %s", human_bytes(estimate["disk_bytes"]))
        check_free_disk(ctx.run.path, float(estimate["disk_bytes"]), "this run")
    return estimate


def _training_curves(ctx: RunContext, units: list[Unit]) -> None:
    """``plots/training/<unit>.png`` for every unit with a CSV training log (asdcore.training_curves). A
    figure that cannot be drawn is reported, never the end of a run whose networks are trained."""
    from asdcore.training_curves import plot_unit_logs

    try:
        written = plot_unit_logs([u.folder for u in units], ctx.run.path / "plots" / "training", tag=ctx.tag)
    except (OSError, ValueError) as error:  # ASDError is a ValueError
        ctx.log.warning("training curves not drawn (%s)", error)
        return
    if written:
        ctx.log.info("training curves of %d unit(s) in %s", len(written), ctx.run.path / "plots" / "training")


def _confidence_and_claims(ctx: RunContext, assembled: Assembled, per_unit: pd.DataFrame) -> list[str]:
    """Write ``confidence.csv`` (mean AUC and 95 % interval per system) and return the ``comparison.md``
    sections: the intervals and the method's claims list (:mod:`asdcore.claims`)."""
    from asdcore.claims import render_claims
    from asdcore.confidence import confidence_markdown, confidence_table

    if per_unit.empty:
        return []
    confidence = confidence_table(per_unit)
    ctx.run.write_csv("confidence.csv", confidence.assign(**ctx.labels))
    lines = confidence_markdown(confidence)
    if assembled.claims is not None:
        claims = assembled.claims(confidence)
        lines += render_claims(claims)
        for claim in claims:
            ctx.log.info("claim: %s: %s (%s)", claim.claim, claim.verdict, claim.evidence)
    return lines


def _finish(ctx: RunContext, units: list[Unit]) -> int:
    from asdcore.pipeline import evaluate_systems

    missing = [(i, u.name) for i, u in enumerate(units) if not u.done]
    if missing:
        raise ASDError(f"{len(missing)} of {len(units)} unit(s) not finished: "
                       f"{', '.join(f'{name} (--index {i})' for i, name in missing)}; train them with "
                       f"`train-unit {ctx.run.path} --index I` (I = {','.join(str(i) for i, _ in missing)}), "
                       "then assemble again")
    removed = ctx.run.begin_assembly()
    if removed:
        ctx.log.info("an interrupted assembly left %s: removed, assembling again", ", ".join(removed))
    kill_point("assembly-start")
    _training_curves(ctx, units)
    assembled = ctx.method.assemble(ctx, units)
    kill_point("assembly-scored")
    per_unit = summary = pd.DataFrame()
    if assembled.systems:
        if assembled.evaluate:
            per_unit, summary = evaluate_systems(ctx.run, ctx.table, assembled.systems, ctx.year,
                                                 decisions=assembled.decisions, quick=ctx.quick,
                                                 plots=assembled.plots, data=ctx.data, tag=ctx.tag)
        else:
            from asdcore import submission

            test = (ctx.table["split"] == "test").to_numpy()
            for name, scores in assembled.systems.items():
                submission.write_scores(ctx.table[test], scores[test], ctx.run.scores_dir(name), ctx.year)
    kill_point("assembly-evaluated")
    sections = [f"# {ctx.method.title}", "", f"> {ctx.source.description}", f"> {ctx.settings_label}"]
    if ctx.quick and ctx.deviations:
        sections.append(f"> deviations from the paper's settings: {deviations_text(ctx.deviations)}")
    sections.append("")
    if ctx.year != ctx.method.year:  # a later edition: no paper table, no paper claims to check
        sections += later_year_report(ctx, per_unit, summary)
    elif assembled.report is not None:
        sections += list(assembled.report(ctx, per_unit, summary))
    if ctx.year == ctx.method.year:
        sections += _confidence_and_claims(ctx, assembled, per_unit)
    ctx.run.write_text("comparison.md", "\n".join(sections))
    kill_point("assembly-end")
    ctx.run.mark_assembled()
    print(f"\nrun folder: {ctx.run.path}")
    return 0


def run_method(method: Method, args, argv: list[str]) -> int:
    """The whole sequence for one command line (``argv`` = the command's own arguments)."""
    log = get_logger()
    resuming = args.resume is not None
    if resuming:
        run = RunFolder.resume(args.resume)
        stored = json.loads((run.path / INVOCATION_FILE).read_text(encoding="utf-8")) \
            if (run.path / INVOCATION_FILE).is_file() else None
        if stored is None or stored["command"] != method.command:
            run.close()
            raise ASDError(f"{args.resume}: not a run of '{method.command}' (no matching {INVOCATION_FILE}); "
                           "resume it with the command that started it")
        argv = stored["argv"]
        args = _parse_method_args(method, argv)
        args.plan = False  # resuming a planned run trains its units
    else:
        # settings are checked before anything is written: a bad setting leaves no empty run folder
        quick, _ = _quick_mode(args)
        resolve_config(method.default_config(quick), getattr(args, "config", None),
                       {k: v for k, v in method.overrides(args).items() if v is not None})
        run = RunFolder.create(args.out, data_year(method, args), method.experiment_name(args))
    try:
        return _run_in_folder(method, args, argv, run, resuming, log)
    except BaseException as error:  # noqa: BLE001 - recorded, then raised again unchanged
        _record_failure(run, error)
        raise
    finally:
        run.close()


def _one_line(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    text = " ".join(str(error).split())
    return text if isinstance(error, ASDError) else f"{type(error).__name__}: {text}"


def _record_failure(run: RunFolder, error: BaseException) -> None:
    """A run that stops on an error says so in its folder (:meth:`RunFolder.record_failure`); one that
    holds nothing yet is removed. Said on standard output: standard error keeps the one-line error."""
    if isinstance(error, SystemExit) and not error.code:
        return
    if run.record_failure(_one_line(error)):
        print(f"{run.path}: removed (the run stopped before writing anything)")
    else:
        print(f"{run.path}: the run stopped; run.log and failed.json say why; continue it with "
              f"--resume {run.path}")


def _run_in_folder(method: Method, args, argv: list[str], run: RunFolder, resuming: bool, log) -> int:
    args.command, args.year = method.command, method.year
    set_seed(int(args.seed), keras=method.uses_keras)
    ctx = RunContext(method, args, run, log)
    if ctx.quick:
        log.info("%s (%s)", QUICK_BANNER, ctx.why)
    elif ctx.settings_label != "paper settings":
        log.info("%s", ctx.settings_label)
    if not resuming:
        atomic_write_text(run.path / INVOCATION_FILE, json.dumps(_invocation(method, argv), indent=1))
        run.write_config({"command": method.command, "mode": ctx.mode, "settings_label": ctx.settings_label,
                          "data": ctx.source.description, "rules": f"DCASE {ctx.year}", "seed": ctx.seed,
                          "precision": ctx.precision, "deviations": ctx.deviations, "settings": ctx.config})
    method.check(ctx)
    method.prepare(ctx)
    units = method.units(ctx)
    _write_units_csv(ctx, units)
    estimate = _announce(ctx, units)
    if getattr(args, "plan", False):
        print(f"run folder: {run.path}\n{len(units)} unit(s) listed in {run.path / 'units.csv'}; train each with "
              f"`run_dcase{method.year}.py train-unit {run.path} --index I` (I = 0..{len(units) - 1}), then "
              f"`run_dcase{method.year}.py assemble {run.path}`")
        return 0
    train_units(ctx, units, workers=max(1, int(getattr(args, "workers", 1) or 1)),
                total_steps=int(estimate.get("steps") or 0))
    return _finish(ctx, units)


def run_command(method: Method, argv: list[str]) -> int:
    """Parse ``argv`` (the command's own arguments) and run the whole sequence: the programmatic form of
    ``run_dcaseYYYY.py COMMAND ARGS``."""
    return run_method(method, _parse_method_args(method, list(argv)), list(argv))


def _open_existing(run_dir, year: int | None) -> tuple[Method, RunFolder, list[str]]:
    path = Path(run_dir)
    invocation = path / INVOCATION_FILE
    if not invocation.is_file():
        raise ASDError(f"{path}: no {INVOCATION_FILE}; give the folder of a run made by a training command "
                       "(e.g. with --plan)")
    stored = json.loads(invocation.read_text(encoding="utf-8"))
    if year is not None and int(stored["year"]) != int(year):
        raise ASDError(f"{path}: a DCASE {stored['year']} run; use run_dcase{stored['year']}.py")
    return load_method(stored["method"]), RunFolder(path), stored["argv"]


def train_unit_parser(year: int | None = None) -> argparse.ArgumentParser:
    """The command line of ``train-unit``."""
    parser = argparse.ArgumentParser(prog=f"run_dcase{year or 'YYYY'}.py train-unit",
                                     description="train one unit of work into an existing run folder")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("name", nargs="?", default=None, help="the unit's name (units.csv)")
    parser.add_argument("--index", type=int, default=None, help="the unit's index in units.csv (job arrays)")
    return parser


def train_unit_command(argv: list[str], year: int | None = None) -> int:
    """``run_dcaseYYYY.py train-unit RUN_DIR (NAME | --index I)``: train one unit into an existing run."""
    args = train_unit_parser(year).parse_args(argv)
    method, run, stored_argv = _open_existing(args.run_dir, year)
    run._attach_log(log_to_console=True)  # noqa: SLF001 - the run's own log file
    try:
        ctx = _context_for_run(method, run, stored_argv)
        units = method.units(ctx)
        if args.index is not None:
            if not 0 <= args.index < len(units):
                raise ASDError(f"--index {args.index}: the run has units 0..{len(units) - 1}")
            unit = units[args.index]
        else:
            by_name = {u.name: u for u in units}
            if args.name not in by_name:
                raise ASDError(f"no unit {args.name!r} in {args.run_dir}; see its units.csv")
            unit = by_name[args.name]
        if unit.done:
            print(f"unit {unit.name} already finished")
            return 0
        _train_one(ctx, unit)
        print(f"unit {unit.name} finished")
        return 0
    except BaseException as error:
        run.log_error(f"train-unit {args.name if args.index is None else f'--index {args.index}'} stopped: "
                     f"{_one_line(error)}")
        raise
    finally:
        run.close()


def assemble_parser(year: int | None = None) -> argparse.ArgumentParser:
    """The command line of ``assemble``."""
    parser = argparse.ArgumentParser(prog=f"run_dcase{year or 'YYYY'}.py assemble",
                                     description="score, evaluate and write the tables of a run whose units "
                                                 "are all trained")
    parser.add_argument("run_dir", type=Path)
    return parser


def assemble_command(argv: list[str], year: int | None = None) -> int:
    """``run_dcaseYYYY.py assemble RUN_DIR``: score, evaluate and write the tables once every unit exists."""
    args = assemble_parser(year).parse_args(argv)
    method, run, stored_argv = _open_existing(args.run_dir, year)
    if run.finished:
        raise ASDError(f"{run.path}: already assembled ({run.finished_by} exists); nothing is overwritten")
    run._attach_log(log_to_console=True)  # noqa: SLF001
    try:
        ctx = _context_for_run(method, run, stored_argv)
        return _finish(ctx, method.units(ctx))
    except BaseException as error:
        run.log_error(f"assemble stopped: {_one_line(error)}")
        raise
    finally:
        run.close()


def main(argv=None) -> int:
    """``python -m asdcore.runner train-unit RUN_DIR NAME`` / ``assemble RUN_DIR`` (what ``--workers`` runs)."""
    from asdcore.quiet import quiet_tensorflow

    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_tensorflow(verbose="--verbose" in argv)
    argv = [a for a in argv if a != "--verbose"]
    commands = {"train-unit": train_unit_command, "assemble": assemble_command}
    if not argv or argv[0] not in commands:
        print("usage: python -m asdcore.runner {train-unit RUN_DIR NAME | assemble RUN_DIR}", file=sys.stderr)
        return 2
    try:
        return commands[argv[0]](argv[1:])
    except ASDError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
