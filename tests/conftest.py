"""Suite-wide check: the Keras back-end named by ``KERAS_BACKEND`` must be installed.

Without it every test module would fail to import Keras with a long traceback each; instead the run stops
at once with one line that names the back-end and the install command.
"""
import importlib.util
import os

import pytest

BACKEND_PACKAGES = {
    "jax": ("jax", 'pip install -e ".[jax]"'),
    "torch": ("torch", "pip install torch (the CPU wheel is enough)"),
}


def pytest_configure(config):
    backend = os.environ.get("KERAS_BACKEND", "").strip().lower()
    if backend in BACKEND_PACKAGES:
        package, fix = BACKEND_PACKAGES[backend]
        if importlib.util.find_spec(package) is None:
            raise pytest.UsageError(
                f"KERAS_BACKEND={backend} but the package {package!r} is not installed; {fix}, "
                "or unset KERAS_BACKEND to test on TensorFlow"
            )
