"""asdcore.fused_batchnorm.FusedBatchNormalization (issue 16, a speed change): the same numbers as batch
normalisation by hand (numpy: batch mean, biased batch variance, momentum update) and as Keras' own
BatchNormalization; the sub-cluster AdaCos name of the layer and SerialOE's light CNN use it."""
import keras
import numpy as np
import pytest

from asdcore.fused_batchnorm import FusedBatchNormalization


def _pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * 3.0 + 1.5).astype(np.float32)
    fused, plain = FusedBatchNormalization(), keras.layers.BatchNormalization()
    fused.build(shape)
    plain.build(shape)
    gamma, beta = rng.uniform(0.5, 2.0, shape[-1]), rng.normal(size=shape[-1])
    for layer in (fused, plain):
        layer.gamma.assign(gamma.astype(np.float32))
        layer.beta.assign(beta.astype(np.float32))
    return x, gamma, beta, fused, plain


def test_training_step_matches_numpy_and_keras():
    x, gamma, beta, fused, plain = _pair((8, 5, 4, 3))
    out = keras.ops.convert_to_numpy(fused(x, training=True))
    mean = x.astype(np.float64).mean(axis=(0, 1, 2))
    var = x.astype(np.float64).var(axis=(0, 1, 2))  # biased, as Keras
    expected = (x - mean) / np.sqrt(var + 1e-3) * gamma + beta
    np.testing.assert_allclose(out, expected, atol=2e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused.moving_mean), 0.01 * mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused.moving_variance), 0.99 + 0.01 * var, rtol=1e-6)
    plain_out = keras.ops.convert_to_numpy(plain(x, training=True))
    np.testing.assert_allclose(out, plain_out, atol=2e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused.moving_variance),
                               keras.ops.convert_to_numpy(plain.moving_variance), rtol=1e-6)


def test_inference_uses_moving_statistics():
    x, gamma, beta, fused, plain = _pair((4, 6, 3, 2), seed=1)
    for layer in (fused, plain):
        layer.moving_mean.assign(np.array([0.5, -1.0], np.float32))
        layer.moving_variance.assign(np.array([2.0, 0.25], np.float32))
    expected = (x - [0.5, -1.0]) / np.sqrt(np.array([2.0, 0.25]) + 1e-3) * gamma + beta
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused(x, training=False)), expected, atol=2e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused.moving_mean), [0.5, -1.0])  # unchanged


def test_gradients_match_keras_batchnorm():
    import tensorflow as tf

    x, _, _, fused, plain = _pair((6, 4, 5, 3), seed=2)
    x = tf.constant(x)
    target = tf.constant(np.random.default_rng(3).normal(size=x.shape).astype(np.float32))
    grads = []
    for layer in (fused, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum((layer(x, training=True) - target) ** 2)
        grads.append([g.numpy() for g in tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("shape", [(4, 7, 3)])
def test_falls_back_to_keras_for_other_ranks(shape):
    x, gamma, beta, fused, _ = _pair(shape, seed=4)
    out = keras.ops.convert_to_numpy(fused(x, training=True))
    mean, var = x.mean(axis=(0, 1)), x.var(axis=(0, 1))
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-3) * gamma + beta, atol=2e-5)


def test_the_subcluster_adacos_name_and_the_serial_oe_light_cnn_use_the_core_layer(tmp_path):
    from smoothing.serial_oe import build_serial_oe
    from subcluster_adacos import layers as sca_layers

    assert issubclass(sca_layers.FusedBatchNormalization, FusedBatchNormalization)
    assert keras.saving.get_registered_name(sca_layers.FusedBatchNormalization) == \
        "subcluster_adacos>FusedBatchNormalization"  # models saved before the move still load
    model = keras.Sequential([keras.Input((6, 5, 2)), sca_layers.FusedBatchNormalization(name="bn")])
    model.save(tmp_path / "m.keras")
    assert type(keras.saving.load_model(tmp_path / "m.keras").get_layer("bn")) is sca_layers.FusedBatchNormalization
    light = build_serial_oe(3, (32, 24), backbone="light")
    norms = [layer for layer in light.layers if "light_bn" in layer.name]
    assert len(norms) == 4 and all(isinstance(layer, FusedBatchNormalization) for layer in norms)
