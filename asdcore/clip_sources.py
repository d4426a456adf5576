"""Clips read batch by batch: from a memory-mapped feature store, or computed from the recordings.

At the papers' scale a trainer must not hold its features in memory (the 224-bin SerialOE input of the
DCASE 2021 set is ~28 GB). A :class:`ClipSource` stands for ``n`` clips of ``[frames, bins]`` features and
hands out only the rows asked for:

- :class:`StoreClips` reads them from an array, typically the read-only memory map of
  :func:`asdcore.feature_store.open_feature_store` (rows read in ascending order, returned in the order
  asked: :func:`asdcore.features.read_rows`);
- :class:`WaveformClips` computes them from the recordings for each request, with the same front end as the
  store (:func:`asdcore.features.extract_features` without a cache), so both give the same numbers; it needs
  no disk beyond the recordings, at the cost of the transform in every batch.

Both take an optional ``adjust(x, rows) -> x``, applied to every batch read (e.g. a per-clip amplitude
standardisation), and :meth:`ClipSource.subset` selects clips without reading any.
"""

from __future__ import annotations

import copy

import numpy as np

from .errors import ASDError

__all__ = ["ClipSource", "StoreClips", "WaveformClips", "as_clip_source"]


class ClipSource:
    """``n`` clips of ``frame_shape = (frames, bins)`` float32 features, read by batch.

    Indexing (``source[rows]`` with an int array, a bool mask or a slice) reads those clips; an integer reads
    one clip. ``shape``, ``ndim``, ``dtype`` and ``len`` behave like those of the ``[n, frames, bins]`` array.
    """

    def __init__(self, n_total: int, frame_shape: tuple, rows=None, adjust=None):
        self.rows = np.arange(int(n_total), dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.adjust = adjust
        self.dtype = np.dtype(np.float32)
        self.ndim = 1 + len(self.frame_shape)

    @property
    def shape(self) -> tuple:
        return (len(self.rows),) + self.frame_shape

    def __len__(self) -> int:
        return len(self.rows)

    def _positions(self, index) -> np.ndarray:
        if isinstance(index, slice):
            return np.arange(len(self.rows))[index]
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (len(self.rows),):
                raise ASDError(f"clip source: a mask of {index.shape} for {len(self.rows)} clips")
            return np.flatnonzero(index)
        return index.astype(np.int64).reshape(-1)

    def read(self, index) -> np.ndarray:
        """float32 ``[len(index), frames, bins]``: the clips at positions ``index`` (in that order)."""
        rows = self.rows[self._positions(index)]
        x = self._load(rows)
        return x if self.adjust is None else self.adjust(x, rows)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self.read([int(index)])[0]
        return self.read(index)

    def subset(self, index) -> "ClipSource":
        """The clips at positions ``index`` (int array, bool mask or slice), read nothing."""
        out = copy.copy(self)
        out.rows = self.rows[self._positions(index)]
        return out

    def __array__(self, dtype=None, copy=None):
        x = self.read(slice(None))
        return x if dtype is None else x.astype(dtype)

    def _load(self, rows: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class StoreClips(ClipSource):
    """Clips read from ``features`` ``[n_total, frames, bins]`` (an array or a memory map)."""

    def __init__(self, features, rows=None, adjust=None):
        if np.ndim(features) != 3:
            raise ASDError(f"clip source: features must be [clips, frames, bins], got shape {np.shape(features)}")
        super().__init__(len(features), features.shape[1:], rows, adjust)
        self.features = features

    def _load(self, rows):
        from .features import read_rows

        return read_rows(self.features, rows)


class WaveformClips(ClipSource):
    """Clips computed from the recordings ``paths`` with the front end ``config`` at every read.

    ``config.n_frames`` must be set (every clip has the same shape). Identical to the rows of the store
    of the same configuration (:func:`asdcore.features.extract_features` does both). A recording that
    cannot be read raises :class:`asdcore.errors.AudioError` naming it.
    """

    def __init__(self, paths, config, rows=None, adjust=None, channel: int = 0):
        if config.n_frames is None:
            raise ASDError("WaveformClips: LogMelConfig.n_frames is None; set the frames of a clip")
        self.paths = np.asarray([str(p) for p in paths], dtype=object)
        super().__init__(len(self.paths), (config.n_frames, config.n_mels), rows, adjust)
        self.config = config
        self.channel = int(channel)

    def _load(self, rows):
        from .features import extract_features

        if len(rows) == 0:
            return np.zeros((0,) + self.frame_shape, np.float32)
        return extract_features(list(self.paths[rows]), self.config, cache_dir=None, progress=False,
                                batch_size=len(rows), channel=self.channel).features


def as_clip_source(x) -> ClipSource:
    """``x`` itself when it is a :class:`ClipSource`, else an array-like ``[clips, frames, bins]`` wrapped in a
    :class:`StoreClips` (no copy of a float32 array or memory map)."""
    if isinstance(x, ClipSource):
        return x
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32):
        x = np.asarray(x, dtype=np.float32)
    return StoreClips(x)
