"""DDCSADModel: centroids, custom training step, two learning rates, the five variants, backbones."""
import numpy as np
import pytest
import tensorflow as tf

import keras
from asdcore.errors import ASDError
from ddcsad import losses as L
from ddcsad.backbones import build_light_encoder, build_resnet38, count_parameters
from ddcsad.model import (CentroidUpdate, DDCSADModel, halving_schedule, load_model_weights, save_model_weights,
                          weights_nbytes)

DIM_IN, DIM_Z = 6, 3


def linear_encoder():
    """z = x W + b: embeddings computable by hand in numpy."""
    inp = keras.Input((DIM_IN,))
    return keras.Model(inp, keras.layers.Dense(DIM_Z, name="enc_dense")(inp), name="tiny")


def np_embed(model, x):
    w, b = model.encoder.get_layer("enc_dense").get_weights()
    return x @ w + b


def np_logit(model, x):
    w, b = model.head.get_weights()
    return (np_embed(model, x) @ w + b).reshape(-1)


def toy_data(seed=0, n_normal=12, n_outlier=14, n_anomaly=2):
    rng = np.random.default_rng(seed)
    y = np.array([1] * n_normal + [-1] * n_outlier + [-2] * n_anomaly)
    x = rng.normal(size=(len(y), DIM_IN)).astype("float32")
    x[y == 1] += 1.5
    x[y == -2] -= 1.0
    return x, y


def make(variant="bce+ddcsad", seed=0, **compile_kwargs):
    keras.utils.set_random_seed(seed)
    model = DDCSADModel(linear_encoder(), variant=variant)
    model.compile(**compile_kwargs)
    return model


def numpy_loss(model, x, y):
    z = np_embed(model, x)
    logit = np_logit(model, x)
    return float(
        keras.ops.convert_to_numpy(
            L.multitask_loss(
                logit, z, y, model.c_p.numpy(), model.c_n.numpy(), variant=model.variant, from_logits=True
            )
        )
    )


def test_update_centroids_is_the_mean_embedding_of_the_right_clips():
    x, y = toy_data()
    model = make()
    info = model.update_centroids((x, y), batch_size=5)
    z = np_embed(model, x)
    np.testing.assert_allclose(model.c_p.numpy(), z[y == 1].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.c_n.numpy(), z[y == -1].mean(axis=0), rtol=1e-5, atol=1e-6)
    assert (info["n_normal"], info["n_outlier"]) == (12, 14)  # anomalies are in neither centroid
    # the same from a finite tf.data dataset
    model.c_p.assign(np.zeros(DIM_Z, "float32"))
    model.update_centroids(tf.data.Dataset.from_tensor_slices((x, y)).batch(4))
    np.testing.assert_allclose(model.c_p.numpy(), z[y == 1].mean(axis=0), rtol=1e-5, atol=1e-6)
    assert int(model.centroid_updates.numpy()) == 2


def test_update_centroids_rejects_bad_labels():
    x, y = toy_data()
    model = make()
    with pytest.raises(ASDError):
        model.update_centroids((x[y != 1], y[y != 1]))
    with pytest.raises(ASDError):
        model.update_centroids((x, np.where(y == -2, 0, y)))


def test_train_step_lowers_the_loss_and_updates_encoder_and_linear_layer():
    x, y = toy_data()
    model = make(encoder_learning_rate=1e-2, head_learning_rate=1e-2)
    model.update_centroids((x, y))
    before = numpy_loss(model, x, y)
    enc_w = model.encoder.get_layer("enc_dense").get_weights()[0].copy()
    head_w = model.head.get_weights()[0].copy()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(y)).repeat()
    model.fit(ds, steps_per_epoch=20, epochs=1, verbose=0, shuffle=False)  # centroids fixed here
    after = numpy_loss(model, x, y)
    assert after < before
    assert not np.allclose(model.encoder.get_layer("enc_dense").get_weights()[0], enc_w)
    assert not np.allclose(model.head.get_weights()[0], head_w)
    assert int(model.encoder_optimizer.iterations.numpy()) == 20
    assert int(model.head_optimizer.iterations.numpy()) == 20


def test_learning_rates_differ_and_halve_every_1000_iterations():
    model = make()
    for step, k in [(0, 0), (999, 0), (1000, 1), (1999, 1), (2000, 2), (3000, 3), (3999, 3)]:
        model.encoder_optimizer.iterations.assign(step)
        model.head_optimizer.iterations.assign(step)
        lr = model.learning_rates()
        assert lr["encoder"] == pytest.approx(1e-4 * 0.5**k, rel=1e-6)
        assert lr["linear"] == pytest.approx(1e-3 * 0.5**k, rel=1e-6)
    sched = halving_schedule(1e-3, 1000)
    assert float(sched(1000)) == pytest.approx(5e-4)


def test_first_adam_step_moves_the_encoder_by_1e4_and_the_linear_layer_by_1e3():
    """Adam's first step is lr * g / (|g| + eps'), i.e. lr * sign(g) where g != 0: the size of each
    weight's change tells which learning rate it got (swapping the two groups would fail here)."""
    x, y = toy_data()
    model = make("bce")
    enc_w = model.encoder.get_layer("enc_dense").get_weights()[0].copy()
    head_w = model.head.get_weights()[0].copy()
    model.fit(x, y, batch_size=len(y), epochs=1, verbose=0, shuffle=False)
    step_enc = np.abs(model.encoder.get_layer("enc_dense").get_weights()[0] - enc_w)
    step_head = np.abs(model.head.get_weights()[0] - head_w)
    np.testing.assert_allclose(step_enc, 1e-4, rtol=2e-2)
    np.testing.assert_allclose(step_head, 1e-3, rtol=2e-2)


@pytest.mark.parametrize(
    "variant, updates, head_trained",
    [
        ("bce", 0, True),
        ("dsad", 1, False),  # DSAD centroid: once, from the random network
        ("ddcsad", 3, False),  # before training + after each of the 2 epochs
        ("bce+dsad", 1, True),
        ("bce+ddcsad", 3, True),
    ],
)
def test_five_variants_train_with_the_centroid_callback(variant, updates, head_trained):
    x, y = toy_data(seed=1)
    model = make(variant, encoder_learning_rate=1e-2)
    head_w = model.head.get_weights()[0].copy()
    w0, b0 = (w.copy() for w in model.encoder.get_layer("enc_dense").get_weights())
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(14).repeat()
    hist = model.fit(
        ds, steps_per_epoch=2, epochs=2, verbose=0, shuffle=False, callbacks=[CentroidUpdate((x, y))]
    )
    assert np.all(np.isfinite(hist.history["loss"]))
    assert int(model.centroid_updates.numpy()) == updates
    assert (not np.allclose(model.head.get_weights()[0], head_w)) == head_trained
    if L.centroid_term(variant):
        final = np_embed(model, x)[y == 1].mean(axis=0)  # mean normal embedding of the final network
        initial = x[y == 1] @ w0 + b0  # ... of the random network before training (numpy)
        expected = final if model.refresh_centroids_each_epoch else initial.mean(axis=0)
        np.testing.assert_allclose(model.c_p.numpy(), expected, rtol=1e-4, atol=1e-5)
        assert np.abs(final - initial.mean(axis=0)).max() > 1e-3  # the network moved: the two differ


def test_fit_refuses_to_start_without_centroids():
    x, y = toy_data()
    model = make("ddcsad")
    with pytest.raises(ASDError):
        model.fit(x, y, epochs=1, verbose=0)


def test_predict_gives_posterior_and_distance_to_cp(tmp_path):
    x, y = toy_data()
    model = make()
    model.update_centroids((x, y))
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out["logit"], np_logit(model, x), rtol=1e-5, atol=1e-6)
    p_ref = 1 / (1 + np.exp(-np_logit(model, x)))
    d_ref = np.sum((np_embed(model, x) - model.c_p.numpy()) ** 2, axis=1)
    np.testing.assert_allclose(out["p"], p_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["distance"], d_ref, rtol=1e-5, atol=1e-6)
    # save / load keeps the weights, the centroids and the settings
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert (loaded.variant, loaded.eta, loaded.lam) == (model.variant, model.eta, model.lam)
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["distance"], out["distance"], rtol=1e-6)


def test_light_encoder_and_resnet38_shapes_and_size():
    light = build_light_encoder((64, 32), channels=(4, 8, 16))
    z = light(np.zeros((2, 64, 32), "float32"))
    assert tuple(z.shape) == (2, 16)
    # ResNet38 trunk with PANNs' 64 mel bins + PANNs' head (fc1 2048x2048, fc_audioset 2048x527)
    # = the 73.7 M parameters PANNs reports for ResNet38
    resnet = build_resnet38((32, 64))
    n = count_parameters(resnet)["trainable"]
    head = 2048 * 2048 + 2048 + 2048 * 527 + 527
    assert 73.7e6 <= n + head < 73.8e6
    assert resnet.output_shape == (None, 2048)
    with pytest.raises(ASDError):
        build_resnet38((16, 128))


def bn_encoder():
    """z = BN(x W + b): one batch normalisation to check which statistics the centroids use."""
    inp = keras.Input((DIM_IN,))
    h = keras.layers.Dense(DIM_Z, name="enc_dense")(inp)
    return keras.Model(inp, keras.layers.BatchNormalization(name="bn", momentum=0.9, epsilon=1e-3)(h), name="bn_enc")


def test_first_centroids_use_training_batch_statistics_not_the_initial_ones():
    """Issue 10: the first centroids must live where the training-mode embeddings (what the loss sees) are.

    Calibration batches = the whole set in two halves; numpy: BN with the average of the two halves'
    batch mean / (biased) variance, then the mean normal / outlier embedding."""
    x, y = toy_data(seed=3, n_normal=16, n_outlier=16, n_anomaly=0)
    x = 3.0 * x + 5.0  # data far from BN's initial statistics (mean 0, variance 1)
    keras.utils.set_random_seed(0)
    model = DDCSADModel(bn_encoder(), variant="ddcsad")
    model.compile()
    w, b = model.encoder.get_layer("enc_dense").get_weights()
    h = x @ w + b
    halves = [h[::2], h[1::2]]
    mu = np.mean([part.mean(axis=0) for part in halves], axis=0)
    var = np.mean([part.var(axis=0) for part in halves], axis=0)
    z_train_stats = (h - mu) / np.sqrt(var + 1e-3)  # gamma 1, beta 0
    z_initial = h / np.sqrt(1.0 + 1e-3)  # inference mode with the initial statistics
    batches = [(x[::2], y[::2]), (x[1::2], y[1::2]), (x, y)]  # the third is never used (n_batches=2)
    updater = CentroidUpdate((x, y), calibration=batches, calibration_batches=2)
    updater.set_model(model)
    updater.on_train_begin()
    assert updater.calibrated_with == 2
    np.testing.assert_allclose(model.c_p.numpy(), z_train_stats[y == 1].mean(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.c_n.numpy(), z_train_stats[y == -1].mean(axis=0), rtol=1e-4, atol=1e-4)
    assert np.abs(model.c_p.numpy() - z_initial[y == 1].mean(axis=0)).max() > 1.0  # not the old centroid
    # the calibration changed no trainable weight and restored BN's momentum
    np.testing.assert_array_equal(model.encoder.get_layer("enc_dense").get_weights()[0], w)
    assert model.encoder.get_layer("bn").momentum == 0.9
    # calibration over one batch of everything: c_p = mean training-mode embedding of the normal clips
    model2 = DDCSADModel(bn_encoder(), variant="ddcsad")
    model2.set_weights(model.get_weights())
    model2.calibrate_batch_norm([x], 1)
    model2.update_centroids((x, y))
    z_fit = model2.encoder(x, training=True).numpy()
    np.testing.assert_allclose(model2.c_p.numpy(), z_fit[y == 1].mean(axis=0), rtol=1e-4, atol=1e-4)
    # without calibration the first centroids keep the initial statistics (the behaviour before the fix)
    model3 = DDCSADModel(bn_encoder(), variant="ddcsad")
    model3.encoder.get_layer("enc_dense").set_weights([w, b])  # BN keeps its initial statistics
    keep = CentroidUpdate((x, y))
    keep.set_model(model3)
    keep.on_train_begin()
    np.testing.assert_allclose(model3.c_p.numpy(), z_initial[y == 1].mean(axis=0), rtol=1e-4, atol=1e-4)


def test_weights_file_holds_the_model_only(tmp_path):
    """Saved weights: no Adam state (which would triple the size), and they restore the predictions."""
    x, y = toy_data()
    model = make(encoder_learning_rate=1e-2)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[CentroidUpdate((x, y))])
    path = tmp_path / "m.weights.npz"
    save_model_weights(model, path)
    n_values = sum(int(np.prod(v.shape)) for v in model.weights)  # DIM_IN*DIM_Z + DIM_Z + DIM_Z + 1 + 2 DIM_Z + 1
    assert n_values == DIM_IN * DIM_Z + DIM_Z + DIM_Z + 1 + 2 * DIM_Z + 1
    assert weights_nbytes(model) == 4 * n_values
    with np.load(path) as stored:
        assert sum(stored[k].size for k in stored.files) == n_values  # no optimizer variable
    other = make(seed=5)
    load_model_weights(other, path)
    np.testing.assert_allclose(other.predict(x, verbose=0)["distance"], model.predict(x, verbose=0)["distance"])
    with pytest.raises(ASDError):
        load_model_weights(DDCSADModel(bn_encoder()), path)


def test_resnet38_layer_order_and_pooling():
    """PANNs ResNet38 (Kong et al. 2020): per-stage blocks 3-4-6-3, 2x2 *average* pooling before stages
    2-4 and after conv_block1 and the stages, ConvBlock 512 -> 2048 without pooling, then the paper's
    global average pooling over time and frequency (Sec. IV-A)."""
    net = build_resnet38((64, 64))
    names = [layer.name for layer in net.layers]
    kinds = {layer.name: type(layer).__name__ for layer in net.layers}
    # the order of the trunk's landmarks
    landmarks = ["bn0", "conv_block1_1_conv", "conv_block1_pool", "conv_block1_drop", "layer1_0_conv1",
                 "layer2_0_pool", "layer3_0_pool", "layer4_0_pool", "layer4_2_add", "resnet_pool", "resnet_drop",
                 "conv_block_after1_1_conv", "conv_block_after1_2_relu", "conv_block_after1_drop",
                 "global_average_pooling"]
    positions = [names.index(n) for n in landmarks]
    assert positions == sorted(positions)
    blocks = [sum(1 for n in names if n.startswith(f"layer{s}_") and n.endswith("_add")) for s in (1, 2, 3, 4)]
    assert blocks == [3, 4, 6, 3]
    pools = [n for n in names if kinds[n].endswith("Pooling2D")]
    assert all(kinds[n] in ("AveragePooling2D", "GlobalAveragePooling2D") for n in pools)
    assert "layer1_0_pool" not in names and "conv_block_after1_pool" not in names
    # spatial sizes: 64 -> 32 (conv_block1) -> 32 (stage 1) -> 16, 8, 4 (stages 2-4) -> 2 (resnet_pool)
    out = {n: net.get_layer(n).output.shape for n in ("conv_block1_pool", "layer1_2_relu2", "layer2_3_relu2",
                                                       "layer3_5_relu2", "layer4_2_relu2", "resnet_pool",
                                                       "conv_block_after1_2_relu")}
    assert [tuple(out[n][1:]) for n in out] == [(32, 32, 64), (32, 32, 64), (16, 16, 128), (8, 8, 256),
                                                (4, 4, 512), (2, 2, 512), (2, 2, 2048)]
    # z = the mean over time and frequency of the last ConvBlock's output (inference mode: no dropout)
    x = np.random.default_rng(0).normal(size=(2, 64, 64)).astype("float32")
    trunk = keras.Model(net.input, net.get_layer("conv_block_after1_2_relu").output)
    np.testing.assert_allclose(net(x, training=False).numpy(), trunk(x, training=False).numpy().mean(axis=(1, 2)),
                               rtol=1e-4, atol=1e-6)


def test_head_distances_and_losses_are_float32_under_mixed_precision():
    """--precision mixed_bfloat16: the encoder computes in bfloat16, the linear layer, p, the distance to c_p,
    the centroids and the loss stay float32; one fit step runs and moves the weights."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        model = DDCSADModel(linear_encoder(), variant="bce+ddcsad")
        model.compile()
        assert model.encoder.get_layer("enc_dense").compute_dtype == "bfloat16"
        assert model.head.compute_dtype == "float32"
        x, y = toy_data()
        model.update_centroids((x, y))
        assert model.c_p.dtype == "float32" and np.all(np.isfinite(model.c_p.numpy()))
        out = model(x[:5])
        for name in ("logit", "p", "distance"):
            assert keras.backend.standardize_dtype(out[name].dtype) == "float32", name
        parts = model._loss_parts(x, y, training=False)
        assert keras.backend.standardize_dtype(parts["loss"].dtype) == "float32"
        before = model.head.get_weights()[0].copy()
        history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert not np.array_equal(model.head.get_weights()[0], before)
    finally:
        keras.config.set_dtype_policy(previous)


def test_mixed_float16_is_refused_with_one_line():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = DDCSADModel(linear_encoder(), variant="bce+ddcsad")
        with pytest.raises(ASDError, match="mixed_bfloat16"):
            model.compile()
    finally:
        keras.config.set_dtype_policy(previous)
