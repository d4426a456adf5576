"""DDCSAD's two-optimizer training step on every back-end it supports (TensorFlow, JAX; marker ``portable``):
one step moves each variable group by its own Adam learning rate, carries the BN statistics, leaves the
centroids alone, and the variants without BCE leave the linear layer alone.

Adam's first step is ``-lr * g / (|g| + eps)`` (m_hat = g, v_hat = g^2): every weight with a gradient well
above eps moves by its optimizer's learning rate, whatever the gradient; so the size of the moves tells which
optimizer updated which variable without a second implementation of the loss.
"""
import keras
import numpy as np
import pytest
from keras import layers

pytestmark = pytest.mark.portable

if keras.backend.backend() not in ("tensorflow", "jax"):
    pytest.skip("DDCSADModel's train_step has TensorFlow and JAX bodies only", allow_module_level=True)


def _model(variant):
    from ddcsad.model import DDCSADModel

    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([keras.Input((6, 4)), layers.Flatten(), layers.Dense(5, name="dense"),
                                layers.BatchNormalization(name="bn")], name="encoder")
    model = DDCSADModel(encoder, variant=variant)
    model.compile(encoder_learning_rate=1e-4, head_learning_rate=1e-3)
    return model


def _batch(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 6, 4)).astype(np.float32)
    y = np.array([1] * 8 + [-1] * 8, np.int32)
    return x, y


def _values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


@pytest.mark.parametrize("variant", ["bce+ddcsad", "ddcsad"])
def test_one_step_moves_each_group_by_its_own_learning_rate(variant):
    model = _model(variant)
    x, y = _batch()
    model.update_centroids((x, y))
    encoder_before = _values(model.encoder.trainable_variables)
    head_before = _values(model.head.trainable_variables)
    bn = model.encoder.get_layer("bn")
    stats_before = _values([bn.moving_mean, bn.moving_variance])
    centroids_before = _values([model.c_p, model.c_n])
    history = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "centroid_loss" in history.history
    kernel_move = np.abs(_values([model.encoder.get_layer("dense").kernel])[0] - encoder_before[0])
    # every kernel weight moved by the encoder's 1e-4 (to float32 rounding; a weight with a tiny gradient less)
    assert np.median(kernel_move) == pytest.approx(1e-4, rel=1e-2) and kernel_move.max() <= 1e-4 * 1.01
    head_move = np.abs(_values(model.head.trainable_variables)[0] - head_before[0])
    if variant == "bce+ddcsad":
        assert np.median(head_move) == pytest.approx(1e-3, rel=1e-2)  # the linear layer's own optimizer
    else:
        assert np.all(head_move == 0)  # no BCE: the linear layer is not in the loss, not updated
    # the batch statistics went into the moving statistics (the step's non-trainable state came back) ...
    stats_after = _values([bn.moving_mean, bn.moving_variance])
    assert not np.allclose(stats_after[0], stats_before[0])
    dense_out = x.reshape(len(x), -1) @ encoder_before[0] + encoder_before[1]  # BN's input, weights before the step
    np.testing.assert_allclose(stats_after[0], 0.99 * stats_before[0] + 0.01 * dense_out.mean(axis=0),
                               rtol=1e-4, atol=1e-6)
    # ... and the centroids are the callback's business only
    for before, after in zip(centroids_before, _values([model.c_p, model.c_n])):
        np.testing.assert_array_equal(before, after)
    assert int(keras.ops.convert_to_numpy(model.encoder_optimizer.iterations)) == 1


def test_learning_rates_are_halved_on_schedule_through_the_compiled_step():
    model = _model("bce+ddcsad")
    model.compile(encoder_learning_rate=1e-4, head_learning_rate=1e-3, halve_every=2)
    x, y = _batch(2)
    model.update_centroids((x, y))
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)  # 4 steps: 2 at the first rates
    assert model.learning_rates() == pytest.approx({"encoder": 0.25e-4, "linear": 0.25e-3})
    assert int(keras.ops.convert_to_numpy(model.head_optimizer.iterations)) == 4
