"""asdcore.clip_sources: clips read batch by batch from a store or computed from the recordings."""

import numpy as np
import pytest
import soundfile as sf

from asdcore.clip_sources import StoreClips, WaveformClips, as_clip_source
from asdcore.errors import ASDError, AudioError
from asdcore.feature_store import open_feature_store
from asdcore.features import LogMelConfig, compute_logmel

SR = 16000
CONFIG = LogMelConfig(n_frames=20)


def _write_clips(folder, n=5, seconds=0.7):
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        x = 0.05 * rng.standard_normal(int(seconds * SR)) + 0.1 * np.sin(2 * np.pi * (90 + 50 * i) * np.arange(
            int(seconds * SR)) / SR)
        p = folder / f"normal_id_00_{i:08d}.wav"
        sf.write(p, x.astype(np.float32), SR, subtype="PCM_16")
        paths.append(str(p))
    return paths


def test_store_clips_read_rows_in_the_order_asked_and_subsets_compose():
    x = np.random.default_rng(0).normal(size=(9, 4, 3)).astype(np.float32)
    src = StoreClips(x)
    assert src.shape == (9, 4, 3) and len(src) == 9 and src.ndim == 3
    np.testing.assert_array_equal(src.read([7, 2, 5]), x[[7, 2, 5]])
    np.testing.assert_array_equal(src[2:6], x[2:6])
    np.testing.assert_array_equal(src[4], x[4])
    mask = np.arange(9) % 2 == 1
    sub = src.subset(mask)  # clips 1, 3, 5, 7
    assert sub.shape == (4, 4, 3)
    np.testing.assert_array_equal(sub.read([3, 0]), x[[7, 1]])
    np.testing.assert_array_equal(np.asarray(sub.subset([2, 1])), x[[5, 3]])
    with pytest.raises(ASDError, match="mask"):
        src.subset(np.ones(4, bool))


def test_adjust_sees_the_table_rows_of_each_batch():
    x = np.zeros((6, 2, 2), np.float32)
    offset = np.arange(6, dtype=np.float32) * 10
    src = StoreClips(x, adjust=lambda batch, rows: batch + offset[rows][:, None, None]).subset([5, 1, 3])
    np.testing.assert_array_equal(src.read([2, 0])[:, 0, 0], [30.0, 50.0])


def test_memory_map_is_not_copied():
    x = np.zeros((3, 2, 2), np.float32)
    assert as_clip_source(x).features is x
    src = as_clip_source([[[1, 2]], [[3, 4]]])
    assert src.dtype == np.float32 and src.shape == (2, 1, 2)


def test_waveform_clips_equal_the_store_and_the_transform_by_hand(tmp_path):
    paths = _write_clips(tmp_path)
    store = open_feature_store(paths, CONFIG, tmp_path / "cache", progress=False).features
    waves = WaveformClips(paths, CONFIG).subset([4, 0, 2])
    got = waves.read([1, 2, 0])  # clips 0, 2, 4
    np.testing.assert_array_equal(got, np.asarray(store)[[0, 2, 4]])
    by_hand = compute_logmel(sf.read(paths[2], dtype="float32")[0][None, :], CONFIG)[0]
    np.testing.assert_allclose(got[1], by_hand, atol=1e-4)


def test_waveform_clips_need_a_frame_count_and_name_a_bad_file(tmp_path):
    with pytest.raises(ASDError, match="n_frames"):
        WaveformClips(["a.wav"], LogMelConfig(n_frames=None))
    bad = tmp_path / "normal_id_00_00000009.wav"
    bad.write_bytes(b"not audio")
    with pytest.raises(AudioError, match="00000009"):
        WaveformClips([bad], CONFIG).read([0])
