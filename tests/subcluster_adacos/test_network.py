"""The modified ResNet (paper Table I) and the training model: shapes, parameter counts, save/load, training."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from asdcore.errors import ASDError  # noqa: E402
from subcluster_adacos import (  # noqa: E402
    AdaCos,
    Mixup,
    SubClusterAdaCos,
    build_embedding_model,
    build_training_model,
    embedding_model,
    head_layer,
    normalized_centers,
)

TINY = (32, 16)  # tiny log-mel input for the fast tests


def n_weights(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def test_output_sizes_of_table1():
    model = build_embedding_model()
    expected = {  # paper Table I, "output size" column
        "stem_conv": (157, 64, 16),
        "stem_pool": (78, 31, 16),
        "stage1_unit2_out": (78, 31, 16),
        "stage2_unit2_out": (39, 16, 32),
        "stage3_unit2_out": (20, 8, 64),
        "stage4_unit2_out": (10, 4, 128),
        "time_pool": (1, 4, 128),
        "flatten": (512,),
        "embedding": (128,),
    }
    assert tuple(model.input.shape[1:]) == (313, 128)
    for name, shape in expected.items():
        assert tuple(model.get_layer(name).output.shape[1:]) == shape, name
    n_bn = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    n_conv = sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)
    assert (n_bn, n_conv) == (1 + 8 * 2, 1 + 8 * 2 + 3)
    assert all(layer.kernel_regularizer is not None for layer in model.layers
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)))


def test_parameter_counts_against_paper():
    # paper Sec. IV-B: 772,192 trainable parameters with S = 1 and 1,102,816 with S = 64 (C = 41)
    counts = {}
    for n_sub in (1, 64):
        model = build_training_model(41, n_sub)
        counts[n_sub] = (n_weights(model.trainable_weights), n_weights(model.non_trainable_weights))
    assert counts[1][0] == 772_192
    assert counts[64][0] == 1_102_816
    assert counts[64][0] - counts[1][0] == 128 * 41 * 63
    # non-trainable: moving mean and variance of every BN channel (stem 16; each of the 8 units has two BNs
    # of its width) and the scalar scale; the paper's count is the trainable one
    bn_channels = 16 + 2 * 2 * (16 + 32 + 64 + 128)
    assert counts[1][1] == counts[64][1] == 2 * bn_channels + 1 == 1953


def test_crop_length_is_a_parameter():
    model = build_embedding_model((256, 128))
    assert tuple(model.get_layer("stage4_unit2_out").output.shape[1:]) == (8, 4, 128)
    assert tuple(model.get_layer("flatten").output.shape[1:]) == (512,)
    assert tuple(build_embedding_model((313, 128, 1)).output.shape[1:]) == (128,)
    with pytest.raises(ASDError):
        build_embedding_model((313,))
    with pytest.raises(ASDError):
        build_training_model(4, loss="arcface")
    with pytest.raises(ASDError):
        build_training_model(4, 2, loss="adacos")


@pytest.mark.parametrize("loss, head_type", [("subcluster_adacos", SubClusterAdaCos), ("adacos", AdaCos),
                                              ("softmax", keras.layers.Dense)])
def test_training_model_structure(loss, head_type):
    model = build_training_model(5, 1, loss=loss, input_shape=TINY, embedding_dim=8)
    assert isinstance(head_layer(model), head_type)
    assert isinstance(model.get_layer("mixup"), Mixup)
    emb = embedding_model(model)
    x = np.random.default_rng(0).normal(size=(3,) + TINY).astype("float32")
    y = np.eye(5, dtype="float32")[[0, 1, 2]]
    p = model([x, y], training=False)
    assert tuple(p.shape) == (3, 5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(p).sum(axis=1), 1.0, atol=1e-5)
    assert tuple(emb(x).shape) == (3, 8)


def test_training_model_without_mixup():
    model = build_training_model(5, 2, mixup=False, input_shape=TINY, embedding_dim=8)
    assert "mixup" not in [layer.name for layer in model.layers]
    assert head_layer(model).n_subclusters == 2


def toy_data(n=48, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n // n_classes)
    x = rng.normal(size=(n,) + TINY).astype("float32")
    for c in range(n_classes):
        x[labels == c, :, 4 * c:4 * c + 4] += 2.0
    return x, np.eye(n_classes, dtype="float32")[labels]


def test_save_load_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    x, y = toy_data(n=12)
    model = build_training_model(3, 2, angle_mode="corrected", input_shape=TINY, class_weights=[1.0, 2.0, 0.5],
                                 seed=3)
    head = head_layer(model)
    model([x, y], training=True)  # one training-mode call: mixup active, scale moves
    assert float(head.scale) != pytest.approx(np.sqrt(2) * np.log(5))
    before = keras.ops.convert_to_numpy(model([x, y], training=False))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("mixup"), Mixup)
    assert isinstance(head_layer(loaded), SubClusterAdaCos)
    assert head_layer(loaded).angle_mode == "corrected"
    assert float(head_layer(loaded).scale) == float(head.scale)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded([x, y], training=False)), before)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(embedding_model(loaded)(x)),
                                  keras.ops.convert_to_numpy(embedding_model(model)(x)))
    np.testing.assert_array_equal(normalized_centers(head_layer(loaded)), normalized_centers(head))


def test_short_training_run_lowers_the_loss():
    """Six Adam steps on separable toy data (eager: on CPU, tracing the train step costs more than it saves)."""
    keras.utils.set_random_seed(0)
    x, y = toy_data(n=24)
    model = build_training_model(3, 2, input_shape=TINY, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), run_eagerly=True)
    scale0 = float(head_layer(model).scale)
    losses = model.fit([x, y], batch_size=8, epochs=2, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0]
    scale = float(head_layer(model).scale)
    assert np.isfinite(scale) and scale > 0 and scale != scale0


def test_flop_count_of_the_estimates_matches_a_count_by_hand():
    """asdcore.estimates.TRAINING_FLOPS_PER_CLIP (TensorFlow's profiler, benchmarks/flops.py) against the
    multiply-adds of the Table I ResNet counted here from its layer shapes: 2 x kh x kw x C_in x C_out per
    output position of every convolution, 2 x in x out for the dense layer (the profiler also counts batch
    normalisation, activations and pooling, a few per cent)."""
    import keras

    from asdcore.estimates import TRAINING_FLOPS_PER_CLIP
    from subcluster_adacos.network import build_embedding_model

    model = build_embedding_model((313, 128))
    by_hand = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, _ = layer.output.shape
            by_hand += 2 * int(np.prod(layer.kernel.shape)) * height * width
        elif isinstance(layer, keras.layers.Dense):
            by_hand += 2 * int(np.prod(layer.kernel.shape))
    assert 0.17e9 < by_hand < 0.20e9
    assert TRAINING_FLOPS_PER_CLIP["subcluster2020"] / 3 == pytest.approx(by_hand, rel=0.05)
