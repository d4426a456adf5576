"""Put this folder first on PYTHONPATH to run Python as on a machine without TensorFlow (the GPU machine
this project's GPU check runs on has JAX but no TensorFlow): ``import tensorflow`` (and every submodule)
fails with ModuleNotFoundError and ``importlib.util.find_spec("tensorflow")`` returns None, as if it were not
installed. Used by tests/backends/test_jax_end_to_end.py."""
import importlib.abc
import importlib.util
import sys

_BLOCKED = ("tensorflow", "tf_keras", "tensorflow_io_gcs_filesystem")


def _blocked(name: str) -> bool:
    return any(name == b or name.startswith(b + ".") for b in _BLOCKED)


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if _blocked(name):
            raise ModuleNotFoundError(f"No module named {name!r} (TensorFlow hidden: tests/backends/without_tensorflow)",
                                      name=name)
        return None


_find_spec = importlib.util.find_spec


def _find_spec_without_tensorflow(name, package=None):
    if _blocked(name):
        return None
    return _find_spec(name, package)


sys.meta_path.insert(0, _NoTensorFlow())
importlib.util.find_spec = _find_spec_without_tensorflow
