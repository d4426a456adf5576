"""The portable tests (marker ``portable``) under ``KERAS_BACKEND=torch``, when PyTorch is installed.

CI does not install PyTorch (its CPU wheel is large); the default suite then skips this test and prints
why (``-rs`` in pytest.ini). Where PyTorch is installed, the portable tests run here in a subprocess,
because Keras fixes its back-end at import. The same run by hand:
``KERAS_BACKEND=torch python -m pytest -q -m portable``.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_portable_tests_pass_under_torch():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("starts the torch run from the default (TensorFlow) suite only")
    if importlib.util.find_spec("torch") is None:
        pytest.skip(
            "PyTorch is not installed: the KERAS_BACKEND=torch run of the portable tests is skipped "
            "(pip install torch, CPU wheel, to run it)"
        )
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "portable"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, f"portable tests failed under torch: {summary}\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert " passed" in summary and "failed" not in summary, summary
