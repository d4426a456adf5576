"""Embedding maps (issue 14): the projection against a PCA computed by hand, centres mapped with the
embeddings' PCA (not refitted), t-SNE jointly, and one PNG per machine type (panels per ID for DDCSAD)."""
import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from asdcore.embedding_maps import plot_embedding_maps, project
from asdcore.errors import ASDError


def _pca_by_hand(x, k=2):
    """Principal axes from the SVD of the centred data: x -> (x - mean) @ V_k."""
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    return mean, vt[:k], s ** 2 / np.sum(s ** 2)


def _same_up_to_sign(a, b):
    for j in range(a.shape[1]):
        sign = np.sign(a[:, j] @ b[:, j]) or 1.0
        np.testing.assert_allclose(a[:, j], sign * b[:, j], atol=1e-9)


def test_centres_are_projected_with_the_pca_of_the_embeddings():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    centres = rng.normal(size=(5, 6)) * 4.0
    points, centre_points, labels = project(x, centres, "pca", normalise=False)
    mean, axes, ratio = _pca_by_hand(x)
    _same_up_to_sign(points, (x - mean) @ axes.T)
    # the same signs must carry over to the centres: compare through the combined array
    _same_up_to_sign(np.concatenate([points, centre_points]), np.concatenate([x - mean, centres - mean]) @ axes.T)
    # a PCA refitted on embeddings + centres would put them elsewhere
    joint_mean, joint_axes, _ = _pca_by_hand(np.concatenate([x, centres]))
    assert not np.allclose(np.abs(centre_points), np.abs((centres - joint_mean) @ joint_axes.T), atol=1e-3)
    assert labels[0].startswith(f"PC 1 ({100 * ratio[0]:.0f} %")


def test_normalised_projection_is_the_pca_of_unit_vectors():
    rng = np.random.default_rng(1)
    x, centres = rng.normal(size=(30, 4)) + 2.0, rng.normal(size=(3, 4))
    points, centre_points, _ = project(x * rng.uniform(0.5, 9, size=(30, 1)), centres * 7.0, "pca", normalise=True)
    unit, unit_c = x / np.linalg.norm(x, axis=1, keepdims=True), centres / np.linalg.norm(centres, axis=1, keepdims=True)
    mean, axes, _ = _pca_by_hand(unit)
    _same_up_to_sign(np.concatenate([points, centre_points]), np.concatenate([unit - mean, unit_c - mean]) @ axes.T)


def test_tsne_maps_embeddings_and_centres_together():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(size=(15, 5)), rng.normal(size=(15, 5)) + 8.0])
    points, centre_points, labels = project(x, x[[0, 20]] + 0.01, "tsne", normalise=False)
    assert points.shape == (30, 2) and centre_points.shape == (2, 2) and labels[0] == "t-SNE 1"
    # each centre lands among the points of its own group
    for centre, group in zip(centre_points, (slice(0, 15), slice(15, 30))):
        nearest = np.argmin(np.linalg.norm(points - centre, axis=1))
        assert nearest in range(30)[group]


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(ASDError, match="projection 'umap'"):
        project(np.zeros((3, 2)), projection="umap")
    with pytest.raises(ASDError, match="non-finite"):
        project(np.array([[np.nan, 1.0], [0.0, 1.0]]))


def _rows(types_units, n=6, domains=("",)):
    rows = []
    for machine_type, unit in types_units:
        for domain in domains:
            for i in range(n):
                rows.append({"machine_type": machine_type, "unit": unit, "domain": domain, "split": "test",
                             "label": "anomaly" if i % 3 == 0 else "normal"})
            rows.append({"machine_type": machine_type, "unit": unit, "domain": domain, "split": "train",
                         "label": "normal"})
    return pd.DataFrame(rows)


def test_one_png_per_machine_type_with_centres_and_test_clips_only(tmp_path):
    rows = _rows([("fan", "section_00"), ("fan", "section_01"), ("valve", "section_00")], domains=("source", "target"))
    rng = np.random.default_rng(3)
    embeddings = rng.normal(size=(len(rows), 8))
    embeddings[(rows["split"] == "train").to_numpy()] = np.nan  # would fail if training clips were drawn
    centre_rows = pd.DataFrame({"machine_type": ["fan", "fan", "valve"], "unit": ["section_00", "section_01",
                                                                                  "section_00"], "kind": "centre"})
    written = plot_embedding_maps(embeddings, rows, tmp_path, centres=rng.normal(size=(3, 8)),
                                  centre_rows=centre_rows, title="net", unit_name="section")
    assert sorted(p.name for p in written) == ["fan.png", "valve.png"]
    assert all(matplotlib.image.imread(p).shape[0] > 100 for p in written)


def test_panels_per_id(tmp_path):
    rows = _rows([("ToyCar", "id_01"), ("ToyCar", "id_02"), ("ToyCar", "id_03"), ("ToyCar", "id_04")])
    embeddings = np.random.default_rng(4).normal(size=(len(rows), 5))
    centre_rows = pd.DataFrame([{"machine_type": "ToyCar", "unit": u, "kind": k} for u in ("id_01", "id_02", "id_03",
                                                                                           "id_04") for k in
                                ("c_p", "c_n")])
    written = plot_embedding_maps(embeddings, rows, tmp_path, centres=np.zeros((8, 5)), centre_rows=centre_rows,
                                  panel_column="unit", normalise=False, unit_name="ID")
    assert [p.name for p in written] == ["ToyCar.png"]
    height, width = matplotlib.image.imread(written[0]).shape[:2]
    assert width > height  # 2 x 3 panels (four used)


def test_centres_need_their_rows(tmp_path):
    rows = _rows([("fan", "id_00")])
    with pytest.raises(ASDError, match="centre_rows"):
        plot_embedding_maps(np.zeros((len(rows), 3)), rows, tmp_path, centres=np.zeros((2, 3)))
