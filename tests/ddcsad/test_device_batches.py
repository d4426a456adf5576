"""DDCSAD's balanced batches with the features on the device (asdcore.input_pipeline): the same crops and
labels as the host path for a seed, whose crops are NumPy slices of the features."""
import keras
import numpy as np
import pytest

from asdcore import input_pipeline as P

pytestmark = pytest.mark.portable


def test_device_batches_are_the_host_batches(monkeypatch):
    from ddcsad import data

    features = np.random.default_rng(0).normal(size=(30, 20, 4)).astype(np.float32)
    sets = data.UnitSets("dev", "fan", "id_00", normal=np.arange(10), outlier=np.arange(10, 30))
    host = data.BalancedBatches(features, sets, (4, 4), 8, seed=5)
    device = data.BalancedBatches(features, sets, (4, 4), 8, seed=5)
    P._PLACED.clear()
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")  # placement is off on TensorFlow
    monkeypatch.setenv(P.DEVICE_DATA_ENV, "on")
    assert device.on_device() and not host.device
    for _ in range(4):
        (xh, yh), (xd, yd) = host.next_batch(), device.next_batch()
        np.testing.assert_array_equal(yh, yd)
        np.testing.assert_array_equal(xh, np.asarray(keras.ops.convert_to_numpy(xd)))
        # every sample is a crop of one of the unit's clips: normal clips first, then outliers
        for k, crop in enumerate(xh):
            clips = sets.normal if k < 4 else sets.outlier
            assert any(np.array_equal(crop, features[r, s:s + 8]) for r in clips for s in range(13))
    P._PLACED.clear()
