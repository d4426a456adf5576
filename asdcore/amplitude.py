"""Per-recording waveform statistics for amplitude normalisation, read once and cached.

Kuroyanagi et al. (2020, Sec. IV-A) and Fujimura et al. (2021, Sec. IV-A) standardise the waveforms to
zero mean and unit variance (per machine, per clip). Both need the sample count, sum and sum of squares of
each recording; :func:`waveform_statistics` reads every recording once and caches the three numbers per
file identity (path, size, modification time), so a second run does not read the audio again.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["waveform_statistics", "waveform_std"]


def _identity(path: str) -> str:
    st = os.stat(path)
    return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"


def waveform_statistics(paths, cache_dir=None, sr: int = 16000, skip_bad_files: bool = False,
                        chunk: int = 256) -> pd.DataFrame:
    """Per recording: number of samples, sum and sum of squares of the waveform (float64).

    Parameters
    ----------
    paths : sequence of str
    cache_dir : path, optional
        Folder of the cache file ``waveform_stats_sr<sr>.csv`` (rows ``identity, n, sum, sumsq``, the
        identity being ``path|size|mtime_ns``); None disables it.
    sr : int
        Sample rate the recordings are read at (as the features).
    skip_bad_files : bool
        Unreadable recordings get NaN statistics instead of raising.

    Returns
    -------
    DataFrame
        ``path, n, sum, sumsq`` aligned with ``paths``.
    """
    from asdcore.audio import load_many
    from asdcore.atomic_io import atomic_write_csv

    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    ids = []
    for p in paths:
        try:
            ids.append(_identity(p))
        except OSError:
            ids.append(None)
    cache_file = None if cache_dir is None else Path(cache_dir) / f"waveform_stats_sr{int(sr)}.csv"
    known = {}
    if cache_file is not None and cache_file.is_file():
        try:
            cached = pd.read_csv(cache_file, dtype={"identity": str})
            known = {r.identity: (r.n, r.sum, r.sumsq) for r in cached.itertuples(index=False)}
        except (OSError, ValueError, AttributeError):
            known = {}
    values = [known.get(key, (np.nan,) * 3) if key is not None else (np.nan,) * 3 for key in ids]
    todo = [i for i, key in enumerate(ids) if key is None or key not in known]
    added = False
    for start in range(0, len(todo), chunk):
        part = todo[start: start + chunk]
        waves, _bad = load_many([paths[i] for i in part], sr=sr, skip_bad_files=skip_bad_files)
        for i, wave in zip(part, waves):
            if wave is None:
                continue  # skipped bad file: NaN statistics
            w = wave.astype(np.float64)
            values[i] = (float(w.size), float(w.sum()), float(np.dot(w, w)))
            if ids[i] is not None:
                known[ids[i]] = values[i]
                added = True
    if cache_file is not None and added:
        rows = pd.DataFrame([(k, *v) for k, v in known.items()], columns=["identity", "n", "sum", "sumsq"])
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_csv(rows, cache_file, overwrite=True, float_format="%.17g")
    out = pd.DataFrame(values, columns=["n", "sum", "sumsq"], dtype=np.float64)
    out.insert(0, "path", paths)
    return out


def waveform_std(paths, cache_dir=None, sr: int = 16000) -> np.ndarray:
    """Standard deviation of each recording's samples, ``sqrt(sumsq / n - (sum / n) ** 2)`` from
    :func:`waveform_statistics` (cached)."""
    stats = waveform_statistics(paths, cache_dir=cache_dir, sr=sr)
    mean = stats["sum"].to_numpy() / stats["n"].to_numpy()
    return np.sqrt(np.maximum(stats["sumsq"].to_numpy() / stats["n"].to_numpy() - mean * mean, 0.0))
