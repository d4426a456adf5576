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


def test_compute_estimate_is_steps_times_the_measured_seconds(monkeypatch):
    from asdcore import estimates

    monkeypatch.setitem(estimates.STEP_SECONDS, "toy", (0.5, 1.5))
    line = estimates.compute_estimate(72_000, "toy", 4)  # 72,000 x 0.5 s = 10 h, x 1.5 s = 30 h
    assert line.startswith("estimate: 4 network(s), 72,000 training steps")
    assert "about 10-30 CPU-hours" in line and "an estimate" in line and "no GPU" in line
    assert "no time estimate" in estimates.compute_estimate(10, "never-timed", 1)
    # every trainer a command names has either a measured range or says it has none
    for low, high in estimates.STEP_SECONDS.values():
        assert 0 < low <= high
