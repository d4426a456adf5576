"""Helper process of ``test_keras_file_across_backends.py`` (not a test): runs on the back-end named by
``KERAS_BACKEND``, which Keras fixes at import, so each back-end needs a process of its own.

    python keras_file_worker.py MODEL_IN INPUTS.npz OUTPUTS.npz MODEL_OUT

Loads MODEL_IN (saved on another back-end), writes its predictions on the inputs of INPUTS.npz and its
weights to OUTPUTS.npz, then changes every weight (new random values, a new scale) and saves the model to
MODEL_OUT with its predictions added to OUTPUTS.npz, for the reverse check.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import subcluster_adacos.layers  # noqa: E402,F401  (registers the layers for deserialisation)


def main(model_in, inputs_path, outputs_path, model_out):
    data = np.load(inputs_path)
    inputs = [data["features"], data["labels"]]
    model = keras.models.load_model(model_in)
    loaded = model.predict(inputs, verbose=0)
    loaded_weights = {f"loaded/{w.path}": keras.ops.convert_to_numpy(w) for w in model.weights}

    rng = np.random.default_rng(11)
    for w in model.trainable_weights:
        w.assign(rng.normal(size=tuple(w.shape)).astype("float32"))
    model.get_layer("head").scale.assign(3.25)
    model.save(model_out)
    saved = model.predict(inputs, verbose=0)
    saved_weights = {f"saved/{w.path}": keras.ops.convert_to_numpy(w) for w in model.weights}
    np.savez(outputs_path, backend=keras.backend.backend(), loaded=loaded, saved=saved, **loaded_weights,
             **saved_weights)


if __name__ == "__main__":
    main(*sys.argv[1:5])
