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

and the same with the store read whole into memory first (``np.load`` without ``mmap_mode``: the way the
cache was read before), where it fits. Printed per trainer and mode: peak resident memory of the process
(VmHWM: includes the pages of the memory map it touched, which the kernel can drop at any time), peak
anonymous memory (RssAnon: the process's own, sampled every 0.1 s), steady training clips/s (median over
the steps after ``--warmup``) and the scoring time.

    python benchmarks/scale.py                      # full size (about 15 GB of disk in --workdir)
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
TRAINERS = ("subcluster2020", "multi2021", "ddcsad")


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
    if mode == "mmap":
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
    import keras

    from asdcore.backends import GMMBackend
    from asdcore.features import Normalizer
    from subcluster_adacos.layers import normalized_centers
    from subcluster_adacos.network import (build_multi_head_training_model, build_training_model,
                                           embedding_model, head_layer, head_names)
    from subcluster_adacos.training import make_dataset, make_multi_label_dataset

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
    model.compile(optimizer=keras.optimizers.Adam())
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


def run_ddcsad(store: Path, mode: str, args) -> dict:
    from ddcsad import data
    from ddcsad.backbones import build_light_encoder, build_resnet38
    from ddcsad.model import DDCSADModel

    features = _open(store, mode)
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


def child(args) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with AnonPeak() as anon:
        if args.child == "subcluster2020":
            result = run_subcluster(Path(args.store), args.mode, args, "2020")
        elif args.child == "multi2021":
            result = run_subcluster(Path(args.store), args.mode, args, "2021")
        else:
            result = run_ddcsad(Path(args.store), args.mode, args)
    result.update(peak_rss=1024 * _status_kb("VmHWM"), peak_anon=anon.peak)
    print("RESULT " + json.dumps(result), flush=True)


# --- parent ---------------------------------------------------------------------------------------------

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
    parser.add_argument("--child", choices=TRAINERS, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["mmap", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    from asdcore.estimates import check_free_disk

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="asd-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = {"2020": args.clips_2020, "2021": args.clips_2021}
    need = sum(4 * 313 * 128 * c for c in sizes.values())
    check_free_disk(workdir, need, "the benchmark's feature stores")
    total_ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    stores = {}
    for year, clips in sizes.items():
        t0 = time.perf_counter()
        stores[year] = build_store(workdir / f"store{year}-{clips}.npy", clips, seed=int(year))
        print(f"store {year}: {clips} clips x 313 x 128 float32 = {_gb(4 * 313 * 128 * clips)} "
              f"({time.perf_counter() - t0:.0f} s to write)", flush=True)
    rows = []
    for trainer in args.trainers:
        store = stores["2021" if trainer == "multi2021" else "2020"]
        size = os.path.getsize(store)
        modes = ["mmap"]
        if args.in_memory == "yes" or (args.in_memory == "auto" and size < total_ram / 2):
            modes.append("memory")
        for mode in modes:
            command = [sys.executable, str(Path(__file__).resolve()), "--child", trainer, "--mode", mode, "--store",
                       str(store), "--steps", str(args.steps), "--warmup", str(args.warmup), "--subclusters",
                       str(args.subclusters), "--ddcsad-backbone", args.ddcsad_backbone]
            t0 = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                print(f"{trainer} ({mode}) failed:\n{done.stderr[-3000:]}", flush=True)
                continue
            result = json.loads(lines[-1][7:])
            result.update(trainer=trainer, mode=mode, store=size, wall=time.perf_counter() - t0)
            rows.append(result)
            print(f"{trainer:15s} {mode:6s} peak RSS {_gb(result['peak_rss'])}, peak anonymous "
                  f"{_gb(result['peak_anon'])}, {result['clips_per_s']:.1f} clips/s ({result['step_ms']:.0f} ms/step), "
                  f"scoring one unit {result['score_s']:.1f} s (store {_gb(size)})", flush=True)
    print("\nsummary (mmap against in-memory):")
    for trainer in args.trainers:
        by_mode = {r["mode"]: r for r in rows if r["trainer"] == trainer}
        if "mmap" in by_mode and "memory" in by_mode:
            ratio = by_mode["mmap"]["clips_per_s"] / by_mode["memory"]["clips_per_s"]
            print(f"  {trainer}: memory-mapped throughput {100 * ratio:.0f} % of in-memory; peak RSS "
                  f"{_gb(by_mode['mmap']['peak_rss'])} vs {_gb(by_mode['memory']['peak_rss'])}")
        elif "mmap" in by_mode:
            print(f"  {trainer}: peak RSS {_gb(by_mode['mmap']['peak_rss'])} (in-memory not run)")
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
