"""asdcore.keras_utils: the standard callbacks every trainer shares (learning rates, one progress line per
epoch with the run's ETA, CSV log, TensorBoard) and the model reset between units."""
import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorboard")  # a dependency (setup.py); Keras' TensorBoard callback writes through it

from asdcore import estimates  # noqa: E402
from asdcore.keras_utils import ProgressLine, reset_for_unit, training_callbacks  # noqa: E402


class Probe(keras.callbacks.Callback):
    """A method's callback: writes epoch ** 2 into the epoch logs."""

    def on_epoch_end(self, epoch, logs=None):
        logs["probe"] = float(epoch ** 2)


def _tiny_fit(callbacks, epochs=3, n=32, batch=8):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5, staircase=True)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    return model.fit(x, x[:, :1], batch_size=batch, epochs=epochs, verbose=0, callbacks=callbacks, shuffle=False)


def test_csv_log_and_tensorboard_hold_loss_learning_rate_and_the_methods_scalars(tmp_path, tensorboard_scalars):
    history = _tiny_fit(training_callbacks(tmp_path, extra=[Probe()]))
    log = pd.read_csv(tmp_path / "training_log.csv")
    assert list(log["epoch"]) == [0, 1, 2]
    # 4 steps per epoch; the schedule halves every 3 steps: lr after epoch k = 0.1 * 0.5 ** floor(4k / 3)
    expected_lr = [0.1 * 0.5 ** (4 * k // 3) for k in (1, 2, 3)]
    np.testing.assert_allclose(log["learning_rate"], expected_lr, rtol=1e-6)
    np.testing.assert_allclose(log["probe"], [0.0, 1.0, 4.0])
    np.testing.assert_allclose(log["loss"], history.history["loss"], rtol=1e-6)
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    assert {"epoch_loss", "epoch_learning_rate", "epoch_probe"} <= set(scalars)
    assert [s for s, _ in scalars["epoch_probe"]] == [0, 1, 2]
    np.testing.assert_allclose([v for _, v in scalars["epoch_learning_rate"]], expected_lr, rtol=1e-6)
    np.testing.assert_allclose([v for _, v in scalars["epoch_loss"]], history.history["loss"], rtol=1e-5)


def test_a_further_training_of_a_unit_logs_beside_the_first(tmp_path):
    _tiny_fit(training_callbacks(tmp_path, name="anomalies2"), epochs=1)
    assert (tmp_path / "training_log_anomalies2.csv").is_file()
    assert any((tmp_path / "tensorboard" / "anomalies2").rglob("events.out.tfevents*"))
    assert not (tmp_path / "training_log.csv").exists()
    callbacks = training_callbacks(None)  # outside a run: no files, still the learning rate and progress
    assert not any(isinstance(c, (keras.callbacks.CSVLogger, keras.callbacks.TensorBoard)) for c in callbacks)


class _Lines:
    def __init__(self):
        self.lines = []

    def info(self, fmt, *args):
        self.lines.append(fmt % args)


def test_progress_is_one_line_per_epoch_with_the_run_eta():
    clock = iter(np.arange(0.0, 1000.0, 1.0))  # every clock read: one second later
    progress = estimates.start_progress(24, clock=lambda: float(next(clock)))
    progress.label = "unit_a"
    log = _Lines()
    try:
        _tiny_fit([ProgressLine(announce_after=2, log=log)], epochs=2)
    finally:
        estimates.stop_progress()
    epoch_lines = [line for line in log.lines if " epoch " in line]
    assert len(epoch_lines) == 2  # no per-step lines
    assert epoch_lines[0].startswith("unit_a epoch 1/2: loss ") and "run 17% (4/24 steps)" in epoch_lines[0]
    assert "run 33% (8/24 steps)" in epoch_lines[1] and "left" in epoch_lines[1]
    announce = [line for line in log.lines if line.startswith("measured")]
    assert len(announce) == 1 and "24 steps of this run" in announce[0]


def test_progress_without_a_run_shows_the_trainings_own_steps():
    log = _Lines()
    _tiny_fit([ProgressLine(log=log)], epochs=2)
    assert "run 50% (4/8 steps)" in log.lines[0] and "run 100% (8/8 steps)" in log.lines[1]


def test_reset_for_unit_clears_the_session_and_seeds():
    keras.layers.Dense(1)
    reset_for_unit(3)
    assert keras.layers.Dense(1).name == "dense"  # the layer-name counter starts again
    kernels = []
    for _ in range(2):
        reset_for_unit(3)
        layer = keras.layers.Dense(4)
        layer.build((None, 5))
        kernels.append(keras.ops.convert_to_numpy(layer.kernel))
    np.testing.assert_array_equal(*kernels)  # the same initial weights for the same unit seed
    assert np.random.rand() == np.random.RandomState(3).rand()  # noqa: NPY002 - the global generator is seeded


def test_reset_for_unit_keeps_the_precision_policy():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        reset_for_unit(3)  # Keras' clear_session alone sets the policy back to float32
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        assert keras.layers.Dense(2).compute_dtype == "bfloat16"
    finally:
        keras.config.set_dtype_policy("float32")
