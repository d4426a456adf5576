"""asdcore.optimizers.FusedAdam: Adam (Kingma & Ba, Algorithm 1, epsilon outside the square root) computed in
NumPy by hand, step by step, against the fused kernel and against keras.optimizers.Adam."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from asdcore.optimizers import FusedAdam  # noqa: E402


def _numpy_adam(w, grads, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    w, m, v = w.astype(np.float64), np.zeros_like(w, np.float64), np.zeros_like(w, np.float64)
    for t, g in enumerate(grads, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        w = w - lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t) * m / (np.sqrt(v) + epsilon)
    return w


def _train(optimizer, w0, grads):
    variable = keras.Variable(w0.copy())
    optimizer.build([variable])
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
    return keras.ops.convert_to_numpy(variable)


@pytest.mark.parametrize("learning_rate", [1e-3, 0.05])
def test_matches_adam_by_hand_and_keras_adam(learning_rate):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(6, 5)).astype(np.float32)
    grads = [rng.normal(size=w0.shape).astype(np.float32) * 10 ** rng.uniform(-3, 1) for _ in range(12)]
    expected = _numpy_adam(w0, grads, learning_rate)
    fused = _train(FusedAdam(learning_rate=learning_rate), w0, grads)
    unfused = _train(keras.optimizers.Adam(learning_rate=learning_rate), w0, grads)
    moved = np.abs(expected - w0).max()
    assert moved > 5 * learning_rate  # the weights moved: a no-op would fail
    np.testing.assert_allclose(fused, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(fused, unfused, rtol=0, atol=1e-5)


def test_schedule_and_iterations_follow_keras():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5, staircase=True)
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(3,)).astype(np.float32)
    grads = [rng.normal(size=3).astype(np.float32) for _ in range(5)]
    optimizer = FusedAdam(learning_rate=schedule)
    variable = keras.Variable(w0.copy())
    optimizer.build([variable])
    expected = w0.astype(np.float64)
    m = v = np.zeros(3)
    for t, g in enumerate(grads, start=1):
        lr = 0.1 * 0.5 ** ((t - 1) // 2)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        expected = expected - lr * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t) * m / (np.sqrt(v) + 1e-7)
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 5
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), expected, rtol=0, atol=1e-5)


def test_round_trips_through_a_keras_file(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=FusedAdam(learning_rate=0.01, beta_2=0.99), loss="mse")
    x = np.random.default_rng(2).normal(size=(16, 4)).astype("float32")
    model.fit(x, x[:, :2], epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, FusedAdam)
    assert loaded.optimizer.get_config()["beta_2"] == pytest.approx(0.99)
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 1


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused kernel is TensorFlow's")
def test_tensorflow_uses_one_fused_kernel_per_variable(monkeypatch):
    import tensorflow as tf

    calls = []
    kernel = tf.raw_ops.ResourceApplyAdam

    def counting(**kwargs):
        calls.append(kwargs["grad"].shape)
        return kernel(**kwargs)

    monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdam", counting)
    variables = [keras.Variable(np.ones((2, 3), np.float32)), keras.Variable(np.ones(4, np.float32))]
    optimizer = FusedAdam(learning_rate=0.1)
    optimizer.build(variables)
    optimizer.apply_gradients([(keras.ops.ones_like(v), v) for v in variables])
    assert [tuple(s) for s in calls] == [(2, 3), (4,)]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variables[1]), 1 - 0.1, atol=1e-6)
