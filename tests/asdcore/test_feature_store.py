"""asdcore.feature_store: one memory-mapped array per configuration and data set, rebuilt when not valid."""

import logging
import os

import numpy as np
import pytest
import soundfile as sf

import asdcore.feature_store as store_module
from asdcore.errors import ASDError, AudioError
from asdcore.feature_store import open_feature_store, store_paths
from asdcore.features import read_rows
from asdcore.features import LogMelConfig, compute_logmel

SR = 16000
CONFIG = LogMelConfig(n_frames=20)  # 20 frames of 128 bins: ~0.6 s clips keep the tests fast


def _write_clips(folder, n=7, seconds=0.7):
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        t = np.arange(int(seconds * SR)) / SR
        x = 0.05 * rng.standard_normal(t.size) + 0.1 * np.sin(2 * np.pi * (100 + 40 * i) * t)
        p = folder / f"normal_id_00_{i:08d}.wav"
        sf.write(p, x.astype(np.float32), SR, subtype="PCM_16")
        paths.append(str(p))
    return paths


def _expected(paths, config=CONFIG):
    """Independent path: read each file with soundfile and transform it alone."""
    rows = []
    for p in paths:
        wave, sr = sf.read(p, dtype="float32")
        assert sr == SR
        rows.append(compute_logmel(wave[None, :], config)[0])
    return np.stack(rows)


def test_store_holds_every_clip_and_is_a_read_only_memory_map(tmp_path):
    paths = _write_clips(tmp_path)
    result = open_feature_store(paths, CONFIG, tmp_path / "cache", progress=False)
    assert isinstance(result.features, np.memmap)
    assert not result.features.flags.writeable
    assert result.kept.all() and result.bad_files == []
    np.testing.assert_allclose(np.asarray(result.features), _expected(paths), atol=1e-4)
    array_path, manifest_path = store_paths(paths, CONFIG, tmp_path / "cache")
    assert os.path.exists(array_path) and os.path.exists(manifest_path)
    # one file for the whole set, nothing else in the store folder
    assert sorted(os.listdir(os.path.dirname(array_path))) == sorted(
        [os.path.basename(array_path), os.path.basename(manifest_path)])


def test_second_open_reads_the_store_without_recomputing(tmp_path, monkeypatch):
    paths = _write_clips(tmp_path)
    first = np.asarray(open_feature_store(paths, CONFIG, tmp_path / "cache", progress=False).features)

    def _fail(*args, **kwargs):
        raise AssertionError("recomputed although the store is valid")

    monkeypatch.setattr(store_module, "extract_features", _fail)
    again = open_feature_store(paths, CONFIG, tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(np.asarray(again.features), first)


def _open_after(tmp_path, damage, caplog):
    paths = _write_clips(tmp_path)
    good = np.asarray(open_feature_store(paths, CONFIG, tmp_path / "cache", progress=False).features).copy()
    array_path, manifest_path = store_paths(paths, CONFIG, tmp_path / "cache")
    damage(array_path, manifest_path)
    with caplog.at_level(logging.WARNING, logger="asdcore.feature_store"):
        rebuilt = open_feature_store(paths, CONFIG, tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(np.asarray(rebuilt.features), good)
    return " ".join(r.getMessage() for r in caplog.records)


def test_store_without_manifest_is_partial_and_rebuilt(tmp_path, caplog):
    text = _open_after(tmp_path, lambda a, m: os.unlink(m), caplog)
    assert "killed while writing" in text and "rebuilding" in text


def test_damaged_bytes_are_caught_by_the_checksums(tmp_path, caplog):
    def flip(array_path, manifest_path):
        with open(array_path, "r+b") as f:
            f.seek(-100, os.SEEK_END)
            byte = f.read(1)
            f.seek(-100, os.SEEK_END)
            f.write(bytes([byte[0] ^ 0xFF]))

    assert "checksum mismatch" in _open_after(tmp_path, flip, caplog)


def test_truncated_store_is_rebuilt(tmp_path, caplog):
    def truncate(array_path, manifest_path):
        with open(array_path, "r+b") as f:
            f.truncate(os.path.getsize(array_path) - 4096)

    assert "truncated" in _open_after(tmp_path, truncate, caplog)


def test_another_configuration_or_data_set_gets_another_file(tmp_path):
    paths = _write_clips(tmp_path)
    a = store_paths(paths, CONFIG, tmp_path / "cache")[0]
    b = store_paths(paths, LogMelConfig(n_frames=20, n_mels=64), tmp_path / "cache")[0]
    c = store_paths(paths[:-1], CONFIG, tmp_path / "cache")[0]
    d = store_paths(paths[::-1], CONFIG, tmp_path / "cache")[0]
    assert len({a, b, c, d}) == 4
    other = open_feature_store(paths, LogMelConfig(n_frames=20, n_mels=64), tmp_path / "cache", progress=False)
    assert other.features.shape == (7, 20, 64)


def test_manifest_from_another_configuration_is_not_trusted(tmp_path, caplog):
    def swap_key(array_path, manifest_path):
        import json

        with open(manifest_path) as f:
            manifest = json.load(f)
        manifest["config_key"] = "0" * 16
        with open(manifest_path, "w") as f:
            json.dump(manifest, f)

    assert "another version or configuration" in _open_after(tmp_path, swap_key, caplog)


def test_bad_file_is_skipped_and_remembered(tmp_path):
    paths = _write_clips(tmp_path)
    with open(paths[3], "wb") as f:
        f.write(b"RIFF\x00\x00")  # truncated header
    result = open_feature_store(paths, CONFIG, tmp_path / "cache", skip_bad_files=True, progress=False)
    assert result.kept.tolist() == [True, True, True, False, True, True, True]
    assert [p for p, _ in result.bad_files] == [paths[3]]
    good = [p for i, p in enumerate(paths) if i != 3]
    np.testing.assert_allclose(np.asarray(result.features), _expected(good), atol=1e-4)
    with pytest.raises(AudioError, match="normal_id_00_00000003.wav"):
        open_feature_store(paths, CONFIG, tmp_path / "cache", skip_bad_files=False, progress=False)


def test_short_disk_stops_with_one_line_naming_the_fix(tmp_path, monkeypatch):
    paths = _write_clips(tmp_path, n=3)
    import asdcore.estimates

    monkeypatch.setattr(asdcore.estimates, "free_bytes", lambda folder: 1000)
    with pytest.raises(ASDError, match="--cache-dir") as info:
        open_feature_store(paths, CONFIG, tmp_path / "cache", progress=False)
    assert "\n" not in str(info.value)


def test_variable_length_configuration_is_refused(tmp_path):
    with pytest.raises(ASDError, match="n_frames"):
        open_feature_store([], LogMelConfig(n_frames=None), tmp_path)


def test_read_rows_keeps_the_requested_order():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((50, 4, 3)).astype(np.float32)
    rows = rng.permutation(50)[:17]
    np.testing.assert_array_equal(read_rows(data, rows), data[rows])
    rows_with_repeats = np.array([5, 2, 5, 49, 0])
    np.testing.assert_array_equal(read_rows(data, rows_with_repeats), data[rows_with_repeats])


def test_normalizer_fit_on_rows_of_a_memory_map_matches_numpy(tmp_path):
    from asdcore.features import Normalizer

    rng = np.random.default_rng(1)
    data = (3 + 2 * rng.standard_normal((40, 6, 5))).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, data)
    mapped = np.load(path, mmap_mode="r")
    rows = rng.permutation(40)[:25]
    norm = Normalizer().fit(mapped, chunk=7, rows=rows)
    sel = data[rows].reshape(-1, 5).astype(np.float64)
    np.testing.assert_allclose(norm.mean, sel.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(norm.std, sel.std(axis=0), rtol=1e-10)
    mask = np.zeros(40, dtype=bool)
    mask[rows] = True
    np.testing.assert_allclose(Normalizer().fit(mapped, chunk=4, rows=mask).std, sel.std(axis=0), rtol=1e-10)


def test_standardised_view_reads_rows_in_the_order_asked(tmp_path):
    from asdcore.features import Normalizer

    rng = np.random.default_rng(2)
    data = rng.standard_normal((30, 4, 3)).astype(np.float32) * 5 + 1
    norm = Normalizer().fit(data)
    view = norm.view(data)
    by_hand = (data - data.reshape(-1, 3).mean(0)) / data.reshape(-1, 3).std(0)
    rows = np.array([29, 3, 3, 0, 17])
    np.testing.assert_allclose(view[rows], by_hand[rows], atol=1e-5)
    np.testing.assert_allclose(view[2:5], by_hand[2:5], atol=1e-5)
    np.testing.assert_allclose(view[data[:, 0, 0] > 1], by_hand[data[:, 0, 0] > 1], atol=1e-5)
    assert view.shape == data.shape and len(view) == 30
