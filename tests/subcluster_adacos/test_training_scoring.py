"""Training helpers and scoring of sub-cluster AdaCos against independent computations."""
import numpy as np
import pandas as pd
import pytest

from asdcore.backends import l2_normalize
from asdcore.errors import ASDError
from subcluster_adacos.scoring import backend_scores
from subcluster_adacos.training import balanced_class_weights, class_labels, make_dataset


def test_balanced_class_weights_formula():
    labels = np.array([0, 0, 0, 1, 2, 2])
    expected = np.array([6 / (3 * 3), 6 / (3 * 1), 6 / (3 * 2)])
    np.testing.assert_allclose(balanced_class_weights(labels, 3), expected)
    with pytest.raises(ASDError, match="no training clip"):
        balanced_class_weights(labels, 4)


def test_class_labels_one_class_per_type_and_unit():
    table = pd.DataFrame({"machine_type": ["fan", "fan", "pump", "fan"], "unit": ["id_02", "id_00", "id_00", "id_02"]})
    labels, names = class_labels(table)
    assert list(names) == ["fan/id_00", "fan/id_02", "pump/id_00"]
    assert list(labels) == [1, 0, 2, 1]


def test_dataset_visits_every_clip_once_per_epoch_with_its_label():
    features = np.arange(10 * 3 * 2, dtype=np.float32).reshape(10, 3, 2)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    seen = []
    for batch in make_dataset(features, labels, 3, batch_size=4, seed=1):
        x, y = batch["features"].numpy(), batch["labels"].numpy()
        for clip, one_hot in zip(x, y):
            index = int(clip[0, 0]) // 6
            np.testing.assert_array_equal(clip, features[index])
            assert np.argmax(one_hot) == labels[index] and one_hot.sum() == 1
            seen.append(index)
    assert sorted(seen) == list(range(10))


def test_gmm_backend_starts_from_the_unit_centres():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"machine_type": ["fan"] * 40, "unit": ["id_00"] * 20 + ["id_02"] * 20,
                          "split": (["train"] * 15 + ["test"] * 5) * 2})
    centres = l2_normalize(rng.normal(size=(2, 3, 4)))
    embeddings = np.concatenate([centres[0][rng.integers(0, 3, 20)], centres[1][rng.integers(0, 3, 20)]])
    embeddings += 0.05 * rng.normal(size=embeddings.shape)
    scores = backend_scores("gmm", embeddings, table, ["fan/id_00", "fan/id_02"], centres, n_subclusters=3)
    assert np.isnan(scores[table["split"] == "train"]).all()
    assert np.isfinite(scores[table["split"] == "test"]).all()
    # Clips far from every centre of their unit score higher than clips at a centre.
    far = backend_scores("gmm", -embeddings, table, ["fan/id_00", "fan/id_02"], centres, n_subclusters=3)
    assert np.nanmean(far) > np.nanmean(scores)


def test_batches_keep_the_shuffled_order_so_mixup_partners_are_random():
    """The mixup partner of sample i is sample n-1-i of its batch (the batch reversed, REFERENCE.md §4); with
    a clip table ordered by machine type that partner must still be a random clip, as with Keras'
    ``fit(shuffle=True)`` in the public code.

    Expected share of same-type partners under random pairing: two different clips drawn at random from
    N = 512 clips of 4 types of 128 each share the type with p = 4 * 128 * 127 / (512 * 511). An epoch of
    8 batches of 64 has 8 * 32 = 256 pairs, 4 epochs 1024; their share has a standard deviation of about
    sqrt(p (1 - p) / 1024) = 0.0135 (pairs inside an epoch are nearly independent), and the test allows
    4 of them. A batch read in sorted order pairs rank r with rank 63 - r: the lowest indices (first
    types) with the highest (last types), a same-type share near 0.
    """
    n_types, per_type, batch_size, epochs = 4, 128, 64, 4
    n = n_types * per_type
    features = np.arange(n, dtype=np.float32).reshape(n, 1, 1)  # the clip's row, to read it back
    types = np.repeat(np.arange(n_types), per_type)  # the table is ordered by machine type
    dataset = make_dataset(features, types, n_types, batch_size=batch_size, seed=5)
    same, pairs, sorted_batches, batches = 0, 0, 0, 0
    for _ in range(epochs):
        seen = []
        for batch in dataset:
            rows = batch["features"].numpy().reshape(-1).astype(int)
            labels = batch["labels"].numpy().argmax(axis=1)
            np.testing.assert_array_equal(labels, types[rows])  # each clip keeps its own label
            seen.extend(rows)
            batches += 1
            sorted_batches += bool(np.all(np.diff(rows) > 0))
            half = len(rows) // 2
            same += int(np.sum(types[rows[:half]] == types[rows[::-1][:half]]))
            pairs += half
        assert sorted(seen) == list(range(n))
    assert sorted_batches == 0  # a random batch of 64 is sorted with probability 1/64!
    p = n_types * per_type * (per_type - 1) / (n * (n - 1))
    tolerance = 4 * np.sqrt(p * (1 - p) / pairs)
    assert abs(same / pairs - p) < tolerance, (same / pairs, p, tolerance)


def test_gmm_means_start_at_that_ids_learned_centres(monkeypatch):
    """Each ID's GMM starts from the L2-normalised learned centres of that ID's class (REFERENCE.md §4):
    the means_init handed to each GMM, and the scores against scikit-learn fitted by hand from them."""
    from scipy.stats import multivariate_normal
    from sklearn.mixture import GaussianMixture

    import subcluster_adacos.scoring as scoring

    rng = np.random.default_rng(0)
    units = ["id_00"] * 30 + ["id_02"] * 30
    table = pd.DataFrame({"machine_type": ["fan"] * 60, "unit": units, "split": (["train"] * 24 + ["test"] * 6) * 2})
    centres = rng.normal(size=(2, 3, 4)) * 2.0  # not normalised: the back-end must normalise them
    picks = rng.integers(0, 3, 30)
    embeddings = np.concatenate([l2_normalize(centres[0])[picks], l2_normalize(centres[1])[picks]])
    embeddings += 0.1 * rng.normal(size=embeddings.shape)
    handed = {}

    class Recording(scoring.GMMBackend):
        def fit(self, X, y=None):
            handed[len(handed)] = (np.asarray(X), self.means_init)
            return super().fit(X, y)

    monkeypatch.setattr(scoring, "GMMBackend", Recording)
    # class order differs from unit order: the centres must follow the class name, not the position
    names = ["fan/id_02", "fan/id_00"]
    by_class = centres[[1, 0]]
    scores = backend_scores("gmm", embeddings, table, names, by_class, n_subclusters=3)
    assert len(handed) == 2
    train = (table["split"] == "train").to_numpy()
    for X, means_init in handed.values():
        unit = 0 if np.allclose(X, embeddings[train][:24]) else 1
        np.testing.assert_allclose(means_init, centres[unit])
    for unit, name in enumerate(["id_00", "id_02"]):
        rows = (table["unit"] == name).to_numpy()
        gmm = GaussianMixture(3, covariance_type="full", reg_covar=1e-3, means_init=l2_normalize(centres[unit]),
                              random_state=0).fit(l2_normalize(embeddings[rows & train]))
        x = l2_normalize(embeddings[rows & ~train])
        log_p = [multivariate_normal(m, c).logpdf(x) for m, c in zip(gmm.means_, gmm.covariances_)]
        np.testing.assert_allclose(scores[rows & ~train], -np.max(log_p, axis=0), rtol=1e-6)


def test_rows_of_a_standardised_view_give_the_same_batches_as_a_standardised_copy():
    """Issue 13: training reads view[rows[batch]] from the lazily standardised memory map; the batches (and
    their shuffled order) equal those of the standardised copy of the training rows."""
    from asdcore.features import Normalizer

    rng = np.random.default_rng(3)
    raw = rng.normal(3.0, 2.0, size=(20, 5, 4)).astype(np.float32)
    rows = np.array([0, 2, 3, 7, 8, 11, 12, 15, 19])
    labels = rng.integers(0, 3, len(rows))
    labels[:3] = [0, 1, 2]
    norm = Normalizer().fit(raw, rows=rows)
    copy = Normalizer().fit(raw[rows]).transform(raw[rows])
    lazy = list(make_dataset(norm.view(raw), labels, 3, batch_size=4, seed=7, rows=rows))
    eager = list(make_dataset(copy, labels, 3, batch_size=4, seed=7))
    assert len(lazy) == len(eager) == 3
    for a, b in zip(lazy, eager):
        np.testing.assert_array_equal(a["features"].numpy(), b["features"].numpy())
        np.testing.assert_array_equal(a["labels"].numpy(), b["labels"].numpy())


def test_scoring_system_fit_score_is_the_gmm_back_end_and_the_temporal_mean_combined():
    """The one ScoringSystem behind Table V: learned = backend_scores("gmm"), combined = the temporal-mean
    Gaussian (score_simple_representation) for ToyConveyor, the learned scores elsewhere."""
    from asdcore.features import LogMelConfig, Normalizer
    from asdcore.representations import score_simple_representation
    from subcluster_adacos.scoring import ScoringSystem

    rng = np.random.default_rng(1)
    table = pd.DataFrame({"machine_type": ["fan"] * 24 + ["ToyConveyor"] * 24,
                          "unit": (["id_00"] * 12 + ["id_02"] * 12) * 2,
                          "split": (["train"] * 8 + ["test"] * 4) * 4})
    classes = ["ToyConveyor/id_00", "ToyConveyor/id_02", "fan/id_00", "fan/id_02"]
    centres = l2_normalize(rng.normal(size=(4, 2, 6)))
    embeddings = rng.normal(size=(48, 6))
    features = rng.normal(size=(48, 7, 5)).astype(np.float32)
    keys = (table["machine_type"] + "/" + table["unit"]).to_numpy()
    train = np.flatnonzero(table["split"] == "train")
    test = np.flatnonzero(table["split"] == "test")
    system = ScoringSystem(LogMelConfig(), Normalizer(), [], combined_mean_types=("ToyConveyor",),
                           centres=[centres], class_names=classes).fit(features, keys, rows=train,
                                                                       embeddings=[embeddings])
    learned, mean = system.score_parts(features, keys, rows=test, embeddings=[embeddings])
    expected = backend_scores("gmm", embeddings, table, classes, centres, n_subclusters=2)[test]
    np.testing.assert_allclose(learned, expected, rtol=1e-12)
    simple = score_simple_representation(table, features, "mean")[test]
    conveyor = table["machine_type"].to_numpy()[test] == "ToyConveyor"
    np.testing.assert_allclose(mean[conveyor], simple[conveyor], rtol=1e-10)
    assert np.isnan(mean[~conveyor]).all()
    combined = system.score(features, keys, rows=test, embeddings=[embeddings])
    np.testing.assert_allclose(combined, np.where(conveyor, simple, expected), rtol=1e-10)


def test_compile_builds_adam_up_front_and_training_is_unchanged():
    """issue 16: ``_compile`` creates Adam's slots before the first step (so the step is traced once);
    two training steps then give the same weights as Keras' own lazy build of the same optimizer (FusedAdam;
    same seeds, same batches). FusedAdam against Keras' Adam: tests/asdcore/test_optimizers.py."""
    import keras

    from asdcore.optimizers import FusedAdam
    from subcluster_adacos.network import build_training_model
    from subcluster_adacos.training import TrainingConfig, _compile

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 64, 32)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2, 0, 1]]
    weights = []
    for prebuilt in (True, False):
        keras.utils.set_random_seed(0)
        model = build_training_model(3, input_shape=(64, 32), seed=0)
        if prebuilt:
            _compile(model, TrainingConfig())
            assert model.optimizer.built and len(model.optimizer.variables) > 2 * len(model.trainable_variables)
        else:
            model.compile(optimizer=FusedAdam(learning_rate=1e-3))
            assert not model.optimizer.built
        for _ in range(2):
            model.train_on_batch({"features": x, "labels": y})
        weights.append([keras.ops.convert_to_numpy(w) for w in model.weights])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_training_log_and_tensorboard_hold_loss_learning_rate_and_every_heads_scale(tmp_path, tensorboard_scalars):
    """2020 one head, 2021 two heads: each head's adaptive scale per epoch (the head layer's own variable
    after the last epoch), Adam's learning rate and the loss reach training_log.csv and TensorBoard."""
    import keras

    from subcluster_adacos.network import head_names
    from subcluster_adacos.training import TrainingConfig, train_model, train_multi_head_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 64, 32)).astype(np.float32)
    sections, attributes = np.arange(12) % 3, np.arange(12) % 4
    config = TrainingConfig(epochs=2, batch_size=4, learning_rate=2e-3, checkpoint_every=2)
    model, _ = train_model(x, sections, 3, config, model_dir=tmp_path / "one", seed=0, verbose=0)
    log = pd.read_csv(tmp_path / "one" / "training_log.csv")
    assert len(log) == 2 and np.allclose(log["learning_rate"], 2e-3)
    assert log["scale"].iloc[-1] == pytest.approx(float(keras.ops.convert_to_numpy(model.get_layer("head").scale)))
    tags = tensorboard_scalars(tmp_path / "one" / "tensorboard")
    assert {"epoch_loss", "epoch_scale", "epoch_learning_rate"} <= set(tags)
    np.testing.assert_allclose([v for _, v in tags["epoch_scale"]], log["scale"], rtol=1e-6)

    model, _ = train_multi_head_model(x, [sections, attributes], [3, 4], config, model_dir=tmp_path / "two", seed=0,
                                      verbose=0)
    log = pd.read_csv(tmp_path / "two" / "training_log.csv")
    first, second = head_names(2)
    for name, column in ((first, "scale"), (second, f"scale_{second}")):
        assert log[column].iloc[-1] == pytest.approx(float(keras.ops.convert_to_numpy(model.get_layer(name).scale)))
    assert {"epoch_scale", f"epoch_scale_{second}"} <= set(tensorboard_scalars(tmp_path / "two" / "tensorboard"))


def test_gmm_started_at_the_learned_centres_is_not_the_k_means_started_gmm():
    """Four tight clusters at the corners of a long rectangle (on the unit sphere after normalisation) and two
    learned centres at the middles of its long sides: EM started there keeps the split along the long sides (a
    stable fixed point), while scikit-learn's k-means start splits along the short sides. The unit's scores
    must be those of scikit-learn's GaussianMixture started at the centres (SciPy densities), and these are not
    the k-means-started ones, so a GMM that ignored the centres fails this test."""
    from scipy.stats import multivariate_normal
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(1)
    e = np.eye(4)
    corners = [e[0] + u * e[1] + v * e[2] for u in (0.0, 0.6) for v in (0.0, 0.2)]
    train = np.concatenate([c + 0.01 * rng.normal(size=(30, 4)) for c in corners])
    test = np.concatenate([c + 0.05 * rng.normal(size=(10, 4)) for c in corners])
    centres = np.stack([e[0] + 0.3 * e[1], e[0] + 0.3 * e[1] + 0.2 * e[2]])[None]  # (1 class, S = 2, D)
    table = pd.DataFrame({"machine_type": "fan", "unit": "id_00", "split": ["train"] * 120 + ["test"] * 40})
    scores = backend_scores("gmm", np.concatenate([train, test]), table, ["fan/id_00"], centres, n_subclusters=2)

    def by_hand(**start):
        gmm = GaussianMixture(2, covariance_type="full", reg_covar=1e-3, random_state=0, **start).fit(
            l2_normalize(train))
        x = l2_normalize(test)
        return -np.max([multivariate_normal(m, c).logpdf(x) for m, c in zip(gmm.means_, gmm.covariances_)], axis=0)

    at_centres, k_means = by_hand(means_init=l2_normalize(centres[0])), by_hand()
    assert np.abs(at_centres - k_means).mean() > 1.0  # the two starts end in different fits
    np.testing.assert_allclose(scores[120:], at_centres, rtol=1e-6)


@pytest.mark.parametrize("reg_covar", [1e-6, 1e-2])
def test_reg_covar_setting_reaches_the_table2_gaussians_and_the_gmms(reg_covar):
    """``reg_covar`` of the config (1e-3 by default; Table II "as implemented in scikit-learn" would be 1e-6) is
    what the Gaussians of Table II and the per-ID GMMs add to their covariance diagonals: scores against
    scikit-learn fitted by hand with that value (SciPy densities)."""
    from dataclasses import replace

    from scipy.stats import multivariate_normal
    from sklearn.mixture import GaussianMixture

    from subcluster_adacos.scoring import TrainedNetworks
    from subcluster_adacos.settings_2020 import ModelSpec, SubClusterAdaCosConfig

    rng = np.random.default_rng(2)
    table = pd.DataFrame({"machine_type": "fan", "unit": ["id_00"] * 30 + ["id_02"] * 30,
                          "split": (["train"] * 24 + ["test"] * 6) * 2})
    centres = l2_normalize(rng.normal(size=(2, 1, 4)))
    embeddings = centres[np.repeat([0, 1], 30), 0] + 0.05 * rng.normal(size=(60, 4))
    config = replace(SubClusterAdaCosConfig(), reg_covar=reg_covar, combined_mean_types=())
    spec = ModelSpec("subcluster_adacos", True, 1)
    features = (None, None, np.zeros((60, 2, 2), np.float32))  # only the GMMs of the embeddings are fitted
    nets = TrainedNetworks(table, features, {spec: None}, ["fan/id_00", "fan/id_02"], config)
    nets._networks[spec] = {"diverged": False, "embeddings": embeddings, "centres": centres}
    train = (table["split"] == "train").to_numpy()
    for backend, covariance in (("gaussian_full", "full"), ("gaussian_spherical", "spherical"), ("gmm", "full")):
        scores = nets.backend(spec, backend)
        for unit, class_centres in zip(["id_00", "id_02"], centres):
            rows = (table["unit"] == unit).to_numpy()
            start = {"means_init": class_centres} if backend == "gmm" else {}
            gmm = GaussianMixture(1, covariance_type=covariance, reg_covar=reg_covar, random_state=0, **start).fit(
                l2_normalize(embeddings[rows & train]))
            cov = gmm.covariances_[0] * (np.eye(4) if covariance == "spherical" else 1.0)
            expected = -multivariate_normal(gmm.means_[0], cov).logpdf(l2_normalize(embeddings[rows & ~train]))
            np.testing.assert_allclose(scores[rows & ~train], expected, rtol=1e-6, err_msg=backend)
