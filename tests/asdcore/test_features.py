"""asdcore.features against librosa and hand computations; cache; normalisation; crops and stacks."""

import dataclasses
import os

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import asdcore.features as features_module
from asdcore.errors import AudioError
from asdcore.features import (
    LogMelConfig,
    Normalizer,
    compute_logmel,
    crops,
    extract_features,
    segment_waveform,
    stack_frames,
)

SR = 16000


def _clip(seconds=10.0, seed=0):
    """Noise plus harmonics, like a machine."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.05 * rng.standard_normal(t.size)
    for k in range(1, 4):
        x += 0.05 / k * np.sin(2 * np.pi * 120 * k * t)
    return x.astype(np.float32)


def _librosa_logmel(y, n_fft=1024, hop=512, n_mels=128, fmin=0.0, fmax=8000.0, power=2.0, log=True):
    """The reference recipe of REFERENCE.md section 3, written with librosa."""
    S = librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=n_fft, hop_length=hop, window=np.hanning(n_fft), center=True,
        pad_mode="reflect", power=power, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm="slaney",
    )
    return (10 * np.log10(np.maximum(S, 1e-10)) if log else S).T  # [frames, mels]


# ---------------------------------------------------------------- log-mel vs librosa


def test_reference_logmel_matches_librosa_10s():
    waves = np.stack([_clip(seed=0), _clip(seed=1)])
    ours = compute_logmel(waves, LogMelConfig())
    assert ours.shape == (2, 313, 128) and ours.dtype == np.float32
    for i in range(2):
        ref = _librosa_logmel(waves[i])
        assert ref.shape == (313, 128)
        assert np.abs(ours[i] - ref).max() < 1e-3


def test_longer_clip_keeps_last_313_frames():
    y = _clip(seconds=11.0)
    ref = _librosa_logmel(y)
    assert ref.shape[0] == 1 + len(y) // 512 == 344
    ours = compute_logmel(y[None], LogMelConfig())[0]
    assert ours.shape == (313, 128)
    assert np.abs(ours - ref[-313:]).max() < 1e-3
    every = compute_logmel(y[None], LogMelConfig(n_frames=None))[0]
    assert every.shape == (344, 128) and np.abs(every - ref).max() < 1e-3


def test_shorter_clip_is_repeat_padded():
    y = _clip(seconds=4.0)
    need = 312 * 512  # fewest samples giving 313 centred frames
    assert LogMelConfig().min_samples() == need
    padded = np.tile(y, 3)[:need]
    ours = compute_logmel(y[None], LogMelConfig())[0]
    assert ours.shape == (313, 128)
    assert np.abs(ours - _librosa_logmel(padded)).max() < 1e-3


def test_serialoe_front_end_magnitude_no_log():
    y = _clip(seconds=2.0)
    cfg = LogMelConfig(n_fft=2048, hop_length=256, n_mels=224, fmin=50, fmax=7800, power=1.0, log=False,
                       n_frames=None)
    ours = compute_logmel(y, cfg)[0]
    ref = _librosa_logmel(y, n_fft=2048, hop=256, n_mels=224, fmin=50, fmax=7800, power=1.0, log=False)
    assert ours.shape == ref.shape == (1 + len(y) // 256, 224)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6 * ref.max())


def test_ae_front_end_and_stacks_match_baseline_formula():
    y = _clip(seconds=3.0)
    cfg = LogMelConfig(fmin=50, fmax=7800, n_frames=None)
    x = compute_logmel(y, cfg)
    ref = _librosa_logmel(y, fmin=50, fmax=7800)
    assert np.abs(x[0] - ref).max() < 1e-3
    stacked = stack_frames(x, context=5)
    frames = ref.shape[0]
    assert stacked.shape == (1, frames - 4, 640)
    # DCASE baseline: vector_array[:, n_mels*t : n_mels*(t+1)] = log_mel[:, t : t + n_vectors].T
    hand = np.zeros((frames - 4, 640), dtype=np.float32)
    for t in range(5):
        hand[:, 128 * t : 128 * (t + 1)] = x[0, t : t + frames - 4]
    np.testing.assert_array_equal(stacked[0], hand)


def test_silent_clip_is_finite():
    x = compute_logmel(np.zeros((1, 10 * SR), np.float32), LogMelConfig())
    assert np.isfinite(x).all()
    np.testing.assert_allclose(x, -100.0)  # 10 log10(1e-10)
    z = Normalizer().fit(np.concatenate([x, compute_logmel(_clip()[None], LogMelConfig())]))
    assert np.isfinite(z.transform(x)).all()
    assert np.isfinite(Normalizer().fit_transform(x)).all()  # zero variance everywhere


def test_config_key_changes_with_every_field():
    base = LogMelConfig()
    assert base.key() == LogMelConfig().key()
    assert LogMelConfig(fmin=0, fmax=8000).key() == base.key()  # int vs float spelling: same features
    changed = dict(sr=22050, n_fft=2048, hop_length=256, win_length=512, n_mels=64, fmin=50.0, fmax=7800.0,
                   window="hann", power=1.0, log=False, floor=1e-12, center=False, pad_mode="constant",
                   n_frames=None, mel_norm=None, htk=True)
    assert set(changed) == {f.name for f in dataclasses.fields(LogMelConfig)}
    keys = {base.key()} | {dataclasses.replace(base, **{k: v}).key() for k, v in changed.items()}
    assert len(keys) == len(changed) + 1


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="fmax"):
        LogMelConfig(fmax=9000)


# ---------------------------------------------------------------- extraction and cache


def _write_clips(folder, n=3, seconds=10.0):
    paths = []
    for i in range(n):
        p = folder / f"normal_id_00_{i:08d}.wav"
        sf.write(p, _clip(seconds, seed=i), SR, subtype="PCM_16")
        paths.append(str(p))
    return paths


def test_extract_features_matches_librosa_and_uses_the_cache(tmp_path, monkeypatch):
    paths = _write_clips(tmp_path, n=3)
    table = pd.DataFrame({"path": paths, "file": [os.path.basename(p) for p in paths]})
    cache = tmp_path / "cache"
    first = extract_features(table, cache_dir=cache, progress=True)
    assert first.features.shape == (3, 313, 128) and first.kept.all() and first.bad_files == []
    for i, p in enumerate(paths):
        y, _ = sf.read(p, dtype="float32")
        assert np.abs(first.features[i] - _librosa_logmel(y)).max() < 1e-3
    entries = [os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs]
    assert len(entries) == 3 and all(e.endswith(".npy") for e in entries)
    assert not any(os.path.basename(e).startswith(".tmp") for e in entries)

    def no_reading(*args, **kwargs):
        raise AssertionError("a cached clip was read again")

    monkeypatch.setattr(features_module, "load_audio", no_reading)
    second = extract_features(table, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(second.features, first.features)

    # another parameter -> another cache folder, computed afresh
    monkeypatch.undo()
    other = extract_features(paths, LogMelConfig(n_mels=64), cache_dir=cache, progress=False)
    assert other.features.shape == (3, 313, 64)
    assert len(os.listdir(cache)) == 2


def test_changed_file_invalidates_its_cache_entry(tmp_path):
    paths = _write_clips(tmp_path, n=2)
    cache = tmp_path / "cache"
    before = extract_features(paths, cache_dir=cache, progress=False).features
    sf.write(paths[1], _clip(seed=99), SR, subtype="PCM_16")
    st = os.stat(paths[1])
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    after = extract_features(paths, cache_dir=cache, progress=False).features
    np.testing.assert_array_equal(after[0], before[0])
    y, _ = sf.read(paths[1], dtype="float32")
    assert np.abs(after[1] - _librosa_logmel(y)).max() < 1e-3
    assert np.abs(after[1] - before[1]).max() > 1.0


def test_extract_features_bad_files(tmp_path, caplog):
    paths = _write_clips(tmp_path, n=2)
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio")
    table = pd.DataFrame({"path": [paths[0], str(bad), paths[1]]})
    with pytest.raises(AudioError) as e:
        extract_features(table, progress=False)
    assert e.value.path == str(bad)
    with caplog.at_level("WARNING"):
        fs = extract_features(table, cache_dir=tmp_path / "cache", skip_bad_files=True, progress=False)
    assert fs.kept.tolist() == [True, False, True]
    assert [p for p, _ in fs.bad_files] == [str(bad)]
    assert fs.features.shape == (2, 313, 128)
    y, _ = sf.read(paths[1], dtype="float32")
    assert np.abs(fs.features[1] - _librosa_logmel(y)).max() < 1e-3
    assert sum(str(bad) in r.getMessage() for r in caplog.records) == 1


def test_extract_features_mixed_lengths_and_channel(tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, np.stack([_clip(6.0, seed=1), _clip(6.0, seed=2)], axis=1), SR, subtype="PCM_16")
    stereo = tmp_path / "stereo.wav"
    two = np.stack([_clip(seed=3), _clip(seed=4)], axis=1)
    sf.write(stereo, two, SR, subtype="FLOAT")
    fs = extract_features([str(short), str(stereo)], channel=1, progress=False)
    assert fs.features.shape == (2, 313, 128)
    y, _ = sf.read(stereo, dtype="float32")
    assert np.abs(fs.features[1] - _librosa_logmel(y[:, 1])).max() < 1e-3
    y, _ = sf.read(short, dtype="float32")  # 6 s: repeat-padded to 312 * 512 samples
    assert np.abs(fs.features[0] - _librosa_logmel(np.tile(y[:, 1], 2)[: 312 * 512])).max() < 1e-3


# ---------------------------------------------------------------- normalisation


def test_normalizer_matches_numpy(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 20, 8)) * np.arange(1, 9) + np.arange(8) * 3).astype(np.float32)
    norm = Normalizer().fit(x, chunk=4)
    flat = x.reshape(-1, 8).astype(np.float64)
    np.testing.assert_allclose(norm.mean, flat.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(norm.std, flat.std(axis=0), rtol=1e-10)
    z = norm.transform(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, (x - flat.mean(0)) / flat.std(0), rtol=1e-5, atol=1e-5)
    norm.save(tmp_path / "stats" / "norm.npz")
    loaded = Normalizer.load(tmp_path / "stats" / "norm.npz")
    np.testing.assert_array_equal(loaded.mean, norm.mean)
    np.testing.assert_array_equal(loaded.transform(x), z)


# ---------------------------------------------------------------- crops and segments


def test_crops_by_hand():
    x = np.arange(2 * 313 * 3, dtype=np.float32).reshape(2, 313, 3)
    c = crops(x, n_crops=10, crop_frames=256)
    assert c.shape == (2, 10, 256, 3)
    starts = [round(i * 57 / 9) for i in range(10)]
    assert starts[0] == 0 and starts[-1] + 256 == 313
    for k, s in enumerate(starts):
        np.testing.assert_array_equal(c[:, k], x[:, s : s + 256])
    with pytest.raises(ValueError):
        crops(x[:, :100])


def test_segment_waveform_seven_4s_crops():
    wave = np.arange(10 * SR, dtype=np.float32)
    seg = segment_waveform(wave, SR, seconds=4.0, n_segments=7)
    assert seg.shape == (7, 4 * SR)
    for s in range(7):
        np.testing.assert_array_equal(seg[s], wave[s * SR : s * SR + 4 * SR])  # hop 1 s = 75 % overlap
    batch = segment_waveform(np.stack([wave, -wave]), SR)
    assert batch.shape == (2, 7, 4 * SR)
    np.testing.assert_array_equal(batch[1, 3], -wave[3 * SR : 7 * SR])


def test_extract_features_keeps_every_frame_of_clips_of_different_lengths(tmp_path):
    """ragged="pad": all frames of each clip (not the last 313), NaN after the shorter clips' ends."""
    import soundfile as sf

    from asdcore.errors import ASDError
    from asdcore.features import extract_features, valid_frames

    rng = np.random.default_rng(0)
    paths, waves = [], []
    for i, seconds in enumerate((2.0, 2.5)):
        w = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
        paths.append(str(tmp_path / f"c{i}.wav"))
        sf.write(paths[-1], w, 16000, subtype="FLOAT")
        waves.append(w)
    cfg = LogMelConfig(n_frames=None)
    with pytest.raises(ASDError):
        extract_features(paths, cfg, progress=False)  # the default still refuses ragged clips
    result = extract_features(paths, cfg, progress=False, ragged="pad")
    n = [1 + 32000 // 512, 1 + 40000 // 512]  # centred STFT frames: 63 and 79
    assert result.lengths.tolist() == n and result.features.shape == (2, 79, 128)
    assert valid_frames(result.features).tolist() == n
    assert np.isnan(result.features[0, 63:]).all() and not np.isnan(result.features[0, :63]).any()
    for i in range(2):
        np.testing.assert_allclose(result.features[i, : n[i]], compute_logmel(waves[i][None], cfg)[0], atol=1e-4)
    # the fixed-length default is unchanged: the last 313 frames, lengths all 313
    fixed = extract_features(paths, LogMelConfig(), progress=False)
    assert fixed.features.shape == (2, 313, 128) and fixed.lengths.tolist() == [313, 313]
