"""A model with a ``SubClusterAdaCos`` head saved as ``.keras`` on TensorFlow loads on JAX (and PyTorch,
when installed) with the same outputs, and a file saved there loads back on TensorFlow.

Runs in the default suite (TensorFlow); the other back-end runs in a subprocess
(``keras_file_worker.py``), since Keras fixes its back-end at import. Outputs are compared with each
other and with paper eq. (9) computed in numpy from the saved weights.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from subcluster_adacos import Mixup, SoftTargetCrossEntropy, SubClusterAdaCos  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("keras_file_worker.py")
N_CLASSES, N_SUB, DIM = 5, 3, 10
INSTALL = {"jax": 'pip install -e ".[jax]"', "torch": "pip install torch (CPU wheel)"}


def np_eq9(features, kernel, bias, centers, scale):
    """Dense embedding, then paper eq. (9) in float64."""
    emb = features.astype(np.float64) @ kernel + bias
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-6)
    cos = emb @ (centers / np.linalg.norm(centers, axis=0, keepdims=True))
    logits = scale * cos - (scale * cos).max(axis=1, keepdims=True)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return p.reshape(len(p), N_CLASSES, N_SUB).sum(axis=2)


def build_model():
    x_in, y_in = keras.Input((DIM,), name="features"), keras.Input((N_CLASSES,), name="labels")
    x, y = Mixup(seed=2, name="mixup")([x_in, y_in])
    emb = keras.layers.Dense(8, name="embed")(x)
    p = SubClusterAdaCos(N_CLASSES, n_subclusters=N_SUB, angle_mode="corrected", name="head")([emb, y])
    p = SoftTargetCrossEntropy(class_weights=[1.0, 2.0, 1.0, 0.5, 1.0], name="ce")([p, y, y_in])
    return keras.Model([x_in, y_in], p)


def weights_of(model):
    return {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}


@pytest.mark.parametrize("other", ["jax", "torch"])
def test_keras_file_round_trip_between_backends(tmp_path, other):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("this test saves on TensorFlow; run it in the default (TensorFlow) suite")
    if importlib.util.find_spec(other) is None:
        pytest.skip(f"{other} is not installed ({INSTALL[other]}): the TensorFlow <-> {other} .keras check is skipped")

    rng = np.random.default_rng(0)
    features = rng.normal(size=(9, DIM)).astype("float32")
    labels = np.eye(N_CLASSES, dtype="float32")[rng.integers(0, N_CLASSES, size=9)]
    model = build_model()
    model.get_layer("head").scale.assign(7.5)  # not the initial scale: the non-trainable state must travel
    tf_out = model.predict([features, labels], verbose=0)
    tf_file, other_file = tmp_path / "tensorflow.keras", tmp_path / f"{other}.keras"
    model.save(tf_file)
    np.savez(tmp_path / "inputs.npz", features=features, labels=labels)

    env = dict(os.environ, KERAS_BACKEND=other, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run(
        [sys.executable, str(WORKER), str(tf_file), str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz"),
         str(other_file)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, f"{other} worker failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    out = np.load(tmp_path / "out.npz")
    assert str(out["backend"]) == other

    # TensorFlow -> other: same weights, same outputs, and both are eq. (9) of those weights
    for path, value in weights_of(model).items():
        np.testing.assert_array_equal(out[f"loaded/{path}"], value, err_msg=path)
    np.testing.assert_allclose(out["loaded"], tf_out, rtol=1e-5, atol=1e-6)
    w = weights_of(model)
    expected = np_eq9(features, w["embed/kernel"], w["embed/bias"], w["head/centers"], 7.5)
    np.testing.assert_allclose(tf_out, expected, atol=1e-5)

    # other -> TensorFlow: the changed weights and scale load, and the outputs match the other back-end's
    back = keras.models.load_model(other_file)
    assert float(back.get_layer("head").scale) == 3.25
    assert back.get_layer("head").angle_mode == "corrected" and back.get_layer("ce").class_weights[1] == 2.0
    for path, value in weights_of(back).items():
        np.testing.assert_array_equal(value, out[f"saved/{path}"], err_msg=path)
    back_out = back.predict([features, labels], verbose=0)
    np.testing.assert_allclose(back_out, out["saved"], rtol=1e-5, atol=1e-6)
    w = weights_of(back)
    expected = np_eq9(features, w["embed/kernel"], w["embed/bias"], w["head/centers"], 3.25)
    np.testing.assert_allclose(back_out, expected, atol=1e-5)
