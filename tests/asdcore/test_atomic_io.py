"""Atomic writes (asdcore.atomic_io): a failure mid-write leaves neither the target nor a temporary file; an
existing file is refused unless overwriting is asked for; what is written reads back as numpy / pandas
wrote it."""
import os
import stat

import numpy as np
import pandas as pd
import pytest

from asdcore import atomic_io
from asdcore.errors import ASDError


class Boom(Exception):
    pass


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_failure_mid_write_leaves_no_file_and_no_temporary(tmp_path):
    target = tmp_path / "out" / "scores.npz"
    with pytest.raises(Boom):
        with atomic_io.atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp != target
            tmp.write_bytes(b"half a file")  # the writer gets this far, then fails
            raise Boom()
    assert not target.exists()
    assert _names(target.parent) == []


def test_failure_keeps_the_earlier_file_untouched(tmp_path):
    target = tmp_path / "cache.npy"
    np.save(target, np.arange(3))
    with pytest.raises(Boom):
        with atomic_io.atomic_path(target, overwrite=True) as tmp:
            tmp.write_bytes(b"garbage")
            raise Boom()
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    assert _names(tmp_path) == ["cache.npy"]


def test_keyboard_interrupt_is_cleaned_up_too(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_io.atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("partial")
            raise KeyboardInterrupt()
    assert _names(tmp_path) == []


@pytest.mark.parametrize("write", [
    lambda p, overwrite: atomic_io.atomic_write_text(p, "new", overwrite=overwrite),
    lambda p, overwrite: atomic_io.atomic_write_csv(pd.DataFrame({"a": [1]}), p, overwrite=overwrite),
    lambda p, overwrite: atomic_io.atomic_save_npy(p, np.zeros(2), overwrite=overwrite),
    lambda p, overwrite: atomic_io.atomic_save_npz(p, overwrite=overwrite, x=np.zeros(2)),
])
def test_an_existing_file_is_refused_unless_asked(tmp_path, write):
    target = tmp_path / "result.bin"
    target.write_bytes(b"earlier result")
    with pytest.raises(ASDError, match="refusing to overwrite"):
        write(target, False)
    assert target.read_bytes() == b"earlier result" and _names(tmp_path) == ["result.bin"]
    write(target, True)
    assert target.read_bytes() != b"earlier result" and _names(tmp_path) == ["result.bin"]


def test_helpers_write_what_numpy_and_pandas_read_back(tmp_path):
    array = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    atomic_io.atomic_save_npy(tmp_path / "a.npy", array)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), array)
    # numpy appends .npz / .npy to names without it: the helpers must still land on the exact target name
    atomic_io.atomic_save_npz(tmp_path / "w.weights.npz", x=array, names=np.array(["a", "b"]))
    atomic_io.atomic_save_npz(tmp_path / "c.npz", compressed=True, x=array)
    for name in ("w.weights.npz", "c.npz"):
        with np.load(tmp_path / name) as stored:
            np.testing.assert_array_equal(stored["x"], array)
    frame = pd.DataFrame({"file": ["x.wav", "y.wav"], "score": [0.25, -1.5]})
    atomic_io.atomic_write_csv(frame, tmp_path / "s.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "s.csv"), frame)
    atomic_io.atomic_write_text(tmp_path / "t.md", "line\r\nnext ü")
    assert (tmp_path / "t.md").read_bytes() == "line\r\nnext ü".encode("utf-8")  # newlines as given
    assert _names(tmp_path) == ["a.npy", "c.npz", "s.csv", "t.md", "w.weights.npz"]


def test_written_files_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_io.atomic_write_text(tmp_path / "results.csv", "a\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600


def test_atomic_dir_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "data" / "set"
    with pytest.raises(Boom):
        with atomic_io.atomic_dir(target) as tmp:
            (tmp / "a.wav").write_bytes(b"x")
            raise Boom()
    assert not target.exists() and _names(tmp_path / "data") == []
    with atomic_io.atomic_dir(target) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "a.wav").write_bytes(b"x")
    assert (target / "sub" / "a.wav").read_bytes() == b"x" and _names(tmp_path / "data") == ["set"]
    with pytest.raises(ASDError, match="exists already"):
        with atomic_io.atomic_dir(target):
            pass


def test_atomic_dir_keeps_a_folder_another_process_finished_first(tmp_path):
    target = tmp_path / "set"
    with atomic_io.atomic_dir(target, keep_existing=True) as tmp:
        (tmp / "mine.txt").write_text("mine")
        target.mkdir()  # the other process renames its finished folder into place first
        (target / "theirs.txt").write_text("theirs")
    assert _names(target) == ["theirs.txt"] and _names(tmp_path) == ["set"]


def test_experiment_module_re_exports_the_writers():
    from asdcore import experiment

    assert experiment.atomic_write_text is atomic_io.atomic_write_text
    assert experiment.atomic_write_csv is atomic_io.atomic_write_csv


def test_a_writer_that_fails_leaves_nothing(tmp_path, monkeypatch):
    """The project's npz writers go through atomic_io: a failing numpy writer leaves no partial or temporary
    file (the old Normalizer.save left its temporary file behind)."""
    from asdcore.features import Normalizer

    normalizer = Normalizer().fit(np.random.default_rng(0).standard_normal((5, 4, 3)).astype(np.float32))

    def failing_savez(handle, **arrays):
        handle.write(b"PK half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        normalizer.save(tmp_path / "models" / "normalizer.npz")
    assert _names(tmp_path / "models") == []
