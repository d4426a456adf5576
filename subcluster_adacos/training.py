"""Training of the sub-cluster AdaCos embedding network (Wilkinghoff 2020, Sec. IV-B; 2021, Sec. 3).

Settings (``TrainingConfig``) are the paper's: all machine IDs as classes, mixup, Adam with its default
settings, batch size 64, 400 epochs, class weights "balanced", L2 1e-5 on conv and embedding kernels.

Input pipeline: the (normalised) log-mel features stay one NumPy array (or memory map). On TensorFlow a
``tf.data`` pipeline shuffles indices, gathers each batch from the array in a background thread and
prefetches, so the features are never copied into one big tensor; on JAX (or PyTorch) the
:class:`asdcore.input_pipeline.ClipBatches` PyDataset does the same without TensorFlow, and when the
training features fit the accelerator's memory it copies them there once and gathers every batch there
(``ASD_DEVICE_DATA``). ``fit`` gets the pipeline endless with ``steps_per_epoch``, so one iterator serves
every epoch (Keras 3 otherwise swaps iterators at each epoch start). With several GPUs visible TensorFlow
builds the model under ``tf.distribute.MirroredStrategy``. Training resumes from the last finished epoch
(:class:`asdcore.keras_utils.EpochBackup`; the pipeline then starts at that epoch's order, so a killed
and resumed training gives the same network as an uninterrupted one), keeps snapshots every ``checkpoint_every`` epochs, and logs loss,
adaptive scale(s) and learning rate per epoch to ``training_log.csv`` and ``tensorboard/`` through the shared
callbacks of :mod:`asdcore.keras_utils` (one progress line per epoch replaces Keras' own output).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np

from asdcore.features import read_rows
from asdcore.input_pipeline import ClipBatches, on_tensorflow, place_features

from asdcore.errors import ASDError
from asdcore.experiment import get_logger

__all__ = ["TrainingConfig", "CLASS_CHOICES", "class_labels", "class_groups", "class_unit", "resolved_classes", "balanced_class_weights", "make_dataset", "train_model",
           "ScaleMonitor", "EpochSnapshots", "distribution_strategy", "make_multi_label_dataset",
           "HeadScaleMonitor", "train_multi_head_model", "train_network", "load_network", "plot_scale_figure",
           "steps_per_epoch"]


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of one embedding network; defaults = the paper's settings."""

    loss: str = "subcluster_adacos"  # Sec. III-B; "adacos" = standard AdaCos (Table II, III)
    n_subclusters: int = 1  # S, Table IV: 1, 2, 4, ..., 64
    mixup: bool = True  # Sec. IV-B: mixup with lambda ~ U(0, 1)
    mixup_labels: str = "linear"  # 2020 public code; "max": max(l*y1, (1-l)*y2), author's 2022 code
    angle_mode: str = "reference"  # mixed-up angle of the public code (REFERENCE.md §4)
    epochs: int = 400  # Sec. IV-B
    batch_size: int = 64  # Sec. IV-B
    learning_rate: float = 1e-3  # Adam with default settings (Sec. IV-B)
    l2: float = 1e-5  # L2 on conv and embedding kernels (public code)
    class_weight: str = "balanced"  # public code: scikit-learn "balanced" class weights; or "none"
    checkpoint_every: int = 100  # snapshots after every 100 epochs (2021: embeddings of each are ensembled)
    divergence_scale: float = 1e8  # stop and report "diverges" when the adaptive scale exceeds this (Table III)

    def quick(self, epochs: int = 4) -> "TrainingConfig":
        """Reduced settings for a CPU: few epochs, snapshots every epoch; everything else unchanged."""
        return replace(self, epochs=epochs, checkpoint_every=max(1, epochs // 2))


#: ``classes`` setting (docs/subcluster-adacos-2020.md, docs/later-dcase.md): what the head's classes are.
CLASS_CHOICES = ("auto", "sections", "section_attributes")
#: Attribute strings that name no attribute: such clips stay in their section's class.
NO_ATTRIBUTES = ("", "noAttribute")


def resolved_classes(table, classes: str = "auto") -> str:
    """The ``classes`` setting for the data of ``table``: ``"auto"`` is ``"section_attributes"`` on DCASE
    2022-2025 data (their attributes describe the recording conditions of every clip) and ``"sections"`` (the
    paper's: one class per machine ID or section) on 2020/2021 data and tables without a ``year`` column."""
    if classes not in CLASS_CHOICES:
        raise ASDError(f"classes must be one of {', '.join(CLASS_CHOICES)}, got {classes!r}")
    if classes != "auto":
        return classes
    years = set(table["year"].astype(int)) if "year" in table.columns and len(table) else set()
    return "section_attributes" if years and min(years) >= 2022 else "sections"


def class_unit(name: str) -> str:
    """``<machine_type>/<unit>`` of a class name (``fan/section_00`` or ``fan/section_00/m-n_W``)."""
    return "/".join(str(name).split("/")[:2])


def class_labels(table, class_column_values=None, classes: str = "sections"):
    """Integer class per clip and the sorted class names.

    ``classes="sections"`` (the paper's): one class per machine type and unit, named ``<type>/<unit>`` (41
    classes for DCASE 2020: the dev and the additional training IDs). ``"section_attributes"``: one class per
    machine type, unit and distinct attribute string of its *training* clips, named ``<type>/<unit>/<attributes>``;
    a clip whose attributes are empty or ``noAttribute`` (types whose attributes are hidden) stays in the
    section's class ``<type>/<unit>``. The domain is no part of a class: a source and a target clip with the same
    attributes share it. ``"auto"``: :func:`resolved_classes`.

    Every clip gets a class (the one-hot input of the head at inference, where it is ignored): a test clip its
    training class when its unit has one with its attributes, otherwise the first class of its unit. Nothing
    scored depends on a test clip's class: the model output sums the probabilities of its unit's classes
    (:func:`~subcluster_adacos.scoring.network_outputs`) and the accuracy compares units.
    """
    classes = resolved_classes(table, classes)
    units = (table["machine_type"].astype(str) + "/" + table["unit"].astype(str)).to_numpy()
    if classes == "sections":
        keys = units
    else:
        attributes = table["attributes"].fillna("").astype(str).to_numpy()
        keys = np.array([u if a in NO_ATTRIBUTES else f"{u}/{a}" for u, a in zip(units, attributes)], dtype=object)
        train = (table["split"] == "train").to_numpy()
        known = set(keys[train])
        first = {}
        for key in sorted(known):
            first.setdefault(class_unit(key), key)
        keys = np.array([k if (t or k in known) else first.get(u, u) for k, u, t in zip(keys, units, train)],
                        dtype=object)
    names = np.array(sorted(set(keys))) if class_column_values is None else np.asarray(class_column_values)
    index = {name: i for i, name in enumerate(names)}
    missing = sorted(set(keys) - set(index))
    if missing:
        raise ASDError(f"clips of unit(s) {missing[:3]} have no class among the training classes")
    return np.array([index[k] for k in keys], dtype=np.int64), names


def class_groups(class_names) -> np.ndarray | None:
    """Index of each class's unit (classes in order, units sorted), or None when every unit is one class
    (the model output is then the class's own probability, bit for bit)."""
    units = [class_unit(n) for n in class_names]
    if len(set(units)) == len(units):
        return None
    order = {u: i for i, u in enumerate(sorted(set(units)))}
    return np.array([order[u] for u in units], dtype=np.int64)


def balanced_class_weights(labels, n_classes: int) -> np.ndarray:
    """scikit-learn's "balanced" weights ``n_samples / (n_classes * count_j)`` for every class."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    if len(present) != n_classes:
        raise ASDError(f"{n_classes - len(present)} class(es) have no training clip")
    return compute_class_weight(class_weight="balanced", classes=np.arange(n_classes), y=labels)


def make_dataset(features: np.ndarray, labels: np.ndarray, n_classes: int, batch_size: int,
                 shuffle: bool = True, seed: int = 0, rows=None, repeat: bool = False, start_epoch: int = 0):
    """A ``tf.data`` pipeline yielding ``({"features", "labels"},)`` batches gathered from ``features``.

    The array is indexed batch by batch inside ``tf.numpy_function`` (read in ascending index order, so
    memory maps read forward, and returned in the shuffled order); batches are prefetched while the model
    trains on the previous one. ``rows`` (indices into ``features``; ``labels`` are then those rows'
    labels) trains on a selection without copying it: each batch reads ``features[rows[batch]]``.
    ``repeat`` makes the dataset endless, one epoch after another (give ``fit`` ``steps_per_epoch`` =
    :func:`steps_per_epoch`): one iterator serves the whole training, with the same per-epoch order as
    ``fit`` on the one-pass dataset (:func:`_index_batches`).
    """
    return make_multi_label_dataset(features, [labels], [n_classes], batch_size, shuffle=shuffle, seed=seed,
                                    rows=rows, repeat=repeat, start_epoch=start_epoch)


def distribution_strategy():
    """``MirroredStrategy`` over all GPUs when more than one is visible, else the default strategy (on
    TensorFlow); a context that does nothing on the other back-ends (one device)."""
    if not on_tensorflow():
        import contextlib

        return _NoStrategy(contextlib.nullcontext)
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        get_logger().info("training on %d GPUs with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


class _NoStrategy:
    """What ``distribution_strategy`` returns off TensorFlow: ``scope()`` is an empty context."""

    def __init__(self, scope):
        self.scope = scope


class ScaleMonitor(keras.callbacks.Callback):
    """Logs the adaptive scale after every epoch and stops training when it leaves the finite range or
    exceeds ``limit`` (the "diverges" entry of Table III: without mixup the modified scale grows
    exponentially, paper appendix). ``diverged`` tells afterwards."""

    def __init__(self, limit=1e8):
        super().__init__()
        self.limit = limit
        self.diverged = False
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        head = self.model.get_layer("head")
        if not hasattr(head, "scale"):
            return
        scale = float(keras.ops.convert_to_numpy(head.scale))
        self.history.append(scale)
        if logs is not None:
            logs["scale"] = scale
        loss = (logs or {}).get("loss", 0.0)
        if not math.isfinite(scale) or scale > self.limit or not math.isfinite(loss):
            self.diverged = True
            self.model.stop_training = True
            get_logger().warning("adaptive scale %.3g after epoch %d: training diverges, stopped", scale, epoch + 1)


class EpochSnapshots(keras.callbacks.Callback):
    """Saves ``epoch_XXXX.keras`` after every ``every`` epochs and after the last one."""

    def __init__(self, folder, every, last_epoch):
        super().__init__()
        self.folder = Path(folder)
        self.every = max(1, int(every))
        self.last_epoch = last_epoch

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done % self.every == 0 or done == self.last_epoch:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.model.save(self.folder / f"epoch_{done:04d}.keras")


def plot_scale_figure(networks: dict, path, threshold: float, tag: str = "") -> Path:
    """Table III's networks on one figure: the adaptive scale per epoch of each (log y-axis) and the
    divergence threshold (paper appendix: without mixup the modified AdaCos scale grows without bound).

    ``networks`` maps ``(loss, mixup)`` to the network's folder (its ``training_log.csv``); ``tag`` names the
    run's data and mode in the title (:func:`asdcore.report.run_tag`)."""
    from asdcore.keras_utils import training_log_path
    from asdcore.training_curves import plot_scale_curves

    logs = {f"{'sub-cluster AdaCos' if loss == 'subcluster_adacos' else 'AdaCos'}, "
            f"{'mixup' if mixup else 'no mixup'}": training_log_path(folder) for (loss, mixup), folder in networks.items()}
    return plot_scale_curves(logs, path, threshold, title="Table III networks: adaptive scale per epoch"
                                                          + (f"\n{tag}" if tag else ""))


def _row_indices(rows, n: int):
    """``rows`` (None, a boolean mask or indices over ``n`` clips) as an int64 index array, or None."""
    if rows is None:
        return None
    rows = np.asarray(rows)
    rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise ASDError(f"row indices outside 0..{n - 1}")
    return rows


def train_model(features: np.ndarray, labels: np.ndarray, n_classes: int, config: TrainingConfig,
                model_dir=None, seed: int = 0, verbose: int = 1, input_shape=None, rows=None):
    """Train one embedding network on ``features`` (clips, frames, bins) and integer ``labels``.

    Parameters
    ----------
    features : array, memory map or :class:`asdcore.features.StandardisedView` (read batch by batch).
    rows : indices (or a boolean mask) of the training clips in ``features``; ``labels`` are then the
        labels of those rows. Nothing is copied: each batch reads ``features[rows[batch]]``.
    model_dir : folder for ``epoch_XXXX.keras`` snapshots, ``training_log.csv`` and the resumable backup;
        None trains without writing anything.

    Returns
    -------
    model, info : the trained training model (inputs ``features``, ``labels``) and a dict with
        ``diverged`` (bool), ``scales`` (adaptive scale per epoch), ``snapshots`` (epoch -> path),
        ``history`` (Keras history dict).
    """

    from subcluster_adacos.network import build_training_model

    rows = _row_indices(rows, len(features))
    n_clips = len(features) if rows is None else len(rows)
    if n_clips != len(labels):
        raise ASDError(f"{n_clips} feature arrays for {len(labels)} labels")
    weights = None
    if config.class_weight == "balanced":
        weights = balanced_class_weights(labels, n_classes)
    elif config.class_weight != "none":
        raise ASDError(f"class_weight must be 'balanced' or 'none', got {config.class_weight!r}")
    strategy = distribution_strategy()
    with strategy.scope():
        model = build_training_model(n_classes, n_subclusters=config.n_subclusters, loss=config.loss,
                                     mixup=config.mixup, angle_mode=config.angle_mode,
                                     input_shape=input_shape or tuple(features.shape[1:]), l2=config.l2,
                                     class_weights=weights, seed=seed, mixup_labels=config.mixup_labels)
        _compile(model, config)
    monitor = ScaleMonitor(config.divergence_scale)
    dataset = make_dataset(features, labels, n_classes, config.batch_size, shuffle=True, seed=seed, rows=rows,
                           repeat=True, start_epoch=_resumed_epochs(model_dir))
    return _fit(model, dataset, steps_per_epoch(n_clips, config.batch_size), config, monitor, model_dir, verbose,
                scales=lambda: monitor.history)


def _compile(model, config: TrainingConfig) -> None:
    """Adam with the configured learning rate, its slot variables created up front. On TensorFlow: one fused
    update kernel per variable (:class:`asdcore.optimizers.FusedAdam`, the same update) and XLA only on GPUs
    (on a CPU it costs more than it saves); on the other back-ends Keras' own Adam and their default
    compilation (JAX: the whole step XLA-compiled)."""
    if on_tensorflow():
        import tensorflow as tf

        from asdcore.optimizers import FusedAdam

        on_gpu = bool(tf.config.list_logical_devices("GPU"))
        model.compile(optimizer=FusedAdam(learning_rate=config.learning_rate), jit_compile=on_gpu)
    else:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate))
    # Create Adam's slots now, not inside the first traced training step: variables created during a
    # tf.function trace make TensorFlow trace the step a second time (issue 16: ~3 s of the first epoch).
    model.optimizer.build(model.trainable_variables)


def _resumed_epochs(model_dir) -> int:
    """Epochs a killed training in ``model_dir`` had finished (its backup, :class:`EpochBackup`); 0 if none."""
    from asdcore.keras_utils import EpochBackup

    return EpochBackup.last_epoch(Path(model_dir) / "backup") if model_dir is not None else 0


def _fit(model, dataset, n_steps: int, config: TrainingConfig, monitor, model_dir, verbose, scales):
    """``model.fit`` on the endless ``dataset`` (``repeat=True``), ``n_steps`` batches an epoch, with the scale
    monitor (it logs every head's adaptive scale), NaN stop and, under ``model_dir``, the resumable backup and
    snapshots every ``config.checkpoint_every`` epochs, added to the standard callbacks
    (:func:`asdcore.keras_utils.training_callbacks`: learning rate, one progress line per epoch, CSV log
    ``training_log.csv``, TensorBoard ``tensorboard/``). Returns ``(model, info)``."""
    from asdcore.keras_utils import EpochBackup, training_callbacks

    extra = [monitor]
    if model_dir is not None:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        extra += [EpochBackup(model_dir / "backup"),
                  EpochSnapshots(model_dir, config.checkpoint_every, config.epochs)]
    callbacks = training_callbacks(model_dir, extra=extra, stop_on_nan=True, append=True)
    # The dataset shuffles itself each epoch (make_dataset); shuffle=False only silences Keras.
    history = model.fit(dataset, epochs=config.epochs, steps_per_epoch=n_steps, callbacks=callbacks,
                        verbose=verbose, shuffle=False)
    snapshots = {}
    if model_dir is not None:
        for path in sorted(model_dir.glob("epoch_*.keras")):
            snapshots[int(path.stem.split("_")[1])] = path
    return model, {"diverged": monitor.diverged, "scales": scales(), "snapshots": snapshots,
                   "history": dict(history.history)}


# --- several label sets, one head each (Wilkinghoff 2021: sections and attribute classes) ----------------

def make_multi_label_dataset(features: np.ndarray, label_sets, n_classes, batch_size: int,
                             shuffle: bool = True, seed: int = 0, label_names=None, rows=None, repeat: bool = False,
                             portable: bool = False, start_epoch: int = 0):
    """Like :func:`make_dataset` with one one-hot label input per label set (``rows``, ``repeat``: as there).

    ``start_epoch`` (with ``repeat``): begin with the batches of that epoch (0-based), as a training resumed
    after ``start_epoch`` epochs needs them; the order of every later epoch is unchanged.

    Yields ``{"features", label_names[0], label_names[1], ...}`` batches (default names ``labels``,
    ``labels_1``, ...: the inputs of :func:`~subcluster_adacos.network.build_multi_head_training_model`).
    Off TensorFlow (and on it with ``portable=True``) the pipeline is an
    :class:`asdcore.input_pipeline.ClipBatches` (its epochs drawn by NumPy), the features on
    the accelerator when they fit (:func:`asdcore.input_pipeline.place_features`).
    """
    label_sets = [np.asarray(labels) for labels in label_sets]
    n_classes = [int(c) for c in n_classes]
    if label_names is None:
        label_names = ["labels"] + [f"labels_{i}" for i in range(1, len(label_sets))]
    if not (len(label_sets) == len(n_classes) == len(label_names)):
        raise ASDError(f"{len(label_sets)} label sets, {len(n_classes)} class counts and {len(label_names)} "
                       "names; give one of each per head")
    rows = _row_indices(rows, len(features))
    n = len(features) if rows is None else len(rows)
    if portable or not on_tensorflow():
        return ClipBatches(features, label_sets, n_classes, label_names, batch_size, shuffle=shuffle, seed=seed,
                           rows=rows, device=place_features(features, rows), endless=repeat,
                           start_epoch=start_epoch)
    import tensorflow as tf

    frame_shape = tuple(features.shape[1:])
    one_hots = [np.eye(c, dtype=np.float32)[labels] for c, labels in zip(n_classes, label_sets)]

    def gather(indices):
        # Read in ascending index order (memory maps read forward), then put the clips back in the shuffled
        # order (asdcore.features.read_rows): mixup pairs sample i with sample n-1-i of the batch, and in a
        # sorted batch that partner would follow the clip table's order (machine type, unit) instead of being a
        # random clip, as it is with Keras' fit(shuffle=True) in the public code.
        batch = read_rows(features, indices if rows is None else rows[indices])
        return (batch,) + tuple(o[indices] for o in one_hots)

    def load(indices):
        out = tf.numpy_function(gather, [indices], [tf.float32] * (1 + len(one_hots)), stateful=False)
        out[0].set_shape((None,) + frame_shape)
        batch = {"features": out[0]}
        for name, tensor, c in zip(label_names, out[1:], n_classes):
            tensor.set_shape((None, c))
            batch[name] = tensor
        return batch

    dataset = _index_batches(n, batch_size, shuffle, seed, repeat, start_epoch).map(
        load, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(n_clips: int, batch_size: int) -> int:
    """Batches in one epoch of ``n_clips`` clips (the last one may be smaller): ``fit``'s ``steps_per_epoch``
    for a dataset made with ``repeat=True``."""
    return -(-int(n_clips) // int(batch_size))


def _index_batches(n: int, batch_size: int, shuffle: bool, seed: int, repeat: bool, start_epoch: int = 0):
    """Batches of clip indices: one (shuffled) pass over ``range(n)``, or with ``repeat`` one pass per epoch
    without end.

    The shuffled order of epoch ``e`` is the same either way. Keras 3's ``fit`` on the one-pass dataset opens
    a new iterator at the end of each epoch (``EpochIterator`` when the dataset's length is known), discards
    it and opens another at the start of the next epoch; every iterator draws the next permutation of the
    shuffle's seed stream, so epoch ``e`` trained on permutation ``2e`` and the odd ones were thrown away
    (issue 16). The repeated dataset keeps one iterator for the whole ``fit`` (no refilled buffers at epoch
    starts) and takes those same permutations ``0, 2, 4, ...`` of the same seed stream.
    """
    import tensorflow as tf

    indices = tf.data.Dataset.range(n)
    if shuffle:
        indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if not repeat:
        return indices.batch(batch_size)
    epochs = indices.batch(n).repeat()  # one element = one epoch's permutation
    if shuffle:
        epochs = epochs.shard(2, 0)  # permutations 0, 2, 4, ...: the ones fit trained on (see above)
    if start_epoch:
        epochs = epochs.skip(int(start_epoch))  # index permutations only: nothing is read from the features
    return epochs.flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))


class HeadScaleMonitor(ScaleMonitor):
    """:class:`ScaleMonitor` for several heads: logs every head's adaptive scale after each epoch
    (``scale`` for the head ``head``, ``scale_<name>`` for the others) and stops training when any of them
    leaves the finite range or exceeds ``limit``. ``histories`` maps head name -> scales per epoch;
    ``history`` is that of the first head."""

    def __init__(self, heads, limit=1e8):
        super().__init__(limit)
        self.heads = list(heads)
        self.histories = {name: [] for name in self.heads}

    def on_epoch_end(self, epoch, logs=None):
        unstable = False
        for i, name in enumerate(self.heads):
            head = self.model.get_layer(name)
            if not hasattr(head, "scale"):
                continue
            scale = float(keras.ops.convert_to_numpy(head.scale))
            self.histories[name].append(scale)
            if i == 0:
                self.history.append(scale)
            if logs is not None:
                logs["scale" if name == "head" else f"scale_{name}"] = scale
            unstable |= not math.isfinite(scale) or scale > self.limit
        loss = (logs or {}).get("loss", 0.0)
        if unstable or not math.isfinite(loss):
            self.diverged = True
            self.model.stop_training = True
            get_logger().warning("adaptive scales %s after epoch %d: training diverges, stopped",
                                 {k: v[-1:] for k, v in self.histories.items()}, epoch + 1)


def train_multi_head_model(features: np.ndarray, label_sets, n_classes, config: TrainingConfig,
                           model_dir=None, seed: int = 0, verbose: int = 1, input_shape=None,
                           loss_weights=None, rows=None):
    """Train one embedding network with one sub-cluster AdaCos head per label set (Wilkinghoff 2021).

    The generalisation of :func:`train_model` to several label sets (e.g. sections and attribute
    classes): the model of :func:`~subcluster_adacos.network.build_multi_head_training_model` (one mixup
    for the features and all label sets, the same ``S`` in every head), class weights per head from
    ``config.class_weight``, Adam, snapshots every ``config.checkpoint_every`` epochs, CSV log and resumable
    backup under ``model_dir``. ``config.loss`` must be ``"subcluster_adacos"``.

    Parameters
    ----------
    label_sets : sequence of integer arrays, one per head, aligned with ``features``.
    n_classes : sequence of int, the classes of each head.
    loss_weights : sequence of float or None (equal weights, the paper's choice).
    rows : indices or boolean mask over ``features``' first axis, or None (all of them): train on those
        clips only, read batch by batch (no copy, as :func:`train_model`); ``label_sets`` are then aligned
        with the selected rows.

    Returns
    -------
    model, info : as :func:`train_model`; ``info["scales"]`` maps head layer name -> scale per epoch.
    """

    from subcluster_adacos.network import build_multi_head_training_model, head_names

    rows = _row_indices(rows, len(features))
    n_clips = len(features) if rows is None else len(rows)
    label_sets = [np.asarray(labels) for labels in label_sets]
    n_classes = [int(c) for c in n_classes]
    if config.loss != "subcluster_adacos":
        raise ASDError(f"train_multi_head_model trains sub-cluster AdaCos heads only, got loss={config.loss!r}")
    if len(label_sets) != len(n_classes):
        raise ASDError(f"{len(label_sets)} label sets for {len(n_classes)} class counts; give one per head")
    for labels in label_sets:
        if len(labels) != n_clips:
            raise ASDError(f"{n_clips} training clips for {len(labels)} labels")
    if config.class_weight == "balanced":
        weights = [balanced_class_weights(labels, c) for labels, c in zip(label_sets, n_classes)]
    elif config.class_weight == "none":
        weights = None
    else:
        raise ASDError(f"class_weight must be 'balanced' or 'none', got {config.class_weight!r}")
    strategy = distribution_strategy()
    with strategy.scope():
        model = build_multi_head_training_model(n_classes, n_subclusters=config.n_subclusters, mixup=config.mixup,
                                                angle_mode=config.angle_mode,
                                                input_shape=input_shape or tuple(features.shape[1:]),
                                                l2=config.l2, class_weights=weights, loss_weights=loss_weights,
                                                seed=seed, mixup_labels=config.mixup_labels)
        _compile(model, config)
    monitor = HeadScaleMonitor(head_names(len(n_classes)), config.divergence_scale)
    dataset = make_multi_label_dataset(features, label_sets, n_classes, config.batch_size, shuffle=True, seed=seed,
                                       rows=rows, repeat=True, start_epoch=_resumed_epochs(model_dir))
    return _fit(model, dataset, steps_per_epoch(n_clips, config.batch_size), config, monitor, model_dir, verbose,
                scales=lambda: monitor.histories)


# --- one network of an experiment, trained into its own folder ------------------------------------------

def train_network(features, labels: np.ndarray, n_classes: int, config: TrainingConfig, folder, rows,
                  seed: int = 0, verbose: int = 0, groups=None) -> dict:
    """Train one embedding network on the clips ``rows`` of ``features`` and write into ``folder`` what
    scoring needs, so that scoring can run in another process from the folder alone (:func:`load_network`).

    ``features`` (clips, frames, bins) is read batch by batch (a memory map or a
    :class:`~asdcore.features.StandardisedView`); ``labels`` are the classes of every clip of ``features``.
    Written: ``epoch_XXXX.keras`` snapshots and ``training_log.csv`` (:func:`train_model`), and unless the
    network diverged ``embeddings.npy`` (every clip, Sec. III-C), ``centres.npy`` (the head's L2-normalised
    sub-cluster centres, the GMM initialisation) and ``model_output.npy`` (Table II "representation model
    output" for the clips not in ``rows``, NaN for those in it).
    ``groups``: the unit of every class (:func:`class_groups`) when a unit has several classes; the model
    output is then ``-log P(unit | clip)``.

    Returns ``{"diverged": bool, "scales": adaptive scale per epoch, "epochs": epochs trained}``.
    """
    from subcluster_adacos.layers import normalized_centers
    from subcluster_adacos.network import head_layer
    from subcluster_adacos.scoring import network_outputs

    folder = Path(folder)
    rows = _row_indices(rows, len(features))
    labels = np.asarray(labels)
    model, info = train_model(features, labels[rows], n_classes, config, model_dir=folder, seed=seed,
                              verbose=verbose, rows=rows)
    summary = {"diverged": bool(info["diverged"]), "scales": [float(s) for s in info["scales"]],
               "epochs": len(info["history"].get("loss", []))}
    if info["diverged"]:
        return summary
    embeddings, output = network_outputs(model, features, labels, n_classes, config.batch_size,  # one pass
                                         groups=groups)
    np.save(folder / "embeddings.npy", embeddings)
    np.save(folder / "centres.npy", normalized_centers(head_layer(model)))
    output[rows] = np.nan  # a score of the clips the network did not train on (all NaN when every clip trained it)
    np.save(folder / "model_output.npy", output)
    if not any(folder.glob("epoch_*.keras")):  # model_dir snapshots are written by train_model
        model.save(folder / f"epoch_{config.epochs:04d}.keras")
    return summary


def load_network(folder, load_model: bool = False) -> dict:
    """What :func:`train_network` wrote into ``folder``: ``embeddings``, ``centres``, ``model_output`` (None
    when the network diverged) and, with ``load_model``, ``model`` (the last snapshot's training model)."""
    folder = Path(folder)
    if not (folder / "embeddings.npy").is_file():
        return {"diverged": True}
    result = {"diverged": False, "embeddings": np.load(folder / "embeddings.npy"),
              "centres": np.load(folder / "centres.npy"), "model_output": np.load(folder / "model_output.npy")}
    if load_model:
        import subcluster_adacos.layers  # noqa: F401 - registers the custom layers for deserialisation

        snapshots = sorted(folder.glob("epoch_*.keras"))
        if not snapshots:
            raise ASDError(f"{folder}: no epoch_*.keras snapshot; train the unit again")
        result["model"] = keras.models.load_model(snapshots[-1])
    return result
