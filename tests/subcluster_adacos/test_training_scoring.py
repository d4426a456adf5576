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
