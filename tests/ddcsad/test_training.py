"""ddcsad.training: the trainer of one loss, the model-file plan and one unit's training path."""
import dataclasses

import numpy as np
import pandas as pd
import pytest

from asdcore.errors import ASDError
from ddcsad import data
from ddcsad import experiments as E
from ddcsad import training as T


def small_config(**changes):
    base = dataclasses.replace(E.QUICK_CONFIG, light_channels=(4, 8), light_input_pool=1, crop_frames=16,
                               batch_composition=(2, 2), steps_per_epoch=3, inference_batch_size=8)
    return dataclasses.replace(base, **changes)


def test_trainer_counts_iterations_updates_centroids_and_resets():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(10, 20, 16)).astype(np.float32)
    feats[:4] += 1.0
    sets = data.UnitSets("dev", "fan", "id_00", normal=np.arange(4), outlier=np.arange(4, 10))
    trainer = T.LossTrainer("bce+ddcsad", small_config(), (16, 16), seed=0)
    model = trainer.model
    initial = [w.copy() for w in trainer.initial_weights]
    info = trainer.train(feats, sets, iterations=5, composition=(2, 2), seed=0)
    assert int(model.encoder_optimizer.iterations.numpy()) == 5  # exactly the asked iterations
    assert int(model.head_optimizer.iterations.numpy()) == 5
    # one update from the random network + one per epoch end (3 iterations, then a short epoch of 2)
    assert info["centroid_updates"] == 3 and info["steps_per_epoch"] == 3 and info["epochs"] == 2
    # the centroids are the mean embeddings of the centre crops of the final network
    start = (20 - 16) // 2
    z = model.embed(feats[:, start: start + 16])
    np.testing.assert_allclose(model.c_p.numpy(), z[:4].mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.c_n.numpy(), z[4:].mean(axis=0), rtol=1e-4, atol=1e-5)
    assert any(not np.allclose(a, b) for a, b in zip(model.get_weights(), initial))
    trained = model.get_weights()
    trainer.reset()
    for a, b in zip(model.get_weights(), initial):
        np.testing.assert_array_equal(a, b)
    assert int(model.encoder_optimizer.iterations.numpy()) == 0 and int(model.centroid_updates.numpy()) == 0
    assert all(not np.any(v.numpy()) for v in model.head_optimizer.variables)
    trainer.reset(trained)  # fine-tuning starts from the trained weights, centroids included
    np.testing.assert_array_equal(model.c_p.numpy(), trained[[i for i, w in enumerate(model.weights)
                                                              if w.path.endswith("c_p")][0]])


def test_model_files_size_estimate_and_disk_check(tmp_path, monkeypatch):
    """save_models: the log's size is the weights file's size; too little space stops with one line."""
    import logging
    import shutil
    from collections import namedtuple

    from ddcsad.model import save_model_weights

    config = small_config(save_models="all")
    trainer = T.LossTrainer("bce+ddcsad", config, (16, 16), seed=0)
    save_model_weights(trainer.model, tmp_path / "one.weights.npz")
    actual = (tmp_path / "one.weights.npz").stat().st_size
    messages = []
    log = logging.getLogger("test-ddcsad-plan")
    monkeypatch.setattr(log, "info", lambda fmt, *a: messages.append(fmt % a))
    assert T.plan_model_files(config, 10, 5, trainer.model, tmp_path, log) == 15
    each_mb = float(messages[0].split(" of ")[1].split(" MB")[0])
    n_vars = len(trainer.model.weights)
    assert actual / 1e6 - 5e-4 <= each_mb <= (actual + 256 * n_vars + 1024) / 1e6 + 5e-4  # >= the file, close
    assert T.plan_model_files(dataclasses.replace(config, save_models="base"), 10, 5, trainer.model, tmp_path) == 10
    assert T.plan_model_files(dataclasses.replace(config, save_models="none"), 10, 5, trainer.model, tmp_path) == 0
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 ** 9, 10 ** 9, 15 * actual))
    with pytest.raises(ASDError) as err:
        T.plan_model_files(config, 10, 5, trainer.model, tmp_path)
    assert "save_models" in str(err.value) and "\n" not in str(err.value)


def _tiny_id_table():
    """Two fan IDs: id_00 (4 train, 3 normal + 3 anomalous test clips), id_02 (4 train: outliers)."""
    rows = []
    for unit, tests in (("id_00", ["normal"] * 3 + ["anomaly"] * 3), ("id_02", [])):
        rows += [{"machine_type": "fan", "unit": unit, "part": "dev", "split": "train", "label": "normal"}] * 4
        rows += [{"machine_type": "fan", "unit": unit, "part": "dev", "split": "test", "label": y} for y in tests]
    return pd.DataFrame(rows)


def test_train_id_models_writes_outputs_weights_and_rows(tmp_path):
    """One unit's path: the Table II model, then a fine-tuning per count from its weights; seeded only by
    its arguments (the same seeds give the same outputs)."""
    table = _tiny_id_table()
    rng = np.random.default_rng(1)
    features = rng.normal(size=(len(table), 20, 16)).astype(np.float32)
    lengths = np.full(len(table), 20)
    pool = {"fan/id_00": np.flatnonzero((table["label"] == "anomaly").to_numpy())[:2]}
    config = small_config(save_models="all", iterations=3, finetune_iterations=2, n_crops=2,
                          batch_composition_anomalies=(2, 1, 1))
    outs = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        rows = T.train_id_models(config, "bce+ddcsad", features, lengths, table, "fan", "id_00", pool, [1, 2],
                                 seed=5, init_seed=7, folder=folder)
        outs.append(T.load_outputs(folder))
    assert [(r["anomalies"], r["iterations"], r["n_anomaly"]) for r in rows] == [(0, 3, 0), (1, 2, 1), (2, 2, 2)]
    assert sorted(p.name for p in folder.glob("*.weights.npz")) == ["anomalies1.weights.npz", "anomalies2.weights.npz",
                                                                     "model.weights.npz"]
    first, second = outs
    assert sorted(first) == [0, 1, 2]
    test_rows = np.flatnonzero(((table["split"] == "test") & (table["unit"] == "id_00")).to_numpy())
    np.testing.assert_array_equal(first[0][0], test_rows)  # Table II: every test clip, the pooled ones too
    assert len(first[1][0]) == len(test_rows) - 2 and not np.isin(pool["fan/id_00"], first[2][0]).any()
    assert first[0][1].shape == (6, 2) and first[1][2].shape == (4, 2)
    for k in first:
        for a, b in zip(first[k], second[k]):
            np.testing.assert_allclose(a, b, rtol=1e-6)


def test_training_log_has_loss_terms_learning_rates_and_centroid_distances(tmp_path, tensorboard_scalars):
    """The CSV log against independent computations: both learning rates by the halving formula of
    Sec. IV-A at each epoch's iteration count, and the mean squared distances of the normal / outlier
    embeddings to c_p and c_n recomputed in numpy from the final network's embeddings."""
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(10, 20, 16)).astype(np.float32)
    feats[:4] += 1.0
    sets = data.UnitSets("dev", "fan", "id_00", normal=np.arange(4), outlier=np.arange(4, 10))
    trainer = T.LossTrainer("bce+ddcsad", small_config(halve_every=2), (16, 16), seed=0)
    trainer.train(feats, sets, iterations=5, composition=(2, 2), seed=0, folder=tmp_path)
    log = pd.read_csv(tmp_path / "training_log.csv")
    iterations = np.array([3, 5])  # 3 steps per epoch, the second epoch stopped after 2
    np.testing.assert_allclose(log["learning_rate_encoder"], 1e-4 * 0.5 ** (iterations // 2), rtol=1e-6)
    np.testing.assert_allclose(log["learning_rate_linear"], 1e-3 * 0.5 ** (iterations // 2), rtol=1e-6)
    assert {"loss", "bce", "centroid_loss"} <= set(log.columns)
    start = (20 - 16) // 2  # centroids are computed on the centre crops
    z = trainer.model.embed(feats[:, start: start + 16]).astype(np.float64)
    c_p, c_n = z[:4].mean(axis=0), z[4:].mean(axis=0)
    last = log.iloc[-1]
    for column, group, centre in (("dist_normal_cp", z[:4], c_p), ("dist_normal_cn", z[:4], c_n),
                                  ("dist_outlier_cp", z[4:], c_p), ("dist_outlier_cn", z[4:], c_n)):
        assert last[column] == pytest.approx(np.mean(np.sum((group - centre) ** 2, axis=1)), rel=1e-3), column
    assert last["dist_normal_cp"] < last["dist_normal_cn"]  # the normal clips sit nearer their own centroid
    tags = set(tensorboard_scalars(tmp_path / "tensorboard"))
    assert {"epoch_loss", "epoch_bce", "epoch_centroid_loss", "epoch_dist_normal_cp", "epoch_dist_outlier_cn",
            "epoch_learning_rate_encoder", "epoch_learning_rate_linear"} <= tags


def test_first_centroids_use_the_calibrated_batch_normalisation():
    """The trainer wires BN calibration into the first centroids: DSAD's fixed c (computed once, before
    training) equals the mean inference-mode embedding of the normal centre crops of the initial network
    whose BN moving statistics are the average batch statistics of the calibration batches (the sampler's
    own seed), recomputed here by hand layer by layer; without calibration it differs."""
    import keras

    rng = np.random.default_rng(0)
    feats = (rng.normal(size=(10, 20, 16)) * 3 + 5).astype(np.float32)  # far from BN's initial mean 0 / var 1
    sets = data.UnitSets("dev", "fan", "id_00", normal=np.arange(4), outlier=np.arange(4, 10))
    n_cal = 3
    trainer = T.LossTrainer("dsad", small_config(bn_calibration_batches=n_cal), (16, 16), seed=0)
    info = trainer.train(feats, sets, iterations=1, composition=(2, 2), seed=11)
    assert info["bn_calibration_batches"] == n_cal
    trained_c = trainer.model.c_p.numpy().copy()
    # by hand: a fresh copy of the initial network, each BN layer's moving statistics = mean over the
    # calibration batches of its training-mode batch mean / variance (inputs from the calibrated layers before)
    reference = T.LossTrainer("dsad", small_config(bn_calibration_batches=n_cal), (16, 16), seed=0).model
    bns = reference.batch_norm_layers()
    sampler = data.BalancedBatches(feats, sets, (2, 2), 16, seed=11 + 104729)
    batches = [sampler.next_batch()[0] for _ in range(n_cal)]
    for bn in bns:  # in graph order: each layer sees the outputs of the layers before in training mode
        probe = keras.Model(reference.encoder.inputs, bn.input)
        stats = [np.asarray(probe(b, training=True)) for b in batches]
        axes = tuple(i for i in range(stats[0].ndim) if i != (bn.axis if bn.axis >= 0 else stats[0].ndim + bn.axis))
        bn.moving_mean.assign(np.mean([s.mean(axis=axes) for s in stats], axis=0))
        bn.moving_variance.assign(np.mean([s.var(axis=axes) for s in stats], axis=0))
    start = (20 - 16) // 2
    z = reference.embed(feats[:4, start: start + 16])
    np.testing.assert_allclose(trained_c, z.mean(axis=0), rtol=5e-3, atol=1e-4)  # float32 running means
    plain = T.LossTrainer("dsad", small_config(bn_calibration_batches=0), (16, 16), seed=0)
    assert plain.train(feats, sets, iterations=1, composition=(2, 2), seed=11)["bn_calibration_batches"] == 0
    assert not np.allclose(plain.model.c_p.numpy(), trained_c, rtol=1e-2, atol=1e-2)


def test_save_models_none_writes_no_weights_file(tmp_path):
    """save_models: none through train_id_models (the paper default: 205 ResNet38 files would not fit a
    disk): outputs only, no weights file; "base" writes the Table II model's."""
    table = _tiny_id_table()
    features = np.random.default_rng(1).normal(size=(len(table), 20, 16)).astype(np.float32)
    lengths = np.full(len(table), 20)
    pool = {"fan/id_00": np.flatnonzero((table["label"] == "anomaly").to_numpy())[:1]}
    for policy, want in (("none", []), ("base", ["model.weights.npz"])):
        folder = tmp_path / policy
        folder.mkdir()
        config = small_config(save_models=policy, iterations=1, finetune_iterations=1, n_crops=2,
                              batch_composition_anomalies=(2, 1, 1))
        T.train_id_models(config, "bce", features, lengths, table, "fan", "id_00", pool, [1], seed=5, init_seed=7,
                          folder=folder)
        assert sorted(p.name for p in folder.glob("*.weights.npz")) == want
        assert (folder / T.OUTPUTS_FILE).is_file()


def test_adam_epsilon_reaches_both_optimizers():
    """adam_epsilon (default 1e-8, the Adam paper's and PyTorch's; Keras' own default is 1e-7) is the epsilon
    of the encoder's and the linear layer's Adam."""
    for value in (None, 1e-6):
        config = small_config() if value is None else small_config(adam_epsilon=value)
        model = T.LossTrainer("bce+ddcsad", config, (16, 16), seed=0).model
        want = 1e-8 if value is None else value
        assert model.encoder_optimizer.epsilon == pytest.approx(want)
        assert model.head_optimizer.epsilon == pytest.approx(want)
    with pytest.raises(ASDError):
        small_config(adam_epsilon=0.0)
    with pytest.raises(ASDError, match="feature_frames"):
        small_config(feature_frames=313)  # features of the standardised waves need every frame
