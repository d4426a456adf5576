"""DDCSADModel: centroids, custom training step, two learning rates, the five variants, backbones."""
import numpy as np
import pytest
import tensorflow as tf

import keras
from asdcore.errors import ASDError
from ddcsad import losses as L
from ddcsad.backbones import build_light_encoder, build_resnet38, count_parameters
from ddcsad.model import CentroidUpdate, DDCSADModel, halving_schedule

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
    # the two optimizers own disjoint variable groups
    enc_ids = {id(v) for v in model.encoder.trainable_variables}
    assert not enc_ids & {id(v) for v in model.head.trainable_variables}


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
    model = make(variant)
    head_w = model.head.get_weights()[0].copy()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(14).repeat()
    hist = model.fit(
        ds, steps_per_epoch=2, epochs=2, verbose=0, shuffle=False, callbacks=[CentroidUpdate((x, y))]
    )
    assert np.all(np.isfinite(hist.history["loss"]))
    assert int(model.centroid_updates.numpy()) == updates
    assert (not np.allclose(model.head.get_weights()[0], head_w)) == head_trained
    if L.centroid_term(variant):
        z = np_embed(model, x)  # after the last epoch (or fixed from the start for DSAD)
        if model.refresh_centroids_each_epoch:
            np.testing.assert_allclose(model.c_p.numpy(), z[y == 1].mean(axis=0), rtol=1e-4, atol=1e-5)


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
