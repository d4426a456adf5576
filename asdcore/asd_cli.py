"""The ``asd`` command: fit one of the four systems on a user's own recordings, then score new ones.

::

    asd fit METHOD --normal DIR [DIR ...] --out SYSTEM_DIR [--quick] [--auxiliary DIR ...] [--test DIR ...]
            [--set NAME=VALUE ...] [--seed N] [--false-alarm-rate 0.1] [--calibration-fraction 0.2]
    asd score SYSTEM_DIR PATH [PATH ...] [--csv FILE] [--machine NAME] [--threshold [MACHINE=]VALUE ...]
            [--false-alarm-rate RATE] [--log FILE]

METHOD: ``subcluster-adacos``, ``multi-distribution``, ``ddcsad``, ``smoothing``. ``asd score`` prints
``path,machine,score,decision`` per recording (decision 1 = anomaly), lists every recording it could not
score with the reason, and exits with status 1 when there was any (the others are scored). The
machinery is :mod:`asdcore.system`; the folder rules :mod:`asdcore.folders`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asdcore.cli import VERBOSE_FLAG
from asdcore.errors import ASDError
from asdcore.quiet import quiet_tensorflow

__all__ = ["main", "build_parser", "parse_only", "command_parser"]

METHOD_NAMES = ("subcluster-adacos", "multi-distribution", "ddcsad", "smoothing")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asd", description="Anomalous sound detection for your own machines: "
                                     "fit a system on normal recordings, then score new recordings.")
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="fit a system on folders of normal recordings (one sub-folder per machine)")
    f.add_argument("method", choices=METHOD_NAMES)
    f.add_argument("--normal", type=Path, nargs="+", required=True, metavar="DIR",
                   help="folders of normal recordings, one sub-folder per machine (or DCASE data roots)")
    f.add_argument("--out", type=Path, required=True, metavar="SYSTEM_DIR", help="the new system folder")
    f.add_argument("--quick", action="store_true", help="reduced training settings for a CPU (not the paper's)")
    f.add_argument("--auxiliary", type=Path, nargs="+", default=[], metavar="DIR",
                   help="other machines' normal recordings: extra classes and outliers, never scored")
    f.add_argument("--test", type=Path, nargs="+", default=[], metavar="DIR",
                   help="labelled test recordings (normal/ and anomaly/ sub-folders, or DCASE roots): AUC and "
                        "pAUC at the end")
    f.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                   help="override one of the method's settings (see settings.yaml of a system), e.g. epochs=20")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--false-alarm-rate", type=float, default=0.1,
                   help="share of normal recordings flagged by the stored thresholds (default 0.1: 90th percentile)")
    f.add_argument("--calibration-fraction", type=float, default=0.2,
                   help="share of each machine's normal recordings held out of training to set its threshold")
    s = sub.add_parser("score", help="score recordings with a saved system")
    s.add_argument("system", type=Path, metavar="SYSTEM_DIR")
    s.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="recordings or folders (searched recursively)")
    s.add_argument("--csv", type=Path, default=None, help="also write the results to this new CSV file")
    s.add_argument("--machine", default=None, help="the machine of every recording (default: read from the path)")
    s.add_argument("--threshold", action="append", default=[], metavar="[MACHINE=]VALUE",
                   help="replace the stored threshold (of one machine with MACHINE=VALUE)")
    s.add_argument("--false-alarm-rate", type=float, default=None,
                   help="recompute the thresholds from the stored calibration scores at this rate")
    s.add_argument("--log", type=Path, default=None,
                   help="log file (default: score.log in SYSTEM_DIR when writable)")
    for command in (f, s):
        command.add_argument(VERBOSE_FLAG, action="store_true",
                             help="show TensorFlow's native start-up and log lines (hidden by default)")
    parser.subcommands = {"fit": f, "score": s}
    return parser


def parse_only(argv):
    """The parsed arguments of ``asd ARGV`` without running anything (the docs check)."""
    return build_parser().parse_args(argv)


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of ``asd NAME`` (``fit`` or ``score``); ValueError for another name."""
    commands = build_parser().subcommands
    if name not in commands:
        raise ValueError(f"asd has no command {name!r}; choose one of {', '.join(commands)}")
    return commands[name]


def _thresholds(values):
    if not values:
        return None
    out = {}
    for value in values:
        machine, _, number = value.rpartition("=")
        try:
            number = float(number)
        except ValueError:
            raise ASDError(f"--threshold {value!r}: give a number or MACHINE=NUMBER") from None
        if not machine:
            if len(values) > 1:
                raise ASDError("--threshold: give one plain number, or MACHINE=NUMBER for each machine")
            return number
        out[machine] = number
    return out


def _score(args) -> int:
    from asdcore import system as systems

    log_path = args.log
    if log_path is None:
        candidate = args.system / "score.log"
        try:
            with open(candidate, "a", encoding="utf-8"):
                pass
            log_path = candidate
        except OSError:
            log_path = None
    log = systems._logger("asd.score", log_path)
    try:
        loaded = systems.load(args.system)
        threshold = _thresholds(args.threshold)
        if args.csv is not None and args.csv.exists():
            raise ASDError(f"{args.csv}: exists already; choose a new --csv file")
        log.info("asd score %s: %d path(s)", args.system, len(args.paths))
        frame = loaded.score(args.paths, machine=args.machine, false_alarm_rate=args.false_alarm_rate,
                             threshold=threshold)
        print("path,machine,score,decision")
        for row in frame.itertuples():
            score = "" if row.error else f"{row.score:.6f}"
            decision = "" if row.error else str(int(row.decision))
            print(f"{row.path},{row.machine},{score},{decision}")
        if args.csv is not None:
            from asdcore.atomic_io import atomic_write_csv

            atomic_write_csv(frame, args.csv)
        short = frame[frame["short"]]
        if len(short):
            log.warning("%d recording(s) shorter than the training recordings (flagged in column 'short' of "
                        "--csv): %s", len(short), ", ".join(short["path"].head(3)))
        bad = frame[frame["error"]]
        if len(bad):
            log.error("%d of %d recording(s) not scored:", len(bad), len(frame))
            for row in bad.itertuples():
                log.error("  %s: %s", row.path, row.note)
            return 1
        log.info("scored %d recording(s); %d anomalous", len(frame), int(frame["decision"].sum()))
        return 0
    finally:
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # before anything imports TensorFlow: its native start-up lines stay off the console (asdcore.quiet)
    quiet_tensorflow(verbose=VERBOSE_FLAG in argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "fit":
            from asdcore.system import fit

            out = fit(args.method, args.normal, args.out, quick=args.quick, auxiliary=args.auxiliary, test=args.test,
                      settings=args.settings, seed=args.seed, false_alarm_rate=args.false_alarm_rate,
                      calibration_fraction=args.calibration_fraction)
            print(f"system saved: {out}")
            return 0
        return _score(args)
    except ASDError as error:
        print(f"asd {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
