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

__all__ = ["open_feature_store", "store_paths"]

logger = logging.getLogger(__name__)

#: Bumped when the store's file format changes.
_STORE_VERSION = 1
#: Rows per checksum block (313 x 128 float32 rows: 40 MB per block).
_BLOCK_ROWS = 256


def _set_key(paths: list[str], config: LogMelConfig, channel: int) -> str:
    h = hashlib.sha256()
    h.update(f"{_STORE_VERSION}|{config.key()}|{channel}|{len(paths)}".encode())
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


def _block_checksums(path: str, offset: int, row_bytes: int, n_rows: int) -> list[int]:
    """CRC-32 of each block of ``_BLOCK_ROWS`` rows, read with plain file reads (no memory map, so the
    check adds no resident pages)."""
    sums = []
    block = _BLOCK_ROWS * row_bytes
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
    if verify:
        try:
            sums = _block_checksums(array_path, offset, row_bytes, int(manifest["n_kept"]))
        except (OSError, EOFError) as exc:
            return None, f"unreadable ({exc})"
        if sums != manifest.get("checksums"):
            return None, "checksum mismatch (damaged or changed file)"
    return manifest, None


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
    manifest, reason = _validate(array_path, manifest_path, n, config, verify)
    if manifest is None:
        if reason is not None:
            logger.warning("feature store %s is not valid: %s; rebuilding it", array_path, reason)
        manifest = _build(paths, config, array_path, manifest_path, skip_bad_files, channel, progress,
                          batch_size)
    kept = np.zeros(n, dtype=bool)
    kept[np.asarray(manifest["kept_rows"], dtype=np.int64)] = True
    bad_files = [tuple(b) for b in manifest["bad_files"]]
    if bad_files and not skip_bad_files:
        # the store was built with --skip-bad-files; without it, the first bad file is an error as usual
        from .errors import AudioError

        raise AudioError(bad_files[0][0], bad_files[0][1])
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
