"""subcluster_adacos.embedding_model: a features -> embedding model that needs no labels, from a training
model whose labels are an input (mixup, head); checked against the embedding computed by hand."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from asdcore.errors import ASDError  # noqa: E402
from subcluster_adacos import (Mixup, SoftTargetCrossEntropy, SubClusterAdaCos, build_training_model,  # noqa: E402
                               embedding_model)


def _dense_model():
    """Mixup -> Dense(16, relu) -> Dense(8) -> SubClusterAdaCos: no nested embedding network."""
    features = keras.Input((12,), name="features")
    labels = keras.Input((3,), name="labels")
    x, y = Mixup(seed=0)([features, labels])
    embedding = keras.layers.Dense(8, name="out")(keras.layers.Dense(16, activation="relu", name="hidden")(x))
    probabilities = SubClusterAdaCos(3, n_subclusters=2, name="head")([embedding, y])
    return keras.Model([features, labels], SoftTargetCrossEntropy()([probabilities, y, labels]))


def _by_hand(model, x):
    (w1, b1), (w2, b2) = model.get_layer("hidden").get_weights(), model.get_layer("out").get_weights()
    return np.maximum(x @ w1 + b1, 0) @ w2 + b2


def test_embedding_of_a_model_without_a_nested_network_needs_no_labels(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 12)).astype("float32")
    model = _dense_model()
    model.compile(optimizer="adam")
    model.fit([x, np.eye(3, dtype="float32")[np.arange(20) % 3]], epochs=2, batch_size=8, verbose=0)
    embed = embedding_model(model)
    assert len(embed.inputs) == 1 and tuple(embed.outputs[0].shape) == (None, 8)
    np.testing.assert_allclose(embed.predict(x, verbose=0), _by_hand(model, x), rtol=1e-5, atol=1e-5)
    # it shares the trained weights, and the same holds for the model saved and loaded back
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(embedding_model(loaded).predict(x, verbose=0), _by_hand(model, x), rtol=1e-5,
                               atol=1e-5)
    embed.save(tmp_path / "embedding.keras")  # and the embedding model alone is a normal Keras model
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "embedding.keras").predict(x, verbose=0),
                               _by_hand(model, x), rtol=1e-5, atol=1e-5)


def test_a_training_model_gives_its_nested_network():
    model = build_training_model(3, 2, input_shape=(32, 16), embedding_dim=8)
    assert embedding_model(model) is model.get_layer("embedding_model")


def test_a_model_without_head_is_a_one_line_error():
    with pytest.raises(ASDError, match="has no head"):
        embedding_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
