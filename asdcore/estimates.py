"""Time and disk estimates shown before and during a run (no Keras import here).

A full run trains dozens to hundreds of networks for hours; the user learns before the first one ends how
many networks there are, how long the whole run will take and how much disk its folder will need.

- :func:`check_free_disk` stops a run with one line when the disk is short (before any training).
- :func:`compute_estimate` turns a command's training steps into CPU-hours with the seconds per step
  measured by ``benchmarks/scale.py`` (:data:`STEP_SECONDS`) and into GPU-hours with the FLOPs of a training
  clip counted by ``benchmarks/flops.py`` (:data:`TRAINING_FLOPS_PER_CLIP`) at an assumed sustained GPU rate
  (:data:`ASSUMED_GPU_TFLOPS`, or ``ASD_GPU_TFLOPS``), or, when a table measured by ``benchmarks/gpu_check.py``
  exists (``ASD_GPU_TABLE``, else ``asdcore/gpu_table.json``; :func:`measured_gpu_table`), with the seconds per
  step measured on that GPU; the runner prints it before training at full settings, labelled as estimates
  and as "measured" or "assumed".
- the runner logs, after each unit, its time and the time left for the others at that pace.
- :class:`RunProgress` turns the method's total step count (``Method.estimate``) and the steps measured so
  far into the ETA of the whole run; :class:`asdcore.keras_utils.ProgressLine` feeds it from training and
  prints it once per epoch.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from .errors import ASDError

__all__ = ["check_free_disk", "compute_estimate", "gpu_hours", "gpu_tflops", "human_bytes", "human_duration",
           "STEP_SECONDS", "STEP_BATCH", "TRAINING_FLOPS_PER_CLIP", "ASSUMED_GPU_TFLOPS", "RunProgress",
           "current_progress", "start_progress", "stop_progress", "PAPER_RUNS", "GPU_TABLE_ENV",
           "measured_gpu_table"]


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
#: Seconds per training step (the paper's batch, float32, features memory-mapped from a full-size store), the
#: fastest and slowest run of ``python benchmarks/scale.py`` in the fourth session on this project's development
#: machine, a 2-core CPU otherwise idle (README "Running at paper scale" gives the commands). Keyed by trainer; a
#: trainer that was not timed (the paper's ResNet38 / EfficientNet-B0 backbones on a CPU) is absent.
STEP_SECONDS = {
    "subcluster2020": (0.261, 0.262),   # Table I ResNet, 41 classes, S = 16, batches of 64 (run A2)
    "multi2021": (0.290, 0.317),        # the two-head network, 42 sections, 199 attribute classes (A2)
    "ddcsad-light": (0.757, 0.830),     # one machine ID, 32 + 32 crops, the light CNN (--backbone light) (A)
    "serialoe-light": (1.237, 1.381),   # one machine type, 64 + 64 crops of 251 x 224, the light CNN (B2, C2)
}
#: Where the figures of :data:`STEP_SECONDS` come from, printed beside every estimate.
STEP_SOURCE = "seconds per step measured by benchmarks/scale.py on a 2-core CPU"

#: Clips (crops) per training step of each trainer at the paper's settings.
STEP_BATCH = {"subcluster2020": 64, "multi2021": 64, "ddcsad-light": 64, "ddcsad-resnet38": 64,
              "serialoe-light": 128, "serialoe-efficientnet_b0": 128}

#: Floating-point operations of one training clip (3 x the forward pass of one input, counted by TensorFlow's
#: profiler: ``python benchmarks/flops.py``). The GPU-hours of an estimate divide by a sustained rate.
TRAINING_FLOPS_PER_CLIP = {
    "subcluster2020": 0.559e9,             # Table I ResNet, 313 x 128 (the heads add < 0.1 %)
    "multi2021": 0.559e9,                  # the same ResNet with two heads
    "ddcsad-light": 0.717e9,               # the light CNN, 256 x 128 crops
    "ddcsad-resnet38": 72.08e9,            # ResNet38 (PANNs), 256 x 128 crops: the paper's backbone
    "serialoe-light": 1.231e9,             # the light CNN (fused batch normalisation), 4 s crops of 251 x 224
    "serialoe-efficientnet_b0": 2.685e9,   # EfficientNet-B0, 4 s crops: the paper's backbone
}

#: The sustained float32 rate (TFLOP/s) a GPU is assumed to reach on these networks when no GPU was timed:
#: a third of a V100's 15.7 TFLOP/s FP32 peak, a quarter of an A100's 19.5 (small convolutions at batch 64-128
#: rarely run a GPU near its peak). An assumption, not a measurement: set ``ASD_GPU_TFLOPS`` to your GPU's.
ASSUMED_GPU_TFLOPS = 5.0


#: Training steps of every paper command's full run (the paper's settings on the full DCASE data), per trainer,
#: as the commands print them before training (docs/paper-scale.md): 2020 ~38,000 training clips, 594 steps per
#: epoch x 400 epochs x 10 networks; 2021 ~42,000 clips, 657 x 400 x 10; DDCSAD 4,000 iterations x 205 networks;
#: smoothing ~5,100 fit clips per type, 7 types: SerialOE 150 epochs x 80 steps, the autoencoder 1,500 epochs x
#: ceil(5,100 / 16) = 319 steps. ``benchmarks/gpu_check.py`` turns them into measured GPU-hours.
PAPER_RUNS = {
    "run_dcase2020.py subcluster-adacos": (("subcluster2020", 2_376_000),),
    "run_dcase2021.py multi-distribution": (("multi2021", 2_636_000),),
    "run_dcase2020.py ddcsad": (("ddcsad-resnet38", 820_000),),
    "run_dcase2021.py smoothing": (("serialoe-efficientnet_b0", 84_000), ("autoencoder", 3_349_500)),
}

#: A table written by ``benchmarks/gpu_check.py`` (JSON); without it ``asdcore/gpu_table.json`` if present.
GPU_TABLE_ENV = "ASD_GPU_TABLE"
PACKAGED_GPU_TABLE = Path(__file__).with_name("gpu_table.json")


def measured_gpu_table(precision: str = "float32"):
    """The measured seconds per step of ``benchmarks/gpu_check.py``'s table, or None when there is none:
    ``{"path", "device", "date", "seconds": {trainer: seconds per step at precision}}``. The table is the file
    named by ``ASD_GPU_TABLE``, else ``asdcore/gpu_table.json``; an unreadable file or a dry run's table is a
    one-line error (it was named on purpose)."""
    named = os.environ.get(GPU_TABLE_ENV, "").strip()
    path = Path(named) if named else PACKAGED_GPU_TABLE
    if not named and not path.is_file():
        return None
    try:
        table = json.loads(path.read_text())
        rows = table["rows"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ASDError(f"{path}: not a table of benchmarks/gpu_check.py ({err}); run it again or unset "
                       f"{GPU_TABLE_ENV}") from err
    if table.get("dry_run"):
        raise ASDError(f"{path}: a --dry-run table (tiny shapes, numbers meaningless); run benchmarks/gpu_check.py "
                       f"without --dry-run on the GPU, or unset {GPU_TABLE_ENV}")
    seconds = {r["trainer"]: float(r["seconds_per_step"]) for r in rows
               if r.get("status") == "measured" and r.get("precision") == precision}
    return {"path": str(path), "device": table.get("device", "?"), "date": table.get("date", "?"),
            "seconds": seconds}


def gpu_tflops() -> float:
    """The sustained TFLOP/s of the GPU-hours estimate: ``ASD_GPU_TFLOPS`` or :data:`ASSUMED_GPU_TFLOPS`."""
    value = os.environ.get("ASD_GPU_TFLOPS", "").strip()
    if not value:
        return ASSUMED_GPU_TFLOPS
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not rate > 0:
        raise ASDError(f"ASD_GPU_TFLOPS must be a positive number of TFLOP/s (e.g. 5), got {value!r}")
    return rate


def gpu_hours(steps: int, trainer: str):
    """``steps x batch x training FLOPs per clip / sustained rate`` in hours, or None without a FLOP count."""
    flops = TRAINING_FLOPS_PER_CLIP.get(trainer)
    if not flops:
        return None
    return int(steps) * STEP_BATCH[trainer] * flops / (gpu_tflops() * 1e12) / 3600


def compute_estimate(steps: int, trainer: str, networks: int) -> str:
    """One line: ``networks`` networks, ``steps`` training steps in all, the CPU-hours they take at the measured
    seconds per step of ``trainer`` (a range: the fastest and the slowest measured run) and the GPU-hours from
    the trainer's FLOP count at the assumed sustained GPU rate (:func:`gpu_hours`). Says these are
    estimates, and says so when a figure is missing for this trainer."""
    head = f"estimate: {networks} network(s), {int(steps):,} training steps in all"
    measured = STEP_SECONDS.get(trainer)
    if measured is None:
        cpu = f"no time per step was measured for {trainer} on a CPU (run benchmarks/scale.py on this machine)"
    else:
        low, high = (int(steps) * s / 3600 for s in measured)
        cpu = (f"x {measured[0]:.2f}-{measured[1]:.2f} s/step ({STEP_SOURCE}) = about {low:,.0f}-{high:,.0f} "
               "CPU-hours on such a CPU")
    hours = gpu_hours(steps, trainer)
    table = measured_gpu_table()
    if table and trainer in table["seconds"]:
        per_step = table["seconds"][trainer]
        gpu = (f"about {int(steps) * per_step / 3600:,.1f} GPU-hours at {per_step * 1e3:.1f} ms per step measured "
               f"on {table['device']} ({table['date']}, float32, {table['path']})")
    elif hours is None:
        gpu = "no FLOP count for this trainer, so no GPU-hours figure"
    else:
        gpu = (f"about {hours:,.1f} GPU-hours at an assumed sustained {gpu_tflops():g} TFLOP/s "
               f"({TRAINING_FLOPS_PER_CLIP[trainer] / 1e9:.2f} GFLOP per training clip, benchmarks/flops.py; "
               "no GPU was timed: set ASD_GPU_TFLOPS to your GPU's rate)")
    return f"{head} {cpu}; {gpu} (estimates)" if measured else f"{head}; {cpu}; {gpu} (estimates)"
