"""asdcore.runner: one sequence; units seeded by name, never redone, the same scores serially, in worker
processes, after a kill and resume, and as a plan + train-unit + assemble job array."""
import json
import os
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asdcore.errors import ASDError
from asdcore.experiment import seed_for
from asdcore.runner import assemble_command, run_command, train_unit_command

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def toy():
    sys.path.insert(0, str(HERE))
    import toy_method

    yield toy_method.METHOD
    sys.path.remove(str(HERE))


@pytest.fixture(scope="module")
def data_root(synthetic_set):
    return synthetic_set(2020, seed=5, duration=1.0)


@pytest.fixture()
def env(cli_env, monkeypatch):
    # cli_env: run folders and caches in the test's own folder; worker processes import the toy method from this folder
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("TOY_FAIL", raising=False)
    return cli_env


def _only_run(out: Path) -> Path:
    runs = sorted((out / "2020" / "toy").iterdir())
    assert len(runs) == 1
    return runs[0]


def _scores(run: Path) -> pd.DataFrame:
    frames = [pd.read_csv(p, header=None, names=["file", "score"]).assign(unit=p.name)
              for p in sorted((run / "scores" / "toy").glob("anomaly_score_*.csv"))]
    return pd.concat(frames, ignore_index=True)


def _serial(toy, data_root, out, *extra):
    assert run_command(toy, ["--data-root", str(data_root), "--out", str(out), "--quick", *extra]) == 0
    return _only_run(out)


def test_seed_for_is_a_stable_hash_of_the_names():
    assert seed_for(0, "fan-id_00") == zlib.crc32(b"fan-id_00") % 2**31
    assert seed_for(3, "a", "b") == (3 * 1_000_003 + zlib.crc32(b"a/b")) % 2**31
    assert seed_for(0, "x") != seed_for(1, "x")


def test_serial_run_writes_every_output_and_seeds_units_by_name(toy, data_root, env):
    run = _serial(toy, data_root, env / "serial")
    units = pd.read_csv(run / "units.csv")
    table = pd.read_csv(run / "results.csv")
    assert len(units) == 14  # 2 types x 7 IDs of the tiny set, dev and eval
    assert list(units["name"]) == sorted(units["name"])
    for name, seed in zip(units["name"], units["seed"]):
        record = json.loads((run / "units" / name / "unit.json").read_text())
        assert record["seed"] == seed == seed_for(0, name)
        assert record["result"]["clips"] > 0
    text = (run / "comparison.md").read_text()
    assert "QUICK MODE" in text and "Toy table" in text
    assert (table["mode"] == "QUICK").all() and set(table["system"]) == {"toy"}
    # the data the numbers come from, in every result CSV (the toy runs on the synthetic set)
    assert (table["data"] == "synthetic").all() and list(table.columns[:2]) == ["mode", "data"]
    confidence = pd.read_csv(run / "confidence.csv")
    assert (confidence["data"] == "synthetic").all() and (confidence["mode"] == "QUICK").all()
    # each centre = the unit's training mean + N(0, 1) noise drawn from seed_for(0, name): compare with a run
    # without noise and the draw made here by hand
    plain = _serial(toy, data_root, env / "plain", "--noise", "0")
    from asdcore.experiment import set_seed

    for name in units["name"][:3]:
        set_seed(seed_for(0, name))
        noise = np.random.standard_normal(128)
        np.testing.assert_allclose(np.load(run / "units" / name / "centre.npy")
                                   - np.load(plain / "units" / name / "centre.npy"), noise, atol=1e-9)


def test_workers_give_the_same_scores_as_a_serial_run(toy, data_root, env):
    serial = _scores(_serial(toy, data_root, env / "serial"))
    serial = serial[serial["unit"].str.contains("_fan_")].reset_index(drop=True)
    run = _serial(toy, data_root, env / "parallel", "--workers", "2", "--types", "fan")
    pd.testing.assert_frame_equal(_scores(run)[lambda f: f["unit"].str.contains("_fan_")].reset_index(drop=True),
                                  serial)
    assert all((run / "units" / u / "worker.log").is_file() for u in pd.read_csv(run / "units.csv")["name"])


def test_kill_and_resume_redoes_only_unfinished_units(toy, data_root, env, monkeypatch):
    serial = _scores(_serial(toy, data_root, env / "serial"))
    names = list(pd.read_csv(next((env / "serial" / "2020" / "toy").iterdir()) / "units.csv")["name"])
    monkeypatch.setenv("TOY_FAIL", names[2])
    with pytest.raises(RuntimeError, match="simulated kill"):
        run_command(toy, ["--data-root", str(data_root), "--out", str(env / "killed"), "--quick"])
    run = _only_run(env / "killed")
    assert (run / "trained.log").read_text().split() == names[:2]
    # the error is in the folder: one line in run.log and failed.json
    assert "ERROR the run stopped: RuntimeError: simulated kill" in (run / "run.log").read_text()
    assert "simulated kill" in json.loads((run / "failed.json").read_text())["error"]
    monkeypatch.delenv("TOY_FAIL")
    assert run_command(toy, ["--resume", str(run)]) == 0
    assert "stopped on an error" in (run / "run.log").read_text() and not (run / "failed.json").exists()
    assert (run / "trained.log").read_text().split() == names  # the first two were not trained again
    pd.testing.assert_frame_equal(_scores(run), serial)


def test_plan_then_job_array_then_assemble(toy, data_root, env):
    serial = _scores(_serial(toy, data_root, env / "serial"))
    assert run_command(toy, ["--data-root", str(data_root), "--out", str(env / "array"), "--quick", "--plan"]) == 0
    run = _only_run(env / "array")
    assert not (run / "results.csv").exists()
    n = len(pd.read_csv(run / "units.csv"))
    for index in reversed(range(n)):  # any order, as a scheduler may run them
        assert train_unit_command([str(run), "--index", str(index)]) == 0
    assert train_unit_command([str(run), "--index", "0"]) == 0  # finished: nothing redone
    assert len((run / "trained.log").read_text().split()) == n
    assert assemble_command([str(run)]) == 0
    pd.testing.assert_frame_equal(_scores(run), serial)
    with pytest.raises(ASDError, match="already assembled"):
        assemble_command([str(run)])


def test_assemble_before_every_unit_is_trained_is_refused(toy, data_root, env):
    run_command(toy, ["--data-root", str(data_root), "--out", str(env / "array"), "--quick", "--plan"])
    run = _only_run(env / "array")
    train_unit_command([str(run), "--index", "0"])
    with pytest.raises(ASDError, match="not finished") as refused:
        assemble_command([str(run)])
    names = list(pd.read_csv(run / "units.csv")["name"])
    message = str(refused.value)
    assert "\n" not in message and f"{len(names) - 1} of {len(names)} unit(s) not finished" in message
    assert all(f"{name} (--index {i})" in message for i, name in enumerate(names) if i > 0)
    assert f"{names[0]} (" not in message and f"I = {','.join(map(str, range(1, len(names))))})" in message
    assert not (run / "assembly.json").exists()  # refused before anything of the assembly was written
    with pytest.raises(ASDError, match="--index 99"):
        train_unit_command([str(run), "--index", "99"])


def test_overrides_are_not_labelled_paper_settings(toy, data_root, env, monkeypatch):
    """Every deviation from the paper's settings is named by key in config.yaml, with the paper's value and
    what set it (flag, --config file, --precision); a --config value equal to the paper's is no deviation."""
    import yaml

    import asdcore.experiment

    monkeypatch.setattr(asdcore.experiment, "apply_precision", lambda precision: None)  # no global Keras policy
    settings = env / "settings.yaml"
    settings.write_text("n_frames: 17\nmachine_types: [fan, ToyCar]\n")  # machine_types: the paper's value
    run_command(toy, ["--data-root", str(data_root), "--out", str(env / "o"), "--noise", "0.5", "--config",
                      str(settings), "--precision", "mixed_float16", "--plan"])
    config = yaml.safe_load((_only_run(env / "o") / "config.yaml").read_text())
    assert config["mode"] == "full" and config["precision"] == "mixed_float16"
    assert config["deviations"] == {
        "noise": {"paper": 1.0, "ours": 0.5, "set by": "command line"},
        "n_frames": {"paper": 31, "ours": 17, "set by": f"--config {settings}"},
        "precision": {"paper": "float32", "ours": "mixed_float16", "set by": "--precision"}}
    label = config["settings_label"]
    assert label.startswith("not the paper's settings: ") and "paper settings" not in label
    for key in ("noise = 0.5 (paper: 1.0", "n_frames = 17 (paper: 31", "precision = mixed_float16 (paper: float32"):
        assert key in label
    assert "machine_types" not in label
    run_command(toy, ["--data-root", str(data_root), "--out", str(env / "p"), "--plan"])
    config = yaml.safe_load((_only_run(env / "p") / "config.yaml").read_text())
    assert config["settings_label"] == "paper settings" and config["deviations"] == {}


def test_a_planned_run_can_be_resumed_and_bad_settings_leave_no_folder(toy, data_root, env):
    serial = _scores(_serial(toy, data_root, env / "serial"))
    run_command(toy, ["--data-root", str(data_root), "--out", str(env / "planned"), "--quick", "--plan"])
    run = _only_run(env / "planned")
    assert run_command(toy, ["--resume", str(run)]) == 0
    pd.testing.assert_frame_equal(_scores(run), serial)
    with pytest.raises(ASDError, match="unknown setting"):
        bad = env / "bad.yaml"
        bad.write_text("no_such_setting: 1\n")
        run_command(toy, ["--data-root", str(data_root), "--out", str(env / "bad"), "--config", str(bad)])
    assert not (env / "bad").exists()


def test_a_run_skipping_bad_files_can_be_planned_trained_unit_by_unit_and_assembled(toy, data_root, env):
    """Every process of a run (plan, each train-unit job, assemble) lists the same unreadable files in
    bad_files.csv: writing that list again is not refused."""
    import shutil

    data = env / "data"
    shutil.copytree(data_root, data)
    broken = sorted((data / "dev_data" / "fan" / "test").glob("*.wav"))[0]
    broken.write_bytes(b"not a wave file")
    argv = ["--data-root", str(data), "--out", str(env / "array"), "--quick", "--skip-bad-files", "--types", "fan"]
    assert run_command(toy, argv + ["--plan"]) == 0
    run = _only_run(env / "array")
    assert broken.name in (run / "bad_files.csv").read_text()
    for index in range(len(pd.read_csv(run / "units.csv"))):
        assert train_unit_command([str(run), "--index", str(index)]) == 0
    assert assemble_command([str(run)]) == 0
    assert (run / "assembled.json").is_file()


def test_every_unit_trains_under_the_precision_asked_for(toy, data_root, env):
    """--precision sets Keras' dtype policy, and the reset before each unit (clear_session) must not set it
    back to float32: the networks a unit builds compute in the policy asked for."""
    import dataclasses
    import json

    import keras

    class KerasToy(type(toy)):
        uses_keras = True  # the runner resets Keras (clear_session) before every unit

        def train_unit(self, ctx, unit):
            result = super().train_unit(ctx, unit)
            return {**result, "policy": keras.config.dtype_policy().name,
                    "dense": keras.layers.Dense(2).compute_dtype}

    method = KerasToy()
    assert dataclasses.is_dataclass(method.default_config(True))
    try:
        run = _serial(method, data_root, env / "o", "--precision", "mixed_bfloat16")
    finally:
        keras.config.set_dtype_policy("float32")
    results = [json.loads(p.read_text())["result"] for p in sorted((run / "units").glob("*/unit.json"))]
    assert len(results) >= 2
    assert all(r["policy"] == "mixed_bfloat16" and r["dense"] == "bfloat16" for r in results), results
