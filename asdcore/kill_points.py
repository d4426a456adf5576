"""A test hook: the process kills itself (SIGKILL) at a named point, so tests can check that a run killed at
any moment resumes to the same outputs.

Set ``ASD_KILL_AT=POINT`` or ``ASD_KILL_AT=POINT:N`` (the N-th time this process reaches ``POINT``,
default the first). Nothing happens when the variable is unset, which is always the case outside tests.
The points (:data:`POINTS`) are

- ``epoch-end``: after a Keras training epoch (its backup and snapshots written), in
  :func:`asdcore.keras_utils.training_callbacks`; the N-th epoch of the process, across units;
- ``unit-done``: after a unit's ``unit.json`` (the unit is finished), in :mod:`asdcore.runner`;
- ``assembly-start``: assembly begun, nothing of it written yet;
- ``assembly-scored``: the method's ``assemble`` returned (its own files written: models, classification,
  embedding maps), no submission file yet;
- ``assembly-evaluated``: submission files and ``results.csv`` written, ``comparison.md`` not yet;
- ``assembly-end``: every output written, the ``assembled.json`` marker not yet.

SIGKILL is what a scheduler's time limit, the out-of-memory killer or a lost node amounts to: no
``finally`` block, no ``atexit`` handler runs.
"""
from __future__ import annotations

import os
import signal

from asdcore.errors import ASDError

__all__ = ["ENV", "POINTS", "kill_point"]

ENV = "ASD_KILL_AT"
POINTS = ("epoch-end", "unit-done", "assembly-start", "assembly-scored", "assembly-evaluated", "assembly-end")

_reached: dict[str, int] = {}


def kill_point(name: str) -> None:
    """SIGKILL this process if ``$ASD_KILL_AT`` names ``name`` and this is the requested passage."""
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point not in POINTS:
        raise ASDError(f"{ENV}={spec}: unknown kill point {point!r}; one of {', '.join(POINTS)} (a test hook)")
    if point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
