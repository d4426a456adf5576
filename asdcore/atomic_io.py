"""Atomic writes: a file or folder appears whole under its name, or not at all (ARCHITECTURE.md: "Files are
written atomically"; "Nothing from an earlier run is overwritten").

Every writer of the project goes through :func:`atomic_path` (one file) or :func:`atomic_dir` (a folder):
the content is written to a temporary name in the target's own folder (so the final ``os.replace`` is a
rename on one file system, atomic on POSIX and Windows), renamed onto the target on success, and removed
on any failure, interruption included. A killed run therefore never leaves a truncated result, cache entry
or a stray temporary file behind.

An existing target is refused (:class:`~asdcore.errors.ASDError` naming it) unless ``overwrite=True``:
results of a run are written once; caches, unit files that a resumed unit writes again and the run's
own bookkeeping (``units.csv``, ``unit.json``) ask to overwrite.

The helpers :func:`atomic_write_text`, :func:`atomic_write_csv`, :func:`atomic_save_npy` and
:func:`atomic_save_npz` cover the formats the project writes.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from asdcore.errors import ASDError

__all__ = ["atomic_path", "atomic_dir", "atomic_write_text", "atomic_write_csv", "atomic_save_npy",
           "atomic_save_npz"]


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise ASDError(f"{path}: exists already; refusing to overwrite an earlier result (choose a new --out)")


def _make_readable(path: str) -> None:
    """``mkstemp`` / ``mkdtemp`` create 0600 / 0700 entries; results are for everyone to read (umask applies)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask)


@contextlib.contextmanager
def atomic_path(path, overwrite: bool = False):
    """Context manager: yields a temporary :class:`~pathlib.Path` beside ``path`` to write to; on a normal
    exit the temporary file replaces ``path`` (``os.replace``), on an exception it is removed and the
    exception propagates (``path`` is left as it was).

    The temporary name ends with ``path``'s last suffix (``.x.npz.<random>.tmp.npz``), so writers that
    append a suffix when it is missing (``numpy.save``, ``numpy.savez``) write to the yielded name.
    The file exists (empty) when the block starts; a writer may replace or truncate it.

    Raises :class:`~asdcore.errors.ASDError` if ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    _refuse_existing(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        _make_readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path, keep_existing: bool = False):
    """Context manager: yields an empty temporary folder beside ``path``; on a normal exit it is renamed to
    ``path``, on an exception it is removed with its content.

    ``path`` must not exist when the block ends. With ``keep_existing`` a ``path`` that appeared meanwhile
    (another process finished the same folder first) is kept and the temporary folder is discarded;
    the caller checks that folder's content. Otherwise an existing ``path`` raises
    :class:`~asdcore.errors.ASDError`.
    """
    path = Path(path)
    if path.exists() and not keep_existing:
        raise ASDError(f"{path}: exists already; refusing to replace it (remove it or choose another folder)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.partial-")
    try:
        yield Path(tmp)
        _make_readable(tmp)
        try:
            os.replace(tmp, path)
        except OSError:
            if not (keep_existing and path.exists()):
                raise
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path, text: str, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically; refuses an existing file unless
    ``overwrite``."""
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    return path


def atomic_write_csv(frame, path, overwrite: bool = False, **to_csv_kwargs) -> Path:
    """Write a DataFrame as CSV atomically (``index=False`` unless given; see :func:`atomic_write_text`)."""
    to_csv_kwargs.setdefault("index", False)
    return atomic_write_text(path, frame.to_csv(**to_csv_kwargs), overwrite=overwrite)


def atomic_save_npy(path, array, overwrite: bool = False) -> Path:
    """``numpy.save`` to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)
    return path


def atomic_save_npz(path, overwrite: bool = False, compressed: bool = False, **arrays) -> Path:
    """``numpy.savez`` (``savez_compressed`` with ``compressed``) of ``arrays`` to ``path`` atomically."""
    path = Path(path)
    save = np.savez_compressed if compressed else np.savez
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as handle:
            save(handle, **arrays)
    return path
