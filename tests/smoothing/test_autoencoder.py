"""a_G: the DCASE baseline dense autoencoder (Fujimura et al. section IV-A)."""
import keras
import numpy as np
import pytest

from asdcore.errors import ASDError
from asdcore.features import stack_frames
from smoothing.autoencoder import AEConfig, CropBatches, anomaly_score_ae, build_autoencoder, train_autoencoder
from smoothing.training import ModelCache


def test_layers_and_shapes():
    model = build_autoencoder(640)
    dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert [l.units for l in dense] == [128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
    assert len(bns) == 9
    assert model.input_shape == (None, 640) and model.output_shape == (None, 640)
    widths = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
    n_dense = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
    n_bn = 4 * sum(widths[1:-1])  # gamma, beta, moving mean, moving variance
    assert model.count_params() == n_dense + n_bn
    assert dense[-1].activation is keras.activations.linear
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert np.isclose(float(model.optimizer.learning_rate), 1e-3)


def test_config_defaults():
    cfg = AEConfig()
    assert cfg.input_dim == 640 and cfg.epochs == 1500 and cfg.batch_segments == 16
    assert cfg.learning_rate == 1e-3 and cfg.n_segments == 7 and cfg.segment_seconds == 4.0
    mel = cfg.logmel_config()
    assert (mel.n_fft, mel.hop_length, mel.n_mels, mel.fmin, mel.fmax) == (1024, 512, 128, 50.0, 7800.0)
    assert mel.sr * 0.064 == mel.n_fft and mel.sr * 0.032 == mel.hop_length


def test_score_is_mean_squared_error_by_hand():
    # An "autoencoder" that outputs zeros: a_G = mean of x^2 per segment, then mean over segments.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, kernel_initializer="zeros")])
    x = np.zeros((2, 3, 2, 4), dtype=np.float32)
    x[0, 0] = 1.0       # segment error 1
    x[0, 1, 0] = 2.0    # half the vectors at 4: error 2
    x[1, 2, 1, 0] = 4.0  # one entry of 16 over 8 values: error 2
    scores, per_seg = anomaly_score_ae(model, x, return_segments=True)
    np.testing.assert_allclose(per_seg, [[1.0, 2.0, 0.0], [0.0, 0.0, 2.0]], rtol=1e-6)
    np.testing.assert_allclose(scores, [1.0, 2.0 / 3.0], rtol=1e-6)
    with pytest.raises(ASDError):
        anomaly_score_ae(model, x[0])


def test_crop_batches_hold_random_4s_crops_of_every_clip():
    # 5 clips of 12 frames x 2 bins, values encode (clip, frame): crops are identified by hand
    clips = np.array([[[100 * c + f, -(100 * c + f)] for f in range(12)] for c in range(5)], dtype=np.float32)
    batches = CropBatches(clips, crop=6, context=3, batch_segments=2, seed=1)
    assert len(batches) == 3
    starts_by_epoch = []
    for epoch in range(2):
        seen, starts = [], []
        for i in range(len(batches)):
            x, y = batches[i]
            np.testing.assert_array_equal(x, y)
            vectors = x.reshape(-1, 6 - 3 + 1, 3 * 2)  # per crop: 4 stacked vectors of 3 frames x 2 bins
            for block in vectors:
                clip, start = int(block[0, 0]) // 100, int(block[0, 0]) % 100
                crop = clips[clip, start:start + 6]  # the 6 consecutive frames of one clip
                np.testing.assert_array_equal(block, stack_frames(crop[None], 3)[0])
                seen.append(clip)
                starts.append(start)
        batches.on_epoch_end()
        assert sorted(seen) == [0, 1, 2, 3, 4]  # every clip once per epoch
        assert all(0 <= s <= 6 for s in starts)
        starts_by_epoch.append(starts)
    assert starts_by_epoch[0] != starts_by_epoch[1]  # a new crop every epoch
    with pytest.raises(ASDError):
        CropBatches(np.zeros((4, 640)), crop=6)
    with pytest.raises(ASDError, match="fewer than one"):
        CropBatches(clips[:, :5], crop=6)


def tiny_ae_config(**kw):
    base = dict(n_mels=8, n_frames=2, segment_seconds=0.5, hop_length=512, hidden_units=16, bottleneck_units=4,
                epochs=4, batch_segments=2)
    return AEConfig(**{**base, **kw})


def test_training_lowers_reconstruction_error_and_logs_validation():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(2, 8)).astype(np.float32)
    clips = (rng.normal(size=(12, 30, 2)) @ basis).astype(np.float32)  # rank-2 log-mel "clips"
    cfg = tiny_ae_config(epochs=40, learning_rate=1e-2, batch_segments=6)
    crop = 1 + 8000 // 512
    stacked = stack_frames(clips[:, :crop], 2)[None]
    untrained = build_autoencoder(16, 16, 4, learning_rate=None)
    model, history = train_autoencoder(clips, clips[:3], cfg, seed=0, validate_every=20, jit_compile=False)
    assert list(history["epoch"]) == list(range(1, 41)) and history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert np.flatnonzero(history["val_loss"].notna()).tolist() == [19, 39]
    assert anomaly_score_ae(model, stacked).item() < 0.7 * anomaly_score_ae(untrained, stacked).item()
    # the logged validation loss is the mean squared error of the centre crops, by hand
    start = (30 - crop) // 2
    val = stack_frames(clips[:3, start:start + crop], 2).reshape(-1, 16)
    want = np.mean((val - np.asarray(model(val, training=False))) ** 2)
    assert history["val_loss"].iloc[-1] == pytest.approx(want, rel=1e-5)


def test_model_cache_reuse_equals_a_new_model():
    cfg = tiny_ae_config(epochs=2)
    rng = np.random.default_rng(0)
    clips_a, clips_b = rng.normal(size=(2, 10, 30, 8)).astype(np.float32)
    cache = ModelCache()
    train_autoencoder(clips_a, clips_a[:2], cfg, seed=1, jit_compile=False, cache=cache)
    reused, _ = train_autoencoder(clips_b, clips_b[:2], cfg, seed=2, jit_compile=False, cache=cache)
    reused_weights = [w.copy() for w in reused.get_weights()]
    fresh, _ = train_autoencoder(clips_b, clips_b[:2], cfg, seed=2, jit_compile=False, cache=ModelCache())
    for a, b in zip(reused_weights, fresh.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_save_load_roundtrip(tmp_path):
    model = build_autoencoder(40, hidden_units=16, bottleneck_units=4, learning_rate=None)
    x = np.random.default_rng(0).normal(size=(5, 40)).astype(np.float32)
    path = tmp_path / "ae.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
