"""run_dcase2021.py evaluate on hand-written submission files: per section/domain metrics recomputed with
scikit-learn, the official score by its definition (harmonic mean of all AUC and pAUC values)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import hmean
from sklearn.metrics import f1_score, roc_auc_score

import run_dcase2021
from asdcore.layouts import read_dataset
from asdcore.synthetic import generate


@pytest.fixture(scope="module")
def tiny_2021(tmp_path_factory):
    root = tmp_path_factory.mktemp("dcase2021")
    generate(2021, root, seed=5, preset="tiny", parts=("dev",), duration=1.0)
    return root


def test_evaluate_2021_against_sklearn(tiny_2021, tmp_path):
    table = read_dataset(2021, tiny_2021)
    test = table[table["split"] == "test"].reset_index(drop=True)
    rng = np.random.default_rng(0)
    is_anomaly = (test["label"] == "anomaly").to_numpy()
    scores = rng.normal(size=len(test)) + 1.0 * is_anomaly
    decisions = (scores > 0.5).astype(int)
    system = tmp_path / "scores" / "mine"
    system.mkdir(parents=True)
    for (machine_type, unit, domain), rows in test.groupby(["machine_type", "unit", "domain"]):
        name = f"{machine_type}_{unit}_{domain}_test.csv"
        pd.DataFrame({"f": rows["file"], "s": scores[rows.index]}).to_csv(system / f"anomaly_score_{name}",
                                                                         header=False, index=False)
        pd.DataFrame({"f": rows["file"], "d": decisions[rows.index]}).to_csv(system / f"decision_result_{name}",
                                                                            header=False, index=False)
    assert run_dcase2021.main(["evaluate", str(system), "--data-root", str(tiny_2021),
                               "--out", str(tmp_path / "runs")]) == 0
    run = next((tmp_path / "runs" / "2021" / "evaluate").iterdir())
    results = pd.read_csv(run / "results.csv", keep_default_na=False)
    units = results[results["row"] == "unit"]
    expected_values = []
    for (machine_type, unit, domain), rows in test.groupby(["machine_type", "unit", "domain"]):
        y = (rows["label"] == "anomaly").to_numpy()
        auc = roc_auc_score(y, scores[rows.index])
        pauc = roc_auc_score(y, scores[rows.index], max_fpr=0.1)
        f1 = f1_score(y, decisions[rows.index], zero_division=0)
        got = units[(units["machine_type"] == machine_type) & (units["unit"] == unit) & (units["domain"] == domain)]
        assert len(got) == 1
        assert float(got["auc"].iloc[0]) == pytest.approx(auc)
        assert float(got["pauc"].iloc[0]) == pytest.approx(pauc)
        assert float(got["f1"].iloc[0]) == pytest.approx(f1, abs=1e-6)
        expected_values += [auc, pauc]
    official = results[(results["row"] == "summary") & (results["machine_type"] == "all")
                       & (results["domain"] == "all") & (results["statistic"] == "harmonic mean")]
    floor = np.finfo(float).eps
    assert float(official["score"].iloc[0]) == pytest.approx(hmean(np.maximum(expected_values, floor)))
