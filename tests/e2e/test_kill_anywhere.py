"""Every experiment command killed (SIGKILL, as a scheduler's time limit or the out-of-memory killer does)
at several points, mid-training and mid-assembly included, then continued: the score files equal, byte for
byte, those of an uninterrupted run of the same seed.

Each command is run in a subprocess that kills itself at a named point (the test hook
:mod:`asdcore.kill_points`, ``ASD_KILL_AT``). Two paths per command:

- one process per step: a run killed during its first epoch, resumed and killed after a unit, resumed and
  killed at each stage of the assembly, resumed to the end (``--resume RUN_DIR``); a further ``--resume``
  is refused (a finished run is never written again);
- the cluster path: ``--plan``; ``train-unit --index 0`` killed mid-training and run again (it continues
  from its backup); ``assemble`` before the other units names them in one line; the remaining units;
  ``assemble`` killed mid-assembly; ``assemble`` again finishes; ``assemble`` a third time is refused and
  changes nothing.

simple-representations (no units, no Keras) runs in the default suite, killed at every assembly point; the
four training commands (killed mid-training, after a unit and mid-assembly) take minutes each on a CPU and
are marked slow (``pytest -m slow tests/e2e/test_kill_anywhere.py``).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ASSEMBLY_POINTS = ["assembly-start", "assembly-scored", "assembly-evaluated", "assembly-end"]


def _tiny_2020(synthetic_set):
    return synthetic_set(2020, seed=0, machine_types=("fan",), n_train=3, n_test_normal=2, n_test_anomaly=2,
                         duration=3.0)


#: command -> (script, year, data (synthetic_set -> root), settings file, extra flags, trains Keras networks)
CASES = {
    "simple-representations": ("run_dcase2020.py", 2020, _tiny_2020, None, [], False),
    "subcluster-adacos": ("run_dcase2020.py", 2020, _tiny_2020,
                          {"epochs": 2, "subclusters": [1, 2], "batch_size": 16}, ["--experiment", "subclusters"],
                          True),
    "ddcsad": ("run_dcase2020.py", 2020, _tiny_2020,
               {"iterations": 2, "finetune_iterations": 2, "steps_per_epoch": 1, "units_per_type": 2,
                "light_channels": [4], "bn_calibration_batches": 1},
               ["--losses", "bce+ddcsad", "--anomalies", "0,1"], True),
    "multi-distribution": ("run_dcase2021.py", 2021,
                           lambda s: s(2021, seed=1, machine_types=("ToyCar",), n_train=6, n_target_train=3,
                                       n_test_normal=3, n_test_anomaly=3, duration=2.0),
                           {"epochs": 2, "checkpoint_every": 1, "subclusters": [1, 2]}, ["--experiment", "system"],
                           True),
    "smoothing": ("run_dcase2021.py", 2021, lambda s: s(2021, duration=5.0),
                  {"ae": {"epochs": 2}, "serial_oe": {"epochs": 2},
                   "protocol": {"clip_seconds": 5.0, "n_draws": 2, "fractions": [0.5, 1.0]}}, [], True),
}


def _call(script, args, env, kill=None):
    """Run ``script args`` in a fresh process (SIGKILLed at ``kill``, a point of asdcore.kill_points)."""
    env = dict(env)
    env.pop("ASD_KILL_AT", None)
    if kill:
        env["ASD_KILL_AT"] = kill
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], env=env, capture_output=True,
                          text=True, cwd=ROOT, timeout=1800)


def _expect(done, killed: bool):
    """A step ended as planned: killed by its own SIGKILL, or finished with exit status 0."""
    wanted = -signal.SIGKILL if killed else 0
    assert done.returncode == wanted, f"exit {done.returncode}, expected {wanted}:\n{done.stdout[-3000:]}\n" \
                                      f"{done.stderr[-3000:]}"


def _only_run(out: Path) -> Path:
    runs = sorted(p for p in out.glob("*/*/*") if p.is_dir())
    assert len(runs) == 1, runs
    return runs[0]


def _score_files(run: Path) -> dict:
    """Every submission file of the run (scores and decisions), relative path -> bytes."""
    files = {str(p.relative_to(run)): p.read_bytes() for p in sorted((run / "scores").rglob("*.csv"))}
    assert files, f"{run}: no score files"
    return files


def _finished_files(run: Path) -> dict:
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()
            and p.name != "run.log"}


def check_kill_anywhere(command: str, synthetic_set, tmp_path: Path, assembly_points=ASSEMBLY_POINTS) -> None:
    """The two paths of the module docstring; the resumed path is killed at each of ``assembly_points``."""
    script, year, make_data, settings, extra, trains = CASES[command]
    env = dict(os.environ, ASD_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    argv = [command, "--data-root", make_data(synthetic_set), "--quick", "--seed", "7", *extra]
    if settings is not None:
        (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(settings))
        argv += ["--config", tmp_path / "tiny.yaml"]

    _expect(_call(script, argv + ["--out", tmp_path / "plain"], env), killed=False)
    expected = _score_files(_only_run(tmp_path / "plain"))

    # --- one process per step, each killed at the next point, then --resume ---------------------------
    points = (["epoch-end:1", "unit-done:1"] if trains else []) + list(assembly_points)
    _expect(_call(script, argv + ["--out", tmp_path / "killed"], env, kill=points[0]), killed=True)
    run = _only_run(tmp_path / "killed")
    for point in points[1:] + [None]:
        _expect(_call(script, [command, "--resume", run], env, kill=point), killed=point is not None)
    assert _score_files(run) == expected
    again = _call(script, [command, "--resume", run], env)
    assert again.returncode == 2 and "this run finished" in again.stderr

    # --- the cluster path: plan, train-unit (killed, run again), assemble (killed, run again, refused) --
    _expect(_call(script, argv + ["--out", tmp_path / "array", "--plan"], env), killed=False)
    run = _only_run(tmp_path / "array")
    n_units = len(pd.read_csv(run / "units.csv"))
    if n_units:
        _expect(_call(script, ["train-unit", run, "--index", 0], env, kill="epoch-end:1"), killed=True)
        _expect(_call(script, ["train-unit", run, "--index", 0], env), killed=False)
        early = _call(script, ["assemble", run], env)
        lines = [line for line in early.stderr.splitlines() if line.startswith("error:")]
        assert early.returncode == 2 and len(lines) == 1, early.stderr
        names = list(pd.read_csv(run / "units.csv")["name"])
        assert f"{n_units - 1} of {n_units} unit(s) not finished" in lines[0]
        assert all(name in lines[0] for name in names[1:]) and f"{names[0]} " not in lines[0]
        for index in range(1, n_units):
            _expect(_call(script, ["train-unit", run, "--index", index], env), killed=False)
    _expect(_call(script, ["assemble", run], env, kill="assembly-evaluated"), killed=True)
    _expect(_call(script, ["assemble", run], env), killed=False)
    assert _score_files(run) == expected
    finished = _finished_files(run)
    refused = _call(script, ["assemble", run], env)
    assert refused.returncode == 2 and "already assembled" in refused.stderr
    assert _finished_files(run) == finished  # nothing written again


def test_simple_representations_killed_anywhere_resumes_to_the_same_scores(synthetic_set, tmp_path):
    check_kill_anywhere("simple-representations", synthetic_set, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["subcluster-adacos", "ddcsad", "multi-distribution", "smoothing"])
def test_training_command_killed_anywhere_resumes_to_the_same_scores(command, synthetic_set, tmp_path):
    # every assembly point is the runner's, checked above on simple-representations; here one of them
    # (after the method's own assembly wrote its files) keeps each command's test to a few processes
    check_kill_anywhere(command, synthetic_set, tmp_path, assembly_points=["assembly-scored"])
