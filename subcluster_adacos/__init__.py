"""Sub-cluster AdaCos (Wilkinghoff, DCASE 2020): Keras 3 layers, the modified ResNet and its training model."""

from subcluster_adacos.layers import (
    AdaCos,
    Mixup,
    SoftTargetCrossEntropy,
    SubClusterAdaCos,
    nearest_median,
    normalized_centers,
)
from subcluster_adacos.network import (
    build_embedding_model,
    build_training_model,
    embedding_model,
    head_layer,
)

__all__ = [
    "SubClusterAdaCos",
    "AdaCos",
    "Mixup",
    "SoftTargetCrossEntropy",
    "nearest_median",
    "normalized_centers",
    "build_embedding_model",
    "build_training_model",
    "embedding_model",
    "head_layer",
]
