"""One memory-mapped feature array per (front-end configuration, data set), written once in chunks.

At the papers' scale the features do not fit in memory comfortably: the DCASE 2020 log-mels are
~38k clips x 313 x 128 float32 = 6 GB, and a per-clip cache read back whole with ``np.load`` doubles that
with the copies tf.data makes. :func:`open_feature_store` keeps them in **one** ``.npy`` file per
configuration and data set, opened with ``mmap_mode="r"``: trainers and scorers read the rows of one batch
at a time (:func:`asdcore.features.read_rows`), so resident memory stays bounded by a few batches whatever
the data size.

Layout::

    <cache_dir>/<prefix>-<config.key()>-ch<channel>/sets/<set_key>.npy    the array [clips, frames, bins]
    <cache_dir>/<prefix>-<config.key()>-ch<channel>/sets/<set_key>.json   its manifest

``set_key`` hashes the front-end key, the channel and the identity (path, size, mtime) of every clip in
table order, so another configuration or another data set gets another file, and a changed recording a
new one. The array is built under a temporary name from the recordings in chunks of ``batch_size`` clips
(never the whole array in memory), flushed, renamed, and only **then** the manifest is written
atomically. The manifest records the shape, the kept rows (skipped bad files) and a CRC-32 per block of
rows. A store whose manifest is missing (a run killed while writing), whose size or header does not match
the manifest, or whose checksums differ (a damaged disk or a file changed by hand) is rebuilt with a
warning and never read as valid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib

import numpy as np

from .atomic_io import atomic_path, atomic_write_text
from .errors import ASDError
from .estimates import check_free_disk
from .features import FeatureSet, LogMelConfig, _cache_folder, _identity, extract_features

__all__ = ["open_feature_store", "open_ragged_store", "RaggedFeatures", "store_paths"]

logger = logging.getLogger(__name__)

#: Bumped when the store's file format changes.
_STORE_VERSION = 1
#: Rows per checksum block (313 x 128 float32 rows: 40 MB per block).
_BLOCK_ROWS = 256


def _set_key(paths: list[str], config: LogMelConfig, channel: int, kind: str = "fixed") -> str:
    h = hashlib.sha256()
    marker = "" if kind == "fixed" else f"|{kind}"
    h.update(f"{_STORE_VERSION}|{config.key()}|{channel}|{len(paths)}{marker}".encode())
    for p in paths:
        try:
            h.update(_identity(p).encode())
        except OSError:
            h.update(f"missing:{p}".encode())  # extract_features reports the missing file
    return h.hexdigest()[:24]


def store_paths(paths, config: LogMelConfig, cache_dir, channel: int = 0) -> tuple[str, str]:
    """``(array_path, manifest_path)`` of the store of these clips (absolute paths, table order)."""
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    folder = os.path.join(_cache_folder(cache_dir, config, channel), "sets")
    key = _set_key(paths, config, channel)
    return os.path.join(folder, key + ".npy"), os.path.join(folder, key + ".json")


def _block_checksums(path: str, offset: int, row_bytes: int, n_rows: int, block_rows: int = _BLOCK_ROWS) -> list[int]:
    """CRC-32 of each block of ``block_rows`` rows, read with plain file reads (no memory map, so the
    check adds no resident pages)."""
    sums = []
    block = int(block_rows) * row_bytes
    buf = bytearray(block)
    view = memoryview(buf)
    with open(path, "rb") as f:
        f.seek(offset)
        remaining = n_rows * row_bytes
        while remaining > 0:
            want = min(block, remaining)
            got = f.readinto(view[:want])
            if got != want:
                raise EOFError(f"{path}: file ends {remaining - got} bytes early")
            sums.append(zlib.crc32(view[:want]))
            remaining -= want
    return sums


def _checksum_problem(path, offset: int, row_bytes: int, n_rows: int, block_rows: int, manifest: dict):
    """Why the data file does not match the CRC-32 blocks of its manifest, or None when it does."""
    try:
        sums = _block_checksums(path, offset, row_bytes, n_rows, block_rows)
    except (OSError, EOFError) as exc:
        return f"unreadable ({exc})"
    if sums != manifest.get("checksums"):
        return "checksum mismatch (damaged or changed file)"
    return None


def _header_offset(path: str) -> tuple[int, tuple, np.dtype]:
    """Data offset, shape and dtype from the ``.npy`` header (mapping touches no data page)."""
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    if not mapped.flags.c_contiguous:
        raise ValueError("not a C-ordered array")
    return int(mapped.offset), tuple(mapped.shape), mapped.dtype


def _validate(array_path: str, manifest_path: str, n_clips: int, config: LogMelConfig, verify: bool):
    """The manifest if the store is complete and intact, else ``(None, reason)``."""
    if not os.path.exists(manifest_path):
        if os.path.exists(array_path):
            return None, "no manifest (a run was probably killed while writing it)"
        return None, None
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        offset, shape, dtype = _header_offset(array_path)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        return None, f"unreadable ({exc})"
    want_shape = (n_clips, config.n_frames, config.n_mels)
    if manifest.get("version") != _STORE_VERSION or manifest.get("config_key") != config.key():
        return None, "written by another version or configuration"
    if tuple(shape) != want_shape or tuple(manifest.get("shape", ())) != want_shape or dtype != np.float32:
        return None, f"shape {tuple(shape)} {dtype} instead of {want_shape} float32"
    row_bytes = config.n_frames * config.n_mels * 4
    if os.path.getsize(array_path) != offset + n_clips * row_bytes:
        return None, "file size does not match its header (truncated?)"
    problem = _checksum_problem(array_path, offset, row_bytes, int(manifest["n_kept"]), _BLOCK_ROWS,
                                manifest) if verify else None
    return (None, problem) if problem else (manifest, None)


def _valid_or_rebuilt(data_path, validated, build) -> dict:
    """The manifest of a valid store, or of the store ``build()`` writes in place of a missing or invalid one
    (an invalid one is named in a warning with the reason). ``validated`` = ``(manifest or None, reason)``."""
    manifest, reason = validated
    if manifest is None:
        if reason is not None:
            logger.warning("feature store %s is not valid: %s; rebuilding it", data_path, reason)
        manifest = build()
    return manifest


def _kept_and_bad(manifest: dict, n: int, skip_bad_files: bool):
    """``(kept mask of the n clips, bad files)`` restored from a manifest. A store built with
    ``--skip-bad-files`` read without it raises the first bad file's error, as extraction would."""
    kept = np.zeros(n, dtype=bool)
    kept[np.asarray(manifest["kept_rows"], dtype=np.int64)] = True
    bad_files = [tuple(b) for b in manifest["bad_files"]]
    if bad_files and not skip_bad_files:
        from .errors import AudioError

        raise AudioError(bad_files[0][0], bad_files[0][1])
    return kept, bad_files


def open_feature_store(
    table,
    config: LogMelConfig,
    cache_dir,
    skip_bad_files: bool = False,
    channel: int = 0,
    progress: bool = True,
    batch_size: int = 32,
    verify: bool = True,
) -> FeatureSet:
    """Features of every clip of ``table`` as a read-only memory map, built on the first call.

    Parameters
    ----------
    table : pandas.DataFrame or sequence of paths
        The clip table (its ``path`` column) or the paths, in the order the rows are wanted.
    config : LogMelConfig
        Front end; ``n_frames`` must be set (every row has the same shape).
    cache_dir : str or os.PathLike
        Cache root (the layout in the module docstring).
    skip_bad_files, channel, progress, batch_size
        As in :func:`asdcore.features.extract_features`.
    verify : bool
        Check the CRC-32 of every block when opening an existing store (reads the file once, ~1-3 s per GB
        from the page cache); False checks only the manifest, header and size.

    Returns
    -------
    FeatureSet
        ``features`` is a read-only ``numpy.memmap`` ``[n_kept, n_frames, n_mels]``; ``kept`` and
        ``bad_files`` as in :func:`asdcore.features.extract_features` (restored from the manifest).
    """
    if config.n_frames is None:
        raise ASDError(
            "open_feature_store: LogMelConfig.n_frames is None (clips of different lengths); set n_frames "
            "or use asdcore.features.extract_features"
        )
    if cache_dir is None:
        raise ASDError("open_feature_store: a cache_dir is needed (where the memory-mapped store lives)")
    paths = list(table["path"]) if hasattr(table, "columns") else list(table)
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    n = len(paths)
    array_path, manifest_path = store_paths(paths, config, cache_dir, channel)
    manifest = _valid_or_rebuilt(array_path, _validate(array_path, manifest_path, n, config, verify),
                                 lambda: _build(paths, config, array_path, manifest_path, skip_bad_files,
                                                channel, progress, batch_size))
    kept, bad_files = _kept_and_bad(manifest, n, skip_bad_files)
    features = np.load(array_path, mmap_mode="r")[: int(manifest["n_kept"])]
    return FeatureSet(features=features, kept=kept, bad_files=bad_files)


def _build(paths, config, array_path, manifest_path, skip_bad_files, channel, progress, batch_size) -> dict:
    folder = os.path.dirname(array_path)
    os.makedirs(folder, exist_ok=True)
    for stale in (manifest_path, array_path):
        if os.path.exists(stale):
            os.unlink(stale)
    n = len(paths)
    shape = (n, config.n_frames, config.n_mels)
    check_free_disk(folder, int(np.prod(shape)) * 4, f"the feature store for {n} clips", margin=1.05)
    with atomic_path(array_path, overwrite=True) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        result = extract_features(paths, config, cache_dir=None, skip_bad_files=skip_bad_files, channel=channel,
                                  progress=progress, batch_size=batch_size, out=out)
        out.flush()
        offset = out.offset
        del out, result.features
        n_kept = int(result.kept.sum())
        checksums = _block_checksums(tmp, offset, config.n_frames * config.n_mels * 4, n_kept)
    manifest = {
        "version": _STORE_VERSION,
        "config_key": config.key(),
        "shape": list(shape),
        "n_kept": n_kept,
        "kept_rows": np.flatnonzero(result.kept).tolist(),
        "bad_files": [list(b) for b in result.bad_files],
        "block_rows": _BLOCK_ROWS,
        "checksums": checksums,
    }
    atomic_write_text(manifest_path, json.dumps(manifest), overwrite=True)
    return manifest


# ------------------------------------------------------------------------------ clips of different lengths
#: Frames per checksum block of a ragged store (256 clips of 313 frames, as the fixed store's blocks).
_RAGGED_BLOCK_FRAMES = _BLOCK_ROWS * 313
#: Clips transformed and appended to a ragged store at a time.
_RAGGED_CHUNK = 256


class RaggedFeatures:
    """Clips of different lengths stored end to end: ``frames [total_frames, bins]`` (a memory map), clip
    ``i`` at ``frames[starts[i] : starts[i] + lengths[i]]``; behaves like the NaN-padded array
    ``[clips, longest, bins]`` of ``extract_features(..., ragged="pad")`` for the reads the trainers make.

    ``x[rows, idx]`` (integer arrays broadcast together, ``idx`` a frame index below each clip's
    :attr:`lengths`) reads only those frames; ``x[i]`` / ``x[rows]`` / ``np.asarray(x)`` give padded copies.
    Two derived views, without copying a frame:

    - :meth:`shifted`: a constant per clip added to every value on reading (e.g. a level offset in dB);
    - :meth:`looped`: clips shorter than ``min_frames`` repeated up to it (frame ``j`` = frame
      ``j mod length``), their :attr:`lengths` raised to ``min_frames``.
    """

    def __init__(self, frames, starts, lengths, shift=None, min_frames: int = 0):
        self.frames = frames
        self.starts = np.asarray(starts, np.int64)
        self.stored = np.asarray(lengths, np.int64)
        self.shift = np.zeros(len(self.starts), np.float32) if shift is None else np.asarray(shift, np.float32)
        self.min_frames = int(min_frames)
        self.dtype = np.dtype(np.float32)
        self.ndim = 3

    @property
    def lengths(self) -> np.ndarray:
        """Valid frames of each clip (after :meth:`looped`)."""
        return np.maximum(self.stored, self.min_frames)

    @property
    def shape(self) -> tuple:
        longest = int(self.lengths.max()) if len(self.starts) else 0
        return (len(self.starts), longest, int(self.frames.shape[1]))

    def __len__(self) -> int:
        return len(self.starts)

    def _derived(self, **changes) -> "RaggedFeatures":
        state = dict(frames=self.frames, starts=self.starts, lengths=self.stored, shift=self.shift,
                     min_frames=self.min_frames)
        state.update(changes)
        return RaggedFeatures(**state)

    def shifted(self, offsets) -> "RaggedFeatures":
        """The same clips with ``offsets[i]`` (float32) added to every value of clip ``i``."""
        offsets = np.asarray(offsets, np.float32)
        if offsets.shape != (len(self),):
            raise ASDError(f"RaggedFeatures.shifted: {offsets.shape} offsets for {len(self)} clips")
        return self._derived(shift=self.shift + offsets)

    def looped(self, min_frames: int) -> "RaggedFeatures":
        """Clips shorter than ``min_frames`` repeated from their start up to ``min_frames`` frames."""
        if len(self) and self.stored.min() < 1:
            raise ASDError("RaggedFeatures.looped: a clip has no frames; check the recordings (--skip-bad-files)")
        return self._derived(min_frames=max(self.min_frames, int(min_frames)))

    def _gather(self, rows, idx) -> np.ndarray:
        rows, idx = np.broadcast_arrays(np.asarray(rows, np.int64), np.asarray(idx, np.int64))
        if rows.size and (idx.min() < 0 or np.any(idx >= self.lengths[rows])):
            raise ASDError("RaggedFeatures: a frame index beyond its clip's length; crop within lengths")
        flat = (self.starts[rows] + idx % self.stored[rows]).reshape(-1)
        order = np.argsort(flat, kind="stable")  # a forward scan of the file
        out = np.empty((flat.size, self.frames.shape[1]), np.float32)
        out[order] = self.frames[flat[order]]
        out = out.reshape(rows.shape + (self.frames.shape[1],))
        out += self.shift[rows][..., None]
        return out

    def _padded(self, rows) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        out = np.full((len(rows), self.shape[1], self.shape[2]), np.nan, np.float32)
        for j, r in enumerate(rows):
            out[j, : self.lengths[r]] = self._gather(r, np.arange(self.lengths[r]))
        return out

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) == 2:
            return self._gather(*key)
        if isinstance(key, (int, np.integer)):
            return self._padded([int(key)])[0]
        if isinstance(key, slice):
            return self._padded(np.arange(len(self))[key])
        key = np.asarray(key)
        return self._padded(np.flatnonzero(key) if key.dtype == bool else key)

    def __array__(self, dtype=None, copy=None):
        x = self._padded(np.arange(len(self)))
        return x if dtype is None else x.astype(dtype)


def _validate_ragged(data_path, manifest_path, n_clips, config, verify):
    if not os.path.exists(manifest_path):
        if os.path.exists(data_path):
            return None, "no manifest (a run was probably killed while writing it)"
        return None, None
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        size = os.path.getsize(data_path)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        return None, f"unreadable ({exc})"
    if (manifest.get("version") != _STORE_VERSION or manifest.get("config_key") != config.key()
            or manifest.get("kind") != "ragged"):
        return None, "written by another version or configuration"
    lengths = manifest.get("lengths", [])
    total = int(manifest.get("total_frames", -1))
    if (manifest.get("n_clips") != n_clips or len(lengths) != int(manifest.get("n_kept", -1))
            or sum(lengths) != total or manifest.get("bins") != config.n_mels):
        return None, "manifest does not describe these clips"
    if size != total * config.n_mels * 4:
        return None, "file size does not match its manifest (truncated?)"
    problem = _checksum_problem(data_path, 0, config.n_mels * 4, total, _RAGGED_BLOCK_FRAMES,
                                manifest) if verify else None
    return (None, problem) if problem else (manifest, None)


def open_ragged_store(
    table,
    config: LogMelConfig,
    cache_dir,
    skip_bad_files: bool = False,
    channel: int = 0,
    progress: bool = True,
    batch_size: int = 32,
    verify: bool = True,
    wave_affine=None,
) -> FeatureSet:
    """Every frame of every clip of ``table`` (clips of different lengths), memory-mapped, built on the
    first call: the counterpart of :func:`open_feature_store` for ``config.n_frames=None``.

    ``wave_affine``: optional ``(offsets, scales)`` per clip, applied to the waveforms first
    (:func:`asdcore.features.extract_features`); their values are part of the store's key.

    Layout: ``<key>.f32`` holds the frames of all kept clips end to end (float32 ``[total_frames, bins]``,
    no padding), ``<key>.json`` the manifest: the per-clip lengths, the kept rows, the bad files and a CRC-32
    per block of frames. Written in chunks of clips, then the manifest; an invalid store (no manifest, a
    size or checksum that does not match, another configuration) is rebuilt with a warning, as in
    :func:`open_feature_store`.

    Returns
    -------
    FeatureSet
        ``features`` is a :class:`RaggedFeatures` (reads exactly what ``extract_features(..., ragged="pad")``
        holds, without the padding and without the array in memory); ``lengths`` the frames of each clip.
    """
    if config.n_frames is not None:
        raise ASDError("open_ragged_store: LogMelConfig.n_frames is set; use open_feature_store")
    if cache_dir is None:
        raise ASDError("open_ragged_store: a cache_dir is needed (where the memory-mapped store lives)")
    paths = list(table["path"]) if hasattr(table, "columns") else list(table)
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    folder = os.path.join(_cache_folder(cache_dir, config, channel), "sets")
    kind = "ragged"
    if wave_affine is not None:
        affine = np.ascontiguousarray(np.stack([np.asarray(a, np.float64).reshape(-1) for a in wave_affine]))
        kind += "|affine" + hashlib.sha256(affine.tobytes()).hexdigest()[:16]
    key = _set_key(paths, config, channel, kind=kind)
    data_path, manifest_path = os.path.join(folder, key + ".f32"), os.path.join(folder, key + ".json")
    manifest = _valid_or_rebuilt(data_path, _validate_ragged(data_path, manifest_path, len(paths), config, verify),
                                 lambda: _build_ragged(paths, config, data_path, manifest_path, skip_bad_files,
                                                       channel, progress, batch_size, wave_affine))
    kept, bad_files = _kept_and_bad(manifest, len(paths), skip_bad_files)
    lengths = np.asarray(manifest["lengths"], np.int64)
    total = int(manifest["total_frames"])
    frames = (np.memmap(data_path, dtype=np.float32, mode="r", shape=(total, config.n_mels)) if total
              else np.zeros((0, config.n_mels), np.float32))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else lengths
    return FeatureSet(features=RaggedFeatures(frames, starts, lengths), kept=kept, bad_files=bad_files,
                      lengths=lengths)


def _build_ragged(paths, config, data_path, manifest_path, skip_bad_files, channel, progress, batch_size,
                  wave_affine=None) -> dict:
    folder = os.path.dirname(data_path)
    os.makedirs(folder, exist_ok=True)
    for stale in (manifest_path, data_path):
        if os.path.exists(stale):
            os.unlink(stale)
    n = len(paths)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="features (store)", unit="clip")
    kept_rows, lengths, bad_files = [], [], []
    try:
        with atomic_path(data_path, overwrite=True) as tmp, open(tmp, "wb") as out:
            for first in range(0, n, _RAGGED_CHUNK):
                chunk = paths[first: first + _RAGGED_CHUNK]
                affine = None if wave_affine is None else [np.asarray(a)[first: first + _RAGGED_CHUNK]
                                                           for a in wave_affine]
                part = extract_features(chunk, config, cache_dir=None, skip_bad_files=skip_bad_files,
                                        channel=channel, progress=False, batch_size=batch_size, ragged="pad",
                                        wave_affine=affine)
                if first == 0 and len(part.lengths):  # the whole store, estimated from the first chunk
                    need = float(np.mean(part.lengths)) * config.n_mels * 4 * n
                    check_free_disk(folder, need, f"the feature store for {n} clips", margin=1.05)
                for j, row in enumerate(np.flatnonzero(part.kept)):
                    out.write(np.ascontiguousarray(part.features[j, : part.lengths[j]], np.float32).tobytes())
                    kept_rows.append(first + int(row))
                    lengths.append(int(part.lengths[j]))
                bad_files += [list(b) for b in part.bad_files]
                if bar is not None:
                    bar.update(len(chunk))
            out.flush()
            total = int(sum(lengths))
            checksums = _block_checksums(tmp, 0, config.n_mels * 4, total, _RAGGED_BLOCK_FRAMES)
    finally:
        if bar is not None:
            bar.close()
    manifest = {
        "version": _STORE_VERSION,
        "kind": "ragged",
        "config_key": config.key(),
        "n_clips": n,
        "n_kept": len(kept_rows),
        "bins": config.n_mels,
        "total_frames": total,
        "kept_rows": kept_rows,
        "lengths": lengths,
        "bad_files": bad_files,
        "block_frames": _RAGGED_BLOCK_FRAMES,
        "checksums": checksums,
    }
    atomic_write_text(manifest_path, json.dumps(manifest), overwrite=True)
    return manifest
