"""Run folders, configs, seeds and logging shared by both run scripts.

Every run writes a new folder ``<out>/<year>/<experiment>/<timestamp>/`` holding ``config.yaml``,
``run.log``, ``scores/<system>/`` (DCASE submission files), ``results.csv``, ``comparison.md``,
``plots/`` and ``models/``. A folder is never reused, so nothing from an earlier run is overwritten,
and every file is written atomically (to a temporary name, then renamed).

The state of a run folder (:class:`RunFolder`) can be read from its files, so a run killed at any moment
(SIGKILL included: no clean-up code runs) can be continued:

- ``assembly.json``: assembly has begun; it lists the entries the folder held before (training's);
- ``assembled.json``: assembly has finished; written last. A folder with it is finished and never written
  again. Without it, whatever an interrupted assembly left (every entry not listed in ``assembly.json``)
  is removed when assembly starts again, so a partial assembly never blocks the next one;
- ``failed.json``: the run stopped on an error (one line, also in ``run.log``); ``--resume`` says so and
  continues.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import logging
import os
import random
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import yaml

from asdcore.atomic_io import atomic_write_csv, atomic_write_text  # noqa: F401 - re-exported
from asdcore.errors import ASDError

LOGGER_NAME = "asd"
#: Written when assembly begins: the folder's entries before it (what a new assembly keeps).
ASSEMBLY_FILE = "assembly.json"
#: Written last by assembly: the run is finished.
ASSEMBLED_FILE = "assembled.json"
#: Written when a run stops on an error: the one-line error and when.
FAILED_FILE = "failed.json"
#: Entries of a run folder that hold no result of their own (a failed run holding only these is removed).
BOOKKEEPING = ("run.log", "config.yaml", "invocation.json", "units.csv", FAILED_FILE)
QUICK_BANNER = "QUICK MODE (reduced settings for a CPU; not the paper's settings)"


def get_logger() -> logging.Logger:
    """The project's logger: every module logs through it, the run folder adds a file handler."""
    return logging.getLogger(LOGGER_NAME)


def set_seed(seed: int, keras: bool = True) -> None:
    """Seed Python, NumPy and (unless ``keras`` is False) Keras and its back-end from one number."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if not keras:
        return
    try:
        import keras

        keras.utils.set_random_seed(seed)
    except ImportError:  # pragma: no cover - keras is a hard dependency, kept lazy for import speed
        pass


def seed_for(seed: int, *names) -> int:
    """The seed of one unit of work (a network, a model per ID) from the run's ``--seed`` and its name(s).

    ``(seed * 1_000_003 + crc32("/".join(names))) mod 2**31``: a stable hash (unlike Python's ``hash``), so a
    unit's result does not depend on which other units the run trains before it, nor on the process.
    """
    key = "/".join(str(name) for name in names)
    return (int(seed) * 1_000_003 + zlib.crc32(key.encode("utf-8"))) % 2**31


#: Values of ``--precision``: the paper's float32, or a Keras mixed-precision policy.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def apply_precision(precision: str) -> None:
    """Set Keras' global dtype policy for the networks built afterwards.

    ``float32`` (default) is the papers' setting. ``mixed_bfloat16`` / ``mixed_float16`` compute the
    convolutions and dense layers in 16 bits with float32 variables; the cosine heads (adaptive scale,
    logits, softmax), the losses and the embeddings handed to the back-ends stay float32 (each head layer
    is built with ``dtype="float32"``). With ``mixed_float16`` Keras' ``compile`` adds dynamic loss
    scaling.
    """
    if precision not in PRECISIONS:
        raise ASDError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    import keras

    keras.config.set_dtype_policy(precision)


def config_deviations(paper, ours, prefix: str = "") -> dict:
    """Every setting of ``ours`` whose value differs from ``paper`` (a config of the same dataclass, the
    paper's defaults): ``{key: (paper value, our value)}``; a nested config's keys read ``outer.inner``."""
    out = {}
    for field in dataclasses.fields(paper):
        p, o = getattr(paper, field.name), getattr(ours, field.name)
        if dataclasses.is_dataclass(p) and dataclasses.is_dataclass(o):
            out.update(config_deviations(p, o, f"{prefix}{field.name}."))
        elif (list(p) if isinstance(p, (tuple, list)) else p) != (list(o) if isinstance(o, (tuple, list)) else o):
            out[prefix + field.name] = (p, o)
    return out


def config_to_dict(config) -> dict:
    """A dataclass config (possibly nested) as a plain dict for YAML."""
    if dataclasses.is_dataclass(config):
        return {k: config_to_dict(v) for k, v in dataclasses.asdict(config).items()}
    if isinstance(config, dict):
        return {k: config_to_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [config_to_dict(v) for v in config]
    if isinstance(config, Path):
        return str(config)
    if isinstance(config, np.generic):
        return config.item()
    return config


def resolve_config(default, yaml_path=None, overrides: dict | None = None):
    """Paper defaults <- optional YAML file <- command-line overrides (``None`` values are ignored).

    Unknown keys raise an :class:`ASDError` naming them, so a typo never passes silently. A field whose
    default is itself a config (a dataclass) takes a mapping, resolved the same way (``{"ae": {"epochs": 3}}``).
    """
    values = {}
    if yaml_path is not None:
        path = Path(yaml_path)
        if not path.is_file():
            raise ASDError(f"{path}: config file not found (give the path of a YAML file)")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ASDError(f"{path}: a config file must hold a mapping of setting: value")
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in dataclasses.fields(default)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ASDError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    converted = {}
    for field in dataclasses.fields(default):
        if field.name in values:
            value = values[field.name]
            current = getattr(default, field.name)
            if isinstance(current, tuple) and isinstance(value, list):
                value = tuple(value)
            elif isinstance(current, float) and isinstance(value, (int, str)) and not isinstance(value, bool):
                try:  # YAML 1.1 reads 1e-6 (no dot) as a string
                    value = float(value)
                except ValueError:
                    raise ASDError(f"{field.name}: expected a number, got {value!r}") from None
            elif dataclasses.is_dataclass(current) and isinstance(value, dict):
                try:
                    value = resolve_config(current, None, value)
                except ASDError as error:
                    raise ASDError(f"{field.name}: {error}") from None
            converted[field.name] = value
    return dataclasses.replace(default, **converted)


class RunFolder:
    """The folder of one run: ``<out_root>/<year>/<experiment>/<timestamp>/``.

    Use :meth:`create`; the constructor only wraps an existing folder (for reading a finished run).
    """

    def __init__(self, path):
        self.path = Path(path)

    @classmethod
    def create(cls, out_root, year, experiment: str, log_to_console: bool = True) -> "RunFolder":
        base = Path(out_root) / str(year) / experiment
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        for attempt in range(1000):
            name = stamp if attempt == 0 else f"{stamp}-{attempt}"
            try:
                (base / name).mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover
            raise ASDError(f"{base}: could not create a new run folder")
        run = cls(base / name)
        run._attach_log(log_to_console)
        return run

    @classmethod
    def resume(cls, path, log_to_console: bool = True) -> "RunFolder":
        """Continue an interrupted run in its own folder (its models and training backups are reused).

        A finished run (:attr:`finished`) is refused: resuming it would overwrite its results. A run that
        stopped on an error (``failed.json``) is continued after saying what stopped it.
        """
        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise ASDError(f"{path}: not a run folder (no config.yaml); give the folder of the interrupted run")
        run = cls(path)
        if run.finished:
            raise ASDError(f"{path}: this run finished ({run.finished_by} exists); start a new run instead of "
                           "resuming")
        run._attach_log(log_to_console)
        get_logger().info("resuming the run in %s", path)
        failure = run.failure()
        if failure is not None:
            get_logger().info("this run stopped on an error at %s: %s; continuing where it stopped",
                              failure.get("time", "?"), failure.get("error", "?"))
            (path / FAILED_FILE).unlink()
        return run

    # --- state of the folder (module docstring) ----------------------------------------------------------
    @property
    def finished_by(self) -> str | None:
        """The file that marks the run finished: ``assembled.json``; for a folder written before that marker
        existed, ``comparison.md`` (the last file its assembly wrote) when no assembly was begun since."""
        if (self.path / ASSEMBLED_FILE).is_file():
            return ASSEMBLED_FILE
        if not (self.path / ASSEMBLY_FILE).exists() and (self.path / "comparison.md").is_file():
            return "comparison.md"
        return None

    @property
    def finished(self) -> bool:
        """Whether the run's assembly has finished (then nothing in the folder is written again)."""
        return self.finished_by is not None

    def begin_assembly(self) -> list[str]:
        """Start (or start again) the assembly: refuse a finished run, record the entries the folder holds
        before the first assembly (``assembly.json``), and remove what an interrupted assembly left (any
        other entry). Returns the names removed."""
        if self.finished:
            raise ASDError(f"{self.path}: already assembled ({self.finished_by} exists); nothing is overwritten")
        record = self.path / ASSEMBLY_FILE
        if record.is_file():
            keep = set(json.loads(record.read_text(encoding="utf-8"))["kept"])
        else:
            keep = {p.name for p in self.path.iterdir()}
            atomic_write_text(record, json.dumps({"kept": sorted(keep)}, indent=1))
        keep |= {ASSEMBLY_FILE, "run.log"}
        removed = []
        for entry in sorted(self.path.iterdir()):
            if entry.name in keep:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry.name)
        return removed

    def mark_assembled(self) -> Path:
        """The last write of an assembly: from now on the run is finished."""
        stamp = _dt.datetime.now().isoformat(timespec="seconds")
        return atomic_write_text(self.path / ASSEMBLED_FILE, json.dumps({"assembled": stamp}) + "\n")

    def failure(self) -> dict | None:
        """What ``failed.json`` says (``error``, ``time``), or None."""
        path = self.path / FAILED_FILE
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return {"error": "(unreadable failed.json)"}

    def record_failure(self, error: str) -> bool:
        """A run stopped on ``error`` (one line): write it into ``run.log`` and ``failed.json``; a folder
        that holds nothing else (only :data:`BOOKKEEPING` files and empty folders) is removed instead.
        Returns True when the folder was removed."""
        stamp = _dt.datetime.now().isoformat(timespec="seconds")
        self.log_error(f"the run stopped: {error}")
        self.close()
        if self.holds_nothing():
            shutil.rmtree(self.path, ignore_errors=True)
            return True
        atomic_write_text(self.path / FAILED_FILE, json.dumps({"error": error, "time": stamp}) + "\n",
                          overwrite=True)
        return False

    @staticmethod
    def log_error(message: str) -> None:
        """One ERROR line into the attached ``run.log`` only (the console gets the error from the caller)."""
        for handler in get_logger().handlers:
            if getattr(handler, "_asd_run_handler", False):
                handler.emit(logging.LogRecord(LOGGER_NAME, logging.ERROR, __file__, 0, "%s", (message,), None))

    def holds_nothing(self) -> bool:
        """Whether the folder holds only bookkeeping (:data:`BOOKKEEPING`) and empty folders."""
        for entry in self.path.rglob("*"):
            if entry.is_file() and not (entry.parent == self.path and entry.name in BOOKKEEPING):
                return False
        return True

    def _attach_log(self, log_to_console: bool) -> None:
        logger = get_logger()
        logger.setLevel(logging.INFO)
        for handler in list(logger.handlers):
            if getattr(handler, "_asd_run_handler", False):
                logger.removeHandler(handler)
                handler.close()
        file_handler = logging.FileHandler(self.path / "run.log", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        file_handler._asd_run_handler = True
        logger.addHandler(file_handler)
        if log_to_console and not any(getattr(h, "_asd_console", False) for h in logger.handlers):
            console = logging.StreamHandler(sys.stdout)
            console.setFormatter(logging.Formatter("%(message)s"))
            console._asd_console = True
            logger.addHandler(console)
        logging.captureWarnings(True)
        warnings_logger = logging.getLogger("py.warnings")
        if file_handler not in warnings_logger.handlers:
            warnings_logger.addHandler(file_handler)

    def close(self) -> None:
        """Detach this run's log file (the console handler stays)."""
        for logger in (get_logger(), logging.getLogger("py.warnings")):
            for handler in list(logger.handlers):
                if getattr(handler, "_asd_run_handler", False):
                    logger.removeHandler(handler)
                    handler.close()

    def file(self, *parts) -> Path:
        """A path inside the run folder (parents created)."""
        path = self.path.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def scores_dir(self, system: str) -> Path:
        """``scores/<system>/``: one folder of DCASE submission files per evaluated system."""
        path = self.path / "scores" / system
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_config(self, config: dict) -> Path:
        """Write ``config.yaml``; a resumed run must have been started with the same settings."""
        text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
        path = self.path / "config.yaml"
        if path.exists():
            if path.read_text(encoding="utf-8") != text:
                raise ASDError(f"{path}: the settings differ from the interrupted run's; resume with the same flags")
            return path
        return atomic_write_text(path, text)

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.file(name), text)

    def write_csv(self, name: str, frame, **kwargs) -> Path:
        return atomic_write_csv(frame, self.file(name), **kwargs)


# --- command-line plumbing shared by run_dcase2020.py and run_dcase2021.py ---------------------------

def add_common_arguments(parser: argparse.ArgumentParser, ground_truth: bool = True) -> None:
    """Flags every experiment takes: data, output, quick mode, seed, bad-file handling, cache."""
    parser.add_argument("--data-root", type=Path, default=None,
                        help="DCASE data root holding dev_data/ and/or eval_data/ (default: the built-in synthetic set)")
    if ground_truth:
        parser.add_argument("--ground-truth", type=Path, default=None,
                            help="eval labels: 2020 eval_data_list.csv, 2021 folder of ground_truth_*.csv files, "
                                 "2022-2025 the evaluator's folder (ground_truth_data/ ...) or eval_data_list_<year>.csv")
        parser.add_argument("--revealed-attributes", type=Path, default=None,
                            help="DCASE 2024/2025 only: the organisers' released attribute correspondence files "
                                 "(the 2024 evaluator's ground_truth_attributes_all/ or the baseline's "
                                 "datasets/ground_truth_attributes/dcase202Xt2/); the clips they name get their real "
                                 "attributes instead of noAttribute (default: hidden, as in the challenge)")
    parser.add_argument("--year", type=int, default=None, dest="data_year", choices=(2020, 2021, 2022, 2023, 2024, 2025),
                        help="the DCASE edition of the data, its layout and official scores (default: detected from "
                             "--data-root: a 2022-2025 root is recognised, otherwise the script's year; without "
                             "--data-root, the synthetic set of that year)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="root of the run folders (default: runs)")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--quick", action="store_true",
                       help="reduced settings for a CPU (few epochs); every output says so. The default on the "
                            "synthetic data (no --data-root)")
    modes.add_argument("--full", action="store_true",
                       help="the paper's settings even on the synthetic data")
    parser.add_argument("--seed", type=int, default=0, help="one seed for Python, NumPy and Keras (default 0)")
    parser.add_argument("--config", type=Path, default=None, help="YAML file overriding the paper's settings")
    parser.add_argument("--skip-bad-files", action="store_true",
                        help="skip unreadable recordings (one warning each, listed in bad_files.csv)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="feature and synthetic-data cache (default: $ASD_CACHE_DIR or ~/.cache/asd_reference)")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="float32 (the papers', default) or Keras mixed precision for the networks; the heads "
                             "and losses stay float32")
    parser.add_argument("--synthetic-preset", default="quick",
                        help="size of the generated synthetic data when no --data-root is given (default: quick)")


def resolve_quick(*, quick: bool = False, full: bool = False, data_root=None) -> tuple[bool, str]:
    """Quick mode or the paper's settings, and why: ``quick`` (``--quick``); or no ``data_root`` (the
    synthetic data) without ``full`` (``--full``). Returns ``(quick, reason)``; the reason is "" in full mode."""
    if quick:
        return True, "--quick"
    if data_root is None and not full:
        return True, "no --data-root: synthetic data run in quick mode (give --full for the paper's settings)"
    return False, ""


def cache_root(explicit=None) -> Path:
    """The cache folder: ``--cache-dir``, else ``$ASD_CACHE_DIR``, else ``~/.cache/asd_reference``."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("ASD_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "asd_reference"
