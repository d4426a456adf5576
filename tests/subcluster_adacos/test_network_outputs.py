"""One inference pass per trained network (subcluster_adacos.scoring.network_outputs): the embeddings and the
Table II model-output scores equal direct calls of the network, and predicting with several networks in one
process no longer makes TensorFlow warn of tf.function retracing (its cause: a second trace per model for a
short last batch, and two models per network)."""
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from subcluster_adacos.network import build_training_model, embedding_model  # noqa: E402
from subcluster_adacos.scoring import extract_embeddings, model_output_scores, network_outputs  # noqa: E402

TINY = (32, 16)


def _model(seed):
    keras.utils.set_random_seed(seed)
    return build_training_model(4, 2, input_shape=TINY, embedding_dim=8, seed=seed)


def test_outputs_equal_direct_calls_of_the_network():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(37,) + TINY).astype("float32")  # 37: the last batch of 8 is short
    labels = rng.integers(0, 4, 37)
    model = _model(1)
    embeddings, scores = network_outputs(model, features, labels, 4, batch_size=8)
    direct = keras.ops.convert_to_numpy(embedding_model(model)(features, training=False))
    probabilities = keras.ops.convert_to_numpy(model([features, np.eye(4, dtype="float32")[labels]], training=False))
    np.testing.assert_allclose(embeddings, direct, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scores, -np.log(probabilities[np.arange(37), labels]), rtol=1e-4, atol=1e-5)
    # the two single-purpose functions give the same numbers (rows: a subset, in that order)
    rows = np.array([36, 3, 20])
    np.testing.assert_allclose(extract_embeddings(model, features, 8, rows=rows), direct[rows], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model_output_scores(model, features, labels[rows], 4, 8, rows=rows), scores[rows],
                               rtol=1e-4, atol=1e-5)


def test_one_prediction_function_per_network_and_full_batches_only(monkeypatch):
    """The cause of the retracing warning, gone: Keras traces a model's prediction function again for a
    short last batch, and TensorFlow counts the traces of every model's prediction function together (one
    code object): five close together make it warn. Each network is now predicted by one model, with full
    batches only, so it is traced once."""
    calls = []
    predict = keras.Model.predict

    def spy(self, x, *args, **kwargs):
        calls.append((id(self), len(keras.tree.flatten(x)[0]), kwargs.get("batch_size")))
        return predict(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "predict", spy)
    rng = np.random.default_rng(1)
    features = rng.normal(size=(37,) + TINY).astype("float32")
    labels = rng.integers(0, 4, 37)
    for seed in range(2):  # the networks of the first command (S = 1 and 4), one after the other
        before = len(calls)
        embeddings, scores = network_outputs(_model(seed), features, labels, 4, batch_size=8)
        assert embeddings.shape == (37, 8) and scores.shape == (37,)
        mine = calls[before:]
        assert len({model for model, _, _ in mine}) == 1, "one inference model per network"
        assert all(n % batch == 0 for _, n, batch in mine), mine
