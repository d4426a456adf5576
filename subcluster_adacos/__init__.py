"""Sub-cluster AdaCos (Wilkinghoff, DCASE 2020): Keras 3 layers, the modified ResNet and its training model.

``from subcluster_adacos import SubClusterAdaCos`` works as usual; the names are imported from
:mod:`subcluster_adacos.layers` / :mod:`subcluster_adacos.network` on first use, so that importing the
command modules (``run_dcase2020.py subcluster-adacos --help``, ``run_dcase2021.py multi-distribution --help``)
does not load Keras/TensorFlow.

To load a saved ``.keras`` model, import :mod:`subcluster_adacos.layers` (or any name from it) first: that
registers the layers with Keras' deserialiser (``import subcluster_adacos`` alone no longer does).
"""
import importlib

_HOMES = {
    "SubClusterAdaCos": "layers",
    "AdaCos": "layers",
    "Mixup": "layers",
    "SoftTargetCrossEntropy": "layers",
    "nearest_median": "layers",
    "normalized_centers": "layers",
    "build_embedding_model": "network",
    "build_training_model": "network",
    "embedding_model": "network",
    "head_layer": "network",
}

__all__ = list(_HOMES)


def __getattr__(name):
    """PEP 562 lazy attribute: the layer / network names load Keras only when asked for."""
    if name in _HOMES:
        return getattr(importlib.import_module(f"subcluster_adacos.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'subcluster_adacos' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
