"""Benchmark: batched ``asdcore.features.extract_features`` vs a per-file librosa loop.

Both sides read the same WAV files and compute the reference log-mel of REFERENCE.md section 3
(16 kHz, n_fft 1024, hop 512, 128 Slaney mel bins 0-8 kHz, symmetric Hann, centred reflect padding, power
spectrum, ``10 log10(max(S, 1e-10))``, last 313 frames). The batched side runs without a feature cache
(the WAV files are in the OS page cache for both sides). Prints clips per second both ways (best of
``--repeats`` interleaved runs), the speed-up, the CPU time per clip (all threads summed: the work done,
less sensitive than wall time to other load on the machine) and the largest absolute difference in dB.

Usage::

    python benchmarks/features.py                       # 200 generated noisy 10 s clips in a temp dir
    python benchmarks/features.py --data-root ROOT -n 500   # the first 500 *.wav under ROOT (sorted)
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asdcore.features import LogMelConfig, extract_features  # noqa: E402


def make_clips(folder: str, n: int, seconds: float = 10.0, sr: int = 16000, seed: int = 0) -> list[str]:
    """Write ``n`` noisy machine-like clips (noise + a few harmonics + clicks) as 16-bit WAV files."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    paths = []
    for i in range(n):
        f0 = rng.uniform(50, 400)
        x = 0.05 * rng.standard_normal(t.size)
        for k in range(1, 6):
            x += rng.uniform(0.01, 0.1) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
        clicks = rng.integers(0, t.size, 20)
        x[clicks] += rng.uniform(-0.5, 0.5, clicks.size)
        path = os.path.join(folder, f"clip_{i:05d}.wav")
        sf.write(path, np.clip(x, -1, 1).astype(np.float32), sr, subtype="PCM_16")
        paths.append(path)
    return paths


def librosa_loop(paths, config: LogMelConfig) -> np.ndarray:
    """The per-file reference: librosa.load + librosa.feature.melspectrogram + 10 log10(max(S, 1e-10))."""
    import librosa

    out = []
    window = np.hanning(config.n_fft)
    for p in paths:
        y, _ = librosa.load(p, sr=config.sr, mono=True)
        S = librosa.feature.melspectrogram(
            y=y, sr=config.sr, n_fft=config.n_fft, hop_length=config.hop_length, window=window,
            center=True, pad_mode="reflect", power=2.0, n_mels=config.n_mels, fmin=config.fmin,
            fmax=config.fmax, htk=False, norm="slaney",
        )
        X = 10.0 * np.log10(np.maximum(S, 1e-10))
        out.append(X[:, -config.n_frames :].T)
    return np.stack(out).astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", help="read *.wav under this folder instead of generating clips")
    ap.add_argument("-n", "--n-clips", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="time each side this many times, keep the best")
    ap.add_argument("--threads", type=int, default=None, help="extract_features threads (default: all cores)")
    args = ap.parse_args(argv)
    config = LogMelConfig()

    with tempfile.TemporaryDirectory() as tmp:
        if args.data_root:
            paths = sorted(glob.glob(os.path.join(args.data_root, "**", "*.wav"), recursive=True))
            paths = paths[: args.n_clips]
            if not paths:
                print(f"no *.wav files under {args.data_root}", file=sys.stderr)
                return 2
            source = args.data_root
        else:
            paths = make_clips(tmp, args.n_clips)
            source = f"{len(paths)} generated noisy 10 s clips (16 kHz, PCM_16)"

        # warm up both sides (imports, librosa's caches, the mel basis)
        librosa_loop(paths[:2], config)
        extract_features(paths[:2], config, progress=False)

        # BLAS limited to one thread: the per-file loop's small mel matmul gains nothing from more, and
        # OpenBLAS threads spinning on a busy machine made it up to 10x slower (an unfair baseline).
        # extract_features uses no BLAS (sparse mel product) and its own worker threads.
        t_ref = t_ours = c_ref = c_ours = float("inf")
        with threadpool_limits(limits=1, user_api="blas"):
            for _ in range(args.repeats):  # interleaved, best of each: robust to other load
                t0, c0 = time.perf_counter(), time.process_time()
                ref = librosa_loop(paths, config)
                t_ref = min(t_ref, time.perf_counter() - t0)
                c_ref = min(c_ref, time.process_time() - c0)
                t0, c0 = time.perf_counter(), time.process_time()
                ours = extract_features(
                    paths, config, cache_dir=None, progress=False, batch_size=args.batch_size,
                    n_threads=args.threads,
                )
                t_ours = min(t_ours, time.perf_counter() - t0)
                c_ours = min(c_ours, time.process_time() - c0)

    diff = float(np.abs(ours.features - ref).max())
    n = len(paths)
    print("log-mel benchmark (REFERENCE.md section 3 front end, no cache)")
    print(f"  clips               : {source}")
    print(f"  feature shape       : {tuple(ours.features.shape[1:])}")
    print(f"  CPU cores           : {os.cpu_count()} (extract_features threads: {args.threads or 'all'}; "
          f"load average {os.getloadavg()[0]:.1f})")
    print(f"  librosa per-file    : {n / t_ref:8.1f} clips/s  ({t_ref:.2f} s)")
    print(f"  extract_features    : {n / t_ours:8.1f} clips/s  ({t_ours:.2f} s)")
    print(f"  speed-up (wall)     : {t_ref / t_ours:8.2f} x   (target >= 5 x)")
    print(f"  CPU time per clip   : librosa {1000 * c_ref / n:.2f} ms, "
          f"extract_features {1000 * c_ours / n:.2f} ms ({c_ref / c_ours:.2f} x less work, threads summed)")
    print(f"  max |difference| dB : {diff:.3g}   (target < 1e-3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
