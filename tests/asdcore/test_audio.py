"""asdcore.audio: formats, channels, sample rates and damaged files, all generated in tmp_path."""

import logging
import struct

import numpy as np
import pytest
import soundfile as sf

from asdcore.audio import ResampleWarning, fit_length, load_audio, load_many
from asdcore.errors import AudioError

SR = 16000


def _noise(n=SR, channels=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) if channels is None else (n, channels)
    return np.clip(0.2 * rng.standard_normal(shape), -0.99, 0.99)


def _one_line(exc_info, path):
    msg = str(exc_info.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert exc_info.value.path == str(path)
    return msg


# ---------------------------------------------------------------- formats


def test_pcm16_exact_scaling(tmp_path):
    ints = np.array([0, 1, -1, 32767, -32768, 1234, -4321] * 100, dtype=np.int16)
    path = tmp_path / "a.wav"
    sf.write(path, ints, SR, subtype="PCM_16")
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.shape == ints.shape
    np.testing.assert_array_equal(wave, ints.astype(np.float64) / 32768.0)


@pytest.mark.parametrize("subtype", ["PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_other_subtypes_match_soundfile(tmp_path, subtype):
    x = _noise()
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, x, SR, subtype=subtype)
    ref, _ = sf.read(path, dtype="float64")
    wave = load_audio(path)
    assert wave.dtype == np.float32
    np.testing.assert_allclose(wave, ref, rtol=0, atol=1e-7)


def test_pcm24_exact_scaling(tmp_path):
    # 24-bit integers written through int32 (left-aligned by 8 bits): value v must come back as v / 2**23
    v = np.array([0, 1, -1, 2**23 - 1, -(2**23), 4660, -86], dtype=np.int64)
    path = tmp_path / "a24.wav"
    sf.write(path, (v << 8).astype(np.int32), SR, subtype="PCM_24")
    np.testing.assert_array_equal(load_audio(path), v / 2.0**23)


def test_extensible_8_channels(tmp_path):
    x = _noise(channels=8)
    path = tmp_path / "mimii_raw.wav"
    sf.write(path, x, SR, subtype="PCM_24", format="WAVEX")
    head = path.read_bytes()[:64]
    fmt = head.index(b"fmt ")
    assert struct.unpack("<H", head[fmt + 8 : fmt + 10])[0] == 0xFFFE  # WAVE_FORMAT_EXTENSIBLE
    assert struct.unpack("<H", head[fmt + 10 : fmt + 12])[0] == 8
    ref, _ = sf.read(path, dtype="float64")
    np.testing.assert_allclose(load_audio(path), ref[:, 0], atol=1e-7)  # channel 0 by default
    np.testing.assert_allclose(load_audio(path, channel=5), ref[:, 5], atol=1e-7)
    np.testing.assert_allclose(load_audio(path, channel=-1), ref[:, 7], atol=1e-7)
    with pytest.raises(AudioError) as e:
        load_audio(path, channel=8)
    msg = _one_line(e, path)
    assert "8 channel" in msg and "0 and 7" in msg


def test_resampled_with_warning(tmp_path):
    sr = 44100
    t = np.arange(sr) / sr
    path = tmp_path / "cd_rate.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 1000 * t), sr, subtype="FLOAT")
    with pytest.warns(ResampleWarning, match="cd_rate.wav.*44100"):
        wave = load_audio(path, sr=SR)
    assert abs(len(wave) - SR) <= 1
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    assert abs(np.argmax(spectrum) * SR / len(wave) - 1000) < 2  # still a 1 kHz tone
    assert abs(np.sqrt(np.mean(wave[1000:-1000] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


# ---------------------------------------------------------------- damaged files


def test_truncated_file(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, _noise(), SR, subtype="PCM_16")
    data = good.read_bytes()
    bad = tmp_path / "cut.wav"
    bad.write_bytes(data[: len(data) // 2])
    # soundfile alone does not notice: it reports the frames that are present
    assert sf.info(bad).frames < SR
    with pytest.raises(AudioError) as e:
        load_audio(bad)
    assert "truncated" in _one_line(e, bad)
    load_audio(good)  # the intact file is fine


def test_truncated_extensible_file(tmp_path):
    good = tmp_path / "good8.wav"
    sf.write(good, _noise(channels=8), SR, subtype="PCM_24", format="WAVEX")
    data = good.read_bytes()
    bad = tmp_path / "cut8.wav"
    bad.write_bytes(data[:-7])
    with pytest.raises(AudioError, match="truncated"):
        load_audio(bad)


def test_zero_length_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert "empty" in _one_line(e, path)


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 50)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert "not a readable audio file" in _one_line(e, path)


def test_header_without_samples(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, _noise(), SR, subtype="PCM_16")
    data = bytearray(good.read_bytes()[:44])
    data[40:44] = struct.pack("<I", 0)  # data chunk of 0 bytes
    data[4:8] = struct.pack("<I", 36)
    path = tmp_path / "header_only.wav"
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert "no audio samples" in _one_line(e, path)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.wav"
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert "does not exist" in _one_line(e, path)


def test_non_finite_float_samples(tmp_path):
    x = _noise().astype(np.float32)
    x[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(path)


def test_audio_error_is_value_error(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(ValueError):
        load_audio(path)


# ---------------------------------------------------------------- length policy


def test_fit_length_keeps_the_end_of_longer_waves():
    x = np.arange(10.0)
    np.testing.assert_array_equal(fit_length(x, 4), [6, 7, 8, 9])
    np.testing.assert_array_equal(fit_length(x, 10), x)


def test_fit_length_repeat_pads_shorter_waves():
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(fit_length(x, 7), [1, 2, 3, 1, 2, 3, 1])
    batch = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(fit_length(batch, 5), [[1, 2, 1, 2, 1], [3, 4, 3, 4, 3]])
    with pytest.raises(ValueError):
        fit_length(np.zeros(0), 5)


# ---------------------------------------------------------------- many files


def _mixed_folder(tmp_path):
    paths = []
    for i in range(4):
        p = tmp_path / f"ok_{i}.wav"
        sf.write(p, _noise(seed=i), SR, subtype="PCM_16")
        paths.append(p)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "text.wav"
    text.write_text("hello")
    return [paths[0], empty, paths[1], paths[2], text, paths[3]], [empty, text]


def test_load_many_skips_bad_files_with_one_warning_each(tmp_path, caplog):
    paths, bad = _mixed_folder(tmp_path)
    with caplog.at_level(logging.WARNING, logger="asdcore.audio"):
        waves, skipped = load_many(paths, skip_bad_files=True, n_threads=3)
    assert [w is None for w in waves] == [False, True, False, False, True, False]
    assert [p for p, _ in skipped] == [str(p) for p in bad]
    assert all(reason for _, reason in skipped)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert str(bad[0]) in lines[0] and str(bad[1]) in lines[1]
    ref, _ = sf.read(paths[2], dtype="float32")
    np.testing.assert_array_equal(waves[2], ref)


def test_load_many_raises_first_bad_file(tmp_path):
    paths, bad = _mixed_folder(tmp_path)
    with pytest.raises(AudioError) as e:
        load_many(paths, n_threads=2)
    assert e.value.path == str(bad[0])
