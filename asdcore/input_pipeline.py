"""Back-end-neutral training input: batches of clips gathered from a feature array, on the host or on the
accelerator.

TensorFlow trains from ``tf.data`` pipelines (each method's own module); every other Keras back-end (JAX,
PyTorch) trains from the :class:`keras.utils.PyDataset` of this module, which needs no TensorFlow:

- :class:`ClipBatches`: endless batches ``{"features", <label inputs>}`` over the rows of a feature array,
  one shuffled pass per epoch (:func:`epoch_permutation`), the ``fit(steps_per_epoch=...)`` of an endless
  ``tf.data`` pipeline (one iterator for the whole training);
- :class:`DeviceFeatures`: the training rows copied **once** onto the accelerator, every batch gathered
  there (one gather per batch: rows, crops, or the stacked frames of crops), so no clip crosses the
  host-device link after the copy;
- :func:`place_clips`: one such copy for several :class:`asdcore.clip_sources.ClipSource` at once (SerialOE's
  target and other machine types), with each source's positions in it.

Where the features go (:func:`place_features`) is the setting ``ASD_DEVICE_DATA``:

``auto`` (default)
    onto the accelerator when the back-end is not TensorFlow, the default device is an accelerator (not
    the CPU) and the features take at most ``ASD_DEVICE_DATA_FRACTION`` (default 0.5) of its memory;
    otherwise they stay in the (memory-mapped) store and batches are read there, in background threads.
``on``
    always copy (also onto a CPU "device": the tests compare both paths there).
``off``
    never copy.

Both paths give the same batches for a seed (the indices are drawn on the host with NumPy either way;
``tests/asdcore/test_input_pipeline.py`` and ``tests/smoothing/test_device_data.py`` check them against a
NumPy reference).
"""
from __future__ import annotations

import os

import keras
import numpy as np

from asdcore.clip_sources import ClipSource, StoreClips
from asdcore.errors import ASDError
from asdcore.experiment import get_logger
from asdcore.features import read_rows

__all__ = ["DEVICE_DATA_ENV", "DEVICE_FRACTION_ENV", "on_tensorflow", "epoch_permutation", "DeviceFeatures",
           "device_memory_bytes", "device_data_setting", "place_features", "place_clips", "ClipBatches"]

DEVICE_DATA_ENV = "ASD_DEVICE_DATA"
DEVICE_FRACTION_ENV = "ASD_DEVICE_DATA_FRACTION"
DEFAULT_DEVICE_FRACTION = 0.5
SETTINGS = ("auto", "on", "off")


def on_tensorflow() -> bool:
    """Whether Keras runs on TensorFlow (the ``tf.data`` pipelines and TensorFlow-only speed-ups apply)."""
    return keras.backend.backend() == "tensorflow"


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The clip order of epoch ``epoch``: a permutation of ``range(n)`` drawn by NumPy's PCG64 seeded with
    ``(seed, epoch)``; the same on every back-end and machine, independent of earlier epochs (so a batch
    can be made from its number alone, in any thread)."""
    return np.random.default_rng([abs(int(seed)), int(epoch)]).permutation(int(n))


def device_data_setting() -> str:
    """``ASD_DEVICE_DATA`` (``auto``, ``on`` or ``off``; default ``auto``)."""
    value = os.environ.get(DEVICE_DATA_ENV, "auto").strip().lower() or "auto"
    if value not in SETTINGS:
        raise ASDError(f"{DEVICE_DATA_ENV}={value!r}; use one of {', '.join(SETTINGS)}")
    return value


def _device_fraction() -> float:
    value = os.environ.get(DEVICE_FRACTION_ENV, "").strip()
    if not value:
        return DEFAULT_DEVICE_FRACTION
    try:
        fraction = float(value)
    except ValueError:
        fraction = -1.0
    if not 0 < fraction <= 1:
        raise ASDError(f"{DEVICE_FRACTION_ENV}={value!r}; give a fraction of the accelerator's memory in (0, 1]")
    return fraction


def device_memory_bytes():
    """``(platform, bytes)`` of Keras' default device: the accelerator's memory limit as its runtime reports
    it, or ``("cpu", None)`` on a CPU; ``(None, None)`` on TensorFlow (whose pipelines stay on the host)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        stats = device.memory_stats() if device.platform != "cpu" else None
        return device.platform, (int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None)
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return "cuda", int(torch.cuda.get_device_properties(0).total_memory)
        return "cpu", None
    return None, None


class DeviceFeatures:
    """The rows ``rows`` of ``features`` (all of them by default) copied once into one device tensor.

    ``features`` is an array or memory map ``[clips, frames, bins]`` (rows read with
    :func:`asdcore.features.read_rows`) or a :class:`asdcore.clip_sources.ClipSource` (``rows`` are positions
    in it; its ``adjust``, e.g. an amplitude standardisation, is applied on the copy). ``take(i)`` gathers
    the clips ``i`` (positions among the copied rows) there; ``crops(i, starts, n)`` gathers the ``n``-frame
    crops starting at ``starts`` (one gather over the frames); ``stacked_crops`` the same crops as stacked
    frame vectors. ``nbytes`` is what the copy occupies."""

    def __init__(self, features, rows=None, chunk: int = 2048):
        rows = np.arange(len(features)) if rows is None else np.asarray(rows, np.int64)
        shape = (len(rows),) + tuple(int(s) for s in features.shape[1:])
        read = features.read if isinstance(features, ClipSource) else (lambda r: read_rows(features, r))
        host = np.empty(shape, np.float32)
        for start in range(0, len(rows), chunk):
            host[start:start + chunk] = read(rows[start:start + chunk])
        if not np.all(np.isfinite(host)):
            raise ASDError("asdcore/input_pipeline.py: the features hold NaN or infinite values (padded clips of "
                           f"different lengths?); set {DEVICE_DATA_ENV}=off to read them batch by batch")
        self.shape = shape
        self.nbytes = int(host.nbytes)
        self.array = keras.ops.convert_to_tensor(host)
        self._frames = None

    def take(self, positions):
        return keras.ops.take(self.array, keras.ops.convert_to_tensor(np.asarray(positions, np.int32)), axis=0)

    def _gather_frames(self, first, offsets):
        """The frames ``first[k] + offsets`` (flat frame numbers) of every ``k``: one gather,
        ``[len(first), len(offsets), bins]``."""
        clips, frames, bins = self.shape
        if self._frames is None:
            self._frames = keras.ops.reshape(self.array, (clips * frames, bins))
        flat = (np.asarray(first, np.int64)[:, None] + np.asarray(offsets, np.int64)[None, :]).reshape(-1)
        out = keras.ops.take(self._frames, keras.ops.convert_to_tensor(flat.astype(np.int32)), axis=0)
        return keras.ops.reshape(out, (len(first), len(offsets), bins))

    def crops(self, positions, starts, n_frames: int):
        """``[len(positions), n_frames, bins]``: clip ``positions[k]`` from frame ``starts[k]`` on."""
        first = np.asarray(positions, np.int64) * self.shape[1] + np.asarray(starts, np.int64)
        return self._gather_frames(first, np.arange(int(n_frames)))

    def stacked_crops(self, positions, starts, n_frames: int, context: int):
        """The crops of :meth:`crops` as stacked frame vectors, ``[len(positions), n_frames - context + 1,
        context * bins]``: vector ``t`` of a crop is its frames ``t, ..., t + context - 1`` side by side
        (:func:`asdcore.features.stack_frames`), gathered in one go."""
        n_vectors = int(n_frames) - int(context) + 1
        first = np.asarray(positions, np.int64) * self.shape[1] + np.asarray(starts, np.int64)
        offsets = (np.arange(n_vectors)[:, None] + np.arange(int(context))[None, :]).reshape(-1)
        out = self._gather_frames(first, offsets)
        return keras.ops.reshape(out, (len(first), n_vectors, int(context) * self.shape[2]))


_PLACED: list = []  # the last placement: (objects it was made from, rows key, DeviceFeatures)


def _fits(need: int, what: str, setting: str) -> bool:
    """Whether ``need`` bytes go onto the accelerator under ``setting`` (``auto`` or ``on``; module docstring)."""
    if setting == "on":
        return True
    platform, limit = device_memory_bytes()
    if platform in (None, "cpu"):
        return False
    budget = None if limit is None else _device_fraction() * limit
    if budget is None or need > budget:
        get_logger().info("%s (%.2f GB) stay on the host: %s", what, need / 1e9,
                          "the accelerator's memory is unknown" if budget is None else
                          f"more than {budget / 1e9:.2f} GB ({DEVICE_FRACTION_ENV} of its memory)")
        return False
    return True


def _place(objects: tuple, rows, make, shape, what: str):
    """The shared placement logic: the cached copy of the same ``objects`` (by identity) and ``rows``, or a
    new one from ``make()`` when the setting and the size allow, or None."""
    setting = device_data_setting()
    if setting == "off" or on_tensorflow():
        return None
    key = None if rows is None else hash(np.asarray(rows, np.int64).tobytes())
    if _PLACED and len(_PLACED[0][0]) == len(objects) and all(a is b for a, b in zip(_PLACED[0][0], objects)) \
            and _PLACED[0][1] == key:
        return _PLACED[0][2]
    if not _fits(4 * int(np.prod([int(s) for s in shape])), what, setting):
        return None
    _PLACED.clear()  # free the previous copy first
    try:
        placed = make()
    except ASDError as err:
        if setting == "on":
            raise
        get_logger().info("%s stay on the host: %s", what, err)
        return None
    _PLACED.append((objects, key, placed))
    get_logger().info("%s copied onto the accelerator once (%.2f GB); batches are gathered there", what,
                      placed.nbytes / 1e9)
    return placed


def place_features(features, rows=None, what: str = "training features"):
    """:class:`DeviceFeatures` of ``features[rows]`` when ``ASD_DEVICE_DATA`` says so (module docstring),
    else None (read batches from ``features``). The decision is logged with its reason. The last placement
    is kept: trainers of the same features (the networks of one experiment, DDCSAD's losses and IDs) share
    one copy."""
    n = len(features) if rows is None else len(rows)
    return _place((features,), rows, lambda: DeviceFeatures(features, rows), (n,) + tuple(features.shape[1:]),
                  what)


def place_clips(sources, what: str = "training features"):
    """One device copy holding the clips of every :class:`asdcore.clip_sources.ClipSource` in ``sources``,
    when ``ASD_DEVICE_DATA`` says so: ``(DeviceFeatures, [positions of each source's clips in it])``, else
    None (read batches from the sources).

    Sources that are subsets of one store with one ``adjust`` (SerialOE's target type and the other
    types, both read from the command's store) share a copy of the union of their rows, in store order, so
    the next trainer over the same rows (the next machine type) reuses it; other sources are copied one
    after another. Clips computed from the recordings (:class:`asdcore.clip_sources.WaveformClips`) stay
    on the host: that input exists to hold no feature array."""
    sources = list(sources)
    if not all(isinstance(s, StoreClips) for s in sources):
        if device_data_setting() != "off" and not on_tensorflow():
            get_logger().info("%s stay on the host: computed from the recordings batch by batch", what)
        return None
    first = sources[0]
    if all(s.features is first.features and s.adjust is first.adjust for s in sources):
        rows = np.unique(np.concatenate([s.rows for s in sources]))
        union = StoreClips(first.features, rows, first.adjust)
        placed = _place((first.features, first.adjust), rows, lambda: DeviceFeatures(union),
                        (len(rows),) + first.frame_shape, what)
        return None if placed is None else (placed, [np.searchsorted(rows, s.rows) for s in sources])
    offsets = np.cumsum([0] + [len(s) for s in sources])
    joined = _Joined(sources)
    placed = _place(tuple(sources), None, lambda: DeviceFeatures(joined), joined.shape, what)
    return None if placed is None else (placed, [np.arange(a, b) for a, b in zip(offsets[:-1], offsets[1:])])


class _Joined(ClipSource):
    """The clips of several sources one after another (their shapes must agree), for one device copy."""

    def __init__(self, sources):
        shapes = {s.frame_shape for s in sources}
        if len(shapes) != 1:
            raise ASDError(f"asdcore/input_pipeline.py: clips of different shapes {sorted(shapes)} cannot share "
                           "one device copy")
        super().__init__(sum(len(s) for s in sources), shapes.pop())
        self.sources = sources
        self.offsets = np.cumsum([0] + [len(s) for s in sources])

    def _load(self, rows):
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        out = np.empty((len(rows),) + self.frame_shape, np.float32)
        for k, source in enumerate(self.sources):
            mine = which == k
            if mine.any():
                out[mine] = source.read(rows[mine] - self.offsets[k])
        return out


class ClipBatches(keras.utils.PyDataset):
    """Endless training batches over the rows of a feature array, for ``fit(..., steps_per_epoch=S)``.

    Item ``k`` is batch ``k mod S`` of epoch ``k // S``; epoch ``e`` visits the clips in the order
    :func:`epoch_permutation` ``(n, seed, e)`` (or ``range(n)`` without ``shuffle``), ``batch_size`` at a
    time (the last batch of an epoch may be smaller). A batch is the dict ``{"features": x, name: y, ...}``:
    ``x`` the clips' features (from ``device`` when given, else read from ``features`` with
    :func:`asdcore.features.read_rows`, in background threads), one float32 one-hot array per label set.

    Parameters
    ----------
    features : array, memory map or view ``[clips, frames, bins]``.
    label_sets : sequence of integer arrays, one per label input, aligned with the selected rows.
    n_classes : sequence of int.
    names : the label inputs' names, one per label set.
    rows : int64 positions in ``features`` of the training clips, or None (all of them).
    device : :class:`DeviceFeatures` of exactly those rows, or None.
    endless : False gives one epoch (``steps`` batches) instead of an endless stream.
    start_epoch : item ``k`` is taken from epoch ``start_epoch + k // S`` (a training resumed after
        ``start_epoch`` epochs continues with the batches it would have had).
    """

    def __init__(self, features, label_sets, n_classes, names, batch_size: int, shuffle: bool = True,
                 seed: int = 0, rows=None, device: DeviceFeatures | None = None, workers: int | None = None,
                 endless: bool = True, start_epoch: int = 0):
        if workers is None:
            workers = 1 if device is not None else min(4, os.cpu_count() or 1)
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        self.features = features
        self.rows = rows
        self.n = len(features) if rows is None else len(rows)
        self.batch_size = int(batch_size)
        self.steps = -(-self.n // self.batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.device = device
        self.names = list(names)
        self.one_hots = [np.eye(int(c), dtype=np.float32)[np.asarray(labels)]
                         for c, labels in zip(n_classes, label_sets)]
        self.endless = bool(endless)
        self.start_epoch = int(start_epoch)
        self._order = (-1, None)

    @property
    def num_batches(self):
        return None if self.endless else self.steps  # endless: one iterator serves every epoch

    def order(self, epoch: int) -> np.ndarray:
        """Positions (among the selected rows) of epoch ``epoch``, in visiting order."""
        last_epoch, last = self._order
        if last_epoch != epoch:
            last = epoch_permutation(self.n, self.seed, epoch) if self.shuffle else np.arange(self.n)
            self._order = (epoch, last)
        return last

    def positions(self, index: int) -> np.ndarray:
        """Positions of the clips of item ``index``."""
        epoch, step = divmod(int(index), self.steps)
        return self.order(self.start_epoch + epoch)[step * self.batch_size:(step + 1) * self.batch_size]

    def __getitem__(self, index):
        positions = self.positions(index)
        if self.device is not None:
            x = self.device.take(positions)
        else:
            x = read_rows(self.features, positions if self.rows is None else self.rows[positions])
        batch = {"features": x}
        for name, one_hot in zip(self.names, self.one_hots):
            batch[name] = one_hot[positions]
        return batch
