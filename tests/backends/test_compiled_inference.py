"""asdcore.keras_utils.compiled_inference: the outputs of model(x, training=False) for batches of any size,
following the weights between calls; on JAX one compiled shape per model (a short last batch is padded)."""
import keras
import numpy as np
import pytest

from asdcore.keras_utils import compiled_inference

pytestmark = pytest.mark.portable


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    x = keras.layers.Dense(5)(inputs)
    x = keras.layers.BatchNormalization()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def _by_hand(model, x):
    # the same network in NumPy: Dense, inference-mode batch normalisation with the moving statistics, Dense
    w1, b1, gamma, beta, mean, var, w2, b2 = [np.asarray(v, np.float64) for v in model.get_weights()]
    h = x @ w1 + b1
    h = gamma * (h - mean) / np.sqrt(var + model.layers[2].epsilon) + beta
    return h @ w2 + b2


def test_outputs_of_every_batch_size_and_the_current_weights():
    model = _model()
    f = compiled_inference(model)
    rng = np.random.default_rng(0)
    for n in (8, 3, 8, 1, 5):  # full batches and short last batches, in any order
        x = rng.normal(size=(n, 6)).astype(np.float32)
        out = f(x)
        assert out.shape == (n, 3) and out.dtype == np.float32
        np.testing.assert_allclose(out, _by_hand(model, x.astype(np.float64)), rtol=1e-4, atol=1e-5)
    model.set_weights([w + 0.5 for w in model.get_weights()])  # training moved the weights: f follows them
    x = rng.normal(size=(4, 6)).astype(np.float32)
    np.testing.assert_allclose(f(x), _by_hand(model, x.astype(np.float64)), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the compiled shapes of jax.jit")
def test_one_compiled_shape_per_model_on_jax():
    f = compiled_inference(_model())
    rng = np.random.default_rng(1)
    for n in (8, 8, 3, 8, 5):
        f(rng.normal(size=(n, 6)).astype(np.float32))
    assert f.compiled._cache_size() == 1
