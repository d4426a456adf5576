"""BCE + DDCSAD: binary classification with class centroids for anomalous sound detection.

Kuroyanagi, Hayashi, Takeda, Toda, "Anomalous sound detection using a binary classification model and
class centroids" (EUSIPCO 2021; DCASE 2020 task 2 data). No public code exists; this package is the
reference implementation, and every choice the paper leaves open is a documented option.

Modules: :mod:`ddcsad.losses` (eqs. 1-4, ``keras.ops``), :mod:`ddcsad.model` (``DDCSADModel`` with its
custom training step, ``CentroidUpdate``), :mod:`ddcsad.backbones` (ResNet38 of PANNs, a light CNN).
"""
__all__ = ["NORMAL", "OUTLIER", "ANOMALY", "VARIANTS"]


def __getattr__(name):
    """``ddcsad.NORMAL`` etc. from :mod:`ddcsad.losses`, imported on first use: importing the package (as
    ``run_dcase2020.py ddcsad --help`` does) must not load Keras/TensorFlow."""
    if name in __all__:
        from ddcsad import losses

        return getattr(losses, name)
    raise AttributeError(f"module 'ddcsad' has no attribute {name!r}")
