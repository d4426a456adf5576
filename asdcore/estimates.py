"""Time and disk estimates shown before and during a run (no Keras import here).

A full run trains dozens to hundreds of networks for hours; the user learns before the first one ends how
many networks there are, how long the whole run will take and how much disk its folder will need.

- :func:`check_free_disk` stops a run with one line when the disk is short (before any training).
- :func:`compute_estimate` turns a command's training steps into CPU-hours with the seconds per step
  measured by ``benchmarks/scale.py`` (:data:`STEP_SECONDS`); the runner prints it before training at full
  settings, labelled as an estimate.
- the runner logs, after each unit, its time and the time left for the others at that pace.
"""

from __future__ import annotations

import os
import shutil

from .errors import ASDError

__all__ = ["check_free_disk", "compute_estimate", "human_bytes", "human_duration", "STEP_SECONDS"]


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
