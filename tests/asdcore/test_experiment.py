"""Run folders never overwrite; configs resolve paper defaults <- YAML <- flags; seeds repeat."""
from dataclasses import dataclass

import numpy as np
import pytest

from asdcore.errors import ASDError
from asdcore.experiment import RunFolder, atomic_write_text, resolve_config, set_seed


@dataclass(frozen=True)
class Settings:
    epochs: int = 400
    subclusters: tuple = (1, 2)
    angle_mode: str = "reference"


def test_run_folders_are_never_reused(tmp_path):
    first = RunFolder.create(tmp_path, 2020, "x", log_to_console=False)
    second = RunFolder.create(tmp_path, 2020, "x", log_to_console=False)
    assert first.path != second.path and first.path.parent == second.path.parent == tmp_path / "2020" / "x"
    first.write_text("results.csv", "a\n")
    with pytest.raises(ASDError, match="refusing to overwrite"):
        first.write_text("results.csv", "b\n")
    assert (first.path / "results.csv").read_text() == "a\n"
    first.close()
    second.close()


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_text(tmp_path / "f.txt", "hello")
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_resolve_config_order_and_unknown_keys(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("epochs: 3\nsubclusters: [4, 8]\n")
    resolved = resolve_config(Settings(), yaml_file, {"angle_mode": "corrected", "epochs": None})
    assert resolved == Settings(epochs=3, subclusters=(4, 8), angle_mode="corrected")
    assert resolve_config(Settings(), yaml_file, {"epochs": 7}).epochs == 7  # flags win over the file
    yaml_file.write_text("epoch: 3\n")
    with pytest.raises(ASDError, match="unknown setting.*epoch"):
        resolve_config(Settings(), yaml_file)


def test_a_float_setting_written_1e_6_in_yaml_is_a_number(tmp_path):
    """YAML 1.1 reads ``1e-6`` (no dot) as the string "1e-6": a float setting takes it as the number."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class WithFloat:
        reg_covar: float = 1e-3

    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("reg_covar: 1e-6\n")
    assert resolve_config(WithFloat(), yaml_file).reg_covar == 1e-6
    yaml_file.write_text("reg_covar: tiny\n")
    with pytest.raises(ASDError, match="reg_covar: expected a number"):
        resolve_config(WithFloat(), yaml_file)


def test_resume_refuses_finished_runs_and_changed_settings(tmp_path):
    run = RunFolder.create(tmp_path, 2020, "x", log_to_console=False)
    run.write_config({"epochs": 400})
    resumed = RunFolder.resume(run.path, log_to_console=False)
    resumed.write_config({"epochs": 400})  # same settings: accepted
    with pytest.raises(ASDError, match="settings differ"):
        resumed.write_config({"epochs": 3})
    run.write_text("results.csv", "done\n")  # written mid-assembly: not yet finished
    RunFolder.resume(run.path, log_to_console=False).close()
    run.mark_assembled()
    with pytest.raises(ASDError, match="finished"):
        RunFolder.resume(run.path, log_to_console=False)
    with pytest.raises(ASDError, match="not a run folder"):
        RunFolder.resume(tmp_path, log_to_console=False)
    run.close()


def test_a_new_assembly_removes_only_what_an_interrupted_one_left(tmp_path):
    run = RunFolder.create(tmp_path, 2020, "x", log_to_console=False)
    run.write_config({"epochs": 1})
    run.write_text("units/a/unit.json", "{}")
    before = sorted(p.relative_to(run.path) for p in run.path.rglob("*"))
    assert run.begin_assembly() == []
    run.write_text("scores/s/anomaly_score_fan_id_00.csv", "x,1\n")  # an assembly killed half-way
    run.write_text("classification.csv", "partial\n")
    assert run.begin_assembly() == ["classification.csv", "scores"]
    assert sorted(p.relative_to(run.path) for p in run.path.rglob("*") if p.name != "assembly.json") == before
    run.write_text("comparison.md", "# done\n")
    assert not run.finished  # comparison.md after an assembly began: finished only with the marker
    run.mark_assembled()
    assert run.finished
    with pytest.raises(ASDError, match="already assembled"):
        run.begin_assembly()
    assert (run.path / "comparison.md").read_text() == "# done\n"
    legacy = RunFolder.create(tmp_path, 2020, "y", log_to_console=False)
    legacy.write_text("comparison.md", "# an older run\n")  # assembled before the marker existed
    assert legacy.finished_by == "comparison.md"
    run.close()


def test_a_failed_run_says_why_and_an_empty_one_is_removed(tmp_path):
    run = RunFolder.create(tmp_path, 2020, "x", log_to_console=False)
    run.write_config({"epochs": 1})
    assert run.record_failure("bad input: fix it") and not run.path.exists()
    run = RunFolder.create(tmp_path, 2020, "y", log_to_console=False)
    run.write_config({"epochs": 1})
    run.write_text("units/a/backup/weights.h5", "w")  # something worth resuming
    assert not run.record_failure("out of disk space")
    assert "ERROR the run stopped: out of disk space" in (run.path / "run.log").read_text()
    assert run.failure()["error"] == "out of disk space"


def test_one_seed_repeats_numpy_and_keras():
    import keras

    set_seed(7)
    a = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    set_seed(7)
    b = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
