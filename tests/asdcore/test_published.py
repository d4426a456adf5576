"""The papers' tables shipped as package data: names, shapes, spot checks read from the papers."""
import numpy as np
import pytest

from asdcore.errors import ASDError
from asdcore.published import available_tables, load_table

EXPECTED = {  # name: (tidy rows, label columns)
    "wilkinghoff2020_table2": (28, ["backend", "machine_type", "statistic"]),
    "wilkinghoff2020_table3": (16, ["mixup", "modified_adacos", "machine_type", "statistic"]),
    "wilkinghoff2020_table4": (56, ["n_subclusters", "backend", "machine_type", "statistic"]),
    "wilkinghoff2020_table5": (88, ["representation", "machine_type", "statistic"]),
    "wilkinghoff2021_table2": (300, ["system", "machine_type", "unit", "domain", "statistic"]),
    "wilkinghoff2021_table3": (96, ["distribution", "machine_type", "domain", "statistic"]),
    "wilkinghoff2021_table4": (96, ["loss", "machine_type", "domain", "statistic"]),
    "wilkinghoff2021_table5": (99, ["system", "machine_type", "domain", "statistic"]),
    "kuroyanagi2020_table1": (12, ["method", "machine_type"]),
    "kuroyanagi2020_table2": (65, ["method", "machine_type", "statistic"]),
    "fujimura2021_table1": (21, ["method", "machine_type", "data"]),
    "fujimura2021_table2": (36, ["method", "machine_type", "unit", "statistic"]),
    "wilkinghoff2020_ensemble": (6, ["system", "machine_type", "statistic"]),
}
PERCENT = {"auc", "pauc", "score"}


def value(name, **labels):
    table = load_table(name)
    mask = np.ones(len(table), bool)
    for column, wanted in labels.items():
        mask &= (table[column] == wanted).to_numpy()
    assert mask.sum() == 1, (name, labels, int(mask.sum()))
    return table.loc[mask, "value"].iloc[0]


def test_ensemble_numbers_from_the_text():
    # Sec. IV-G: "reaches a mean AUC of 97% and a mean pAUC of 91.24%" (evaluation set).
    assert value("wilkinghoff2020_ensemble", system="ensemble", set="eval", metric="auc") == 97.0
    assert value("wilkinghoff2020_ensemble", system="ensemble", set="eval", metric="pauc") == 91.24


def test_names():
    assert available_tables() == sorted(EXPECTED)
    with pytest.raises(ASDError, match="available"):
        load_table("wilkinghoff2020_table9")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shape_columns_and_values(name):
    n_rows, labels = EXPECTED[name]
    table = load_table(name)
    assert list(table.columns) == ["paper", "table"] + labels + ["set", "metric", "value", "note"]
    assert table.shape == (n_rows, len(labels) + 6)
    assert table["value"].dtype == float
    assert set(table["set"]) <= {"dev", "eval"}
    assert (table["paper"] == name.split("_")[0]).all() and (table["table"] == name.split("_")[1]).all()
    assert not table.duplicated(["paper", "table"] + labels + ["set", "metric"]).any()
    # a number is missing only where a note says why
    assert (table.loc[table["value"].isna(), "note"] != "").all()
    pct = table[table["metric"].isin(PERCENT)]["value"].dropna()
    assert ((pct > 0) & (pct <= 100)).all()
    wide = load_table(name, wide=True)
    assert len(wide) == len(table.drop_duplicates(["paper", "table"] + labels + ["set"]))


def test_wilkinghoff2020_spot_checks():
    assert value("wilkinghoff2020_table5", representation="mean", machine_type="ToyCar", set="dev", metric="auc") == 94.10
    assert value("wilkinghoff2020_table5", representation="max", machine_type="valve", set="eval", metric="pauc") == 88.18
    assert value("wilkinghoff2020_table5", representation="combined", machine_type="all", set="eval", metric="auc") == 96.42
    assert value("wilkinghoff2020_table4", n_subclusters="32", backend="GMM", set="dev", metric="auc") == 92.57
    assert value("wilkinghoff2020_table4", n_subclusters="32", backend="GMM", set="eval", metric="pauc") == 87.90
    assert value("wilkinghoff2020_table4", n_subclusters="1", backend="Gaussian", set="eval", metric="auc") == 91.64
    assert value("wilkinghoff2020_table2", backend="Gaussian (full covariance)", set="dev", metric="pauc") == 82.59
    assert value("wilkinghoff2020_table2", backend="representation model output", set="eval", metric="auc") == 89.55
    assert value("wilkinghoff2020_table3", mixup="yes", modified_adacos="yes", set="dev", metric="auc") == 91.60
    diverged = load_table("wilkinghoff2020_table3")
    diverged = diverged[(diverged.mixup == "no") & (diverged.modified_adacos == "yes")]
    assert len(diverged) == 4 and diverged["value"].isna().all() and (diverged["note"] == "diverges").all()


def test_wilkinghoff2021_spot_checks():
    t2 = dict(name="wilkinghoff2021_table2", set="dev")
    assert value(**t2, system="proposed system", machine_type="ToyCar", unit="section_00", domain="source",
                 metric="auc") == 75.03
    assert value(**t2, system="baseline MobileNetV2", machine_type="slider", unit="section_02", domain="target",
                 metric="pauc") == 55.71
    assert value(**t2, system="proposed system", machine_type="all", unit="all", metric="pauc") == 62.99
    assert value("wilkinghoff2021_table3", distribution="P(x|a,k)", machine_type="valve", domain="source",
                 metric="auc") == 89.34
    gap = load_table("wilkinghoff2021_table3")
    gap = gap[(gap.machine_type == "slider") & (gap.domain == "target") & (gap.distribution == "proposed ensemble")]
    assert np.isnan(gap[gap.metric == "auc"]["value"].iloc[0]) and gap[gap.metric == "pauc"]["value"].iloc[0] == 54.94
    assert value("wilkinghoff2021_table4", loss="sections", machine_type="gearbox", domain="target",
                 metric="auc") == 78.53
    assert value("wilkinghoff2021_table5", system="proposed system", machine_type="all", domain="all",
                 metric="score") == 64.20
    assert value("wilkinghoff2021_table5", system="baseline autoencoder", machine_type="ToyTrain", domain="target",
                 metric="pauc") == 59.78


def test_kuroyanagi_and_fujimura_spot_checks():
    assert value("kuroyanagi2020_table1", method="BCE+DDCSAD", machine_type="pump") == 1.0
    assert value("kuroyanagi2020_table1", method="BCE+DSAD", machine_type="ToyConveyor") == 0.0
    assert value("kuroyanagi2020_table2", method="BCE+DDCSAD", machine_type="ToyConveyor", metric="auc") == 82.05
    assert value("kuroyanagi2020_table2", method="BCE+DDCSAD", machine_type="ToyConveyor", metric="auc_ci95") == 2.25
    assert value("kuroyanagi2020_table2", method="DSAD", machine_type="all", metric="auc") == 84.68
    assert value("fujimura2021_table1", method="Proposed", machine_type="gearbox", metric="K") == 1024
    assert load_table("fujimura2021_table1").query("method == 'Proposed' and machine_type == 'gearbox'")["data"].iloc[0] \
        == "all"
    assert value("fujimura2021_table2", method="Proposed (Oracle)", machine_type="all", metric="score") == 69.89
    assert value("fujimura2021_table2", method="SerialOE", machine_type="ToyCar", metric="auc") == 33.58


def test_tables_are_internally_consistent():
    # the printed averages follow from the printed cells (guards against transcription slips)
    k = load_table("kuroyanagi2020_table2", wide=True)
    for method, rows in k.groupby("method"):
        cells = rows[rows.machine_type != "all"]["auc"]
        assert cells.mean() == pytest.approx(rows[rows.machine_type == "all"]["auc"].iloc[0], abs=0.006)
    f = load_table("fujimura2021_table2", wide=True)
    for method, rows in f.groupby("method"):
        cells = rows[(rows.machine_type != "all") & (rows.unit == "all")]["score"]
        hm = len(cells) / np.sum(1 / cells)
        assert hm == pytest.approx(rows[rows.machine_type == "all"]["score"].iloc[0], abs=0.011)
    t5 = load_table("wilkinghoff2020_table5", wide=True)
    dev = t5[(t5.set == "dev") & (t5.representation == "learned")].set_index("machine_type")
    ids = {"fan": 4, "pump": 4, "slider": 4, "valve": 4, "ToyCar": 4, "ToyConveyor": 3}
    weighted = sum(dev.loc[t, "auc"] * n for t, n in ids.items()) / 23
    assert weighted == pytest.approx(dev.loc["all", "auc"], abs=0.006)
