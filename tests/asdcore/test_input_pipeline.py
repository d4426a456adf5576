"""The back-end-neutral input pipeline (asdcore/input_pipeline.py): batches from the host store and from the
copy on the device are the same, and both match NumPy indexing of the features; where the features go.

Runs on every back-end (marker ``portable``): on TensorFlow the device copy is a tensor on the default device.
"""
import numpy as np
import pytest

from asdcore import input_pipeline as P
from asdcore.errors import ASDError

pytestmark = pytest.mark.portable


def _features(n=23, frames=7, bins=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, frames, bins)).astype(np.float32)


def _to_numpy(x):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x))


def _epochs(batches, n_epochs):
    return [[batches[e * batches.steps + s] for s in range(batches.steps)] for e in range(n_epochs)]


@pytest.mark.parametrize("on_device", [False, True])
def test_each_epoch_visits_every_selected_clip_once_with_its_features_and_one_hot_label(on_device):
    features = _features()
    rows = np.array([3, 0, 22, 5, 7, 11, 12, 13, 1, 2, 20, 19, 18], np.int64)  # a selection, not sorted
    labels = np.arange(len(rows)) % 4
    device = P.DeviceFeatures(features, rows) if on_device else None
    batches = P.ClipBatches(features, [labels], [4], ["labels"], batch_size=5, seed=3, rows=rows, device=device)
    assert batches.steps == 3 and batches.num_batches is None  # ceil(13 / 5), endless
    orders = []
    for epoch in _epochs(batches, 3):
        seen = []
        for batch in epoch:
            x, y = _to_numpy(batch["features"]), batch["labels"]
            # which selected clip is each sample? find it by its features (NumPy indexing as the reference)
            where = [int(np.flatnonzero([np.array_equal(clip, features[r]) for r in rows])[0]) for clip in x]
            np.testing.assert_array_equal(y, np.eye(4, dtype=np.float32)[labels[where]])
            seen += where
        assert sorted(seen) == list(range(len(rows)))  # every clip once per epoch; last batch 3 clips
        orders.append(seen)
    assert orders[0] != orders[1] and orders[1] != orders[2]  # reshuffled every epoch
    assert orders[0] != sorted(orders[0])


def test_host_and_device_paths_give_the_same_batches_for_a_seed():
    features = _features(n=40)
    labels = [np.arange(40) % 3, np.arange(40) % 5]
    host = P.ClipBatches(features, labels, [3, 5], ["labels", "labels_1"], batch_size=8, seed=11)
    device = P.ClipBatches(features, labels, [3, 5], ["labels", "labels_1"], batch_size=8, seed=11,
                           device=P.DeviceFeatures(features))
    other_seed = P.ClipBatches(features, labels, [3, 5], ["labels", "labels_1"], batch_size=8, seed=12)
    for k in (0, 4, 5, 13):  # epochs 0, 0, 1, 2
        a, b = host[k], device[k]
        np.testing.assert_array_equal(a["features"], _to_numpy(b["features"]))
        for name in ("labels", "labels_1"):
            np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(host[0]["features"], other_seed[0]["features"])


def test_one_epoch_without_shuffle_is_the_clips_in_order():
    features = _features(n=10)
    batches = P.ClipBatches(features, [np.zeros(10, int)], [1], ["labels"], batch_size=4, shuffle=False,
                            endless=False)
    assert batches.num_batches == 3
    np.testing.assert_array_equal(np.concatenate([batches[i]["features"] for i in range(3)]), features)


def test_device_crops_are_numpy_crops():
    features = _features(n=9, frames=12, bins=3)
    device = P.DeviceFeatures(features)
    rows, starts = np.array([4, 0, 8, 4]), np.array([0, 5, 8, 3])
    expected = np.stack([features[r, s:s + 4] for r, s in zip(rows, starts)])
    np.testing.assert_array_equal(_to_numpy(device.crops(rows, starts, 4)), expected)
    np.testing.assert_array_equal(_to_numpy(device.take([8, 1])), features[[8, 1]])
    assert device.nbytes == features.nbytes


def test_where_the_features_go(monkeypatch):
    import keras

    features = _features(n=6)
    P._PLACED.clear()
    monkeypatch.setenv(P.DEVICE_DATA_ENV, "off")
    assert P.place_features(features) is None
    monkeypatch.setenv(P.DEVICE_DATA_ENV, "bogus")
    with pytest.raises(ASDError, match="ASD_DEVICE_DATA='bogus'"):
        P.place_features(features)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")  # the decision, not the copy, depends on it
    monkeypatch.setenv(P.DEVICE_DATA_ENV, "auto")
    monkeypatch.setattr(P, "device_memory_bytes", lambda: ("cpu", None))
    assert P.place_features(features) is None  # a CPU: the host store is as fast
    monkeypatch.setattr(P, "device_memory_bytes", lambda: ("gpu", 2 * features.nbytes))
    placed = P.place_features(features)  # fits within half of the memory
    assert placed is not None and P.place_features(features) is placed  # one copy for the next trainer
    monkeypatch.setenv(P.DEVICE_FRACTION_ENV, "0.4")
    P._PLACED.clear()
    assert P.place_features(features) is None  # 0.4 x 2 x nbytes < nbytes
    monkeypatch.setenv(P.DEVICE_DATA_ENV, "on")
    assert P.place_features(features, rows=[1, 2]).shape == (2,) + features.shape[1:]
    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")
    assert P.place_features(features) is None  # TensorFlow trains from its tf.data pipelines
    P._PLACED.clear()


def test_padded_features_stay_on_the_host_unless_forced(monkeypatch):
    import keras

    features = _features(n=4)
    features[1, 5:] = np.nan  # a shorter clip padded with NaN
    P._PLACED.clear()
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    monkeypatch.setattr(P, "device_memory_bytes", lambda: ("gpu", 10 ** 9))
    assert P.place_features(features) is None
    monkeypatch.setenv(P.DEVICE_DATA_ENV, "on")
    with pytest.raises(ASDError, match="NaN"):
        P.place_features(features)


def test_epoch_permutation_is_numpys_pcg64_of_seed_and_epoch():
    a = P.epoch_permutation(50, 7, 3)
    assert sorted(a) == list(range(50))
    np.testing.assert_array_equal(a, np.random.default_rng([7, 3]).permutation(50))
    assert not np.array_equal(a, P.epoch_permutation(50, 7, 4))
