"""SerialOE's and the autoencoder's batches with the features on the device (asdcore.input_pipeline): every
batch (order, crops, outlier-exposure half, mixup) equals an independent NumPy computation of the sampling
rule for the seed, on the host path and on the device path; one copy serves every machine type; a tiny
training under JAX with ``ASD_DEVICE_DATA=on`` gathers its batches on the device.

Runs on every back-end (marker ``portable``). Off JAX the placement is forced by pretending the back-end is
not TensorFlow (placement is off on TensorFlow): the copy is then a tensor of that back-end on its default
device, which is what the gather runs on.
"""
import math

import keras
import numpy as np
import pytest

from asdcore import input_pipeline as P
from asdcore.clip_sources import StoreClips, WaveformClips

pytestmark = pytest.mark.portable


@pytest.fixture
def device_on(monkeypatch):
    """``ASD_DEVICE_DATA=on`` with placement allowed on this back-end; the placement cache emptied."""
    P._PLACED.clear()
    if keras.backend.backend() == "tensorflow":
        monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    monkeypatch.setenv(P.DEVICE_DATA_ENV, "on")
    yield
    P._PLACED.clear()


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


# ----------------------------------------------------------------------------- SerialOE, by hand
def _reference_oe_epochs(target, sections, other, n_sections, batch_size, alpha, crop, seed, epochs):
    """The SerialOE batch rule written out with NumPy, independent of smoothing/serial_oe.py: each epoch a
    shuffled pass over the target clips, ``batch_size // 2`` at a time; per batch, as many other-type clips
    drawn without replacement, one uniform crop start per sample (targets first), then with probability
    0.5 (1 - cos(min(pi, 2 pi t / T))) mixup with Beta(alpha, alpha) weights and a random partner. One
    generator seeded with ``seed`` makes every draw, in that order."""
    rng = np.random.default_rng(seed)
    half = batch_size // 2
    order = np.arange(len(target))
    rng.shuffle(order)
    n_batches = math.ceil(len(target) / half)
    out = []
    for epoch in range(epochs):
        batches = []
        for i in range(n_batches):
            rows = order[i * half:(i + 1) * half]
            other_rows = rng.choice(len(other), size=len(rows), replace=False)
            clips = np.concatenate([target[rows], other[other_rows]])
            starts = rng.integers(0, clips.shape[1] - crop + 1, size=len(clips))
            x = np.stack([clip[s:s + crop] for clip, s in zip(clips, starts)])
            t_mac = np.r_[np.ones(len(rows)), np.zeros(len(rows))].astype(np.float32)[:, None]
            t_id = np.zeros((len(x), n_sections), np.float32)
            for k, r in enumerate(rows):
                t_id[k, sections[r]] = 1.0
            step, total = epoch * n_batches + i, epochs * n_batches
            if rng.random() < 0.5 * (1 - math.cos(min(math.pi, 2 * math.pi * step / total))):
                lam = rng.beta(alpha, alpha, size=len(x)).astype(np.float32)
                partner = rng.permutation(len(x))
                x = np.stack([lam[k] * x[k] + (np.float32(1) - lam[k]) * x[partner[k]] for k in range(len(x))])
                t_mac = np.stack([lam[k] * t_mac[k] + (1 - lam[k]) * t_mac[partner[k]] for k in range(len(x))])
                t_id = np.stack([lam[k] * t_id[k] + (1 - lam[k]) * t_id[partner[k]] for k in range(len(x))])
            batches.append((x, t_mac, t_id))
        out.append(batches)
        rng.shuffle(order)
    return out


def _oe_data(seed=0):
    rng = np.random.default_rng(seed)
    store = rng.normal(size=(40, 19, 6)).astype(np.float32)  # one store: 3 machine types
    types = np.arange(40) % 3
    scale = rng.uniform(0.5, 2.0, size=40).astype(np.float32)  # a per-clip adjustment applied on reading
    source = StoreClips(store, adjust=lambda x, rows: x * scale[rows][:, None, None])
    return store * scale[:, None, None], types, source


@pytest.mark.parametrize("on_device", [False, True])
def test_serial_oe_batches_are_the_numpy_rule(on_device, request):
    from smoothing.serial_oe import OEBatches

    adjusted, types, source = _oe_data()
    of_type = types == 1
    sections = np.arange(int(of_type.sum())) % 2
    epochs, batch, crop = 3, 6, 7
    batches = OEBatches(source.subset(of_type), sections, source.subset(~of_type), 2, batch_size=batch,
                        mixup_alpha=0.4, seed=5, crop=crop, mixup_schedule="ramp", epochs=epochs)
    if on_device:
        request.getfixturevalue("device_on")
        assert batches.on_device()
        device, _ = batches.device
        assert device.shape == (40, 19, 6)  # one copy of the union of the two sources' rows
    reference = _reference_oe_epochs(adjusted[of_type], sections, adjusted[~of_type], 2, batch, 0.4, crop, 5,
                                     epochs)
    mixed = 0
    for epoch in range(epochs):
        for i, (x_ref, mac_ref, id_ref) in enumerate(reference[epoch]):
            x, targets = batches[i]
            assert isinstance(x, np.ndarray) is (not on_device)
            np.testing.assert_allclose(_np(x), x_ref, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(targets["mac"], mac_ref, rtol=1e-6)
            np.testing.assert_allclose(targets["id"], id_ref, rtol=1e-6)
            mixed += not np.all(np.isin(targets["mac"], (0.0, 1.0)))
        batches.on_epoch_end()
    assert 0 < mixed < epochs * len(batches)  # the ramp: some batches mixed, some not


def test_serial_oe_device_batches_equal_the_host_batches_exactly(device_on):
    """Unmixed batches are copies of stored values: bit for bit the same on both paths; mixed ones the same
    float32 arithmetic."""
    from smoothing.serial_oe import OEBatches

    _, types, source = _oe_data(seed=1)
    args = (source.subset(types == 0), np.zeros(int((types == 0).sum()), int), source.subset(types != 0), 1)
    host = OEBatches(*args, batch_size=8, mixup_alpha=0.2, seed=9, crop=5, mixup_schedule="ramp", epochs=2)
    device = OEBatches(*args, batch_size=8, mixup_alpha=0.2, seed=9, crop=5, mixup_schedule="ramp", epochs=2)
    assert device.on_device() and host.device is None
    for _ in range(2):
        for i in range(len(host)):
            (xh, th), (xd, td) = host[i], device[i]
            if np.all(np.isin(th["mac"], (0.0, 1.0))):
                np.testing.assert_array_equal(_np(xd), xh)
            else:
                np.testing.assert_allclose(_np(xd), xh, rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(td["id"], th["id"])
        host.on_epoch_end()
        device.on_epoch_end()


def test_one_device_copy_serves_every_machine_type(device_on):
    from smoothing.serial_oe import OEBatches

    _, types, source = _oe_data()
    placed = []
    for t in range(3):
        of_type = types == t
        batches = OEBatches(source.subset(of_type), np.zeros(int(of_type.sum()), int), source.subset(~of_type), 1,
                            batch_size=4, seed=t, crop=5)
        assert batches.on_device()
        placed.append(batches.device[0])
    assert placed[0] is placed[1] is placed[2]
    # arrays (not one store) are copied one after another; clips computed from recordings stay on the host
    x = np.random.default_rng(0).normal(size=(10, 9, 4)).astype(np.float32)
    arrays = OEBatches(x[:4], np.zeros(4, int), x[4:], 1, batch_size=4, seed=0, crop=5)
    assert arrays.on_device()
    device, (target_positions, other_positions) = arrays.device
    np.testing.assert_array_equal(_np(device.take(np.r_[target_positions, other_positions])), x)
    from asdcore.features import LogMelConfig

    waves = WaveformClips(["a.wav", "b.wav"], LogMelConfig(n_frames=9, n_mels=4))
    assert P.place_clips([waves, waves]) is None


# ------------------------------------------------------------------------------ autoencoder, by hand
def _reference_ae_epochs(clips, crop, context, per_batch, seed, epochs):
    """The autoencoder batch rule with NumPy: each epoch a permutation of the clips, ``per_batch`` at a time
    (ascending within a batch), one uniform crop start per clip, every ``context``-frame vector of the crop
    (frames side by side). One generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(clips))
    out = []
    for _ in range(epochs):
        batches = []
        for i in range(math.ceil(len(clips) / per_batch)):
            rows = np.sort(order[i * per_batch:(i + 1) * per_batch])
            starts = rng.integers(0, clips.shape[1] - crop + 1, size=len(rows))
            vectors = [clips[r, s + t:s + t + context].reshape(-1)
                       for r, s in zip(rows, starts) for t in range(crop - context + 1)]
            batches.append(np.stack(vectors))
        out.append(batches)
        order = rng.permutation(len(clips))
    return out


@pytest.mark.parametrize("on_device", [False, True])
def test_autoencoder_batches_are_the_numpy_rule(on_device, request):
    from smoothing.autoencoder import CropBatches

    clips = np.random.default_rng(3).normal(size=(11, 17, 4)).astype(np.float32)
    batches = CropBatches(clips, crop=8, context=3, batch_segments=4, seed=7)
    if on_device:
        request.getfixturevalue("device_on")
        assert batches.on_device()
    for epoch_batches in _reference_ae_epochs(clips, 8, 3, 4, 7, epochs=3):
        for i, expected in enumerate(epoch_batches):
            x, target = batches[i]
            assert x is target and isinstance(x, np.ndarray) is (not on_device)
            np.testing.assert_array_equal(_np(x), expected)  # gathered stored values: exact
        batches.on_epoch_end()


def test_device_stacked_crops_are_numpy_stacked_frames():
    from asdcore.features import stack_frames

    features = np.random.default_rng(1).normal(size=(5, 12, 3)).astype(np.float32)
    device = P.DeviceFeatures(features)
    rows, starts = np.array([4, 0, 4]), np.array([2, 0, 5])
    expected = stack_frames(np.stack([features[r, s:s + 6] for r, s in zip(rows, starts)]), 2)
    np.testing.assert_array_equal(_np(device.stacked_crops(rows, starts, 6, 2)), expected)


# ------------------------------------------------------------------------------ training under JAX
@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the device path trains on JAX (and PyTorch)")
def test_tiny_serial_oe_and_autoencoder_train_from_device_batches(device_on):
    from smoothing.autoencoder import AEConfig, train_autoencoder
    from smoothing.serial_oe import SerialOEConfig, train_serial_oe

    rng = np.random.default_rng(0)
    clips = rng.normal(size=(12, 30, 8)).astype(np.float32)
    ae = AEConfig(n_mels=8, n_frames=2, segment_seconds=0.5, hop_length=512, hidden_units=16,
                  bottleneck_units=4, epochs=2, batch_segments=4)
    _, history = train_autoencoder(clips, clips[:3], ae, seed=0)
    assert np.all(np.isfinite(history["loss"])) and P._PLACED[0][2].shape == clips.shape
    x_t, x_o = clips, rng.normal(size=(16, 30, 8)).astype(np.float32)
    soe = SerialOEConfig(backbone="light", batch_size=8, epochs=1, segment_seconds=0.25, hop_length=256)
    _, history = train_serial_oe(x_t, np.arange(12) % 2, x_o, 2, soe, seed=0)
    assert np.all(np.isfinite(history["loss"])) and P._PLACED[0][2].shape == (28, 30, 8)
