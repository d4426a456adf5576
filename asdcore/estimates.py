"""Time and disk estimates shown before and during a run (no Keras import here).

A full run trains dozens to hundreds of networks for hours; the user learns before the first one ends how
many networks there are, how long the whole run will take and how much disk its folder will need.

- :func:`check_free_disk` stops a run with one line when the disk is short (before any training).
- :func:`compute_estimate` turns a command's training steps into CPU-hours with the seconds per step
  measured by ``benchmarks/scale.py`` (:data:`STEP_SECONDS`); the runner prints it before training at full
  settings, labelled as an estimate.
- the runner logs, after each unit, its time and the time left for the others at that pace.
- :class:`RunProgress` turns the method's total step count (``Method.estimate``) and the steps measured so
  far into the ETA of the whole run; :class:`asdcore.keras_utils.ProgressLine` feeds it from training and
  prints it once per epoch.
"""

from __future__ import annotations

import os
import shutil
import time

from .errors import ASDError

__all__ = ["check_free_disk", "compute_estimate", "human_bytes", "human_duration", "STEP_SECONDS", "RunProgress",
           "current_progress", "start_progress", "stop_progress"]


def human_bytes(n: float) -> str:
    """``1.5 GB`` style (powers of 1000, as disks are sold)."""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def human_duration(seconds: float) -> str:
    """``2 h 05 min``, ``7 min 12 s`` or ``45 s``."""
    seconds = max(0.0, float(seconds))
    if seconds >= 3600:
        h, rest = divmod(int(round(seconds)), 3600)
        return f"{h} h {rest // 60:02d} min"
    if seconds >= 60:
        m, s = divmod(int(round(seconds)), 60)
        return f"{m} min {s:02d} s"
    return f"{seconds:.0f} s"


def free_bytes(folder) -> int:
    """Free bytes on the disk holding ``folder`` (its nearest existing parent)."""
    folder = os.path.abspath(os.fspath(folder))
    while not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return shutil.disk_usage(folder).free


def check_free_disk(folder, need_bytes: float, what: str, margin: float = 1.1) -> None:
    """Raise :class:`ASDError` (one line) when ``folder``'s disk has less than ``margin x need_bytes`` free."""
    free = free_bytes(folder)
    if free < margin * need_bytes:
        raise ASDError(
            f"{what} needs about {human_bytes(need_bytes)} in {os.path.abspath(os.fspath(folder))}, but only "
            f"{human_bytes(free)} is free; free space there or choose another folder (--out / --cache-dir)"
        )


class RunProgress:
    """The ETA of a whole run from its total training steps and the pace measured so far.

    The clock starts at the end of the first measured step, not before it: the first step of a run
    traces and compiles the training function, which would make the early estimates far too long. From
    then on the pace is the mean time per step over every step measured since (so the estimate is refined
    as training goes, and later units' own compile steps count at their true cost)::

        pace = (t_now - t_first) / (done - done_first)      seconds per step
        left = max(0, total - done) * pace                  seconds

    Parameters
    ----------
    total_steps : int
        Training steps of every unit this process trains (from ``Method.estimate``; 0 or None: unknown, then
        only the steps done are shown).
    clock : callable
        Returns seconds (default ``time.monotonic``); tests pass a fake clock.
    """

    def __init__(self, total_steps, clock=time.monotonic):
        self.total = max(0, int(total_steps or 0))
        self.clock = clock
        self.done = 0
        self.label = ""  # the unit being trained (the runner sets it)
        self.announced = False  # whether the first measured pace has been logged
        self._first = None  # (steps done, time) at the end of the first measured step

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` finished training steps."""
        self.done += int(steps)
        if self._first is None:
            self._first = (self.done, self.clock())

    def seconds_per_step(self):
        """Measured pace, or None before a second step has finished."""
        if self._first is None or self.done <= self._first[0]:
            return None
        return (self.clock() - self._first[1]) / (self.done - self._first[0])

    def seconds_left(self):
        """Estimated seconds until ``total`` steps are done, or None (no total, or not measured yet)."""
        pace = self.seconds_per_step()
        if pace is None or not self.total:
            return None
        return max(0, self.total - self.done) * pace

    def fraction(self):
        """Share of the total steps done (None without a total)."""
        return min(1.0, self.done / self.total) if self.total else None

    def describe(self) -> str:
        """``run 35% (350/1000 steps), about 2 min 10 s left`` (what the progress line shows)."""
        if not self.total:
            return f"run: {self.done} steps"
        text = f"run {100 * self.fraction():.0f}% ({self.done}/{self.total} steps)"
        left = self.seconds_left()
        return text + (f", about {human_duration(left)} left" if left is not None else ", ETA after the next step")


_CURRENT: RunProgress | None = None


def start_progress(total_steps, clock=time.monotonic) -> RunProgress:
    """Make the progress of the units this process trains the current one (the runner calls this)."""
    global _CURRENT
    _CURRENT = RunProgress(total_steps, clock)
    return _CURRENT


def current_progress() -> RunProgress | None:
    """The run's :class:`RunProgress` (None outside a runner's training loop)."""
    return _CURRENT


def stop_progress() -> None:
    global _CURRENT
    _CURRENT = None
#: Seconds per training step (the paper's batch, float32), lowest and highest of the runs of
#: ``python benchmarks/scale.py`` on this project's development machine: a shared 2-core CPU (README "Running
#: at paper scale" gives each run's command and load average). Keyed by trainer; a trainer that was not timed
#: (the paper's ResNet38 / EfficientNet-B0 backbones on a CPU; any GPU: none was available) is absent.
STEP_SECONDS = {
    "subcluster2020": (0.341, 0.586),   # Table I ResNet, 41 classes, S = 16, batches of 64
    "multi2021": (0.395, 0.592),        # the two-head network, 42 sections, 199 attribute classes
    "ddcsad-light": (0.672, 0.700),     # one machine ID, 32 + 32 crops, the light CNN (--backbone light)
}
#: Where the figures of :data:`STEP_SECONDS` come from, printed beside every estimate.
STEP_SOURCE = "seconds per step measured by benchmarks/scale.py on a shared 2-core CPU"


def compute_estimate(steps: int, trainer: str, networks: int) -> str:
    """One line: ``networks`` networks, ``steps`` training steps in all, and the CPU-hours they take at the
    measured seconds per step of ``trainer`` (a range: the slowest and the fastest measured run). Says it is
    an estimate, and says so when no time per step was measured for this trainer."""
    head = f"estimate: {networks} network(s), {int(steps):,} training steps in all"
    measured = STEP_SECONDS.get(trainer)
    if measured is None:
        return (f"{head}; no time per step was measured for {trainer} (run benchmarks/scale.py on this machine), "
                "so no time estimate")
    low, high = (int(steps) * s / 3600 for s in measured)
    return (f"{head} x {measured[0]:.2f}-{measured[1]:.2f} s/step ({STEP_SOURCE}) = about {low:,.0f}-{high:,.0f} "
            "CPU-hours on such a CPU (an estimate; no GPU was timed, so no GPU-hours figure)")
