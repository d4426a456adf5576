"""What every Keras trainer of the project shares: the model reset between units and the standard callbacks.

One place for the plumbing that is not any paper's method (issue 12), so every network of every command
logs the same way:

- :func:`reset_for_unit`: ``keras.backend.clear_session`` (graphs and layer-name counters of the previous
  unit gone, memory freed) and one seed for Python, NumPy and Keras (:func:`asdcore.experiment.set_seed`);
  the runner calls it before each unit of work.
- :func:`training_callbacks`: the method's own callbacks (centroid updates, scale monitor, snapshots,
  validation: they write their scalars into the epoch logs) followed by the standard set

  - :class:`LearningRates`: every optimizer's current learning rate into the epoch logs (``learning_rate``,
    or ``learning_rate_<name>`` for several optimizers);
  - :class:`ProgressLine`: one log line per epoch, the logged values and the ETA of the whole run
    (:class:`asdcore.estimates.RunProgress`, fed with every training step);
  - ``keras.callbacks.TerminateOnNaN``: optional (``stop_on_nan``);
  - ``keras.callbacks.CSVLogger``: ``<folder>/training_log.csv``, one row per epoch, every logged value;
  - ``keras.callbacks.TensorBoard`` (Keras' own): ``<folder>/tensorboard/``, the same values as scalars
    ``epoch_<name>`` (open with ``tensorboard --logdir <run folder>/units``).

  The order matters: Keras hands one ``logs`` dict to the callbacks in list order, so whatever a method's
  callback adds at the end of an epoch (an adaptive scale, a centroid distance) reaches the CSV log and
  TensorBoard of that same epoch.
"""
from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from asdcore.estimates import RunProgress, current_progress, human_duration
from asdcore.experiment import get_logger, set_seed
from asdcore.training_curves import TRAINING_LOG  # the log the runner draws plots/training/<unit>.png from

__all__ = ["reset_for_unit", "training_callbacks", "LearningRates", "ProgressLine", "EpochBackup", "TRAINING_LOG",
           "TENSORBOARD_DIR", "training_log_path", "tensorboard_available", "compiled_inference"]

#: TensorBoard folder of a unit (one sub-folder per further training of the same unit).
TENSORBOARD_DIR = "tensorboard"


def reset_for_unit(seed: int, clear_session: bool = True) -> None:
    """Start a unit of work from a clean Keras state: clear the session (unless ``clear_session`` is False:
    a method that reuses compiled networks across units, e.g. :class:`smoothing.training.ModelCache`), then
    seed Python, NumPy and Keras with ``seed``. The global dtype policy (``--precision``,
    :func:`asdcore.experiment.apply_precision`) outlives the reset: Keras' ``clear_session`` sets it back to
    float32, which would train every unit in float32 whatever ``--precision`` said."""
    if clear_session:
        policy = keras.config.dtype_policy()
        keras.backend.clear_session(free_memory=True)
        keras.config.set_dtype_policy(policy)
    set_seed(int(seed), keras=True)


def training_log_path(folder, name: str | None = None) -> Path:
    """``<folder>/training_log.csv``, or ``training_log_<name>.csv`` for a further training of the unit."""
    return Path(folder) / (TRAINING_LOG if not name else f"training_log_{name}.csv")


class LearningRates(keras.callbacks.Callback):
    """Writes the current learning rate of each optimizer into the epoch logs (so it reaches the CSV log and
    TensorBoard). A schedule is evaluated at the optimizer's iteration count at the end of the epoch.

    Parameters
    ----------
    optimizers : callable or None
        ``optimizers(model) -> {log name: optimizer}``; None: ``{"learning_rate": model.optimizer}``.
    """

    def __init__(self, optimizers=None):
        super().__init__()
        self.optimizers = optimizers

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        found = self.optimizers(self.model) if self.optimizers else {"learning_rate": self.model.optimizer}
        for name, optimizer in found.items():
            optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # mixed precision's LossScaleOptimizer
            if optimizer is not None:
                logs[name] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _format(value) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


class ProgressLine(keras.callbacks.Callback):
    """One log line per epoch (no per-step output): epoch, every logged value, the epoch's time and the
    progress of the whole run with its ETA.

    The steps are counted into the run's :class:`~asdcore.estimates.RunProgress` (the runner starts it with
    the total of ``Method.estimate``); without one (a unit trained alone, a method without an estimate) the
    line shows this training's own progress (epochs x steps per epoch). After the first ``announce_after``
    measured steps a line states the measured pace and the time the whole run will take.
    """

    def __init__(self, label: str = "", announce_after: int = 10, log=None):
        super().__init__()
        self.label = label
        self.announce_after = int(announce_after)
        self.log = log or get_logger()
        self.progress = None

    def on_train_begin(self, logs=None):
        run = current_progress()
        self._unit = run.label if run is not None else ""
        if run is not None and run.total:
            self.progress, self._scope = run, "run"
        else:
            epochs, steps = self.params.get("epochs"), self.params.get("steps")
            self.progress, self._scope = RunProgress((epochs or 0) * (steps or 0)), "training"
        self._measured_from = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        progress = self.progress
        progress.advance(1)
        if self._measured_from is None:
            self._measured_from = progress.done
        elif (progress.done - self._measured_from == self.announce_after and not progress.announced
              and progress.total and progress.seconds_left() is not None):
            progress.announced = True
            self.log.info("measured %.3g s per training step on the first %d steps: the %d steps of this %s take "
                          "about %s (refined after every epoch)", progress.seconds_per_step(), self.announce_after,
                          progress.total, self._scope, human_duration(progress.total * progress.seconds_per_step()))

    def on_epoch_end(self, epoch, logs=None):
        label = self.label or self._unit
        values = " ".join(f"{k} {_format(v)}" for k, v in (logs or {}).items())
        self.log.info("%sepoch %d/%s: %s (%s) | %s", f"{label} " if label else "", epoch + 1,
                      self.params.get("epochs", "?"), values,
                      human_duration(time.monotonic() - self._epoch_start), self.progress.describe())


class EpochBackup(keras.callbacks.Callback):
    """Training that continues where a killed process stopped, exactly as if it had not been stopped.

    After every epoch every variable of the model (weights, and the random generators' states, e.g. of
    mixup's ``keras.random.SeedGenerator``) and of its optimizer (moments, iteration count) go to one
    file, ``<folder>/epoch_XXXX.npz``, written atomically (:func:`asdcore.atomic_io.atomic_save_npz`);
    older backups are then removed. At the start of ``fit`` the latest one is loaded and training goes on
    with the next epoch; when ``fit`` ends the folder is removed. Unlike ``keras.callbacks.BackupAndRestore``
    (weights and epoch number in two files, the weights file overwritten in place, ``save_weights``
    without the generators' states) no moment of the save leaves a backup that cannot be loaded or names
    the wrong epoch, and the resumed epochs draw the same random numbers.

    A resumed training gives the same weights as an uninterrupted one when the data pipeline starts at the
    resumed epoch too: give it :meth:`last_epoch`.
    """

    PATTERN = "epoch_*.npz"

    def __init__(self, folder):
        super().__init__()
        self.folder = Path(folder)

    @classmethod
    def last_epoch(cls, folder) -> int:
        """The number of epochs the latest backup in ``folder`` holds (0: none)."""
        folder = Path(folder)
        epochs = [int(p.stem.split("_")[1]) for p in folder.glob(cls.PATTERN)] if folder.is_dir() else []
        return max(epochs, default=0)

    def _path(self, epoch: int) -> Path:
        return self.folder / f"epoch_{epoch:04d}.npz"

    def _variables(self) -> list:
        optimizer = self.model.optimizer
        return list(self.model.variables) + (list(optimizer.variables) if optimizer is not None else [])

    def on_train_begin(self, logs=None):
        import numpy as np

        epoch = self.last_epoch(self.folder)
        if not epoch:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        variables = self._variables()
        with np.load(self._path(epoch)) as saved:
            if len(saved.files) != len(variables):
                from asdcore.errors import ASDError

                raise ASDError(f"{self._path(epoch)}: a backup of another network ({len(saved.files)} variables, "
                               f"this one has {len(variables)}); remove {self.folder} to train from the start")
            for i, variable in enumerate(variables):
                variable.assign(saved[f"v{i}"])
        # fit() starts at model._initial_epoch when a callback sets it in on_train_begin (Keras' own
        # BackupAndRestore does the same)
        self.model._initial_epoch = epoch  # noqa: SLF001
        get_logger().info("training continues after epoch %d (backup %s)", epoch, self._path(epoch))

    def on_epoch_end(self, epoch, logs=None):
        from asdcore.atomic_io import atomic_save_npz

        arrays = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(self._variables())}
        atomic_save_npz(self._path(epoch + 1), overwrite=True, **arrays)
        for older in self.folder.glob(self.PATTERN):
            if older != self._path(epoch + 1):
                older.unlink(missing_ok=True)

    def on_train_end(self, logs=None):
        # training done (or stopped on divergence): a unit killed after this point trains again from the
        # start, which gives the same network; a backup left here would make it continue a stopped training
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def training_callbacks(folder=None, *, extra=(), name: str | None = None, optimizers=None, stop_on_nan=False,
                       append: bool = False, label: str = "") -> list:
    """The callbacks of one ``model.fit``: ``extra`` (the method's own), then the standard set (module
    docstring).

    Parameters
    ----------
    folder : path or None
        The unit folder: CSV log ``training_log.csv`` and TensorBoard ``tensorboard/`` go there; None logs
        to neither (a network trained outside a run).
    extra : sequence of callbacks
        The method's callbacks; they run first, so the scalars they add are logged.
    name : str or None
        A further training in the same folder (e.g. ``anomalies4``): ``training_log_<name>.csv`` and
        ``tensorboard/<name>/``.
    optimizers : callable or None
        For :class:`LearningRates` (several optimizers).
    stop_on_nan : bool
        Add ``keras.callbacks.TerminateOnNaN``.
    append : bool
        Append to an existing CSV log (trainings resumed by ``BackupAndRestore``).
    label : str
        Prefix of the progress lines (default: the unit the runner is training).
    """
    callbacks = list(extra) + [LearningRates(optimizers), ProgressLine(label)]
    if stop_on_nan:
        callbacks.append(keras.callbacks.TerminateOnNaN())
    if folder is not None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        callbacks.append(keras.callbacks.CSVLogger(str(training_log_path(folder, name)), append=append))
        if tensorboard_available():
            board = folder / TENSORBOARD_DIR / name if name else folder / TENSORBOARD_DIR
            callbacks.append(keras.callbacks.TensorBoard(str(board), write_graph=False, update_freq="epoch",
                                                         profile_batch=0))
    callbacks.append(_EpochKillPoint())  # a test hook, inert unless $ASD_KILL_AT is set (asdcore.kill_points)
    return callbacks


class _EpochKillPoint(keras.callbacks.Callback):
    """The ``epoch-end`` point of :mod:`asdcore.kill_points`: last, after every other callback's epoch end."""

    def on_epoch_end(self, epoch, logs=None):
        from asdcore.kill_points import kill_point

        kill_point("epoch-end")


_WARNED = []


def tensorboard_available() -> bool:
    """Whether Keras' TensorBoard callback can write: it needs the ``tensorboard`` package and writes through
    ``tensorflow.summary``, so TensorFlow too (also on the JAX back-end). If not, says once what is missing
    (the CSV log and the curves are written all the same)."""
    import importlib.util

    missing = [name for name in ("tensorboard", "tensorflow") if importlib.util.find_spec(name) is None]
    if not missing:
        return True
    if not _WARNED:
        _WARNED.append(True)
        get_logger().warning("TensorBoard logs not written: the %s package is missing (Keras' TensorBoard "
                             "callback writes through tensorflow.summary); the CSV log is written all the same",
                             " and ".join(missing))
    return False



def compiled_inference(model):
    """``f(x) -> numpy float32``: ``model(x, training=False)`` compiled once for the active back-end (a
    ``tf.function`` on TensorFlow, ``jax.jit`` of the stateless call on JAX, eager elsewhere), reading the
    model's current weights at every call (so it follows training between calls).

    On JAX a batch shorter than the widest one seen so far (the short last batch of a pass) is padded to that
    width and its outputs cut back, so each model compiles one shape, not one per batch size (in inference
    mode every input's output is independent of the others in its batch); ``f.compiled`` is the jitted call."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        graph = tf.function(lambda t: tf.cast(model(t, training=False), tf.float32), reduce_retracing=True)
        return lambda x: graph(tf.cast(x, tf.float32)).numpy()
    if backend == "jax":
        import jax

        @jax.jit
        def call(trainable, non_trainable, x):
            out, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return keras.ops.cast(out, "float32")

        widest = [0]

        def run(x):
            x = np.asarray(x, np.float32)
            n = len(x)
            widest[0] = max(widest[0], n)
            if 0 < n < widest[0]:
                x = np.concatenate([x, np.repeat(x[-1:], widest[0] - n, axis=0)])
            out = np.asarray(call([v.value for v in model.trainable_variables],
                                  [v.value for v in model.non_trainable_variables], x))
            return out[:n]

        run.compiled = call
        return run
    return lambda x: keras.ops.convert_to_numpy(
        keras.ops.cast(model(keras.ops.convert_to_tensor(np.asarray(x, np.float32)), training=False), "float32"))
