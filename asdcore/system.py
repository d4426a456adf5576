"""A saved, fitted system for a user's own machines: ``asd fit`` writes it, ``asd score`` and
``asdcore.system.load(path).score(paths)`` use it.

The four methods keep their own networks, trainers and back-ends; each contributes an *adapter* (in its own
package: ``subcluster_adacos.own_system``, ``ddcsad.own_system``, ``smoothing.own_system``) that fits the
method on a clip table with the paper scripts' functions and scores one recording at a time. This module does
everything that is the same for all of them: the requirements check before training, the calibration share,
the system folder, thresholds and decisions, per-file errors at scoring time, versions and logs.

Adapter protocol (duck-typed)
-----------------------------
``name``, ``domains`` (True when the method scores the target domain with its own rule), and

- ``default_config(quick)``: the method's frozen config (the paper's values; ``quick`` the CPU variant);
- ``check(table, config, log)``: raise :class:`ASDError` (one line: what to add) when the training table
  cannot train the method; ``log.warning`` for degenerate settings (naming the setting and its fix); called
  before any feature is computed;
- ``fit(table, config, folder, seed, log)``: train on every row of ``table`` (``part`` ``"own"``: the
  machines to monitor; ``"auxiliary"``: other machines, classes / outliers only) and write into ``folder``;
- ``load(folder, config)``: an object with ``sr`` and ``score_clip(wave, machine, domain) -> (score,
  decision_score)``: the anomaly score of ONE recording (higher = more anomalous) from what ``fit`` stored
  (never from other recordings scored with it), and the score compared with the threshold (the same
  number, except where a paper defines another decision score).

System folder
-------------
``system.json`` (method, machines, thresholds, calibration, versions, training recordings' shortest
length), ``settings.yaml`` (the resolved method config), ``calibration_scores.csv`` (the scores the
thresholds come from), ``model/`` (the adapter's files), ``fit.log``, and with ``--test`` ``test_scores.csv``
and ``test_results.csv``. ``fit`` writes into a temporary folder beside ``--out`` and renames it at the end:
a failed fit leaves no system folder (its log is kept as ``<out>.failed.log``).

Decisions
---------
Per machine (and domain, where the method scores the target domain by its own rule) a threshold: the
``1 - false_alarm_rate`` quantile (default 0.9, the 90th percentile of Wilkinghoff 2021 Sec. 2.6 and the DCASE
decision convention) of the decision scores of **calibration recordings**: a share (``calibration_fraction``,
default 0.2) of each machine's normal source recordings, held out of training, scored after training through
the same per-recording path as ``asd score``. Scores of the training recordings themselves are optimistic
(the back-ends were fitted on them), so their percentile under-states the false alarms on new recordings;
machines with fewer than :data:`MIN_CALIBRATION` held-out recordings fall back to those in-sample scores,
with a warning. Target-domain thresholds use the target training recordings (a few, none held out).
``score`` > threshold -> ``decision = 1`` (anomaly).
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from asdcore.errors import ASDError
from asdcore.experiment import LOGGER_NAME

__all__ = ["METHODS", "get_adapter", "fit", "load", "System", "collect_paths", "MIN_CALIBRATION",
           "split_calibration", "quantile_thresholds", "versions"]

#: method name -> the module holding its adapter (imported on use: asdcore imports no method package)
METHODS = {
    "subcluster-adacos": "subcluster_adacos.own_system",
    "multi-distribution": "subcluster_adacos.own_system",
    "ddcsad": "ddcsad.own_system",
    "smoothing": "smoothing.own_system",
}
#: fewest held-out recordings per machine for a calibration share; fewer -> in-sample training scores
MIN_CALIBRATION = 5
FORMAT_VERSION = 1
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def get_adapter(method: str):
    if method not in METHODS:
        raise ASDError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return importlib.import_module(METHODS[method]).ADAPTERS[method]


def versions() -> dict:
    """The versions that made a system (Python and the packages whose numbers can change scores)."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for name in ("asd-reference", "numpy", "scipy", "scikit-learn", "tensorflow", "keras", "librosa", "soundfile"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _logger(name: str, path: Path | None) -> logging.Logger:
    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(console)
    if path is not None:
        file_handler = logging.FileHandler(path, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        log.addHandler(file_handler)
        logging.getLogger(LOGGER_NAME).addHandler(file_handler)  # the methods' own lines (training, features)
    return log


def _close(log: logging.Logger) -> None:
    project = logging.getLogger(LOGGER_NAME)
    for handler in list(log.handlers):
        log.removeHandler(handler)
        project.removeHandler(handler)
        handler.close()


# ------------------------------------------------------------------------------------------ fitting

def split_calibration(table: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the calibration recordings: per own machine a random ``fraction`` of its normal
    source recordings (none when that gives fewer than :data:`MIN_CALIBRATION` or leaves fewer than two
    for training)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(table), dtype=bool)
    if fraction <= 0:
        return mask
    own = (table["part"] != "auxiliary").to_numpy() & (table["domain"] != "target").to_numpy()
    for machine in sorted(table.loc[own, "machine"].unique()):
        rows = np.flatnonzero(own & (table["machine"] == machine).to_numpy())
        n = int(round(fraction * len(rows)))
        if n >= MIN_CALIBRATION and len(rows) - n >= 2:
            mask[rng.choice(rows, n, replace=False)] = True
    return mask


def quantile_thresholds(calibration: pd.DataFrame, false_alarm_rate: float) -> dict:
    """Threshold per key: the ``1 - false_alarm_rate`` quantile (``numpy.quantile``, linear interpolation) of
    the calibration decision scores of that key."""
    if not 0 < false_alarm_rate < 1:
        raise ASDError(f"false-alarm rate {false_alarm_rate}: give a number between 0 and 1 (0.1 = 90th percentile)")
    return {key: float(np.quantile(group["decision_score"].to_numpy(dtype=float), 1 - false_alarm_rate))
            for key, group in calibration.groupby("key")}


def _key(machine: str, domain: str, uses_domains: bool) -> str:
    return f"{machine}@target" if uses_domains and domain == "target" else machine


def _training_lengths(paths) -> float:
    """Shortest training recording in seconds (header read only)."""
    import soundfile as sf

    shortest = np.inf
    for path in paths:
        try:
            info = sf.info(path)
            shortest = min(shortest, info.frames / info.samplerate)
        except (RuntimeError, sf.LibsndfileError):
            continue  # the feature reader reports unreadable files
    return float(shortest) if np.isfinite(shortest) else 0.0


def _parse_settings(pairs) -> dict:
    """``["epochs=3", "serial_oe.epochs=2"]`` -> nested dict (values read as YAML scalars)."""
    import yaml

    out: dict = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise ASDError(f"--set {pair!r}: write NAME=VALUE, e.g. --set epochs=20")
        name, value = pair.split("=", 1)
        node = out
        keys = name.strip().split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = yaml.safe_load(value)
    return out


def fit(method: str, normal, out, *, quick: bool = False, auxiliary=(), test=(), settings=(), seed: int = 0,
        false_alarm_rate: float = 0.1, calibration_fraction: float = 0.2) -> Path:
    """Fit ``method`` on the normal recordings of the folders ``normal`` and save it as the folder ``out``.

    ``auxiliary``: folders of other machines' normal recordings (extra classes / outliers, never scored);
    ``test``: folders with ``normal/`` and ``anomaly/`` recordings (or DCASE roots), evaluated at the end
    (AUC, pAUC per machine). ``settings``: ``NAME=VALUE`` overrides of the method's config. Returns ``out``.
    """
    from asdcore.experiment import config_to_dict, resolve_config, set_seed
    from asdcore.folders import read_folders

    out = Path(out)
    if out.exists():
        raise ASDError(f"{out}: exists already; choose a new --out folder (a saved system is never replaced)")
    adapter = get_adapter(method)
    config = resolve_config(adapter.default_config(quick), None, _parse_settings(settings))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(os.fspath(out.parent / f".{out.name}.partial-{os.getpid()}"))
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    log = _logger("asd.fit", tmp / "fit.log")
    started = time.time()
    try:
        log.info("asd fit %s -> %s%s", method, out, " (--quick: reduced settings, not the paper's)" if quick else "")
        table = read_folders(normal)
        if len(auxiliary):
            aux = read_folders(auxiliary, part="auxiliary")
            aux["part"] = "auxiliary"
            clash = sorted(set(aux["machine"]) & set(table["machine"]))
            if clash:
                raise ASDError(f"machine {clash[0]!r} is both in --normal and in --auxiliary; rename one folder")
            table = pd.concat([table, aux], ignore_index=True)
        own = table["part"] != "auxiliary"
        machines = sorted(table.loc[own, "machine"].unique())
        log.info("recordings: %d normal of %d machine(s) (%s)%s", int(own.sum()), len(machines),
                 ", ".join(machines[:8]) + (" ..." if len(machines) > 8 else ""),
                 f", {int((~own).sum())} auxiliary of {table.loc[~own, 'machine'].nunique()} other machine(s)"
                 if (~own).any() else "")
        calibration = split_calibration(table, calibration_fraction, seed)
        train_table = table[~calibration].reset_index(drop=True)
        adapter.check(train_table, config, log)  # requirements: before any feature or training
        test_table = read_folders(test, labelled=True) if len(test) else None
        if test_table is not None:
            unknown = sorted(set(test_table["machine"]) - set(machines))
            if unknown:
                raise ASDError(f"--test holds recordings of machine {unknown[0]!r}, which --normal does not; name its "
                               f"test folder like one of {', '.join(machines[:6])}")
        set_seed(seed)
        model_dir = tmp / "model"
        model_dir.mkdir()
        adapter.fit(train_table, config, model_dir, seed, log)
        fitted = time.time()
        scorer = adapter.load(model_dir, config)
        # thresholds: calibration recordings (held out), else the training recordings (in-sample), per machine
        own_train = train_table[train_table["part"] != "auxiliary"]
        held = table[calibration]
        rows = []
        for machine in machines:
            source = held[held["machine"] == machine]
            kind = "held-out"
            if not len(source):
                source = own_train[(own_train["machine"] == machine) & (own_train["domain"] != "target")]
                kind = "training (in-sample)"
                log.warning("%s: thresholds from its training recordings' own scores (fewer than %d held out: "
                            "add recordings); false alarms on new recordings will exceed %.0f %%", machine,
                            MIN_CALIBRATION, 100 * false_alarm_rate)
            target = own_train[(own_train["machine"] == machine) & (own_train["domain"] == "target")]
            for _, row in pd.concat([source, target]).iterrows():
                wave, _ = _read_wave(row["path"], scorer.sr)
                score, decision = scorer.score_clip(wave, machine, row["domain"])
                rows.append({"path": row["path"], "machine": machine, "domain": row["domain"],
                             "key": _key(machine, row["domain"], adapter.domains), "kind": kind,
                             "score": score, "decision_score": decision})
        calib = pd.DataFrame(rows)
        thresholds = quantile_thresholds(calib, false_alarm_rate)
        calib.to_csv(tmp / "calibration_scores.csv", index=False)
        domain_note = {m: ("source and target" if (own_train["machine"].eq(m) & own_train["domain"].eq("target")).any()
                           else "source only") for m in machines}
        for machine in machines:
            if domain_note[machine] == "source only" and adapter.domains:
                log.info("%s: no target-domain recordings: scored as source domain only", machine)
        info = {"format": FORMAT_VERSION, "method": method, "quick": bool(quick), "seed": int(seed),
                "machines": machines, "domains": domain_note, "uses_domains": bool(adapter.domains),
                "thresholds": thresholds, "false_alarm_rate": float(false_alarm_rate),
                "calibration_fraction": float(calibration_fraction),
                "calibration": {m: str(calib.loc[calib["machine"] == m, "kind"].iloc[0]) for m in machines},
                "shortest_training_seconds": _training_lengths(own_train["path"]),
                "n_training": {m: int((own_train["machine"] == m).sum()) for m in machines},
                "auxiliary_machines": sorted(table.loc[~own, "machine"].unique()),
                "sr": int(scorer.sr), "fit_seconds": round(fitted - started, 1), "versions": versions(),
                "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        import yaml

        (tmp / "settings.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")
        (tmp / "system.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        if test_table is not None:
            _evaluate(System(tmp, info, config, scorer), test_table, tmp, log)
        log.info("fitted in %.0f s; thresholds: %s", time.time() - started,
                 ", ".join(f"{k} {v:.4g}" for k, v in thresholds.items()))
        _close(log)
        os.replace(tmp, out)
    except BaseException as exc:
        if isinstance(exc, ASDError):
            log.error("error: %s", exc)
        else:
            log.exception("fit failed")
        _close(log)
        failed_log = out.parent / f"{out.name}.failed.log"
        if (tmp / "fit.log").exists():
            shutil.copyfile(tmp / "fit.log", failed_log)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _evaluate(system: "System", test_table: pd.DataFrame, folder: Path, log) -> None:
    """AUC and pAUC per machine of the labelled test recordings (written to the system folder)."""
    from asdcore.metrics import auc, pauc

    scored = system.score(list(test_table["path"]), machines=list(test_table["machine"]))
    scored["label"] = test_table["label"].to_numpy()
    scored.to_csv(folder / "test_scores.csv", index=False)
    results = []
    for machine, group in scored.dropna(subset=["score"]).groupby("machine"):
        y = (group["label"] == "anomaly").to_numpy().astype(int)
        if 0 < y.sum() < len(y):
            results.append({"machine": machine, "n_normal": int((y == 0).sum()), "n_anomaly": int(y.sum()),
                            "auc": auc(y, group["score"]), "pauc": pauc(y, group["score"]),
                            "false_alarm_rate": float(group.loc[y == 0, "decision"].mean()),
                            "detection_rate": float(group.loc[y == 1, "decision"].mean())})
    frame = pd.DataFrame(results)
    frame.to_csv(folder / "test_results.csv", index=False)
    for row in results:
        log.info("test %s: AUC %.3f, pAUC %.3f, false alarms %.0f %%, detected %.0f %% (%d normal, %d anomalous)",
                 row["machine"], row["auc"], row["pauc"], 100 * row["false_alarm_rate"], 100 * row["detection_rate"],
                 row["n_normal"], row["n_anomaly"])


# ------------------------------------------------------------------------------------------ scoring

def _read_wave(path, sr: int):
    """One recording as the paper scripts read it (first channel, resampled to ``sr``): ``(wave, notes)``
    (notes: resampling) or :class:`~asdcore.errors.AudioError`."""
    from asdcore.audio import ResampleWarning, load_audio

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResampleWarning)
        wave = load_audio(path, sr=sr, channel=0)
    notes = [str(w.message).split(": ", 1)[-1] for w in caught if issubclass(w.category, ResampleWarning)]
    try:
        import soundfile as sf

        channels = sf.info(os.fspath(path)).channels
    except (RuntimeError, OSError):
        channels = 1
    if channels > 1:
        notes.append(f"{channels} channels: the first one scored")
    return wave, notes


def collect_paths(paths) -> list[Path]:
    """Files as given and every recording below given folders (recursively); one-line error for a folder
    without recordings or a path that does not exist."""
    from asdcore.folders import audio_files

    out = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = audio_files(path)
            if not found:
                raise ASDError(f"{path}: no .wav or .flac recordings found (searched recursively)")
            out += found
        else:
            out.append(path)  # a missing or unreadable file is reported per file
    return out


class System:
    """A fitted system loaded from its folder (:func:`load`)."""

    def __init__(self, folder, info: dict, config, scorer):
        self.folder, self.info, self.config, self.scorer = Path(folder), info, config, scorer

    @property
    def method(self) -> str:
        return self.info["method"]

    @property
    def machines(self) -> list[str]:
        return list(self.info["machines"])

    @property
    def thresholds(self) -> dict:
        return dict(self.info["thresholds"])

    def thresholds_for(self, false_alarm_rate: float | None = None, threshold=None) -> dict:
        """The stored thresholds, or recomputed from the stored calibration scores at another false-alarm
        rate, or replaced: ``threshold`` a number (every machine) or a dict machine -> number."""
        thresholds = self.thresholds
        if false_alarm_rate is not None:
            calibration = pd.read_csv(self.folder / "calibration_scores.csv")
            thresholds = quantile_thresholds(calibration, false_alarm_rate)
        if isinstance(threshold, dict):
            unknown = sorted(set(threshold) - set(thresholds) - set(self.machines))
            if unknown:
                raise ASDError(f"--threshold for unknown machine {unknown[0]!r}; known: {', '.join(self.machines)}")
            for machine, value in threshold.items():
                for key in list(thresholds):
                    if key == machine or key.startswith(f"{machine}@"):
                        thresholds[key] = float(value)
        elif threshold is not None:
            thresholds = {key: float(threshold) for key in thresholds}
        return thresholds

    def score(self, paths, machine: str | None = None, machines=None, false_alarm_rate: float | None = None,
              threshold=None) -> pd.DataFrame:
        """Score recordings (files, or folders searched recursively), each on its own.

        Returns one row per file: ``path, machine, score, decision, threshold, short, note``. A file that
        cannot be scored keeps its row with empty score and decision and the reason in ``note``
        (``error`` True); the others are scored. ``machine`` forces the machine of every file; else it is
        read from the path (:func:`asdcore.folders.machine_of_path`). ``machines``: one per path (internal).
        """
        from asdcore.audio import _SKIP_HINT
        from asdcore.errors import AudioError
        from asdcore.folders import domain_of_path, machine_of_path

        files = collect_paths(paths)
        thresholds = self.thresholds_for(false_alarm_rate, threshold)
        shortest = float(self.info.get("shortest_training_seconds", 0.0))
        rows = []
        for i, path in enumerate(files):
            row = {"path": str(path), "machine": "", "score": np.nan, "decision": pd.NA, "threshold": np.nan,
                   "short": False, "error": False, "note": ""}
            try:
                wave, notes = _read_wave(path, self.scorer.sr)
                name = machines[i] if machines is not None else machine_of_path(path, self.machines, machine)
                row["machine"] = name
                domain = domain_of_path(path)
                if domain == "target" and self.info.get("domains", {}).get(name) != "source and target":
                    domain = "source"
                seconds = len(wave) / self.scorer.sr
                if seconds < shortest - 1e-6:
                    row["short"] = True
                    notes.append(f"{seconds:.2f} s, shorter than the training recordings ({shortest:.2f} s): "
                                 "repeat-padded as in the paper scripts")
                score, decision_score = self.scorer.score_clip(wave, name, domain)
                if not np.isfinite(score):
                    raise ASDError(f"{path}: the score is not finite (a broken recording or model)")
                key = _key(name, domain, self.info.get("uses_domains", False))
                row.update(score=float(score), threshold=thresholds[key],
                           decision=int(decision_score > thresholds[key]), note="; ".join(notes))
            except (ASDError, AudioError, ValueError) as exc:
                reason = str(exc).replace(f"{path}: ", "").replace(_SKIP_HINT, "re-record or re-copy it")
                row.update(error=True, note=reason)
            except Exception as exc:  # noqa: BLE001 - one recording's failure never stops the others
                row.update(error=True, note=f"could not be scored ({type(exc).__name__}: {str(exc)[:200]})")
            rows.append(row)
        frame = pd.DataFrame(rows, columns=["path", "machine", "score", "decision", "threshold", "short", "error",
                                            "note"])
        frame["decision"] = frame["decision"].astype("Int64")
        return frame


def load(path) -> System:
    """A system folder written by :func:`fit` (``asd fit``), ready to score: ``load(path).score(paths)``.

    Load only folders you trust: the back-ends are pickled scikit-learn objects."""
    from asdcore.experiment import resolve_config

    folder = Path(path)
    info_path = folder / "system.json"
    if not info_path.is_file():
        raise ASDError(f"{folder}: not a system folder (no system.json); give the --out folder of `asd fit`")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.get("format") != FORMAT_VERSION:
        raise ASDError(f"{folder}: system format {info.get('format')} is not {FORMAT_VERSION}; fit it again")
    import yaml

    adapter = get_adapter(info["method"])
    stored = yaml.safe_load((folder / "settings.yaml").read_text(encoding="utf-8")) or {}
    config = resolve_config(adapter.default_config(info.get("quick", False)), None, stored)
    return System(folder, info, config, adapter.load(folder / "model", config))


def dataclass_fields(config) -> list[str]:
    return [f.name for f in dataclasses.fields(config)]
