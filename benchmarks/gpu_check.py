"""One prepared check of every trainer on an accelerator: speed, memory, what bounds it, and the GPU-hours of
every paper command's full run measured instead of assumed.

For every trainer at the paper's network and batch (the Table I ResNet of both sub-cluster AdaCos papers,
DDCSAD's ResNet38 and light CNN, SerialOE's EfficientNet-B0 and light CNN, the smoothing paper's
autoencoder), in ``float32`` and ``mixed_bfloat16``, on random features of the paper's shapes held the way
training holds them (on the device when they fit, ``asdcore.input_pipeline``), it measures:

- the input pipeline alone: clips per second of its batches, pulled one after another and waited for;
- the training step: warm-up steps (compilation), then steady steps timed from the first to the last with
  the device drained: seconds per step and clips per second;
- achieved TFLOP/s = clips/s x the training FLOPs per clip of ``benchmarks/flops.py``
  (``asdcore.estimates.TRAINING_FLOPS_PER_CLIP``);
- peak device memory (JAX's ``peak_bytes_in_use`` of the trainer's own process);
- ``input-bound`` when the pipeline alone delivers fewer than 1.2 x the clips the step consumes, else
  ``compute-bound``;

then the GPU-hours of each paper command's full run = its training steps (``asdcore.estimates.PAPER_RUNS``)
x the measured float32 seconds per step, and their total against the 24-hour goal. Everything goes into one
JSON table (``--out``); point ``ASD_GPU_TABLE`` at it (or copy it to ``asdcore/gpu_table.json``) and every
full run's estimate line uses it instead of the assumed rate.

Each trainer and precision runs in its own process (its own compilation and its own peak memory), in
order of importance (the paper's networks in float32, then in mixed_bfloat16, then the light CNNs), within
``--budget`` seconds in all; what did not fit in the budget is
listed as skipped. ``--dry-run`` runs everything in this process with tiny shapes, without a budget (CPU; the test
suite runs it); its numbers mean nothing.

    KERAS_BACKEND=jax python benchmarks/gpu_check.py --out gpu_check.json      # on the GPU machine
    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check.json          # anywhere, tiny
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# JAX takes 75 % of the GPU's memory at start unless told otherwise: this process and each trainer's own then
# allocate what they use (the peak memory of each row is its trainer's own).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

PRECISIONS = ("float32", "mixed_bfloat16")
#: The trainers in order of importance (the paper networks first).
TRAINERS = ("subcluster2020", "multi2021", "ddcsad-resnet38", "serialoe-efficientnet_b0", "autoencoder",
            "ddcsad-light", "serialoe-light")
LIGHT = ("ddcsad-light", "serialoe-light")
INPUT_BOUND_RATIO = 1.2
GOAL_HOURS = 24.0


# ----------------------------------------------------------------------------------------- one trainer
def _shapes(dry_run: bool) -> dict:
    """Input shapes, clip counts and class counts: the paper's, or tiny ones for ``--dry-run``."""
    if dry_run:
        return {"logmel": (40, 32), "crop": 32, "serialoe": (32, 32), "serialoe_frames": 40, "classes2020": 5,
                "sections": 4, "attributes": 6, "clips": 48, "batch": 8, "oe_batch": 8, "ae_clips": 16,
                "ae_crop": 12, "ae_frames": 20}
    # SerialOE: 4 s crops (251 frames) of 10 s clips (626 frames) of 224 mel bins; the autoencoder: 4 s crops
    # (126 frames) of 10 s clips (313 frames) of 128 bins (smoothing/serial_oe.py, smoothing/autoencoder.py)
    return {"logmel": (313, 128), "crop": 256, "serialoe": (251, 224), "serialoe_frames": 626, "classes2020": 41,
            "sections": 42, "attributes": 199, "clips": 2048, "batch": 64, "oe_batch": 128, "ae_clips": 512,
            "ae_crop": 126, "ae_frames": 313}


def _sync(model) -> None:
    """Wait until the device has finished every queued step (reading a weight back does)."""
    import keras

    keras.ops.convert_to_numpy(model.trainable_variables[-1])


def _wait(x) -> None:
    """Wait until the batch ``x`` exists: a device array is waited for where it lies (not copied back: that
    copy is no part of training), anything else converted to NumPy."""
    import keras

    if isinstance(x, dict):
        for value in x.values():
            _wait(value)
    elif isinstance(x, (tuple, list)):
        for value in x:
            _wait(value)
    elif hasattr(x, "block_until_ready"):  # a JAX array
        x.block_until_ready()
    else:
        keras.ops.convert_to_numpy(x)


def build(trainer: str, dry_run: bool, seed: int = 0, steps: int = 20):
    """``(model, pipeline, clips per step, fit keyword arguments, input)`` of one trainer at the paper's
    settings (tiny with ``dry_run``): the model built and compiled as its experiment does, the pipeline its
    training reads (random features), and where that pipeline gathers its batches: ``"device"`` (features
    copied onto the accelerator, ``asdcore.input_pipeline``) or ``"host"``."""
    import keras
    import numpy as np

    s = _shapes(dry_run)
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    if trainer in ("subcluster2020", "multi2021"):
        from subcluster_adacos.network import build_multi_head_training_model, build_training_model
        from subcluster_adacos.training import TrainingConfig, _compile, make_multi_label_dataset

        features = rng.normal(size=(s["clips"],) + s["logmel"]).astype(np.float32)
        config = TrainingConfig(batch_size=s["batch"])
        if trainer == "subcluster2020":  # Table IV / V: S up to 64; the estimate's S = 16
            classes = [s["classes2020"]]
            model = build_training_model(classes[0], n_subclusters=16, input_shape=s["logmel"], seed=seed)
        else:  # 2021: sections and attribute classes, S = 16 (Sec. 3)
            classes = [s["sections"], s["attributes"]]
            model = build_multi_head_training_model(classes, n_subclusters=16, input_shape=s["logmel"], seed=seed)
        _compile(model, config)
        labels = [np.arange(s["clips"]) % c for c in classes]
        pipeline = make_multi_label_dataset(features, labels, classes, s["batch"], seed=seed, repeat=True,
                                            portable=True)
        return model, pipeline, s["batch"], {}, "device" if pipeline.device is not None else "host"
    if trainer.startswith("ddcsad-"):
        from ddcsad import data
        from ddcsad.model import DDCSADModel
        from ddcsad.settings import DDCSADConfig
        from ddcsad.training import build_encoder

        config = DDCSADConfig(backbone=trainer.split("-", 1)[1])
        frames = s["logmel"][0]
        features = rng.normal(size=(s["clips"], frames, s["logmel"][1])).astype(np.float32)
        half = s["clips"] // 8  # one ID's normal clips; the others are its outliers
        sets = data.UnitSets("dev", "fan", "id_00", normal=np.arange(half), outlier=np.arange(half, s["clips"]))
        model = DDCSADModel(build_encoder(config, (s["crop"], s["logmel"][1])), variant="bce+ddcsad")
        model.compile()
        # centroids from the first crops of a few normal and a few outlier clips (their values do not matter
        # for the speed; c_n needs outliers, which the first batches of the centroid pass may not hold)
        few = np.r_[np.arange(s["batch"] // 2), half + np.arange(s["batch"] // 2)]
        labels = np.r_[np.full(s["batch"] // 2, data.NORMAL), np.full(s["batch"] // 2, data.OUTLIER)]
        model.update_centroids((features[few, :s["crop"]], labels), batch_size=s["batch"])
        sampler = data.BalancedBatches(features, sets, (s["batch"] // 2, s["batch"] // 2), s["crop"], seed=seed)
        placed = sampler.on_device()
        return model, sampler.dataset(), s["batch"], {}, "device" if placed else "host"
    if trainer.startswith("serialoe-"):
        from smoothing.serial_oe import OEBatches, SerialOEConfig, build_serial_oe, compile_serial_oe

        backbone = trainer.split("-", 1)[1]
        config = SerialOEConfig(backbone=backbone, batch_size=s["oe_batch"])
        n_target = (steps + 2) * s["oe_batch"] // 2  # one epoch of OEBatches covers the warm-up and the steps
        # whole clips of one store (target type and other types), random crops and mixup, as training reads them
        from asdcore.clip_sources import StoreClips

        store = StoreClips(rng.normal(size=(2 * n_target, s["serialoe_frames"], s["serialoe"][1])).astype(np.float32))
        model = build_serial_oe(6, s["serialoe"], backbone)
        compile_serial_oe(model, 10 ** 6, config)
        pipeline = OEBatches(store.subset(np.arange(n_target)), np.arange(n_target) % 6,
                             store.subset(np.arange(n_target, 2 * n_target)), 6, batch_size=s["oe_batch"],
                             seed=seed, crop=s["serialoe"][0], mixup_schedule="always")
        placed = pipeline.on_device()
        return model, pipeline, s["oe_batch"], {}, "device" if placed else "host"
    if trainer == "autoencoder":
        from smoothing.autoencoder import CropBatches, build_autoencoder

        n_clips = max(s["ae_clips"], 16 * (steps + 2))  # one epoch of CropBatches covers the steps
        clips = rng.normal(size=(n_clips, s["ae_frames"], 128)).astype(np.float32)
        model = build_autoencoder(640)
        pipeline = CropBatches(clips, s["ae_crop"], batch_segments=16, seed=seed)
        placed = pipeline.on_device()
        return model, pipeline, 16, {}, "device" if placed else "host"
    raise SystemExit(f"gpu_check.py: unknown trainer {trainer!r}; use one of {', '.join(TRAINERS)}")


def _training_flops_per_clip(trainer: str, model, dry_run: bool):
    """Training FLOPs per clip: ``asdcore.estimates.TRAINING_FLOPS_PER_CLIP`` (benchmarks/flops.py); for the
    autoencoder 3 x 2 x its weights per stacked vector x vectors per 4 s segment (dense layers only). None in
    a dry run (tiny shapes)."""
    from asdcore.estimates import TRAINING_FLOPS_PER_CLIP

    if dry_run:
        return None
    if trainer == "autoencoder":
        weights = sum(int(v.shape[0]) * int(v.shape[1]) for v in model.trainable_variables if len(v.shape) == 2)
        vectors = _shapes(False)["ae_crop"] - 5 + 1
        return 3 * 2 * weights * vectors
    return TRAINING_FLOPS_PER_CLIP.get(trainer)


def _peak_memory():
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def measure(trainer: str, precision: str, warmup: int, steps: int, dry_run: bool) -> dict:
    """One row of the table (module docstring)."""
    import keras

    keras.config.set_dtype_policy(precision)
    model, pipeline, clips_per_step, fit_kwargs, where = build(trainer, dry_run, steps=max(warmup, steps))
    # the input pipeline alone: its first batches untimed (their gathers compile on an accelerator)
    n_batches = max(3, steps)
    if hasattr(pipeline, "__getitem__"):  # a PyDataset (finite ones wrap around)
        finite = getattr(pipeline, "num_batches", None)
        batches = (pipeline[k % len(pipeline)] if finite else pipeline[k] for k in range(warmup + n_batches))
    else:  # a tf.data pipeline (TensorFlow)
        batches = iter(pipeline)
    for _ in range(warmup):
        _wait(next(batches))
    start = time.perf_counter()
    for _ in range(n_batches):
        _wait(next(batches))
    input_seconds = time.perf_counter() - start
    input_rate = n_batches * clips_per_step / input_seconds
    # the training step: warm-up (compilation), then the steady steps with the device drained at both ends
    start = time.perf_counter()
    model.fit(pipeline, steps_per_epoch=warmup, epochs=1, verbose=0, **fit_kwargs)
    _sync(model)
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(pipeline, steps_per_epoch=steps, epochs=1, verbose=0, **fit_kwargs)
    _sync(model)
    seconds = (time.perf_counter() - start) / steps
    flops = _training_flops_per_clip(trainer, model, dry_run)
    step_rate = clips_per_step / seconds
    return {"trainer": trainer, "precision": precision, "clips_per_step": clips_per_step,
            "warmup_steps": warmup, "warmup_seconds": round(warmup_seconds, 3), "steps": steps,
            "seconds_per_step": seconds, "clips_per_second": step_rate,
            "input_clips_per_second": input_rate, "input": where,
            "bound": "input-bound" if input_rate < INPUT_BOUND_RATIO * step_rate else "compute-bound",
            "training_gflop_per_clip": None if flops is None else flops / 1e9,
            "achieved_tflops": None if flops is None else flops * step_rate / 1e12,
            "peak_device_bytes": _peak_memory(), "status": "measured"}


# ----------------------------------------------------------------------------------------- the table
def device_name() -> str:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}: {getattr(device, 'device_kind', device)}"
    return f"{keras.backend.backend()} default device"


def paper_runs(rows) -> dict:
    """GPU-hours of each paper command's full run from the measured float32 seconds per step, and the total."""
    from asdcore.estimates import PAPER_RUNS

    seconds = {r["trainer"]: r["seconds_per_step"] for r in rows
               if r.get("status") == "measured" and r["precision"] == "float32"}
    runs, total, complete = [], 0.0, True
    for command, parts in PAPER_RUNS.items():
        hours, missing = 0.0, []
        for trainer, steps in parts:
            if trainer in seconds:
                hours += steps * seconds[trainer] / 3600
            else:
                missing.append(trainer)
        complete &= not missing
        total += hours
        runs.append({"command": command, "parts": [{"trainer": t, "steps": n} for t, n in parts],
                     "gpu_hours": None if missing else hours, "not_measured": missing})
    return {"runs": runs, "total_gpu_hours": total if complete else None, "goal_hours": GOAL_HOURS,
            "within_goal": (total <= GOAL_HOURS) if complete else None}


def run_order(trainers, precisions):
    """``(trainer, precision)`` pairs by importance: the paper's trainers in float32 (the GPU-hours total needs
    them), then in the other precisions, then the CPU-demo backbones (light CNNs) likewise."""
    paper = [t for t in trainers if t not in LIGHT]
    light = [t for t in trainers if t in LIGHT]
    return [(t, p) for group in (paper, light) for p in precisions for t in group]


def _child(trainer, precision, args, seconds_left: float) -> dict:
    """Run :func:`measure` in a process of its own, for at most ``--per-trainer-timeout`` seconds and at most
    a minute past the budget; a failure becomes a row that says why."""
    timeout = int(max(30, min(args.per_trainer_timeout, seconds_left + 60)))
    command = [sys.executable, os.path.abspath(__file__), "--one", trainer, "--precision", precision,
               "--warmup", str(args.warmup), "--steps", str(args.steps)] + (["--tiny"] if args.tiny else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"trainer": trainer, "precision": precision, "status": f"timed out after {timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"trainer": trainer, "precision": precision, "status": "failed: " + _why(done)}
    return json.loads(lines[-1])


def _why(done) -> str:
    """One line on a failed child: the Python error it printed, else its exit (a signal: killed, e.g. for
    memory), never a back-end's start-up log line."""
    lines = (done.stderr or done.stdout or "").strip().splitlines()
    errors = [line for line in lines if "Error" in line.split(":")[0] or line.startswith(("Traceback", "Killed"))]
    if errors and not errors[-1].startswith("Traceback"):
        return errors[-1][:300]
    if done.returncode < 0:
        return f"killed by signal {-done.returncode}" + (" (out of memory?)" if done.returncode == -9 else "")
    return f"exit status {done.returncode}, no result line"


def _print_row(row) -> None:
    if row.get("status") != "measured":
        print(f"{row['trainer']:26s} {row['precision']:15s} {row['status']}", flush=True)
        return
    tflops = "-" if row["achieved_tflops"] is None else f"{row['achieved_tflops']:.3g}"  # 3 digits: a CPU's 0.0xx too
    peak = "-" if row["peak_device_bytes"] is None else f"{row['peak_device_bytes'] / 2 ** 30:.2f} GiB"
    print(f"{row['trainer']:26s} {row['precision']:15s} {row['seconds_per_step'] * 1e3:9.2f} ms/step "
          f"{row['clips_per_second']:10.0f} clips/s  input alone ({row.get('input', 'host'):6s}) "
          f"{row['input_clips_per_second']:10.0f} clips/s  "
          f"{tflops:>6s} TFLOP/s  peak {peak:>10s}  {row['bound']}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="gpu_check.json", help="the JSON table (default gpu_check.json)")
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes, in this process (CPU, seconds)")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for all trainers (default 420)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up steps (compilation) per trainer")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per trainer")
    parser.add_argument("--trainers", default=",".join(TRAINERS), help="comma-separated subset")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated subset")
    parser.add_argument("--per-trainer-timeout", type=int, default=180, help=argparse.SUPPRESS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    # tiny shapes in per-trainer processes: checks the processes' plumbing on a CPU (tests/benchmarks)
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # a child: one trainer, one JSON line
        print(json.dumps(measure(args.one, args.precision, args.warmup, args.steps, dry_run=args.tiny)), flush=True)
        return 0
    if args.dry_run:
        args.warmup, args.steps = 1, 2
    import keras

    trainers = [t for t in args.trainers.split(",") if t]
    unknown = sorted(set(trainers) - set(TRAINERS))
    if unknown:
        parser.error(f"unknown trainer(s) {unknown}; use {', '.join(TRAINERS)}")
    precisions = [p for p in args.precisions.split(",") if p]
    started = time.monotonic()
    print(f"gpu_check: Keras {keras.__version__} on {keras.backend.backend()}, {device_name()}"
          f"{' (DRY RUN: tiny shapes, numbers meaningless)' if args.dry_run else ''}", flush=True)
    rows = []
    for trainer, precision in run_order(trainers, precisions):
        if not args.dry_run and time.monotonic() - started > args.budget:
            row = {"trainer": trainer, "precision": precision, "status": "skipped: time budget spent"}
        elif args.dry_run:
            row = measure(trainer, precision, args.warmup, args.steps, dry_run=True)
            keras.config.set_dtype_policy("float32")
            keras.backend.clear_session()
        else:
            row = _child(trainer, precision, args, args.budget - (time.monotonic() - started))
        rows.append(row)
        _print_row(row)
    summary = paper_runs(rows)
    if args.dry_run:
        print("DRY RUN: the figures below are tiny shapes on this machine, not a paper run's cost", flush=True)
    for run in summary["runs"]:
        hours = "not measured: " + ", ".join(run["not_measured"]) if run["gpu_hours"] is None \
            else f"{run['gpu_hours']:.1f} GPU-hours"
        print(f"full run  {run['command']:60s} {hours}", flush=True)
    if summary["total_gpu_hours"] is not None:
        print(f"all paper commands: {summary['total_gpu_hours']:.1f} GPU-hours (float32), goal {GOAL_HOURS:g} h: "
              f"{'within' if summary['within_goal'] else 'over'}", flush=True)
    table = {"kind": "asd gpu check", "dry_run": bool(args.dry_run or args.tiny), "device": device_name(),
             "backend": keras.backend.backend(), "keras": keras.__version__,
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "warmup_steps": args.warmup, "steps": args.steps, "seconds": round(time.monotonic() - started, 1),
             "rows": rows, "paper_runs": summary}
    from asdcore.atomic_io import atomic_write_text

    atomic_write_text(args.out, json.dumps(table, indent=1))
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
