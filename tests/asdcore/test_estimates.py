"""asdcore.estimates: the run-time estimate follows the measured steps; short disks stop the run early."""

import pytest

from asdcore.errors import ASDError
from asdcore.estimates import RunClock, check_free_disk, human_bytes, human_duration


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_estimate_uses_steady_steps_after_warm_up():
    now = FakeClock()
    clock = RunClock(total_steps=100, n_units=2, warmup_steps=2, now=now)
    assert clock.remaining_seconds() is None
    clock.start_unit()
    for dt in (5.0, 3.0, 0.5, 0.5, 0.5, 0.5):  # two slow tracing steps, then 0.5 s steps
        now.t += dt
        clock.step()
    assert clock.seconds_per_step() == pytest.approx(0.5)
    # 94 steps left at 0.5 s
    assert clock.remaining_seconds() == pytest.approx(47.0)
    assert clock.total_seconds() == pytest.approx(10.0 + 47.0)
    assert "about 47 s left" in clock.line()


def test_warm_up_steps_used_until_a_steady_step_exists():
    now = FakeClock()
    clock = RunClock(total_steps=10, warmup_steps=3, now=now)
    clock.start_unit()
    now.t += 4.0
    clock.step()
    assert clock.seconds_per_step() == pytest.approx(4.0)
    assert clock.remaining_seconds() == pytest.approx(9 * 4.0)


def test_each_new_network_warms_up_again():
    now = FakeClock()
    clock = RunClock(total_steps=20, n_units=2, warmup_steps=1, now=now)
    clock.start_unit()
    for dt in (9.0, 1.0, 1.0):
        now.t += dt
        clock.step()
    clock.end_unit()
    clock.start_unit()
    now.t += 50.0  # the next network's first step (tracing) is not a steady step
    clock.step()
    assert clock.seconds_per_step() == pytest.approx(1.0)
    assert clock.line().startswith("1/2 networks, step 4/20")


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
