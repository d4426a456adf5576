"""a_G: the DCASE baseline dense autoencoder (Fujimura et al. section IV-A)."""
import keras
import numpy as np
import pytest

from asdcore.errors import ASDError
from smoothing.autoencoder import AEConfig, SegmentBatches, anomaly_score_ae, build_autoencoder, train_autoencoder


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


def test_segment_batches_hold_whole_segments():
    seg = np.arange(5 * 3 * 2, dtype=np.float32).reshape(5, 3, 2)  # 5 segments of 3 vectors
    batches = SegmentBatches(seg, batch_segments=2, shuffle=True, seed=1)
    assert len(batches) == 3
    seen = []
    for i in range(len(batches)):
        x, y = batches[i]
        np.testing.assert_array_equal(x, y)
        assert x.shape[1] == 2 and x.shape[0] in (6, 3)  # 2 segments x 3 vectors; the last batch 1 segment
        for block in x.reshape(-1, 3, 2):  # consecutive vectors of one segment
            seen.append(int(block[0, 0]) // 6)
            np.testing.assert_array_equal(block, seg[int(block[0, 0]) // 6])
    assert sorted(seen) == [0, 1, 2, 3, 4]
    with pytest.raises(ASDError):
        SegmentBatches(np.zeros((4, 640)))


def test_short_fit_lowers_reconstruction_error():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 640)).astype(np.float32)
    train = (rng.normal(size=(48, 6, 3)) @ basis).astype(np.float32)  # 48 segments of 6 vectors, rank 3
    model = build_autoencoder(640, jit_compile=False)  # XLA compilation would dominate such a short fit
    before = anomaly_score_ae(model, train[None]).item()
    cfg = AEConfig(batch_segments=2)
    model, history = train_autoencoder(train, config=cfg, model=model, epochs=3, verbose=0)
    after = anomaly_score_ae(model, train[None]).item()
    assert after < 0.7 * before
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_save_load_roundtrip(tmp_path):
    model = build_autoencoder(40, hidden_units=16, bottleneck_units=4, learning_rate=None)
    x = np.random.default_rng(0).normal(size=(5, 40)).astype(np.float32)
    path = tmp_path / "ae.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
