"""asdcore.file_rows: rows of a memory-mapped .npy read with os.preadv equal NumPy's indexing of the same file;
views, other dtypes and in-memory arrays take NumPy's path; a truncated file is a one-line error."""
import os

import numpy as np
import pytest

from asdcore.errors import ASDError
from asdcore.features import read_rows
from asdcore.file_rows import file_source, read_file_rows


@pytest.fixture
def store(tmp_path):
    data = np.random.default_rng(0).normal(size=(50, 7, 3)).astype(np.float32)
    path = tmp_path / "store.npy"
    np.save(path, data)
    return path, data


def test_positional_reads_equal_numpy_indexing(store):
    path, data = store
    mapped = np.load(path, mmap_mode="r")
    assert file_source(mapped) == (os.fspath(path), mapped.offset, 7 * 3 * 4)
    rng = np.random.default_rng(1)
    for rows in (rng.permutation(50)[:17], np.array([3, 4, 5, 6, 0, 49, 48]), np.array([9, 9, 2, 9]),
                 np.arange(50), np.array([], dtype=np.int64)):
        np.testing.assert_array_equal(read_rows(mapped, rows), data[rows])
        out = np.empty((len(rows), 7, 3), np.float32)
        read_file_rows(file_source(mapped), rows, out)
        np.testing.assert_array_equal(out, data[rows])


def test_runs_of_consecutive_rows_are_one_call_each(store, monkeypatch):
    path, data = store
    calls = []
    real = os.preadv

    def counting(fd, buffers, offset):
        calls.append((len(buffers), offset))
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", counting)
    mapped = np.load(path, mmap_mode="r")
    rows = np.array([12, 3, 10, 11, 4, 30])  # runs 3-4, 10-12, 30
    np.testing.assert_array_equal(read_rows(mapped, rows), data[rows])
    row_bytes = 7 * 3 * 4
    assert calls == [(2, mapped.offset + 3 * row_bytes), (3, mapped.offset + 10 * row_bytes),
                     (1, mapped.offset + 30 * row_bytes)]


def test_views_other_dtypes_and_arrays_use_numpy(store, tmp_path):
    path, data = store
    mapped = np.load(path, mmap_mode="r")
    assert file_source(mapped[10:]) is None  # a view's offset attribute is its parent's
    assert file_source(np.asarray(data)) is None
    np.save(tmp_path / "f64.npy", data.astype(np.float64))
    assert file_source(np.load(tmp_path / "f64.npy", mmap_mode="r")) is None
    rows = np.array([5, 1, 0])
    np.testing.assert_array_equal(read_rows(mapped[10:], rows), data[10:][rows])
    np.testing.assert_array_equal(read_rows(mapped, np.array([-1, 2])), data[[-1, 2]])  # negative: NumPy's path


def test_a_truncated_store_is_a_one_line_error(store):
    path, data = store
    mapped = np.load(path, mmap_mode="r")
    source = file_source(mapped)
    os.truncate(path, mapped.offset + 40 * 7 * 3 * 4)  # rows 40-49 gone after the store was opened
    out = np.empty((2, 7, 3), np.float32)
    with pytest.raises(ASDError, match=r"store\.npy: rows 45-45 end beyond the file.*delete it and run again"):
        read_file_rows(source, np.array([1, 45]), out)
