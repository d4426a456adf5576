"""asdcore.estimates: short disks stop the run early with one line; human-readable sizes and durations."""

import pytest

from asdcore.errors import ASDError
from asdcore.estimates import check_free_disk, human_bytes, human_duration


def test_short_disk_is_one_line_naming_the_fix(tmp_path):
    with pytest.raises(ASDError, match="--out") as info:
        check_free_disk(tmp_path / "not-yet" / "made", 1e18, "the run folder")
    assert "\n" not in str(info.value)
    check_free_disk(tmp_path, 1, "the run folder")  # plenty


def test_human_units():
    assert human_bytes(1.5e9) == "1.5 GB"
    assert human_bytes(999) == "999 B"
    assert human_duration(7325) == "2 h 02 min"
    assert human_duration(432) == "7 min 12 s"
    assert human_duration(45) == "45 s"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_run_eta_is_measured_after_the_first_step_and_refined():
    from asdcore.estimates import RunProgress

    clock = FakeClock()
    progress = RunProgress(100, clock)
    assert progress.seconds_left() is None and "ETA after the next step" in progress.describe()
    clock.now = 30.0  # the first step traces and compiles: not part of the pace
    progress.advance()
    assert progress.seconds_left() is None
    for _ in range(9):  # nine steps of 2 s
        clock.now += 2.0
        progress.advance()
    assert progress.seconds_per_step() == pytest.approx(2.0)
    assert progress.seconds_left() == pytest.approx((100 - 10) * 2.0)  # 180 s
    assert progress.describe() == "run 10% (10/100 steps), about 3 min 00 s left"
    clock.now += 8.0 * 45  # 45 slower steps of 8 s: the pace is the mean since the first step
    progress.advance(45)
    pace = (30.0 + 18.0 + 360.0 - 30.0) / (55 - 1)
    assert progress.seconds_per_step() == pytest.approx(pace)
    assert progress.seconds_left() == pytest.approx(45 * pace)
    progress.advance(60)  # more steps than estimated: nothing left, never negative
    assert progress.seconds_left() == 0.0 and progress.fraction() == 1.0


def test_run_progress_without_a_total_counts_steps_only():
    from asdcore.estimates import RunProgress, current_progress, start_progress, stop_progress

    progress = RunProgress(None, FakeClock())
    progress.advance(3)
    assert progress.seconds_left() is None and progress.describe() == "run: 3 steps"
    started = start_progress(10)
    assert current_progress() is started and started.total == 10
    stop_progress()
    assert current_progress() is None
def test_compute_estimate_is_steps_times_the_measured_seconds(monkeypatch):
    from asdcore import estimates

    monkeypatch.setitem(estimates.STEP_SECONDS, "toy", (0.5, 1.5))
    line = estimates.compute_estimate(72_000, "toy", 4)  # 72,000 x 0.5 s = 10 h, x 1.5 s = 30 h
    assert line.startswith("estimate: 4 network(s), 72,000 training steps")
    assert "about 10-30 CPU-hours" in line and line.endswith("(estimates)") and "no GPU-hours figure" in line
    never = estimates.compute_estimate(10, "never-timed", 1)
    assert "no time per step was measured" in never and "no GPU-hours figure" in never
    # every trainer a command names has either a measured range or says it has none
    for low, high in estimates.STEP_SECONDS.values():
        assert 0 < low <= high


def test_gpu_hours_are_steps_times_batch_times_flops_over_the_rate(monkeypatch):
    import pytest

    from asdcore import estimates
    from asdcore.errors import ASDError

    monkeypatch.setitem(estimates.STEP_SECONDS, "toy", (0.5, 1.5))
    monkeypatch.setitem(estimates.STEP_BATCH, "toy", 100)
    monkeypatch.setitem(estimates.TRAINING_FLOPS_PER_CLIP, "toy", 1e9)
    monkeypatch.delenv("ASD_GPU_TFLOPS", raising=False)
    # 72,000 steps x 100 clips x 1e9 FLOP = 7.2e15 FLOP; at 5e12 FLOP/s: 1,440 s = 0.4 h
    assert estimates.ASSUMED_GPU_TFLOPS == 5.0
    assert estimates.gpu_hours(72_000, "toy") == pytest.approx(0.4)
    line = estimates.compute_estimate(72_000, "toy", 4)
    assert "about 10-30 CPU-hours" in line and "about 0.4 GPU-hours at an assumed sustained 5 TFLOP/s" in line
    assert "1.00 GFLOP per training clip" in line and line.endswith("(estimates)")
    monkeypatch.setenv("ASD_GPU_TFLOPS", "2")
    assert estimates.gpu_hours(72_000, "toy") == pytest.approx(1.0)
    assert "at an assumed sustained 2 TFLOP/s" in estimates.compute_estimate(72_000, "toy", 4)
    for bad in ("fast", "0", "-3"):
        monkeypatch.setenv("ASD_GPU_TFLOPS", bad)
        with pytest.raises(ASDError, match="ASD_GPU_TFLOPS must be a positive number"):
            estimates.gpu_hours(1, "toy")
    monkeypatch.delenv("ASD_GPU_TFLOPS")
    # a trainer without a CPU time but with a FLOP count still gets its GPU-hours
    monkeypatch.setitem(estimates.STEP_BATCH, "gpu-only", 10)
    monkeypatch.setitem(estimates.TRAINING_FLOPS_PER_CLIP, "gpu-only", 5e12 / 10)
    line = estimates.compute_estimate(3600, "gpu-only", 1)  # 3,600 steps x 10 x 5e11 / 5e12 = 3,600 s
    assert "no time per step was measured" in line and "about 1.0 GPU-hours" in line


def test_every_trainer_a_command_names_has_a_flop_count_and_a_batch():
    from asdcore import estimates

    named = {"subcluster2020", "multi2021", "ddcsad-light", "ddcsad-resnet38", "serialoe-light",
             "serialoe-efficientnet_b0"}
    assert named <= set(estimates.TRAINING_FLOPS_PER_CLIP) and named <= set(estimates.STEP_BATCH)
    assert all(estimates.TRAINING_FLOPS_PER_CLIP[t] > 1e6 for t in named)
