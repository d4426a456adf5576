"""Log-mel features, batched; on-disk cache; per-bin normalisation; crops and frame stacks.

The reference front end is the one of the sub-cluster AdaCos code (REFERENCE.md section 3): 16 kHz,
window 1024, hop 512, symmetric Hann window (``np.hanning``), centred STFT with reflect padding, power
spectrum, 128-bin Slaney mel filterbank 0-8 kHz (``librosa.filters.mel(norm="slaney", htk=False)``),
``10 * log10(max(S, 1e-10))``, and the last 313 frames kept for longer clips (313 x 128 for 10 s).
Every parameter lives in :class:`LogMelConfig`, so the other front ends are one call away:

- DCASE baseline / Fujimura AE: ``LogMelConfig(fmin=50, fmax=7800)`` then ``stack_frames(x, 5)``;
- Fujimura SerialOE input: ``LogMelConfig(n_fft=2048, hop_length=256, n_mels=224, fmin=50, fmax=7800,
  power=1.0, log=False, n_frames=None)`` (magnitude, no log, as the public SerialOE code).

Computation (:func:`compute_logmel`): a batch of equal-length waves is reflect-padded, framed with a
strided view (only the frames that are kept are materialised), windowed in float32, transformed with
``scipy.fft.rfft``, squared and multiplied by the sparse mel basis; chunks of a clip or two run on
several threads (scipy.fft and numpy release the GIL).

Cache layout (:func:`extract_features`)::

    <cache_dir>/<prefix>-<config.key()>-ch<channel>/<h[:2]>/<h>.npy

where ``h = sha1(absolute path | size | mtime_ns)`` is the file's identity, one float32 ``[frames, bins]``
array per clip (160 KB for 313 x 128; the 40k clips of DCASE 2020 make 6.4 GB in 40k files spread over
256 sub-folders). Files are written to a temporary name then ``os.replace``-d, so an interrupted run never
leaves a half-written entry; a changed file (size or mtime) gets a new entry, a changed parameter a new
folder. A second run only ``stat``-s the recordings and never opens them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.fft
import scipy.signal

from .atomic_io import atomic_save_npy, atomic_save_npz
from .audio import fit_length, load_audio
from .errors import ASDError, AudioError
from .file_rows import file_source, read_file_rows

__all__ = [
    "LogMelConfig",
    "FeatureSet",
    "compute_logmel",
    "extract_features",
    "Normalizer",
    "StandardisedView",
    "read_rows",
    "crops",
    "segment_waveform",
    "stack_frames",
    "valid_frames",
]

logger = logging.getLogger(__name__)

#: Bumped whenever the computation changes in a way that changes cached values.
_ALGORITHM_VERSION = 1


@dataclasses.dataclass(frozen=True)
class LogMelConfig:
    """Every parameter of the (log-)mel front end; defaults = sub-cluster AdaCos (REFERENCE.md section 3).

    Attributes
    ----------
    sr : int
        Sample rate the recordings are read at (resampled when different).
    n_fft : int
        FFT length (1024 = 64 ms at 16 kHz).
    hop_length : int
        Frame shift (512 = 32 ms).
    win_length : int or None
        Window length, centred inside ``n_fft`` as librosa does; None = ``n_fft``.
    n_mels : int
        Number of mel bins.
    fmin, fmax : float
        Mel filterbank band edges in Hz (``fmax`` None = ``sr / 2``).
    window : str
        ``"hann_symmetric"`` (``np.hanning``, the reference), or any ``scipy.signal.get_window`` name,
        periodic, or ``"<name>_symmetric"`` for its symmetric form.
    power : float
        Exponent of the magnitude spectrum (2 = power, 1 = magnitude).
    log : bool
        ``10 * log10(max(S, floor))`` when True, the linear mel spectrum otherwise.
    floor : float
        Floor inside the log (1e-10 = -100 dB); keeps silent clips finite.
    center : bool
        Centre frames on ``t * hop_length`` by padding ``n_fft // 2`` on both sides.
    pad_mode : str
        ``numpy.pad`` mode of the centre padding ("reflect" pinned, see REFERENCE.md section 8).
    n_frames : int or None
        Keep the last ``n_frames`` frames (313 = 10 s); shorter clips are repeat-padded first
        (:func:`asdcore.audio.fit_length`). None keeps all frames.
    mel_norm : str or None
        ``norm`` of ``librosa.filters.mel`` ("slaney" = area normalisation).
    htk : bool
        HTK mel scale instead of Slaney's.
    """

    sr: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    win_length: int | None = None
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = 8000.0
    window: str = "hann_symmetric"
    power: float = 2.0
    log: bool = True
    floor: float = 1e-10
    center: bool = True
    pad_mode: str = "reflect"
    n_frames: int | None = 313
    mel_norm: str | None = "slaney"
    htk: bool = False

    def __post_init__(self):
        # canonical types, so that e.g. fmin=0 and fmin=0.0 give the same key()
        for name in ("sr", "n_fft", "hop_length", "n_mels"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("win_length", "n_frames"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("fmin", "power", "floor"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.fmax is not None:
            object.__setattr__(self, "fmax", float(self.fmax))
        object.__setattr__(self, "log", bool(self.log))
        object.__setattr__(self, "center", bool(self.center))
        object.__setattr__(self, "htk", bool(self.htk))
        win = self.n_fft if self.win_length is None else self.win_length
        if self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ASDError("LogMelConfig: n_fft, hop_length and n_mels must be positive integers")
        if not 0 < win <= self.n_fft:
            raise ASDError(f"LogMelConfig: win_length {win} must be between 1 and n_fft={self.n_fft}")
        fmax = self.sr / 2 if self.fmax is None else self.fmax
        if not 0 <= self.fmin < fmax <= self.sr / 2:
            raise ASDError(
                f"LogMelConfig: need 0 <= fmin < fmax <= sr/2, got fmin={self.fmin}, fmax={self.fmax}, "
                f"sr={self.sr}; lower fmax or raise sr"
            )
        if self.n_frames is not None and self.n_frames <= 0:
            raise ASDError("LogMelConfig: n_frames must be positive or None")
        if self.log and not self.floor > 0:
            raise ASDError("LogMelConfig: floor must be > 0 when log=True")

    def key(self) -> str:
        """Stable 16-hex-digit hash of every field (and the algorithm version); names cache folders."""
        fields = dataclasses.asdict(self)
        fields["_version"] = _ALGORITHM_VERSION
        text = json.dumps(fields, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def frames_for(self, n_samples: int) -> int:
        """Number of STFT frames of a wave of ``n_samples`` samples (before ``n_frames`` is applied)."""
        if self.center:
            return 1 + n_samples // self.hop_length
        return max(0, 1 + (n_samples - self.n_fft) // self.hop_length)

    def min_samples(self) -> int | None:
        """Fewest samples giving ``n_frames`` frames (None when ``n_frames`` is None)."""
        if self.n_frames is None:
            return None
        if self.center:
            return (self.n_frames - 1) * self.hop_length
        return self.n_fft + (self.n_frames - 1) * self.hop_length


@functools.lru_cache(maxsize=16)
def _window(name: str, win_length: int, n_fft: int) -> np.ndarray:
    if name.endswith("_symmetric"):
        w = scipy.signal.get_window(name[: -len("_symmetric")], win_length, fftbins=False)
    else:
        w = scipy.signal.get_window(name, win_length, fftbins=True)
    if win_length < n_fft:
        left = (n_fft - win_length) // 2
        w = np.pad(w, (left, n_fft - win_length - left))
    w = w.astype(np.float32)
    w.setflags(write=False)
    return w


@functools.lru_cache(maxsize=16)
def mel_basis(sr, n_fft, n_mels, fmin, fmax, htk, norm):
    """``librosa.filters.mel`` as a float32 CSR matrix ``[n_mels, 1 + n_fft // 2]`` (cached).

    The filterbank is about 1 % non-zero (each FFT bin feeds at most two triangles), so the sparse
    product is cheaper than a dense one and needs no BLAS threads (which compete with the worker
    threads of :func:`compute_logmel`).
    """
    import librosa
    import scipy.sparse

    basis = librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, dtype=np.float32
    )
    return scipy.sparse.csr_matrix(basis)


def _logmel_chunk(waves: np.ndarray, c: LogMelConfig, first: int, out: np.ndarray) -> None:
    """Kernel of :func:`compute_logmel`: clips ``waves [b, samples]`` into ``out [b, frames, n_mels]``."""
    n_keep = out.shape[1]
    if c.center:
        pad = c.n_fft // 2
        padded = np.pad(waves, ((0, 0), (pad, pad)), mode=c.pad_mode)
    else:
        padded = waves
    frames = np.lib.stride_tricks.sliding_window_view(padded, c.n_fft, axis=1)[
        :, first * c.hop_length :: c.hop_length
    ][:, :n_keep]
    window = _window(c.window, c.n_fft if c.win_length is None else c.win_length, c.n_fft)
    spec = scipy.fft.rfft(frames * window, axis=-1, workers=1, overwrite_x=True)
    mag = np.abs(spec)  # float32 |X|, [b, frames, bins]
    del spec
    if c.power == 2.0:
        np.square(mag, out=mag)
    elif c.power != 1.0:
        np.power(mag, np.float32(c.power), out=mag)
    basis = mel_basis(c.sr, c.n_fft, c.n_mels, float(c.fmin), c.fmax, c.htk, c.mel_norm)
    b, f, k = mag.shape
    mel = basis @ mag.reshape(b * f, k).T  # [n_mels, b * frames], C-contiguous
    if c.log:
        np.maximum(mel, np.float32(c.floor), out=mel)
        np.log10(mel, out=mel)
        mel *= np.float32(10.0)
    out[...] = mel.reshape(c.n_mels, b, f).transpose(1, 2, 0)


def compute_logmel(waves: np.ndarray, config: LogMelConfig = LogMelConfig(), workers: int | None = None):
    """(Log-)mel spectrograms of a batch of equal-length waves.

    ``S[t, m] = sum_k M[m, k] |FFT(w * x_t)[k]|^power``, ``X = 10 log10(max(S, floor))`` (REFERENCE.md
    section 3), with ``x_t`` the frame ``t`` of the (centre-padded) wave, ``w`` the window and ``M`` the
    mel basis of ``librosa.filters.mel``; equal to ``librosa.feature.melspectrogram`` with the same
    settings followed by the same log. Only the kept frames are transformed. Clips run one per task on
    ``workers`` threads (numpy, scipy.fft and scipy.sparse release the GIL).

    Parameters
    ----------
    waves : numpy.ndarray
        ``[n, samples]`` (a 1-D wave counts as one clip).
    config : LogMelConfig
    workers : int, optional
        Threads; default ``os.cpu_count()``.

    Returns
    -------
    numpy.ndarray
        float32 ``[n, frames, n_mels]``; ``frames = config.n_frames`` (last frames kept; shorter waves
        repeat-padded) or all frames when ``n_frames`` is None.
    """
    waves = np.asarray(waves, dtype=np.float32)
    if waves.ndim == 1:
        waves = waves[None]
    if waves.ndim != 2:
        raise ValueError(f"waves must be [n, samples], got shape {waves.shape}")
    n_keep = _frames_kept(waves.shape[1], config)
    out = np.empty((waves.shape[0], n_keep, config.n_mels), dtype=np.float32)
    _transform_into(list(waves), list(out), config, workers)
    return out


def _frames_kept(n_samples: int, c: LogMelConfig) -> int:
    if c.n_frames is not None:
        return c.n_frames
    total = c.frames_for(n_samples)
    if total <= 0:
        raise ValueError(f"waves of {n_samples} samples are shorter than n_fft={c.n_fft}")
    return total


def _transform_into(waves: list, dests: list, c: LogMelConfig, workers: int | None) -> None:
    """Features of each 1-D wave written into its ``[frames, n_mels]`` destination (one clip per task).

    Working clip by clip into the caller's rows avoids stacking a batch into one large fresh array:
    the per-clip temporaries (a few MB) are reused by the allocator, large fresh arrays are not.
    """
    workers = workers or os.cpu_count() or 1

    def _run(j):
        wave = np.asarray(waves[j], dtype=np.float32)
        if c.n_frames is not None and wave.shape[0] < c.min_samples():
            wave = fit_length(wave, c.min_samples())
        total = c.frames_for(wave.shape[0])
        if total <= 0:
            raise ValueError(f"waves of {wave.shape[0]} samples are shorter than n_fft={c.n_fft}")
        first = 0 if c.n_frames is None else total - c.n_frames
        _logmel_chunk(wave[None], c, first, dests[j][None])

    if workers <= 1 or len(waves) <= 1:
        for j in range(len(waves)):
            _run(j)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_run, range(len(waves))))


@dataclasses.dataclass
class FeatureSet:
    """Result of :func:`extract_features`.

    Attributes
    ----------
    features : numpy.ndarray
        float32 ``[n_kept, frames, bins]``, rows in table order.
    kept : numpy.ndarray
        bool mask over the table rows (False = skipped bad file); ``table[kept]`` matches ``features``.
    bad_files : list of (str, str)
        ``(path, reason)`` of skipped files.
    lengths : numpy.ndarray of int, optional
        Frames of each kept clip (``n_frames`` for all when it is set); with ``ragged="pad"`` the rows
        of ``features`` after a clip's length are NaN.
    """

    features: np.ndarray
    kept: np.ndarray
    bad_files: list
    lengths: np.ndarray | None = None


def _identity(path: str) -> str:
    st = os.stat(path)
    return hashlib.sha1(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()


def _atomic_save(path: str, array: np.ndarray) -> None:
    atomic_save_npy(path, array, overwrite=True)  # a cache entry: another process may have written it too


def _cache_folder(cache_dir, config, channel) -> str:
    prefix = "logmel" if config.log else "mel"
    return os.path.join(os.path.abspath(os.fspath(cache_dir)), f"{prefix}-{config.key()}-ch{channel}")


@contextlib.contextmanager
def _closing(bar):
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


def _load_cached(path: str):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):  # damaged entry: recompute
        return None


def extract_features(
    table,
    config: LogMelConfig = LogMelConfig(),
    cache_dir=None,
    skip_bad_files: bool = False,
    channel: int = 0,
    progress: bool = True,
    batch_size: int = 32,
    n_threads: int | None = None,
    out: np.ndarray | None = None,
    ragged: str = "error",
    wave_affine=None,
) -> FeatureSet:
    """Features of every clip of a clip table, batched, optionally cached on disk.

    Parameters
    ----------
    table : pandas.DataFrame or sequence of paths
        The clip table (its ``path`` column is used) or the paths themselves.
    config : LogMelConfig
    cache_dir : str or os.PathLike, optional
        Cache root (layout in the module docstring); None disables the cache.
    skip_bad_files : bool
        False: a bad recording raises :class:`asdcore.errors.AudioError`. True: it is skipped with one
        warning line, left out of ``features`` and listed in ``bad_files``.
    channel : int
        Channel read from multi-channel files.
    progress : bool
        Show a tqdm progress bar (clips).
    batch_size : int
        Clips read and transformed together.
    n_threads : int, optional
        Threads for reading audio and cache files (default ``min(8, os.cpu_count())``) and for the
        transform (default ``os.cpu_count()``).
    out : numpy.ndarray, optional
        A preallocated float32 ``[len(table), n_frames, n_mels]`` array (e.g. a writable memory map, see
        :mod:`asdcore.feature_store`) filled in place; needs ``config.n_frames``. ``features`` is then
        ``out[:n_kept]``.
    ragged : {"error", "pad"}
        Only with ``config.n_frames=None`` (all frames of every clip) and clips of different lengths:
        ``"error"`` raises; ``"pad"`` stacks them into ``[n, longest, bins]`` with NaN after each
        clip's own frames (lengths in ``FeatureSet.lengths``, or from the array by
        :func:`valid_frames`).
    wave_affine : (offsets, scales), optional
        Two arrays aligned with the clips: each waveform becomes ``(wave - offset) / scale`` before the
        transform (e.g. standardised to zero mean and unit variance by its machine's statistics). Not
        cached per file (``cache_dir`` is then ignored; a feature store keys the whole set instead).

    Returns
    -------
    FeatureSet
    """
    if ragged not in ("error", "pad"):
        raise ASDError(f"extract_features: ragged={ragged!r}; use 'error' or 'pad'")
    if hasattr(table, "columns"):
        if "path" not in table.columns:
            raise ASDError(
                "extract_features: the clip table has no 'path' column; build it with asdcore.layouts"
            )
        paths = list(table["path"])
    else:
        paths = list(table)
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    n = len(paths)
    io_threads = n_threads or min(8, os.cpu_count() or 1)
    workers = n_threads or os.cpu_count() or 1
    if wave_affine is not None:
        offsets, scales = (np.asarray(a, np.float64).reshape(-1) for a in wave_affine)
        if len(offsets) != n or len(scales) != n or not np.all(scales > 0):
            raise ASDError(f"extract_features: wave_affine needs {n} offsets and {n} positive scales")
        cache_dir = None
    folder = None if cache_dir is None else _cache_folder(cache_dir, config, channel)

    # Output rows are filled in place when the frame count is known (n_frames set): no second copy
    # of a data set that may take several GB.
    fixed = config.n_frames is not None
    if out is not None:
        if not fixed or out.shape != (n, config.n_frames, config.n_mels) or out.dtype != np.float32:
            raise ASDError(
                f"extract_features: out must be float32 {(n, config.n_frames, config.n_mels)} "
                f"(got {out.dtype} {out.shape}) and config.n_frames must be set"
            )
    elif fixed:
        out = np.empty((n, config.n_frames, config.n_mels), dtype=np.float32)
    rows: list = [None] * n  # only used when n_frames is None
    done = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    entries: list = [None] * n
    if folder is not None:
        for i, p in enumerate(paths):
            try:
                h = _identity(p)
            except OSError:
                continue  # load_audio reports the missing file
            entries[i] = os.path.join(folder, h[:2], h + ".npy")

    def _store(i, arr):
        if fixed:
            if not np.may_share_memory(arr, out):
                out[i] = arr
        else:
            rows[i] = arr
        done[i] = True

    def _from_cache(i):
        arr = _load_cached(entries[i])
        if arr is not None and (not fixed or arr.shape == out.shape[1:]):
            _store(i, arr)

    def _read(i):
        try:
            wave = load_audio(paths[i], sr=config.sr, channel=channel)
        except AudioError as exc:
            return exc
        if wave_affine is None:
            return wave
        return ((wave - offsets[i]) / scales[i]).astype(np.float32)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="features", unit="clip")
    n_padded = 0
    with ThreadPoolExecutor(max_workers=io_threads) as pool, _closing(bar):
        cached = [i for i in range(n) if entries[i] is not None and os.path.exists(entries[i])]
        list(pool.map(_from_cache, cached))
        todo = [i for i in range(n) if not done[i]]
        if bar is not None:
            bar.update(n - len(todo))
        chunks = [todo[s : s + batch_size] for s in range(0, len(todo), batch_size)]
        writes = []
        pending = [pool.submit(_read, i) for i in chunks[0]] if chunks else []
        for c_idx, chunk in enumerate(chunks):
            loaded = [f.result() for f in pending]
            # read the next batch while this one is transformed
            nxt = chunks[c_idx + 1] if c_idx + 1 < len(chunks) else []
            pending = [pool.submit(_read, i) for i in nxt]
            for i, w in zip(chunk, loaded):
                if isinstance(w, AudioError):
                    if not skip_bad_files:
                        for f in pending:
                            f.cancel()
                        raise w
                    reasons[i] = w.reason
                    logger.warning("skipping bad file %s: %s", paths[i], w.reason)
            items = [(i, w) for i, w in zip(chunk, loaded) if not isinstance(w, AudioError)]
            if fixed:
                n_padded += sum(len(w) < config.min_samples() for _, w in items)
                dests = [out[i] for i, _ in items]
            else:
                dests = [
                    np.empty((_frames_kept(len(w), config), config.n_mels), np.float32) for _, w in items
                ]
            _transform_into([w for _, w in items], dests, config, workers)
            for (i, _), dest in zip(items, dests):
                _store(i, dest)
                if entries[i] is not None:
                    writes.append(pool.submit(_atomic_save, entries[i], dest))
            if bar is not None:
                bar.update(len(chunk))
        for fut in writes:
            fut.result()
    if n_padded:
        logger.warning(
            "%d clip(s) shorter than %d samples were repeat-padded (asdcore.audio.fit_length)",
            n_padded,
            config.min_samples(),
        )

    kept = done.copy()
    keep_idx = np.flatnonzero(kept)
    if fixed:
        # compact in place (rows only move up), then drop the tail: no second full-size array
        for j, i in enumerate(keep_idx):
            if i != j:
                out[j] = out[i]
        features = out[: len(keep_idx)]
        lengths = np.full(len(keep_idx), config.n_frames, np.int64)
    else:
        shapes = {rows[i].shape for i in keep_idx}
        lengths = np.array([rows[i].shape[0] for i in keep_idx], np.int64)
        if len(shapes) > 1 and ragged == "pad":
            features = np.full((len(keep_idx), int(lengths.max()), config.n_mels), np.nan, np.float32)
            for j, i in enumerate(keep_idx):
                features[j, : lengths[j]] = rows[i]
        elif len(shapes) > 1:
            raise ASDError(
                f"clips give different frame counts {sorted(shapes)[:3]}; set LogMelConfig.n_frames "
                "(e.g. 313) to keep the same number of frames of every clip, or pass ragged='pad'"
            )
        elif len(keep_idx):
            features = np.stack([rows[i] for i in keep_idx]).astype(np.float32, copy=False)
        else:
            features = np.empty((0, 0, config.n_mels), dtype=np.float32)
    bad_files = [(paths[i], reasons[i]) for i in sorted(reasons)]
    return FeatureSet(features=features, kept=kept, bad_files=bad_files, lengths=lengths)


def valid_frames(features) -> np.ndarray:
    """Frames of each clip of ``[n, frames, bins]`` features before its NaN padding (``ragged="pad"``).

    A clip's length is the index of its first frame whose bins are all NaN (all frames when none is).
    A store of clips of different lengths (:class:`asdcore.feature_store.RaggedFeatures`) knows them.
    """
    if isinstance(getattr(features, "lengths", None), np.ndarray):
        return np.array(features.lengths, np.int64)
    x = np.asarray(features)
    pad = np.isnan(x).all(axis=2)
    return np.where(pad.any(axis=1), pad.argmax(axis=1), x.shape[1]).astype(np.int64)


class Normalizer:
    """Per-bin standardisation ``(x - mean_b) / std_b`` (REFERENCE.md section 3).

    ``mean_b`` and ``std_b`` are the mean and (population) standard deviation of bin ``b`` over every
    frame of every clip given to :meth:`fit` (sub-cluster AdaCos: all training clips of all machine
    types). Standard deviations below ``eps`` are replaced by 1 so constant bins stay finite.
    """

    def __init__(self, mean=None, std=None, eps: float = 1e-8):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        self.eps = float(eps)

    def fit(self, features, chunk: int = 1024, rows=None) -> "Normalizer":
        """Estimate mean/std over all axes but the last (bins); float64 sums in chunks of clips.

        ``rows`` (indices or a boolean mask over the first axis) restricts the fit to those clips without
        copying them: with a memory-mapped ``features`` only ``chunk`` clips are in memory at a time.
        """
        x = features if isinstance(features, np.ndarray) else np.asarray(features)
        if rows is not None:
            rows = np.asarray(rows)
            rows = np.flatnonzero(rows) if rows.dtype == bool else np.sort(rows.astype(np.int64))
        else:
            rows = np.arange(x.shape[0] if x.ndim >= 2 else 1)
        bins = x.shape[-1] if x.ndim >= 2 else 1

        def _chunks():
            for s in range(0, len(rows), chunk):
                part = x[rows[s : s + chunk]] if x.ndim >= 2 else x.reshape(1, -1)
                yield part.reshape(part.shape[0], -1, bins)

        frames = int(np.prod(x.shape[1:-1])) if x.ndim >= 2 else x.size
        count = len(rows) * frames
        if count == 0:
            raise ASDError("Normalizer.fit: no frames given; check that the training table is not empty")
        total = np.zeros(bins)
        for part in _chunks():
            total += part.sum(axis=(0, 1), dtype=np.float64)
        mean = total / count
        sq = np.zeros(bins)
        for part in _chunks():
            d = part.astype(np.float64) - mean
            sq += (d * d).sum(axis=(0, 1))
        std = np.sqrt(sq / count)
        self.mean, self.std = mean, np.where(std < self.eps, 1.0, std)
        return self

    def transform(self, features) -> np.ndarray:
        """Standardised float32 copy of ``features`` (last axis = bins)."""
        if self.mean is None:
            raise ASDError("Normalizer.transform called before fit; call fit or Normalizer.load first")
        x = np.asarray(features, dtype=np.float32)
        return ((x - self.mean.astype(np.float32)) / self.std.astype(np.float32)).astype(np.float32)

    def fit_transform(self, features) -> np.ndarray:
        return self.fit(features).transform(features)

    def view(self, features) -> "StandardisedView":
        """A lazy standardised view of ``features`` (nothing is copied until rows are read)."""
        if self.mean is None:
            raise ASDError("Normalizer.view called before fit; call fit or Normalizer.load first")
        return StandardisedView(features, self)

    def save(self, path) -> None:
        """Write ``mean``, ``std`` and ``eps`` to an ``.npz`` file (atomically)."""
        if self.mean is None:
            raise ASDError("Normalizer.save called before fit")
        atomic_save_npz(path, overwrite=True, mean=self.mean, std=self.std, eps=np.float64(self.eps))

    @classmethod
    def load(cls, path) -> "Normalizer":
        with np.load(os.fspath(path)) as d:
            return cls(mean=d["mean"], std=d["std"], eps=float(d["eps"]))


def read_rows(features, rows) -> np.ndarray:
    """``features[rows]`` as float32, read in ascending row order and returned in ``rows``' order.

    Reading a memory map in ascending order turns random access into a forward scan of the file; the
    original (e.g. shuffled) order is restored afterwards, so a batch's order, and with it the mixup
    partners, stays random. A whole-file float32 memory map (a feature store) is read with positional reads
    straight into the batch (:mod:`asdcore.file_rows`: no page faults, the interpreter lock released while
    the disk reads); anything else with NumPy's indexing.
    """
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows),) + tuple(features.shape[1:]), dtype=np.float32)
    source = file_source(features)
    if source is not None and len(rows) and rows.min() >= 0 and rows.max() < len(features):
        read_file_rows(source, rows, out)
        return out
    order = np.argsort(rows, kind="stable")
    out[order] = features[rows[order]]
    return out


class StandardisedView:
    """``features`` standardised row by row on reading: ``view[rows]`` is ``normalizer.transform(features[rows])``.

    Lets trainers and scorers read batches from a memory-mapped feature store
    (:mod:`asdcore.feature_store`) without a standardised copy of the whole data set in memory.
    Indexing by an integer array reads the rows in ascending order and returns them in the order asked.
    """

    def __init__(self, features, normalizer: Normalizer):
        self.features = features
        self.normalizer = normalizer
        self.shape = tuple(features.shape)
        self.dtype = np.dtype(np.float32)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (np.ndarray, list)):
            index = np.asarray(index)
            rows = read_rows(self.features, np.flatnonzero(index) if index.dtype == bool else index)
        else:
            rows = np.asarray(self.features[index], dtype=np.float32)
        return self.normalizer.transform(rows)

    def __array__(self, dtype=None, copy=None):
        whole = self.normalizer.transform(self.features)
        return whole if dtype is None else whole.astype(dtype)


def _even_starts(length: int, size: int, count: int, what: str) -> np.ndarray:
    if length < size:
        raise ASDError(
            f"{what}: input of length {length} is shorter than one crop ({size}); use shorter crops"
        )
    return np.round(np.linspace(0, length - size, count)).astype(np.int64)


def crops(features, n_crops: int = 10, crop_frames: int = 256) -> np.ndarray:
    """Evenly spaced, overlapping crops along time (Kuroyanagi et al.: 10 crops of 256 frames, scores
    averaged; REFERENCE.md section 3).

    Crop ``c`` starts at frame ``round(c * (frames - crop_frames) / (n_crops - 1))`` (first crop at the
    start, last crop at the end; for 313 frames the starts are 0, 6, 13, ..., 57).

    Parameters
    ----------
    features : numpy.ndarray
        ``[n, frames, bins]``.

    Returns
    -------
    numpy.ndarray
        ``[n, n_crops, crop_frames, bins]`` (a copy).
    """
    x = np.asarray(features)
    starts = _even_starts(x.shape[1], crop_frames, n_crops, "crops")
    idx = starts[:, None] + np.arange(crop_frames)[None, :]
    return x[:, idx]


def segment_waveform(wave, sr: int = 16000, seconds: float = 4.0, n_segments: int = 7) -> np.ndarray:
    """Evenly spaced overlapping waveform segments (Fujimura et al.: inference on seven 4 s crops with
    75 % overlap of a 10 s clip, scores averaged; REFERENCE.md section 3).

    Segment ``s`` starts at sample ``round(s * (samples - L) / (n_segments - 1))`` with
    ``L = round(seconds * sr)``; for 10 s at 16 kHz the starts are 0, 1, ..., 6 s (hop 1 s = 25 % of 4 s).

    Parameters
    ----------
    wave : numpy.ndarray
        ``[samples]`` or ``[n, samples]``.

    Returns
    -------
    numpy.ndarray
        ``[n_segments, L]`` or ``[n, n_segments, L]``.
    """
    x = np.asarray(wave)
    seg = int(round(seconds * sr))
    starts = _even_starts(x.shape[-1], seg, n_segments, "segment_waveform")
    idx = starts[:, None] + np.arange(seg)[None, :]
    return x[..., idx]


def stack_frames(features, context: int = 5) -> np.ndarray:
    """Concatenate ``context`` consecutive frames (DCASE 2020/2021 baselines and Fujimura AE: 5 frames of
    128 bins = 640 values; REFERENCE.md section 3).

    Output vector ``t`` is ``[x[t], x[t+1], ..., x[t+context-1]]`` (frame-major, as the baseline's
    ``vector_array[:, bins*k : bins*(k+1)] = log_mel[:, k : k+n_vectors].T``).

    Parameters
    ----------
    features : numpy.ndarray
        ``[n, frames, bins]``.

    Returns
    -------
    numpy.ndarray
        ``[n, frames - context + 1, context * bins]``.
    """
    x = np.asarray(features)
    n, frames, bins = x.shape
    if frames < context:
        raise ASDError(f"stack_frames: {frames} frames are fewer than context={context}")
    view = np.lib.stride_tricks.sliding_window_view(x, context, axis=1)  # [n, F', bins, context]
    return np.ascontiguousarray(view.transpose(0, 1, 3, 2)).reshape(n, frames - context + 1, context * bins)
