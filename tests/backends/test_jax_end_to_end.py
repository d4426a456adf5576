"""Every paper command trains end to end on the JAX back-end on a machine without TensorFlow (as the GPU
machine this project's GPU check runs on): one tiny run of each, in one subprocess whose ``import
tensorflow`` fails (tests/backends/without_tensorflow/sitecustomize.py). Runs in the JAX part of the test
command (marker ``portable``; skipped on the other back-ends: their own e2e tests cover TensorFlow).

Checked: each command exits 0, writes its submission files with finite scores for every test clip of the
evaluated units, and its training logs hold finite losses (so training happened, on JAX: the subprocess
reports its back-end and that TensorFlow was never imported).
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.portable

ROOT = Path(__file__).resolve().parents[2]
WITHOUT_TF = Path(__file__).resolve().parent / "without_tensorflow"

if keras.backend.backend() != "jax":
    pytest.skip("the JAX end-to-end runs (KERAS_BACKEND=jax python -m pytest -q -m portable)",
                allow_module_level=True)

SCRIPT = textwrap.dedent("""
    import json, sys
    import run_dcase2020, run_dcase2021
    root, out = sys.argv[1], sys.argv[2]
    common = ["--quick", "--out", out + "/runs", "--cache-dir", out + "/cache"]
    codes = {
        "subcluster-adacos": run_dcase2020.main(["subcluster-adacos", "--experiment", "representations",
                                                 "--config", out + "/sca.yaml", "--data-root", root + "/d2020"]
                                                + common),
        "ddcsad": run_dcase2020.main(["ddcsad", "--data-root", root + "/d2020", "--config", out + "/dd.yaml",
                                      "--losses", "bce+ddcsad", "--anomalies", "0"] + common),
        "multi-distribution": run_dcase2021.main(["multi-distribution", "--data-root", root + "/d2021",
                                                  "--config", out + "/md.yaml"] + common),
        "smoothing": run_dcase2021.main(["smoothing", "--data-root", root + "/d2021", "--config",
                                         out + "/sm.yaml"] + common),
    }
    import keras
    print(json.dumps({"codes": codes, "backend": keras.backend.backend(),
                      "tensorflow_imported": "tensorflow" in sys.modules}))
""")

CONFIGS = {
    "sca.yaml": "epochs: 1\nbatch_size: 16\nrepresentation_subclusters: 2\n",
    "dd.yaml": "iterations: 2\nfinetune_iterations: 1\nsteps_per_epoch: 1\nunits_per_type: 1\nlight_channels: [4, 8]\n",
    "md.yaml": "epochs: 1\nbatch_size: 16\nsubclusters: [1]\n",
    "sm.yaml": "ae: {epochs: 1}\nserial_oe: {epochs: 1}\nprotocol: {clip_seconds: 5.0, n_draws: 2, fractions: [0.5, 1.0]}\n",
}


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory, tiny_2020, tiny_2021):
    out = tmp_path_factory.mktemp("jax_e2e")
    data = out / "data"
    data.mkdir()
    (data / "d2020").symlink_to(tiny_2020)
    (data / "d2021").symlink_to(tiny_2021)
    for name, text in CONFIGS.items():
        (out / name).write_text(text)
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=os.pathsep.join([str(WITHOUT_TF), str(ROOT)]))
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(data), str(out)], capture_output=True, text=True,
                          env=env, cwd=out, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"codes"')]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return out / "runs", json.loads(lines[-1])


def test_every_command_ran_on_jax_without_tensorflow(jax_runs):
    _, report = jax_runs
    assert report["backend"] == "jax" and report["tensorflow_imported"] is False
    assert report["codes"] == {"subcluster-adacos": 0, "ddcsad": 0, "multi-distribution": 0, "smoothing": 0}


@pytest.mark.parametrize("year, command", [("2020", "subcluster-adacos"), ("2020", "ddcsad"),
                                           ("2021", "multi-distribution"), ("2021", "smoothing")])
def test_each_run_wrote_finite_scores_and_trained(jax_runs, year, command):
    runs, _ = jax_runs
    folders = [f for f in (runs / year).glob(f"{command}*/*") if f.is_dir()]  # <command>[-<experiment>]/<time>
    assert len(folders) == 1, folders
    run = folders[0]
    files = list((run / "scores").rglob("anomaly_score_*.csv"))
    assert files
    for path in files:
        scores = pd.read_csv(path, header=None)
        assert len(scores) and np.all(np.isfinite(scores.iloc[:, 1].to_numpy(float))), path
    logs = list((run / "units").rglob("training_log*.csv"))
    assert logs
    for path in logs:
        log = pd.read_csv(path)
        assert len(log) >= 1 and np.all(np.isfinite(log["loss"].to_numpy(float))), path
