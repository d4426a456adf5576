"""f_D (SerialOE) of Fujimura et al.: the one-cycle schedule, the network, the loss (eq. 3-6), the batches,
and the GMM comparison scorer."""
import math

import keras
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from asdcore.errors import ASDError
from smoothing.serial_oe import (OEBatches, OneCycleSchedule, SerialOEConfig, SerialOEScorer, build_serial_oe,
                                 compile_serial_oe, embed, serial_oe_loss, train_serial_oe)


def one_cycle_reference(step, max_lr, total, pct=0.3, div=25.0, final_div=1e4):
    """PyTorch OneCycleLR (two phases, cosine), written from its documented definition."""
    initial = max_lr / div
    low = initial / final_div
    e1 = pct * total - 1
    e2 = total - 1
    step = min(max(step, 0), e2)

    def cos_anneal(a, b, p):
        return b + (a - b) / 2 * (1 + math.cos(math.pi * p))

    if step <= e1:
        return cos_anneal(initial, max_lr, step / e1)
    return cos_anneal(max_lr, low, (step - e1) / (e2 - e1))


def lr_values(schedule, steps):
    return np.array([float(schedule(s)) for s in steps])


def test_one_cycle_shape():
    total = 100
    sched = OneCycleSchedule(1e-3, total)
    steps = np.arange(total)
    lr = lr_values(sched, steps)
    want = np.array([one_cycle_reference(s, 1e-3, total) for s in steps])
    np.testing.assert_allclose(lr, want, rtol=1e-5)
    np.testing.assert_allclose(lr[0], 1e-3 / 25, rtol=1e-6)       # start
    assert int(np.argmax(lr)) == 29                                 # peak at pct_start * T - 1
    np.testing.assert_allclose(lr[29], 1e-3, rtol=1e-6)
    np.testing.assert_allclose(lr[-1], 1e-3 / 25 / 1e4, rtol=1e-4)  # end
    assert np.all(np.diff(lr[:30]) > 0) and np.all(np.diff(lr[29:]) < 0)
    np.testing.assert_allclose(float(sched(10_000)), lr[-1], rtol=1e-6)  # clipped after the end


def test_one_cycle_fractional_peak_and_linear():
    sched = OneCycleSchedule(2e-3, 45, pct_start=0.25, div_factor=10, final_div_factor=100, anneal="linear")
    e1 = 0.25 * 45 - 1  # 10.25: the peak lies between steps 10 and 11
    for s in (0, 5, 10, 11, 30, 44):
        if s <= e1:
            want = 2e-4 + (2e-3 - 2e-4) * s / e1
        else:
            want = 2e-3 + (2e-6 - 2e-3) * (s - e1) / (44 - e1)
        np.testing.assert_allclose(float(sched(s)), want, rtol=1e-5)


def test_one_cycle_serialises():
    sched = OneCycleSchedule(1e-3, 77, pct_start=0.4)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(sched))
    assert isinstance(again, OneCycleSchedule) and again.get_config() == sched.get_config()
    with pytest.raises(ASDError):
        OneCycleSchedule(1e-3, 10, pct_start=1.5)


def test_light_backbone_shapes_and_embedding():
    model = build_serial_oe(3, (32, 24), backbone="light")
    x = np.random.default_rng(0).random((5, 32, 24)).astype(np.float32)
    out = model(x, training=False)
    assert tuple(out["mac"].shape) == (5, 1) and tuple(out["id"].shape) == (5, 3)
    assert embed(model, x).shape == (5, 128)
    assert embed(model, x[:4].reshape(2, 2, 32, 24)).shape == (2, 2, 128)
    assert model.get_layer("g_id").use_bias is False
    with pytest.raises(ASDError):
        build_serial_oe(3, (32, 24), backbone="resnet")


def bce(t, logit):
    p = 1.0 / (1.0 + np.exp(-logit))
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def test_loss_is_mac_plus_5_id():
    model = build_serial_oe(4, (16, 20), backbone="light")
    compile_serial_oe(model, total_steps=10)
    rng = np.random.default_rng(1)
    x = rng.random((6, 16, 20)).astype(np.float32)
    t_mac = rng.random((6, 1)).astype(np.float32)           # soft (mixed-up) targets
    t_id = rng.random((6, 4)).astype(np.float32)
    pred = model(x, training=False)
    logit_mac = np.asarray(pred["mac"], dtype=np.float64)
    logit_id = np.asarray(pred["id"], dtype=np.float64)
    want = bce(t_mac, logit_mac).mean() + 5.0 * bce(t_id, logit_id).mean()  # eq. (4) + 5 * eq. (6)
    got = model.compute_loss(x=x, y={"mac": t_mac, "id": t_id}, y_pred=pred, training=False)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_oe_batches_half_and_half_with_consistent_mixup():
    x_t = np.ones((10, 4, 3), dtype=np.float32)
    x_o = np.zeros((7, 4, 3), dtype=np.float32)
    sections = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    plain = OEBatches(x_t, sections, x_o, 3, batch_size=8, mixup_alpha=0.0, seed=0)
    assert len(plain) == 3
    x, y = plain[0]
    assert x.shape == (8, 4, 3)
    np.testing.assert_array_equal(y["mac"][:, 0], [1, 1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(y["id"].sum(axis=1), y["mac"][:, 0])  # one-hot targets, zeros for others
    mixed = OEBatches(x_t, sections, x_o, 3, batch_size=8, mixup_alpha=0.2, seed=0)
    for i in range(len(mixed)):
        x, y = mixed[i]
        # inputs are 1 (target) or 0 (other): a mixed input equals its mixed machine target
        np.testing.assert_allclose(x, np.broadcast_to(y["mac"][:, :, None], x.shape), atol=1e-6)
        np.testing.assert_allclose(y["id"].sum(axis=1), y["mac"][:, 0], atol=1e-6)
    with pytest.raises(ASDError):
        OEBatches(x_t, sections + 1, x_o, 3)


def test_efficientnet_b0_stochastic_depth_off_by_default():
    # Keras' EfficientNetB0 drops residual branches in training (drop_connect_rate 0.2); the public code's
    # timm model does not. With 0 the backbone is deterministic in training mode; with 0.2 it is not.
    x = np.random.default_rng(0).random((4, 32, 32)).astype(np.float32)
    for rate in (0.0, 0.2):
        model = build_serial_oe(2, (32, 32), drop_connect_rate=rate)
        backbone = model.get_layer("efficientnetb0")
        drops = [l for l in backbone.layers if l.name.startswith("block") and l.name.endswith("_drop")]
        assert len(drops) == 9  # blocks with a residual branch (16 blocks, 7 without)
        # Keras' schedule 0.2 * block / 16 (the last residual block is block 14): 0.175 at 0.2, none at 0
        assert max(l.rate for l in drops) == pytest.approx(0.2 * 14 / 16 if rate else 0.0)
        image = keras.ops.expand_dims(keras.ops.transpose(x, (0, 2, 1)), -1) * 255.0
        a = np.asarray(backbone(image, training=True))
        b = np.asarray(backbone(image, training=True))
        assert np.array_equal(a, b) == (rate == 0.0)


def test_oe_batches_crop_whole_clips_before_mixup():
    # target clips hold +1 + frame/100 in every bin, other clips -1 - frame/100: every sample of a batch
    # is 6 consecutive frames of one clip
    frames = np.arange(20, dtype=np.float32)[:, None] / 100
    x_t = np.broadcast_to(1 + frames, (6, 20, 3)).copy()
    x_o = np.broadcast_to(-1 - frames, (5, 20, 3)).copy()
    batches = OEBatches(x_t, np.zeros(6, int), x_o, 1, batch_size=8, mixup_alpha=0.0, seed=0, crop=6)
    starts = []
    for i in range(len(batches)):
        x, y = batches[i]
        assert x.shape[1:] == (6, 3)
        for sample, mac in zip(x, y["mac"][:, 0]):
            first = abs(sample[0, 0]) - 1
            np.testing.assert_allclose(np.abs(sample[:, 0]) - 1, first + np.arange(6) / 100, atol=1e-6)
            assert (sample[0, 0] > 0) == (mac == 1)
            starts.append(round(first * 100))
    assert len(set(starts)) > 1 and min(starts) >= 0 and max(starts) <= 14
    with pytest.raises(ASDError, match="fewer than one"):
        OEBatches(x_t, np.zeros(6, int), x_o, 1, crop=21)


def test_validation_loss_in_batches_equals_eq3_by_hand():
    model = build_serial_oe(3, (16, 20), backbone="light")
    rng = np.random.default_rng(4)
    x = rng.random((11, 16, 20)).astype(np.float32)
    t_mac = (rng.random((11, 1)) < 0.5).astype(float)
    t_id = np.eye(3)[rng.integers(0, 3, 11)] * t_mac
    pred = model(x, training=False)
    want = bce(t_mac, np.asarray(pred["mac"], np.float64)).mean() + 5.0 * bce(t_id, np.asarray(pred["id"], np.float64)).mean()
    for batch_size in (2, 4, 128):
        assert serial_oe_loss(model, x, t_mac, t_id, 5.0, batch_size) == pytest.approx(want, rel=1e-5)


def test_efficientnet_b0_builds_without_weights():
    model = build_serial_oe(6, (64, 64), backbone="efficientnet_b0")
    names = [layer.name for layer in model.layers]
    assert "efficientnetb0" in names
    backbone = model.get_layer("efficientnetb0")
    assert backbone.output_shape == (None, 1280) and backbone.input_shape == (None, 64, 64, 1)
    assert tuple(model.output["id"].shape) == (None, 6) and tuple(model.output["mac"].shape) == (None, 1)


def test_config_defaults():
    cfg = SerialOEConfig()
    assert (cfg.lambda_id, cfg.epochs, cfg.batch_size, cfg.max_lr, cfg.embedding_dim) == (5.0, 150, 128, 1e-3, 128)
    # the public SerialOE code: AdamW weight_decay 0, timm backbone without drop path
    assert cfg.weight_decay == 0.0 and cfg.drop_connect_rate == 0.0
    model = compile_serial_oe(build_serial_oe(2, (16, 20), backbone="light"), 10, cfg)
    assert model.optimizer.weight_decay == 0.0
    mel = cfg.logmel_config()
    assert mel.sr * 0.128 == mel.n_fft and mel.sr * 0.016 == mel.hop_length
    assert (mel.n_mels, mel.fmin, mel.fmax) == (224, 50.0, 7800.0)


def test_serial_oe_scorer_matches_sklearn():
    rng = np.random.default_rng(2)
    train = np.concatenate([rng.normal(0, 1, (60, 3)), rng.normal(5, 1, (60, 3))])
    test = rng.normal(2, 2, (4, 7, 3))  # 4 clips x 7 segments
    scorer = SerialOEScorer(n_components=2, random_state=0).fit(train)
    ref = GaussianMixture(2, covariance_type="full", reg_covar=1e-6, random_state=0).fit(train)
    want = -ref.score_samples(test.reshape(-1, 3)).reshape(4, 7).mean(axis=1)
    np.testing.assert_allclose(scorer.score(test), want, rtol=1e-6)
    np.testing.assert_allclose(scorer.score(test[:, 0]), -ref.score_samples(test[:, 0]), rtol=1e-6)


def test_short_training_and_save_load(tmp_path):
    rng = np.random.default_rng(0)
    x_t = rng.random((24, 40, 24)).astype(np.float32) + np.linspace(0, 1, 24)[None, None, :]
    sections = np.arange(24) % 3
    x_o = rng.random((30, 40, 24)).astype(np.float32)
    cfg = SerialOEConfig(backbone="light", batch_size=16, epochs=2, segment_seconds=0.5, hop_length=256)
    model, history = train_serial_oe(x_t, sections, x_o, 3, cfg, val=(x_t[:6], sections[:6], x_o[:6]), seed=0,
                                     jit_compile=False)
    assert np.all(np.isfinite(history["loss"])) and history["val_loss"].notna().iloc[-1]
    assert model.input_shape == (None, 1 + 8000 // 256, 24)  # trained on 0.5 s crops of the 40-frame clips
    sched = model.optimizer._learning_rate
    assert isinstance(sched, OneCycleSchedule) and sched.total_steps == 2 * 3
    path = tmp_path / "serial_oe.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(embed(again, x_t[:4, :32]), embed(model, x_t[:4, :32]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_efficientnet_b0_full_size_and_norm_head(tmp_path):
    model = build_serial_oe(6, (251, 224), mac_head="norm")
    x = np.random.default_rng(0).random((2, 251, 224)).astype(np.float32)
    e = embed(model, x)
    assert e.shape == (2, 128)
    path = tmp_path / "effnet.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(embed(again, x), e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mac_head", ["linear", "norm"])
def test_embedding_heads_and_losses_are_float32_under_mixed_precision(mac_head):
    """--precision mixed_bfloat16: the backbone computes in bfloat16; f_D, g_mac, g_id (and so eq. 3) stay
    float32, and a one-step fit runs."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        model = build_serial_oe(3, (32, 24), backbone="light", mac_head=mac_head)
        assert model.get_layer("light_conv0").compute_dtype == "bfloat16"
        for name in ("embedding", "g_mac", "g_id"):
            assert model.get_layer(name).compute_dtype == "float32", name
        x = np.random.default_rng(0).random((8, 32, 24)).astype(np.float32)
        out = model(x, training=False)
        assert {keras.backend.standardize_dtype(v.dtype) for v in out.values()} == {"float32"}
        assert keras.backend.standardize_dtype(embed(model, x).dtype) == "float32"
        compile_serial_oe(model, total_steps=1)
        t = {"mac": np.r_[np.ones(4), np.zeros(4)][:, None].astype(np.float32),
             "id": np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 0, 0, 0, 0]] * np.r_[np.ones(4), np.zeros(4)][:, None]}
        history = model.fit(x, t, batch_size=8, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
    finally:
        keras.config.set_dtype_policy(previous)


class CountingClips:
    """A clip source that records how many clips each read asked for."""

    def __new__(cls, x):
        from asdcore.clip_sources import StoreClips

        class _Counting(StoreClips):
            def _load(self, rows):
                self.reads.append(len(rows))
                return super()._load(rows)

        src = _Counting(x)
        src.reads = []
        return src


def test_oe_batches_from_a_clip_source_read_one_batch_at_a_time_and_equal_the_arrays(tmp_path):
    rng = np.random.default_rng(0)
    x_t = rng.random((10, 12, 3)).astype(np.float32)
    x_o = rng.random((15, 12, 3)).astype(np.float32)
    np.save(tmp_path / "o.npy", x_o)
    sections = np.arange(10) % 2
    target, other = CountingClips(x_t), CountingClips(np.load(tmp_path / "o.npy", mmap_mode="r"))
    from_source = OEBatches(target, sections, other, 2, batch_size=8, mixup_alpha=0.2, seed=3, crop=5)
    from_arrays = OEBatches(x_t, sections, x_o, 2, batch_size=8, mixup_alpha=0.2, seed=3, crop=5)
    assert target.reads == [] and other.reads == []  # nothing read to build the batches
    for i in range(len(from_arrays)):
        (xa, ya), (xs, ys) = from_arrays[i], from_source[i]
        np.testing.assert_array_equal(xs, xa)
        np.testing.assert_array_equal(ys["id"], ya["id"])
    assert target.reads == [4, 4, 2] and other.reads == [4, 4, 2]  # the clips of one batch per read


def test_training_and_embeddings_from_clip_sources_equal_the_arrays():
    from asdcore.clip_sources import StoreClips
    from smoothing.serial_oe import embed_clips

    rng = np.random.default_rng(1)
    x = rng.random((30, 40, 16)).astype(np.float32)
    mine = np.arange(30) < 14
    sections = np.arange(14) % 2
    cfg = SerialOEConfig(backbone="light", batch_size=8, epochs=1, segment_seconds=0.5, hop_length=256,
                         n_segments=2)
    src = StoreClips(x)
    results = []
    for data in ((x[mine][:10], x[~mine][:12], x[mine][10:], x[~mine][12:], x[mine]),
                 (src.subset(np.flatnonzero(mine)[:10]), src.subset(np.flatnonzero(~mine)[:12]),
                  src.subset(np.flatnonzero(mine)[10:]), src.subset(np.flatnonzero(~mine)[12:]), src.subset(mine))):
        model, history = train_serial_oe(data[0], sections[:10], data[1], 2, cfg,
                                         val=(data[2], sections[10:], data[3]), seed=0, jit_compile=False)
        results.append((embed_clips(model, data[4], cfg, chunk=5), history["val_loss"].iloc[-1]))
    np.testing.assert_array_equal(results[1][0], results[0][0])
    assert results[1][1] == results[0][1]


def test_mixup_probability_rises_over_the_first_half_as_the_public_trainer():
    """mixup_schedule "ramp": batch t of T is mixed with probability 0.5 (1 - cos(min(pi, 2 pi t / T))) (the
    public SerialOE trainer), so no batch of the first steps is mixed and every batch of the second half is;
    "always" mixes every batch. Every clip distinct, lambda ~ Beta(50, 50) ~ 0.5: a batch is mixed iff one of
    its inputs is none of the clips."""
    rng = np.random.default_rng(0)
    x_t, x_o = rng.random((40, 4, 3)).astype(np.float32), rng.random((40, 4, 3)).astype(np.float32)
    clips = np.concatenate([x_t, x_o]).reshape(80, -1)
    sections = np.arange(40) % 2
    epochs = 10

    def is_mixed(x):
        return any(not np.any(np.all(np.abs(clips - row) < 1e-7, axis=1)) for row in x.reshape(len(x), -1))

    ramp = OEBatches(x_t, sections, x_o, 2, batch_size=8, mixup_alpha=50.0, seed=1, mixup_schedule="ramp",
                     epochs=epochs)
    total = epochs * len(ramp)
    mixed = []
    for epoch in range(epochs):
        for i in range(len(ramp)):
            step = epoch * len(ramp) + i
            assert ramp.mixup_probability(i) == pytest.approx(0.5 * (1 - math.cos(min(math.pi, 2 * math.pi * step
                                                                                       / total))))
            mixed.append(is_mixed(ramp[i][0]))
        ramp.on_epoch_end()
    mixed = np.array(mixed)
    assert not mixed[:2].any() and mixed[total // 2:].all() and 0 < mixed[: total // 2].sum() < total // 2
    always = OEBatches(x_t, sections, x_o, 2, batch_size=8, mixup_alpha=50.0, seed=1)
    assert all(is_mixed(always[i][0]) for i in range(len(always)))
    assert SerialOEConfig().mixup_schedule == "ramp"
    with pytest.raises(ASDError):
        SerialOEConfig(mixup_schedule="sometimes")


def test_neck_starts_as_pytorch_builds_it():
    """The neck's PReLU slope starts at 0.25 and its batch normalisation keeps 90 % of the running statistics
    with epsilon 1e-5 (PyTorch's defaults, the public code's framework): checked on the layers' behaviour."""
    model = build_serial_oe(2, (16, 20), backbone="light")
    prelu, bn = model.get_layer("neck_prelu"), model.get_layer("neck_bn")
    v = np.array([[-2.0] * 128, [3.0] * 128], np.float32)
    np.testing.assert_allclose(np.asarray(prelu(v)), [[-0.5] * 128, [3.0] * 128])
    batch = np.random.default_rng(0).normal(2.0, 3.0, size=(64, 128)).astype(np.float32)
    bn(batch, training=True)
    np.testing.assert_allclose(np.asarray(bn.moving_mean), 0.1 * batch.mean(axis=0), rtol=1e-4, atol=1e-5)
    # inference with fresh statistics (mean 0, variance 1): x / sqrt(1 + eps)
    fresh = build_serial_oe(2, (16, 20), backbone="light").get_layer("neck_bn")
    np.testing.assert_allclose(np.asarray(fresh(v, training=False)), v / np.sqrt(1 + 1e-5), rtol=1e-6)


def test_weights_file_is_loaded_never_downloaded(tmp_path):
    """serial_oe weights: a Keras weights file of EfficientNetB0 without its top is loaded into the backbone
    (three channels); a missing file or another network stops with one line."""
    source = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3),
                                               pooling="avg")
    path = tmp_path / "b0.weights.h5"
    source.save_weights(str(path))
    model = build_serial_oe(2, (32, 32), weights=str(path))
    backbone = model.get_layer("efficientnetb0")
    assert backbone.input_shape == (None, 32, 32, 3)
    for a, b in zip(backbone.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ASDError, match="not a file"):
        SerialOEConfig(weights=str(tmp_path / "missing.h5"))
    with pytest.raises(ASDError, match="efficientnet_b0"):
        SerialOEConfig(weights=str(path), backbone="light")
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.save_weights(str(tmp_path / "other.weights.h5"))
    with pytest.raises(ASDError, match="EfficientNetB0"):
        build_serial_oe(2, (32, 32), weights=str(tmp_path / "other.weights.h5"))
