"""A training model compiled as the experiments compile it (FusedAdam) and saved to .keras loads in a fresh
process that imports only subcluster_adacos.layers (README: "import subcluster_adacos.layers first"), with
its optimizer state."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parents[2]


def test_saved_training_model_loads_with_its_fused_adam(tmp_path):
    from subcluster_adacos.network import build_training_model
    from subcluster_adacos.training import TrainingConfig, _compile

    model = build_training_model(3, input_shape=(32, 16), seed=0)
    _compile(model, TrainingConfig())
    rng = np.random.default_rng(0)
    batch = {"features": rng.random((8, 32, 16)).astype("float32"),
             "labels": np.eye(3, dtype="float32")[np.arange(8) % 3]}
    model.fit(batch, epochs=2, batch_size=4, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    code = ("import keras, subcluster_adacos.layers\n"
            f"m = keras.models.load_model({str(path)!r})\n"
            "print(type(m.optimizer).__name__, int(keras.ops.convert_to_numpy(m.optimizer.iterations)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
                               "PATH": "/usr/bin:/bin", "KERAS_BACKEND": keras.backend.backend()})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["FusedAdam", "4"]
