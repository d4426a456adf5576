"""asdcore.feature_store.open_ragged_store: every frame of clips of different lengths, memory-mapped."""

import logging
import os

import numpy as np
import pytest
import soundfile as sf

from asdcore.errors import ASDError
from asdcore.feature_store import RaggedFeatures, open_ragged_store
from asdcore.features import LogMelConfig, compute_logmel, extract_features, valid_frames

SR = 16000
CONFIG = LogMelConfig(n_mels=16, n_frames=None)
SECONDS = (0.5, 0.9, 0.3, 0.7, 0.5)


def _write_clips(folder):
    paths = []
    for i, seconds in enumerate(SECONDS):
        rng = np.random.default_rng(i)
        x = 0.05 * rng.standard_normal(int(seconds * SR))
        p = folder / f"normal_id_00_{i:08d}.wav"
        sf.write(p, x.astype(np.float32), SR, subtype="PCM_16")
        paths.append(str(p))
    return paths


def test_ragged_store_reads_what_the_padded_array_holds(tmp_path):
    paths = _write_clips(tmp_path)
    result = open_ragged_store(paths, CONFIG, tmp_path / "cache", progress=False)
    x = result.features
    assert isinstance(x, RaggedFeatures) and isinstance(x.frames, np.memmap)
    # each clip transformed alone by hand, stacked NaN-padded
    by_hand = [compute_logmel(sf.read(p, dtype="float32")[0][None, :], CONFIG)[0] for p in paths]
    lengths = np.array([len(r) for r in by_hand])
    padded = np.full((len(paths), lengths.max(), 16), np.nan, np.float32)
    for i, r in enumerate(by_hand):
        padded[i, : len(r)] = r
    np.testing.assert_array_equal(result.lengths, lengths)
    np.testing.assert_array_equal(valid_frames(x), lengths)
    assert x.shape == padded.shape
    np.testing.assert_allclose(np.asarray(x), padded, atol=1e-4)
    # the frames are stored end to end, without padding
    assert os.path.getsize(x.frames.filename) == lengths.sum() * 16 * 4
    # the in-memory path gives the identical array
    np.testing.assert_array_equal(np.asarray(x), extract_features(paths, CONFIG, progress=False, ragged="pad").features)
    rows = np.array([[3], [1], [1]])
    idx = np.array([[0, 2, 5], [7, 1, 3], [lengths[1] - 1, 0, 0]])
    np.testing.assert_array_equal(x[rows, idx], np.asarray(x)[rows, idx])
    with pytest.raises(ASDError, match="beyond"):
        x[np.array([2]), np.array([lengths[2]])]


def test_shifted_and_looped_equal_the_in_place_edits_of_the_padded_array(tmp_path):
    from ddcsad import data

    paths = _write_clips(tmp_path)
    x = open_ragged_store(paths, CONFIG, tmp_path / "cache", progress=False).features
    offsets = np.array([1.5, -2.0, 0.25, 3.0, -0.5])
    crop = int(x.lengths[1])  # every other clip is shorter: all looped
    padded, lengths = data.fit_short_clips(np.asarray(x).copy(), valid_frames(np.asarray(x)), crop)
    padded = data.normalise_amplitude(padded, offsets)
    view, view_lengths = data.fit_short_clips(x, valid_frames(x), crop)
    view = data.normalise_amplitude(view, offsets)
    np.testing.assert_array_equal(view_lengths, lengths)
    rows = np.arange(5)[:, None]
    idx = np.broadcast_to(np.arange(crop), (5, crop))
    np.testing.assert_array_equal(view[rows, idx], padded[rows, idx])
    np.testing.assert_array_equal(np.asarray(x)[0, 0] + np.float32(offsets[0]), view[0][0])  # x itself unchanged


def test_ragged_store_second_open_and_damage(tmp_path, caplog, monkeypatch):
    paths = _write_clips(tmp_path)
    first = open_ragged_store(paths, CONFIG, tmp_path / "cache", progress=False).features
    data_path = first.frames.filename
    import asdcore.feature_store as store_module

    def _fail(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(store_module, "extract_features", _fail)
    again = open_ragged_store(paths, CONFIG, tmp_path / "cache", progress=False).features
    np.testing.assert_array_equal(np.asarray(again), np.asarray(first))
    monkeypatch.undo()
    expected = np.asarray(first).copy()  # before the bytes under the memory map are changed
    with open(data_path, "r+b") as f:
        f.seek(100)
        f.write(b"\xff\xff\xff\xff")
    with caplog.at_level(logging.WARNING, logger="asdcore.feature_store"):
        rebuilt = open_ragged_store(paths, CONFIG, tmp_path / "cache", progress=False).features
    assert "checksum mismatch" in caplog.text
    np.testing.assert_array_equal(np.asarray(rebuilt), expected)
    os.unlink(os.path.splitext(data_path)[0] + ".json")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="asdcore.feature_store"):
        open_ragged_store(paths, CONFIG, tmp_path / "cache", progress=False)
    assert "no manifest" in caplog.text


def test_ragged_store_refuses_a_fixed_frame_count(tmp_path):
    with pytest.raises(ASDError, match="open_feature_store"):
        open_ragged_store(["a.wav"], LogMelConfig(n_frames=20), tmp_path)
