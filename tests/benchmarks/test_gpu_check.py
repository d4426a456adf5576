"""benchmarks/gpu_check.py --dry-run (tiny shapes, CPU): a row per trainer, its derived figures and the paper
runs' GPU-hours recomputed here from the rows; and the estimate line with and without a measured table."""
import copy
import importlib.util
import json
from pathlib import Path

import keras
import pytest

from asdcore import estimates
from asdcore.errors import ASDError

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dry_run(folder, trainers, precisions):
    out = folder / "table.json"
    assert _load().main(["--dry-run", "--out", str(out), "--trainers", trainers, "--precisions", precisions]) == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def dry_table(tmp_path_factory):
    """The default suite's dry run: the first paper network (features gathered by ClipBatches), DDCSAD's
    light CNN (its own two-optimizer step and crops), the autoencoder and SerialOE's light CNN (their crop,
    outlier-exposure and mixup batches), in float32; every trainer in both precisions is the slow test."""
    return _dry_run(tmp_path_factory.mktemp("gpu_check"), "subcluster2020,ddcsad-light,autoencoder,serialoe-light",
                    "float32")


def _check_rows(table, expected, where="host"):
    assert table["dry_run"] is True and table["warmup_steps"] == 1 and table["steps"] == 2
    rows = table["rows"]
    assert [(r["trainer"], r["precision"]) for r in rows] == expected
    for r in rows:
        assert r["status"] == "measured" and r["seconds_per_step"] > 0 and r["input"] == where
        assert r["clips_per_second"] == pytest.approx(r["clips_per_step"] / r["seconds_per_step"])
        ratio = r["input_clips_per_second"] / r["clips_per_second"]
        assert r["bound"] == ("input-bound" if ratio < 1.2 else "compute-bound")
        assert r["achieved_tflops"] is None  # tiny shapes: the paper's FLOP counts do not apply


def test_dry_run_measures_every_trainer_asked_for(dry_table):
    # on TensorFlow every pipeline reads on the host
    _check_rows(dry_table, [("subcluster2020", "float32"), ("autoencoder", "float32"), ("ddcsad-light", "float32"),
                            ("serialoe-light", "float32")])


@pytest.mark.portable
@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the device data path: JAX part of the test command")
def test_dry_run_gathers_every_trainers_batches_on_the_device(tmp_path, monkeypatch):
    """With ``ASD_DEVICE_DATA=on`` (the CPU as the "device") the smoothing paper's trainers' rows say their
    batches were gathered from the device copy, the input pipeline's rate beside the step's (the sub-cluster
    AdaCos and DDCSAD device batches: tests/asdcore/test_input_pipeline.py, tests/ddcsad/test_device_batches.py)."""
    monkeypatch.setenv("ASD_DEVICE_DATA", "on")
    gpu_check = _load()
    trainers = ["autoencoder", "serialoe-light"]
    table = _dry_run(tmp_path, ",".join(trainers), "float32")
    _check_rows(table, gpu_check.run_order(trainers, ["float32"]), where="device")


@pytest.mark.slow
def test_dry_run_of_every_trainer_in_both_precisions(tmp_path):
    gpu_check = _load()
    table = _dry_run(tmp_path, ",".join(gpu_check.TRAINERS), ",".join(gpu_check.PRECISIONS))
    pairs = gpu_check.run_order(gpu_check.TRAINERS, gpu_check.PRECISIONS)
    assert len(pairs) == 14 and pairs[:5] == [(t, "float32") for t in gpu_check.TRAINERS[:5]]  # paper nets first
    _check_rows(table, pairs)
    assert table["paper_runs"]["total_gpu_hours"] is not None


def test_paper_runs_are_steps_times_the_measured_seconds(dry_table):
    seconds = {r["trainer"]: r["seconds_per_step"] for r in dry_table["rows"]}
    summary = dry_table["paper_runs"]
    by_command = {run["command"]: run for run in summary["runs"]}
    assert set(by_command) == set(estimates.PAPER_RUNS)
    sca = by_command["run_dcase2020.py subcluster-adacos"]
    assert sca["gpu_hours"] == pytest.approx(2_376_000 * seconds["subcluster2020"] / 3600)
    # the others' trainers were not asked for: those runs say so and there is no total
    assert by_command["run_dcase2021.py multi-distribution"]["not_measured"] == ["multi2021"]
    assert by_command["run_dcase2020.py ddcsad"]["not_measured"] == ["ddcsad-resnet38"]
    assert by_command["run_dcase2021.py smoothing"]["not_measured"] == ["serialoe-efficientnet_b0"]
    assert summary["total_gpu_hours"] is None and summary["goal_hours"] == 24.0


def test_total_against_the_goal():
    gpu_check = _load()
    rows = [{"trainer": t, "precision": "float32", "status": "measured", "seconds_per_step": 0.01}
            for parts in estimates.PAPER_RUNS.values() for t, _ in parts]
    summary = gpu_check.paper_runs(rows + [{"trainer": "multi2021", "precision": "mixed_bfloat16",
                                            "status": "measured", "seconds_per_step": 100.0}])
    steps = sum(n for parts in estimates.PAPER_RUNS.values() for _, n in parts)
    assert summary["total_gpu_hours"] == pytest.approx(steps * 0.01 / 3600)  # bf16 rows do not count
    assert summary["within_goal"] is (steps * 0.01 / 3600 <= 24)


def test_estimate_line_uses_a_measured_table_and_says_assumed_otherwise(dry_table, tmp_path, monkeypatch):
    monkeypatch.delenv("ASD_GPU_TFLOPS", raising=False)
    monkeypatch.setattr(estimates, "PACKAGED_GPU_TABLE", tmp_path / "absent.json")
    monkeypatch.delenv(estimates.GPU_TABLE_ENV, raising=False)
    assumed = estimates.compute_estimate(72_000, "subcluster2020", 4)
    assert "at an assumed sustained 5 TFLOP/s" in assumed and "measured on" not in assumed
    dry = tmp_path / "dry.json"
    dry.write_text(json.dumps(dry_table))
    monkeypatch.setenv(estimates.GPU_TABLE_ENV, str(dry))
    with pytest.raises(ASDError, match="dry-run table"):
        estimates.compute_estimate(72_000, "subcluster2020", 4)
    measured = copy.deepcopy(dry_table)
    measured.update(dry_run=False, device="gpu: Test GPU", date="2026-12-06 05:00 UTC")
    for row in measured["rows"]:
        row["seconds_per_step"] = 0.05
    path = tmp_path / "measured.json"
    path.write_text(json.dumps(measured))
    monkeypatch.setenv(estimates.GPU_TABLE_ENV, str(path))
    line = estimates.compute_estimate(72_000, "subcluster2020", 4)  # 72,000 x 0.05 s = 1 h
    assert "about 1.0 GPU-hours at 50.0 ms per step measured on gpu: Test GPU (2026-12-06 05:00 UTC" in line
    assert "assumed" not in line
    other = estimates.compute_estimate(72_000, "ddcsad-resnet38", 4)  # not in the table: the assumed rate
    assert "assumed sustained" in other
    path.write_text("{not json")
    with pytest.raises(ASDError, match="not a table of benchmarks/gpu_check.py"):
        estimates.compute_estimate(72_000, "subcluster2020", 4)
