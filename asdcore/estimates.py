"""Time and disk estimates shown before and during a run (no Keras import here).

A full run trains dozens to hundreds of networks for hours; the user learns before the first one ends how
many networks there are, how long the whole run will take and how much disk its folder will need.

- :func:`check_free_disk` stops a run with one line when the disk is short (before any training).
- the runner logs, after each unit, its time and the time left for the others at that pace.
"""

from __future__ import annotations

import os
import shutil

from .errors import ASDError

__all__ = ["check_free_disk", "human_bytes", "human_duration"]


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
