"""The four commands on synthetic DCASE 2022-2025 sets, end to end in quick mode: each writes the year's
submission files (one per machine type and section, evaluation-only types included) and the year's official
scores, which are recomputed here from those files and the ground truth with scikit-learn/scipy.

The default suite runs one command per year (every command once); the other twelve pairs are marked slow.
"""
import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import hmean
from sklearn.metrics import roc_auc_score

from asdcore.layouts import read_dataset

SIZES = dict(n_train=4, n_target_train=2, n_test_normal=2, n_test_anomaly=2)
#: per command: (script, sub-command argv, settings written to --config)
COMMANDS = {
    "multi-distribution": ("run_dcase2021", ["multi-distribution", "--experiment", "system"],
                           {"epochs": 1, "checkpoint_every": 1, "subclusters": [1]}),
    "subcluster-adacos": ("run_dcase2020", ["subcluster-adacos", "--experiment", "backends"], {"epochs": 1}),
    "ddcsad": ("run_dcase2020", ["ddcsad", "--losses", "bce+ddcsad", "--anomalies", "0"],
               {"iterations": 2, "steps_per_epoch": 2, "light_channels": [4, 8], "units_per_type": None}),
    "smoothing": ("run_dcase2021", ["smoothing", "--experiment", "table"],
                  {"ae": {"epochs": 1}, "serial_oe": {"epochs": 1}, "protocol": {"clip_seconds": 5.0}}),
}
FAST = {2022: "multi-distribution", 2023: "subcluster-adacos", 2024: "ddcsad", 2025: "smoothing"}
PAIRS = [pytest.param(y, c, marks=() if FAST[y] == c else pytest.mark.slow, id=f"{y}-{c}")
         for y in FAST for c in COMMANDS]


def _official(test: pd.DataFrame, scores: pd.DataFrame) -> float:
    """The evaluators' rule restated: per section AUC(source), AUC(target) with all anomalies, pooled pAUC."""
    joined = test.merge(scores, on=["machine_type", "unit", "file"], how="inner", validate="one_to_one")
    assert len(joined) == len(test)
    values = []
    for _, sec in joined.groupby(["machine_type", "unit"]):
        y = (sec["label"] == "anomaly").to_numpy()
        s = sec["score"].to_numpy()
        target = (sec["domain"] == "target").to_numpy()
        values += [roc_auc_score(y[~target | y], s[~target | y]), roc_auc_score(y[target | y], s[target | y]),
                   roc_auc_score(y, s, max_fpr=0.1)]
    return float(hmean(np.maximum(values, np.finfo(float).eps)))


@pytest.mark.parametrize("year, command", PAIRS)
def test_command_on_later_year(year, command, synthetic_set, tmp_path, monkeypatch):
    import importlib

    # 2022 has six sections per type: one type keeps the run small (SerialOE needs two types)
    types = {"machine_types": ("fan",)} if year == 2022 and command != "smoothing" else {}
    root = synthetic_set(year, seed=2, duration=5.0 if command == "smoothing" else 2.0, **SIZES, **types)
    script, argv, settings = COMMANDS[command]
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(settings))
    monkeypatch.setenv("ASD_CACHE_DIR", str(tmp_path / "cache"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = importlib.import_module(script).main(argv + ["--data-root", str(root), "--quick", "--config", str(config),
                                                          "--out", str(tmp_path / "runs")])
    assert rc == 0
    runs = sorted((tmp_path / "runs" / str(year)).glob("*/*"))
    assert len(runs) == 1, "the run folder lies under runs/<year of the data>/"
    run = runs[0]
    assert yaml.safe_load((run / "config.yaml").read_text())["rules"] == f"DCASE {year}"
    comparison = (run / "comparison.md").read_text()
    assert f"no published numbers** of this paper for DCASE {year}" in comparison
    table = read_dataset(year, root)
    results = pd.read_csv(run / "results.csv", keep_default_na=False)
    assert set(results["rules"]) == {f"DCASE {year}"}
    test = table[table["split"] == "test"]
    sections = set(map(tuple, test[["machine_type", "unit"]].drop_duplicates().to_numpy()))
    for system in sorted(set(results["system"])):
        files = sorted((run / "scores" / system).glob("anomaly_score_*.csv"))
        assert {f.name for f in files} == {f"anomaly_score_{t}_{u}_test.csv" for t, u in sections}
        scores = pd.concat([pd.read_csv(f, header=None, names=["file", "score"]).assign(
            machine_type=f.name[len("anomaly_score_"):].rsplit("_section_", 1)[0],
            unit="section_" + f.name.rsplit("_section_", 1)[1][:2]) for f in files], ignore_index=True)
        for part in sorted(set(results.loc[results["system"] == system, "part"])):
            part_test = test[test["part"] == part]
            row = results[(results["row"] == "summary") & (results["system"] == system) & (results["part"] == part)
                          & (results["machine_type"] == "all") & (results["domain"] == "all")
                          & (results["statistic"] == "harmonic mean")]
            assert float(row["score"].iloc[0]) == pytest.approx(_official(part_test, scores))
