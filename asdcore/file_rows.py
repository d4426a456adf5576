"""Rows of a memory-mapped ``.npy`` read with positional reads instead of page faults (issue 13).

Indexing a ``np.memmap`` with a batch of rows copies them through the page tables: every 4 KB page is
mapped by a page fault on first touch, and when the page is not in the page cache the fault waits for the
disk *while holding Python's global interpreter lock* (the copy runs inside NumPy), so the prefetching
threads of the input pipeline and the training loop wait with it. :func:`read_file_rows` reads the same
bytes with ``os.preadv``, one system call per run of consecutive rows, straight into the output batch:
no page faults, no mapped pages (the resident memory does not grow with the pages touched), and the lock
is released while the kernel reads. The values are the same bytes (tested against NumPy's indexing).

It applies to a C-contiguous float32 ``np.memmap`` that maps a file from its own start (what
``np.load(path, mmap_mode="r")`` and the feature stores return), not to a slice or view of one (their
``offset`` attribute is the parent's); :func:`file_source` says whether an array qualifies.
"""
from __future__ import annotations

import mmap
import os

import numpy as np

from .errors import ASDError

__all__ = ["file_source", "read_file_rows"]

#: Most buffers one ``preadv`` call takes (Linux IOV_MAX is 1024).
_MAX_BUFFERS = 1024


def file_source(features):
    """``(path, byte offset of row 0, bytes per row)`` when ``features`` is a whole-file float32 memory map
    that can be read with positional reads, else None."""
    if not isinstance(features, np.memmap) or not hasattr(os, "preadv"):
        return None
    if features.dtype != np.float32 or not features.flags.c_contiguous or features.ndim < 1:
        return None
    if not isinstance(features.base, mmap.mmap) or not features.filename:  # a slice / view: offset unknown
        return None
    return os.fspath(features.filename), int(features.offset), int(features[:1].nbytes if len(features) else 0)


def read_file_rows(source, rows: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out[j]`` with row ``rows[j]`` of the file ``source`` (from :func:`file_source`).

    ``rows`` are read in ascending order, consecutive rows in one ``preadv`` call; ``out`` is a
    C-contiguous float32 array of ``len(rows)`` rows. Raises :class:`ASDError` when the file is shorter
    than a row it should hold (a store truncated after it was opened).
    """
    path, offset, row_bytes = source
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    views = [memoryview(out[j]).cast("B") for j in range(len(rows))]
    fd = os.open(path, os.O_RDONLY)
    try:
        start = 0
        while start < len(order):
            stop = start + 1
            while (stop < len(order) and stop - start < _MAX_BUFFERS
                   and rows[order[stop]] == rows[order[stop - 1]] + 1):
                stop += 1
            first = int(rows[order[start]])
            want = (stop - start) * row_bytes
            got = os.preadv(fd, [views[j] for j in order[start:stop]], offset + first * row_bytes)
            if got != want:
                raise ASDError(f"{path}: rows {first}-{first + stop - start - 1} end beyond the file "
                               f"({got} of {want} bytes read); the store was truncated: delete it and run again "
                               "to rebuild it")
            start = stop
    finally:
        os.close(fd)
