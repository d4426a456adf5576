"""Waveform statistics against numpy, and the cache that spares a second read."""
import numpy as np
import soundfile as sf

from asdcore.amplitude import waveform_statistics, waveform_std


def test_statistics_match_numpy_and_come_from_the_cache_second_time(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], 0.1 * (i + 1) * rng.normal(size=4000) + 0.01, 16000, subtype="FLOAT")
    waves = [sf.read(p, dtype="float64")[0] for p in paths]
    stats = waveform_statistics(paths, cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(stats["n"], [w.size for w in waves])
    np.testing.assert_allclose(stats["sum"], [w.sum() for w in waves], rtol=1e-6)
    np.testing.assert_allclose(stats["sumsq"], [np.dot(w, w) for w in waves], rtol=1e-6)
    np.testing.assert_allclose(waveform_std(paths, cache_dir=tmp_path / "cache"), [np.std(w) for w in waves],
                               rtol=1e-5)
    # Replace the audio but keep size and modification time: the cache answers, the audio is not read.
    for p in paths:
        st = p.stat()
        data = p.read_bytes()
        p.write_bytes(data[:44] + bytes(len(data) - 44))
        import os

        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = waveform_statistics(paths, cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(again["sumsq"], stats["sumsq"])
