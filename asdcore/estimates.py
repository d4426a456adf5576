"""Time and disk estimates shown before and during a run (no Keras import here).

A full run trains dozens to hundreds of networks for hours; the user learns before the first one ends how
many networks there are, how long the whole run will take and how much disk its folder will need.

- :func:`check_free_disk` stops a run with one line when the disk is short (before any training).
- :class:`RunClock` turns the measured time of the steps done so far into an estimate of the whole run:
  ``remaining = (total_steps - done_steps) x seconds_per_step``, where ``seconds_per_step`` is the mean of
  the steps measured after each network's first ``warmup_steps`` (graph tracing makes the first steps of
  a network slower; until a steady step has been measured the warm-up steps are used). The estimate is
  refined with every step; :meth:`RunClock.line` is what the progress messages print.
"""

from __future__ import annotations

import os
import shutil
import time

from .errors import ASDError

__all__ = ["check_free_disk", "human_bytes", "human_duration", "RunClock"]


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


class RunClock:
    """Estimate of a whole run's time from the steps measured so far.

    Parameters
    ----------
    total_steps : int
        Training steps of the whole run (all networks, all epochs).
    n_units : int
        Number of networks (or per-ID models), for the message.
    warmup_steps : int
        Steps at the start of each network left out of the steady estimate.
    now : callable
        Clock (tests pass a fake one).
    """

    def __init__(self, total_steps: int, n_units: int = 1, warmup_steps: int = 2, now=time.perf_counter):
        if total_steps <= 0:
            raise ASDError("RunClock: total_steps must be positive")
        self.total_steps = int(total_steps)
        self.n_units = int(n_units)
        self.warmup_steps = int(warmup_steps)
        self._now = now
        self.done_steps = 0
        self.units_done = 0
        self._steady_time = 0.0
        self._steady_steps = 0
        self._warm_time = 0.0
        self._warm_steps = 0
        self._unit_steps = 0
        self._last = None
        self.started = now()

    def start_unit(self) -> None:
        """A new network starts: its first steps count as warm-up again."""
        self._unit_steps = 0
        self._last = self._now()

    def end_unit(self) -> None:
        self.units_done += 1
        self._last = None

    def step(self, n: int = 1) -> None:
        """``n`` steps have finished since the previous call (or :meth:`start_unit`)."""
        t = self._now()
        if self._last is None:
            self._last = t
            self.done_steps += n
            self._unit_steps += n
            return
        dt = t - self._last
        self._last = t
        if self._unit_steps >= self.warmup_steps:
            self._steady_time += dt
            self._steady_steps += n
        else:
            self._warm_time += dt
            self._warm_steps += n
        self.done_steps += n
        self._unit_steps += n

    def seconds_per_step(self) -> float | None:
        if self._steady_steps:
            return self._steady_time / self._steady_steps
        if self._warm_steps:
            return self._warm_time / self._warm_steps
        return None

    def remaining_seconds(self) -> float | None:
        per_step = self.seconds_per_step()
        if per_step is None:
            return None
        return max(0, self.total_steps - self.done_steps) * per_step

    def total_seconds(self) -> float | None:
        """Estimated time of the whole run (elapsed + remaining)."""
        remaining = self.remaining_seconds()
        return None if remaining is None else (self._now() - self.started) + remaining

    def line(self) -> str:
        """One progress line: networks done, steps done, elapsed, estimated remaining and total time."""
        elapsed = self._now() - self.started
        head = (f"{self.units_done}/{self.n_units} networks, step {self.done_steps}/{self.total_steps}, "
                f"{human_duration(elapsed)} elapsed")
        remaining = self.remaining_seconds()
        if remaining is None:
            return head + ", estimate after the first steps"
        return (f"{head}, about {human_duration(remaining)} left "
                f"(estimated total {human_duration(elapsed + remaining)}, "
                f"{1000 * self.seconds_per_step():.0f} ms/step)")
