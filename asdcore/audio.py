"""Reading recordings robustly: formats, channels, sample rates, damaged files.

Every DCASE 2020/2021 task 2 recording is a 10 s (ToyCar 2020: 11 s) WAV file at 16 kHz. Real data and user
data are less tidy, so :func:`load_audio` accepts

- PCM 16/24/32-bit and 32/64-bit float WAV, including ``WAVE_FORMAT_EXTENSIBLE`` headers (raw MIMII is
  8-channel extensible), and every other container libsndfile reads (FLAC, AIFF, ...);
- any channel count: one channel is selected (channel 0 by default, as the DCASE releases are mono);
- any sample rate: other rates are resampled to ``sr`` (librosa's soxr backend) with a
  :class:`ResampleWarning` naming the file.

A damaged file raises :class:`asdcore.errors.AudioError` naming the file and the fix: a missing file, a
zero-byte file, a file that is not audio, a file without samples, a truncated file (the WAV header promises
more bytes than the file holds: libsndfile silently returns the frames that are present, so the RIFF
header is checked here), a float file with NaN/inf samples, a channel the file does not have.

Length policy (REFERENCE.md section 3)
--------------------------------------
The sub-cluster AdaCos code computes the log-mel of the whole clip and keeps the *last* 313 frames, so
longer clips (ToyCar 2020, 11 s) lose their beginning; :mod:`asdcore.features` does exactly that through
``LogMelConfig.n_frames``. None of the papers' code handles *shorter* clips (every DCASE clip is at least
10 s). Here a shorter clip is repeat-padded: the waveform is tiled (the clip is played again from its start)
until it is long enough, which keeps the spectrum of a stationary machine sound instead of adding silence
or a zero-padding edge. :func:`fit_length` implements both rules at the waveform level: it keeps the last
``n_samples`` of a longer wave and tiles a shorter one.
"""

from __future__ import annotations

import logging
import os
import struct
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import soundfile as sf

from .errors import AudioError

__all__ = ["ResampleWarning", "load_audio", "load_many", "fit_length", "check_wav_complete"]

logger = logging.getLogger(__name__)

_SKIP_HINT = "re-extract or re-download it, or pass --skip-bad-files to skip such files"


# Integer subtypes read as integers and scaled by 2**-(bits-1) here: bit-identical to libsndfile's own float
# conversion (int16 and 24-bit values left-aligned in int32 are exact in float32; the scale is a power of 2).
_INT_READ = {"PCM_16": ("int16", 2.0**-15), "PCM_24": ("int32", 2.0**-31)}


class ResampleWarning(UserWarning):
    """A recording had another sample rate than requested and was resampled."""


def check_wav_complete(path) -> None:
    """Raise :class:`AudioError` when a RIFF/RF64 WAV file is shorter than its header says.

    libsndfile (hence soundfile) returns the frames that are present and does not report a cut-off
    ``data`` chunk, so the chunk list is walked here: the file is truncated when it ends before the
    ``data`` chunk's declared end. Files that are not RIFF/RF64 WAV and streaming headers (data size
    0 or 0xFFFFFFFF) are not checked.

    Parameters
    ----------
    path : str or os.PathLike
        The file to check.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RF64"):
            return
        rf64_data_size = None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                return
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"ds64":
                body = f.read(min(csize, 28))
                if len(body) >= 16:
                    rf64_data_size = struct.unpack("<Q", body[8:16])[0]
            if cid == b"data":
                if head[:4] == b"RF64" and csize == 0xFFFFFFFF and rf64_data_size is not None:
                    csize = rf64_data_size
                if csize in (0, 0xFFFFFFFF):
                    return
                end = pos + 8 + csize
                if size < end:
                    missing = end - size
                    raise AudioError(
                        path,
                        f"truncated WAV file: the header declares {csize} data bytes but "
                        f"{missing} are missing (file has {size} bytes); {_SKIP_HINT}",
                    )
                return
            pos += 8 + csize + (csize & 1)


def load_audio(path, sr: int = 16000, channel: int = 0) -> np.ndarray:
    """Read one channel of a recording as float32 in [-1, 1], resampled to ``sr``.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file (any format libsndfile reads; WAV PCM 16/24/32-bit, float, WAVE_FORMAT_EXTENSIBLE).
    sr : int
        Sample rate of the returned wave. Files at another rate are resampled (librosa, soxr_hq) and a
        :class:`ResampleWarning` naming the file is emitted.
    channel : int
        Channel to return (0 = first). Negative values count from the last channel.

    Returns
    -------
    numpy.ndarray
        float32, shape ``[samples]``.

    Raises
    ------
    AudioError
        Missing, empty, non-audio, sample-free, truncated or non-finite file, or a channel the file lacks.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(path, "file does not exist; check the data root or the clip table")
    if os.path.isdir(path):
        raise AudioError(path, "is a folder, not an audio file; check the data root or the clip table")
    if os.path.getsize(path) == 0:
        raise AudioError(path, f"file is empty (0 bytes); {_SKIP_HINT}")
    check_wav_complete(path)
    try:
        with sf.SoundFile(path) as f:
            n_channels, file_sr, n_frames = f.channels, f.samplerate, f.frames
            if not -n_channels <= channel < n_channels:
                raise AudioError(
                    path,
                    f"has {n_channels} channel(s), channel {channel} does not exist; "
                    f"choose a channel between 0 and {n_channels - 1}",
                )
            if n_frames == 0:
                raise AudioError(path, f"contains no audio samples (header only); {_SKIP_HINT}")
            if f.subtype in _INT_READ:  # exact and ~3x faster than libsndfile's float conversion
                dtype, scale = _INT_READ[f.subtype]
                raw = f.read(dtype=dtype, always_2d=True)[:, channel]
                data = raw.astype(np.float32)
                data *= np.float32(scale)
            else:
                data = f.read(dtype="float32", always_2d=True)[:, channel]
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        msg = str(exc).replace(path, "").replace("Error opening ''", "").strip(" :.")
        raise AudioError(path, f"not a readable audio file ({msg}); {_SKIP_HINT}") from None
    if data.shape[0] == 0:
        raise AudioError(path, f"contains no audio samples; {_SKIP_HINT}")
    wave = np.ascontiguousarray(data)
    if not np.isfinite(wave).all():
        raise AudioError(path, f"contains NaN or infinite samples; {_SKIP_HINT}")
    if file_sr != sr:
        import librosa

        warnings.warn(
            f"{path}: sample rate {file_sr} Hz resampled to {sr} Hz", ResampleWarning, stacklevel=2
        )
        wave = librosa.resample(wave, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq").astype(
            np.float32, copy=False
        )
    return wave


def fit_length(wave: np.ndarray, n_samples: int) -> np.ndarray:
    """Bring a wave to exactly ``n_samples`` samples (the module's length policy).

    A longer wave keeps its *last* ``n_samples`` samples (as the sub-cluster AdaCos code keeps the last
    313 log-mel frames, REFERENCE.md section 3); a shorter wave is repeat-padded: tiled from its start
    until ``n_samples`` are reached (wave ``[a, b, c]`` to 7 samples gives ``[a, b, c, a, b, c, a]``).

    Parameters
    ----------
    wave : numpy.ndarray
        Shape ``[samples]`` or ``[..., samples]`` (the last axis is time).
    n_samples : int
        Target length, > 0.

    Returns
    -------
    numpy.ndarray
        Same dtype, last axis of length ``n_samples``.
    """
    wave = np.asarray(wave)
    n_samples = int(n_samples)
    if n_samples <= 0:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    length = wave.shape[-1]
    if length == 0:
        raise ValueError("cannot fit the length of an empty wave")
    if length >= n_samples:
        return wave[..., length - n_samples :]
    reps = -(-n_samples // length)
    tiled = np.concatenate([wave] * reps, axis=-1)
    return tiled[..., :n_samples]


def load_many(paths, sr: int = 16000, channel: int = 0, skip_bad_files: bool = False, n_threads=None):
    """Read many recordings with a thread pool (soundfile releases the GIL while decoding).

    Parameters
    ----------
    paths : sequence of str or os.PathLike
    sr, channel : see :func:`load_audio`.
    skip_bad_files : bool
        False: the first bad file (in the order of ``paths``) raises its :class:`AudioError`.
        True: bad files are skipped, each with one warning line on the ``asdcore.audio`` logger.
    n_threads : int, optional
        Pool size; default ``min(8, os.cpu_count())``.

    Returns
    -------
    waves : list of numpy.ndarray or None
        Aligned with ``paths``; ``None`` where a file was skipped.
    bad_files : list of (str, str)
        ``(path, reason)`` of every skipped file, in the order of ``paths``.
    """
    paths = [os.fspath(p) for p in paths]
    if n_threads is None:
        n_threads = min(8, os.cpu_count() or 1)

    def _one(p):
        try:
            return load_audio(p, sr=sr, channel=channel), None
        except AudioError as exc:
            return None, exc

    if n_threads <= 1 or len(paths) <= 1:
        results = [_one(p) for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            results = list(pool.map(_one, paths))
    waves, bad_files = [], []
    for p, (wave, exc) in zip(paths, results):
        if exc is not None:
            if not skip_bad_files:
                raise exc
            bad_files.append((p, exc.reason))
            logger.warning("skipping bad file %s: %s", p, exc.reason)
        waves.append(wave)
    return waves, bad_files
