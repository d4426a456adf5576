"""Paper-scale memory and throughput of the trainers, with features memory-mapped from disk.

Builds feature stores of the real data sets' sizes (random features; the values do not matter for memory
and speed), written in chunks, never whole in memory:

- DCASE 2020 development + additional training set: 41 IDs, ``--clips-2020`` clips (default 38,000) of
  313 x 128 log-mel frames (6.1 GB);
- DCASE 2021: 42 sections, ``--clips-2021`` clips (default 50,000) of 313 x 128 (8.0 GB);

then, for each trainer, in a fresh process (so that each peak is its own), runs ``--steps`` training steps
reading every batch from the memory map and scores one unit:

- ``subcluster2020``: the Table I ResNet with a 41-class sub-cluster AdaCos head (S = ``--subclusters``),
  batches of 64 from the standardised view of the store (asdcore.features.StandardisedView); scoring = the
  embeddings of one ID's 1,000 clips and its GMM;
- ``multi2021``: the two-head network (42 sections, 199 attribute classes); scoring as above for a section;
- ``ddcsad``: one machine ID's model (its ~1,000 normal clips against the ~20,000 outlier clips of the same
  source data set), 32:32 batches of 256-frame crops; scoring = ten crops of the ID's 1,000 clips;

- ``serialoe``: SerialOE of one machine type at the paper's input (626 x 224 mel magnitudes of a 10 s clip,
  ``--clips-serialoe`` clips; the DCASE 2021 set would be 50,000 = 28 GB), batches of 128 (64 target + 64
  other clips, random 4 s crops, mixup) read batch by batch from the store (``mmap``) or computed from
  ``--wav-clips`` recordings for every batch (``waveform``: the on-the-fly alternative); the input pipeline
  alone is timed too; scoring = f_D of 256 clips (7 crops each);

and the same with the store read whole into memory first (``np.load`` without ``mmap_mode``: the way the
cache was read before), where it fits. Printed per trainer and mode: peak resident memory of the process
(VmHWM: includes the pages of the memory map it touched, which the kernel can drop at any time), peak
anonymous memory (RssAnon: the process's own, sampled every 0.1 s), steady training clips/s (median over
the steps after ``--warmup``) and the scoring time. ``--repeats N`` runs the memory-mapped and in-memory
children N times each, alternating (median speed, highest peak); ``--baseline-clips`` runs every trainer once
more on a small store, so the summary can say what the model and its training step take alone and what the
full-size data add to it. The sub-cluster AdaCos trainers compile as the experiments do
(``subcluster_adacos.training._compile``: FusedAdam).

    python benchmarks/scale.py                      # full size (about 43 GB of disk in --workdir)
    python benchmarks/scale.py --clips-2020 4000 --clips-2021 5000 --steps 10   # a smaller machine

Targets (issue 13): peak resident memory under 3 GB for every trainer at full size (plus the model) and
memory-mapped throughput within 10 % of in-memory.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TRAINERS = ("subcluster2020", "multi2021", "ddcsad", "serialoe")
#: SerialOE's paper input: 224 mel bins, 16 ms hop: 626 frames per 10 s clip (smoothing/serial_oe.py).
SERIALOE_FRAMES, SERIALOE_BINS = 626, 224


# --- memory ---------------------------------------------------------------------------------------------

def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class AnonPeak:
    """Samples RssAnon every ``interval`` seconds in a thread; ``peak`` in bytes."""

    def __init__(self, interval=0.1):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, 1024 * _status_kb("RssAnon"))
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, 1024 * _status_kb("RssAnon"))


# --- stores ---------------------------------------------------------------------------------------------

def build_store(path: Path, clips: int, frames: int = 313, bins: int = 128, chunk: int = 512, seed: int = 0) -> Path:
    """A float32 ``.npy`` of random log-mel-like values, written in chunks of ``chunk`` clips."""
    if path.is_file():
        return path
    from asdcore.atomic_io import atomic_path

    rng = np.random.default_rng(seed)
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(clips, frames, bins))
        for start in range(0, clips, chunk):
            n = min(chunk, clips - start)
            out[start:start + n] = (rng.standard_normal((n, frames, bins), dtype=np.float32) * 10.0 - 40.0)
        out.flush()
        del out
    return path


def _open(path: Path, mode: str):
    if mode in ("mmap", "small"):
        return np.load(path, mmap_mode="r")
    return np.load(path)  # the whole array in memory


class StepTimer:
    """Keras callback: wall time of each training step."""

    def __init__(self):
        import keras

        timer = self

        class _Callback(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                timer._start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                timer.times.append(time.perf_counter() - timer._start)

        self.times = []
        self.callback = _Callback()


def _steady(times, warmup):
    steady = times[warmup:] or times
    return float(np.median(steady))


# --- trainers (run in a child process) ------------------------------------------------------------------

def run_subcluster(store: Path, mode: str, args, heads: str) -> dict:
    from asdcore.backends import GMMBackend
    from asdcore.features import Normalizer
    from subcluster_adacos.layers import normalized_centers
    from subcluster_adacos.network import (build_multi_head_training_model, build_training_model,
                                           embedding_model, head_layer, head_names)
    from subcluster_adacos.training import TrainingConfig, _compile, make_dataset, make_multi_label_dataset

    features = _open(store, mode)
    n = len(features)
    rng = np.random.default_rng(0)
    fit_rows = np.sort(rng.choice(n, size=min(n, 2000), replace=False))
    view = Normalizer().fit(features, rows=fit_rows).view(features)
    if heads == "2020":
        n_classes = [41]
        labels = [np.arange(n) % 41]
        model = build_training_model(41, n_subclusters=args.subclusters, seed=0)
        dataset = make_dataset(view, labels[0], 41, 64, seed=0)
    else:
        n_classes = [42, 199]
        labels = [np.arange(n) % 42, np.arange(n) % 199]
        model = build_multi_head_training_model(n_classes, n_subclusters=args.subclusters, seed=0)
        dataset = make_multi_label_dataset(view, labels, n_classes, 64, seed=0,
                                           label_names=["labels"] + [f"labels_{i}" for i in range(1, 2)])
    _compile(model, TrainingConfig())  # as subcluster_adacos.training compiles (FusedAdam, issue 16)
    timer = StepTimer()
    model.fit(dataset.take(args.steps), epochs=1, verbose=0, callbacks=[timer.callback])
    seconds = _steady(timer.times, args.warmup)
    # scoring one unit: embeddings of its 1,000 clips (read in batches) and a GMM with S components
    t0 = time.perf_counter()
    unit_rows = np.flatnonzero(labels[0] == 0)[:1000]
    encoder = embedding_model(model)
    embeddings = np.concatenate([np.asarray(encoder.predict(view[unit_rows[s:s + 64]], verbose=0))
                                 for s in range(0, len(unit_rows), 64)])
    head = head_layer(model) if heads == "2020" else model.get_layer(head_names(2)[0])
    GMMBackend(args.subclusters, means_init=normalized_centers(head)[0]).fit(embeddings).score(embeddings)
    return {"clips_per_s": 64 / seconds, "step_ms": 1000 * seconds, "score_s": time.perf_counter() - t0}


def _ragged(store: Path):
    """The store as the DDCSAD command reads it now: a RaggedFeatures over the frames laid end to end
    (asdcore.feature_store.open_ragged_store; here every clip has 313 frames)."""
    from asdcore.feature_store import RaggedFeatures

    mapped = np.load(store, mmap_mode="r")
    n, frames, bins = mapped.shape
    flat = np.memmap(store, dtype=np.float32, mode="r", offset=mapped.offset, shape=(n * frames, bins))
    return RaggedFeatures(flat, np.arange(n, dtype=np.int64) * frames, np.full(n, frames, np.int64))


def run_ddcsad(store: Path, mode: str, args) -> dict:
    from ddcsad import data
    from ddcsad.backbones import build_light_encoder, build_resnet38
    from ddcsad.model import DDCSADModel

    features = _ragged(store) if mode in ("mmap", "small") else _open(store, mode)
    n = len(features)
    # one ID: 1,000 normal clips; outliers: 20,000 clips of the other IDs of the same source data set
    sets = data.UnitSets("dev", "fan", "id_00", normal=np.arange(1000), outlier=np.arange(1000, min(n, 21000)))
    encoder = build_resnet38((256, 128)) if args.ddcsad_backbone == "resnet38" else build_light_encoder((256, 128, 1))
    model = DDCSADModel(encoder, variant="bce+ddcsad")
    model.compile(encoder_learning_rate=1e-4, head_learning_rate=1e-3, halve_every=1000)
    # first centroids from a 256 + 256-clip subset (the full pass is one epoch of inference, not what is measured)
    subset = data.UnitSets("dev", "fan", "id_00", normal=sets.normal[:256], outlier=sets.outlier[:256])
    model.update_centroids(data.centroid_dataset(features, subset, 256, 64))
    batches = data.BalancedBatches(features, sets, (32, 32), 256, seed=0)
    timer = StepTimer()
    model.fit(batches.dataset().take(args.steps), epochs=1, verbose=0, callbacks=[timer.callback])
    seconds = _steady(timer.times, args.warmup)
    t0 = time.perf_counter()
    from ddcsad.scoring import crop_outputs

    crop_outputs(model, features, rows=sets.normal)  # the ten crops of each clip, in chunks (ddcsad/scoring.py)
    return {"clips_per_s": 64 / seconds, "step_ms": 1000 * seconds, "score_s": time.perf_counter() - t0}


def write_waves(folder: Path, clips: int, seconds: float = 10.0, sr: int = 16000) -> list:
    """``clips`` 16-bit wav files of noise (the recordings the on-the-fly SerialOE input reads)."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(0)
    for i in range(clips):
        path = folder / f"normal_id_00_{i:08d}.wav"
        if not path.is_file():
            sf.write(path, (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32), sr, subtype="PCM_16")
        paths.append(str(path))
    return paths


def run_serialoe(store: Path, mode: str, args) -> dict:
    """SerialOE of one machine type: input pipeline alone (OEBatches: 64 target + 64 other clips, random 4 s
    crops, mixup), then ``--steps`` training steps and the embeddings of 256 clips (7 crops each)."""
    from dataclasses import replace

    from asdcore.clip_sources import StoreClips, WaveformClips
    from smoothing.serial_oe import (OEBatches, SerialOEConfig, build_serial_oe, compile_serial_oe,
                                     embed_clips)
    from smoothing.training import crop_frames

    config = SerialOEConfig(backbone=args.serialoe_backbone, batch_size=args.serialoe_batch)
    if mode == "waveform":
        mel = replace(config.logmel_config(), n_frames=SERIALOE_FRAMES)
        clips = WaveformClips(write_waves(store.parent / "waves", args.wav_clips), mel)
    else:
        clips = StoreClips(_open(store, mode))
    n = len(clips)
    sections = np.arange(n // 2) % 6
    batches = OEBatches(clips.subset(slice(0, n // 2)), sections, clips.subset(slice(n // 2, n)), 6,
                        config.batch_size, config.mixup_alpha, seed=0,
                        crop=crop_frames(config.segment_seconds, config.sr, config.hop_length))
    times = []
    for i in range(min(args.input_batches, len(batches))):
        t0 = time.perf_counter()
        batches[i]
        times.append(time.perf_counter() - t0)
    input_seconds = _steady(times, 1)
    model = build_serial_oe(6, (batches[0][0].shape[1], SERIALOE_BINS), backbone=config.backbone)
    compile_serial_oe(model, total_steps=max(args.steps, 2), config=config)
    step_times = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        x, y = batches[i % len(batches)]
        model.train_on_batch(x, y)
        step_times.append(time.perf_counter() - t0)
    seconds = _steady(step_times, args.warmup)
    t0 = time.perf_counter()
    embed_clips(model, clips.subset(slice(0, min(256, n))), config)
    return {"clips_per_s": config.batch_size / seconds, "step_ms": 1000 * seconds, "score_s": time.perf_counter() - t0,
            "input_clips_per_s": config.batch_size / input_seconds}


def child(args) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with AnonPeak() as anon:
        if args.child == "subcluster2020":
            result = run_subcluster(Path(args.store), args.mode, args, "2020")
        elif args.child == "multi2021":
            result = run_subcluster(Path(args.store), args.mode, args, "2021")
        elif args.child == "serialoe":
            result = run_serialoe(Path(args.store), args.mode, args)
        else:
            result = run_ddcsad(Path(args.store), args.mode, args)
    result.update(peak_rss=1024 * _status_kb("VmHWM"), peak_anon=anon.peak)
    print("RESULT " + json.dumps(result), flush=True)


# --- parent ---------------------------------------------------------------------------------------------

def _merged(runs: list) -> dict:
    """The repeats of one trainer and mode: median speeds, highest peaks, and every run's clips/s."""
    merged = dict(runs[0])
    for key in ("clips_per_s", "input_clips_per_s", "step_ms", "score_s"):
        if key in merged:
            merged[key] = float(np.median([r[key] for r in runs]))
    for key in ("peak_rss", "peak_anon"):
        merged[key] = max(r[key] for r in runs)
    merged["each_clips_per_s"] = [r["clips_per_s"] for r in runs]
    return merged


def _gb(n):
    return f"{n / 1e9:.2f} GB"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips-2020", type=int, default=38000)
    parser.add_argument("--clips-2021", type=int, default=50000)
    parser.add_argument("--steps", type=int, default=12, help="training steps per trainer")
    parser.add_argument("--warmup", type=int, default=3, help="first steps left out of the steady speed")
    parser.add_argument("--subclusters", type=int, default=16)
    parser.add_argument("--ddcsad-backbone", default="light", choices=["light", "resnet38"],
                        help="light (default on a CPU: ResNet38 steps take minutes here) or resnet38 (the paper's)")
    parser.add_argument("--trainers", nargs="+", default=list(TRAINERS), choices=TRAINERS)
    parser.add_argument("--in-memory", choices=["auto", "yes", "no"], default="auto",
                        help="also run with the store read whole into memory (auto: when it fits in half of RAM)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the stores are written (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the stores for a later run")
    parser.add_argument("--clips-serialoe", type=int, default=50000,
                        help="clips of the SerialOE store, 626 x 224 each (the DCASE 2021 set: 50,000 = 28 GB)")
    parser.add_argument("--wav-clips", type=int, default=512,
                        help="10 s recordings written for SerialOE's on-the-fly input (read again every batch)")
    parser.add_argument("--serialoe-backbone", default="light", choices=["light", "efficientnet_b0"],
                        help="light (default on a CPU) or efficientnet_b0 (the paper's)")
    parser.add_argument("--serialoe-batch", type=int, default=128, help="SerialOE batch (paper: 128)")
    parser.add_argument("--input-batches", type=int, default=6,
                        help="SerialOE batches timed for the input pipeline alone")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run the memory-mapped and in-memory children this many times each, alternating "
                             "(the summary takes the median speed and the highest peak)")
    parser.add_argument("--baseline-clips", type=int, default=2048,
                        help="also run every trainer memory-mapped on a store of this many clips (SerialOE: a "
                             "quarter), to separate the model and its training step from the data (0: off)")
    parser.add_argument("--child", choices=TRAINERS, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["mmap", "memory", "waveform", "small"], help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    from asdcore.estimates import check_free_disk

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="asd-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    wanted = {"2020": {"subcluster2020", "ddcsad"}, "2021": {"multi2021"}, "serialoe": {"serialoe"}}
    shapes = {"2020": (args.clips_2020, 313, 128), "2021": (args.clips_2021, 313, 128),
              "serialoe": (args.clips_serialoe, SERIALOE_FRAMES, SERIALOE_BINS)}
    shapes = {k: v for k, v in shapes.items() if wanted[k] & set(args.trainers)}
    small = {k: (min(v[0], args.baseline_clips // (4 if k == "serialoe" else 1)),) + v[1:]
             for k, v in shapes.items()} if args.baseline_clips > 0 else {}
    need = sum(4 * int(np.prod(v)) for v in list(shapes.values()) + list(small.values()))
    check_free_disk(workdir, need, "the benchmark's feature stores")
    total_ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    stores = {}
    for name, (clips, frames, bins) in shapes.items():
        t0 = time.perf_counter()
        suffix = "" if name != "serialoe" else f"-{frames}x{bins}"
        stores[name] = build_store(workdir / f"store{name}-{clips}{suffix}.npy", clips, frames, bins,
                                   seed={"2020": 2020, "2021": 2021}.get(name, 7))
        print(f"store {name}: {clips} clips x {frames} x {bins} float32 = {_gb(4 * frames * bins * clips)} "
              f"({time.perf_counter() - t0:.0f} s to write)", flush=True)
    small_stores = {}
    for name, (clips, frames, bins) in small.items():
        suffix = "" if name != "serialoe" else f"-{frames}x{bins}"
        small_stores[name] = build_store(workdir / f"store{name}-{clips}{suffix}.npy", clips, frames, bins, seed=1)
    rows = []
    for trainer in args.trainers:
        key = {"multi2021": "2021", "serialoe": "serialoe"}.get(trainer, "2020")
        size = os.path.getsize(stores[key])
        modes = ["mmap"] + (["waveform"] if trainer == "serialoe" else [])
        if args.in_memory == "yes" or (args.in_memory == "auto" and size < total_ram / 2):
            modes.append("memory")
        modes = modes * max(1, args.repeats) + (["small"] if key in small_stores else [])
        for mode in modes:
            store = small_stores[key] if mode == "small" else stores[key]
            command = [sys.executable, str(Path(__file__).resolve()), "--child", trainer, "--mode", mode, "--store",
                       str(store), "--steps", str(args.steps), "--warmup", str(args.warmup), "--subclusters",
                       str(args.subclusters), "--ddcsad-backbone", args.ddcsad_backbone,
                       "--serialoe-backbone", args.serialoe_backbone, "--serialoe-batch", str(args.serialoe_batch),
                       "--input-batches", str(args.input_batches), "--wav-clips", str(args.wav_clips)]
            t0 = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                print(f"{trainer} ({mode}) failed:\n{done.stderr[-3000:]}", flush=True)
                continue
            result = json.loads(lines[-1][7:])
            result.update(trainer=trainer, mode=mode, store=os.path.getsize(store), wall=time.perf_counter() - t0)
            rows.append(result)
            extra = (f", input pipeline alone {result['input_clips_per_s']:.0f} clips/s"
                     if "input_clips_per_s" in result else "")
            print(f"{trainer:15s} {mode:8s} peak RSS {_gb(result['peak_rss'])}, peak anonymous "
                  f"{_gb(result['peak_anon'])}, {result['clips_per_s']:.1f} clips/s ({result['step_ms']:.0f} ms/step)"
                  f"{extra}, scoring one unit {result['score_s']:.1f} s (store {_gb(result['store'])})", flush=True)
    print("\nsummary (mmap against in-memory):")
    for trainer in args.trainers:
        by_mode = {mode: _merged([r for r in rows if r["trainer"] == trainer and r["mode"] == mode])
                   for mode in {r["mode"] for r in rows if r["trainer"] == trainer}}
        if "mmap" in by_mode and "memory" in by_mode:
            ratio = by_mode["mmap"]["clips_per_s"] / by_mode["memory"]["clips_per_s"]
            each = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(by_mode["mmap"]["each_clips_per_s"],
                                                            by_mode["memory"]["each_clips_per_s"]))
            print(f"  {trainer}: memory-mapped throughput {100 * ratio:.0f} % of in-memory (median of "
                  f"{len(by_mode['mmap']['each_clips_per_s'])}; clips/s mmap/memory per repeat: {each}); peak RSS "
                  f"{_gb(by_mode['mmap']['peak_rss'])} vs {_gb(by_mode['memory']['peak_rss'])}")
        elif "mmap" in by_mode:
            print(f"  {trainer}: peak RSS {_gb(by_mode['mmap']['peak_rss'])} (in-memory not run)")
        if "mmap" in by_mode and "small" in by_mode:
            full, tiny = by_mode["mmap"], by_mode["small"]
            print(f"  {trainer}: the model and its training step alone (a {_gb(tiny['store'])} store) peak at "
                  f"{_gb(tiny['peak_rss'])} RSS, {_gb(tiny['peak_anon'])} anonymous; the full-size data adds "
                  f"{_gb(full['peak_rss'] - tiny['peak_rss'])} RSS, {_gb(full['peak_anon'] - tiny['peak_anon'])} "
                  "anonymous")
        if "mmap" in by_mode and "waveform" in by_mode:
            a, b = by_mode["mmap"], by_mode["waveform"]
            print(f"  {trainer}: on-the-fly mel from the recordings: input {b['input_clips_per_s']:.0f} clips/s vs "
                  f"{a['input_clips_per_s']:.0f} from the store ({100 * b['input_clips_per_s'] / a['input_clips_per_s']:.0f} %), "
                  f"training {100 * b['clips_per_s'] / a['clips_per_s']:.0f} % of the store's clips/s, peak RSS "
                  f"{_gb(b['peak_rss'])} vs {_gb(a['peak_rss'])}")
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())} "
          f"({os.cpu_count()} CPU cores)")
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
