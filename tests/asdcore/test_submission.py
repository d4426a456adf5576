"""DCASE submission files: exact names and format, round trip, refusing to overwrite, evaluation."""
import csv
import os

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from asdcore import submission
from asdcore.errors import ASDError

AWKWARD = [1.0 / 3.0, -2.5e-300, 1e300, 0.1 + 0.2, -0.0, 123456789.123456789, 7.0, np.pi]


def table_2020():
    rows = []
    for part, machine_type, unit in (("dev", "fan", "id_00"), ("dev", "fan", "id_02"), ("eval", "ToyCar", "id_05")):
        for i in range(4):
            rows.append((part, machine_type, unit, "", "train", "normal", f"normal_{unit}_{i:08d}.wav"))
        for i in range(4):
            label = "anomaly" if i % 2 else "normal"
            rows.append((part, machine_type, unit, "", "test", label, f"{label}_{unit}_{i:08d}.wav"))
    table = pd.DataFrame(rows, columns=["part", "machine_type", "unit", "domain", "split", "label", "file"])
    table["year"] = 2020
    table["path"] = "/data/" + table["file"]
    return table


def table_2021():
    rows = []
    for machine_type in ("gearbox", "ToyTrain"):
        for unit in ("section_00", "section_01"):
            for domain in ("source", "target"):
                rows.append(("dev", machine_type, unit, domain, "train", "normal",
                             f"{unit}_{domain}_train_normal_0000_v_1.wav"))
                for i in range(6):
                    label = "anomaly" if i % 2 else "normal"
                    rows.append(("dev", machine_type, unit, domain, "test", label,
                                 f"{unit}_{domain}_test_{label}_{i:04d}.wav"))
    table = pd.DataFrame(rows, columns=["part", "machine_type", "unit", "domain", "split", "label", "file"])
    table["year"] = 2021
    return table


def read_plain(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_2020_round_trip_exact_files(tmp_path):
    table = table_2020()
    rng = np.random.default_rng(0)
    scores = rng.normal(size=len(table))
    test_rows = np.flatnonzero(table["split"] == "test")
    scores[test_rows[: len(AWKWARD)]] = AWKWARD
    scores[table["split"] == "train"] = np.nan  # train rows are ignored
    written = submission.write_scores(table, scores, tmp_path / "sys", 2020)
    names = sorted(p.name for p in written)
    assert names == ["anomaly_score_ToyCar_id_05.csv", "anomaly_score_fan_id_00.csv", "anomaly_score_fan_id_02.csv"]
    assert sorted(os.listdir(tmp_path / "sys")) == names  # no temporary files left behind
    expected = dict(zip(table["file"][test_rows] + "|" + table["unit"][test_rows], scores[test_rows]))
    for name in names:
        rows = read_plain(tmp_path / "sys" / name)
        assert len(rows) == 4 and all(len(r) == 2 for r in rows)
        assert rows[0][0].endswith(".wav")  # no header line
        unit = name[len("anomaly_score_"):-4].split("_", 1)[1]
        for file, text in rows:
            assert float(text) == expected[f"{file}|{unit}"]  # bit-exact
            assert "train" not in file
    back = submission.read_scores(tmp_path / "sys", 2020)
    assert list(back.columns) == ["file", "machine_type", "unit", "domain", "score"]
    joined = table[table.split == "test"].assign(score=scores[test_rows]).merge(
        back, on=["machine_type", "unit", "file"], suffixes=("", "_read"))
    assert len(joined) == len(test_rows)
    assert (joined["score"].to_numpy() == joined["score_read"].to_numpy()).all()
    assert (back["domain"] == "").all()


def test_2021_scores_and_decisions(tmp_path):
    table = table_2021()
    table["s"] = np.linspace(-1, 1, len(table))
    table["d"] = (np.arange(len(table)) % 3 == 0).astype(int)
    submission.write_scores(table, "s", tmp_path, 2021)
    submission.write_decisions(table, "d", tmp_path)
    names = set(os.listdir(tmp_path))
    expected = {f"{kind}_{t}_{u}_{d}_test.csv" for kind in ("anomaly_score", "decision_result")
                for t in ("gearbox", "ToyTrain") for u in ("section_00", "section_01") for d in ("source", "target")}
    assert names == expected
    rows = read_plain(tmp_path / "decision_result_ToyTrain_section_01_target_test.csv")
    assert len(rows) == 6 and {r[1] for r in rows} <= {"0", "1"}
    back = submission.read_scores(tmp_path, 2021)
    assert list(back.columns) == ["file", "machine_type", "unit", "domain", "score", "decision"]
    merged = table[table.split == "test"].merge(back, on=["machine_type", "unit", "domain", "file"])
    assert len(merged) == len(back) == 4 * 2 * 6
    assert (merged["s"] == merged["score"]).all() and (merged["d"] == merged["decision"]).all()


def test_refuses_to_overwrite_and_writes_nothing(tmp_path):
    table = table_2020()
    table["score"] = 1.0
    existing = tmp_path / "anomaly_score_fan_id_02.csv"
    existing.write_text("keep me\n")
    with pytest.raises(ASDError, match="anomaly_score_fan_id_02.csv"):
        submission.write_scores(table, "score", tmp_path, 2020)
    assert os.listdir(tmp_path) == ["anomaly_score_fan_id_02.csv"]
    assert existing.read_text() == "keep me\n"
    other = tmp_path / "other"
    submission.write_scores(table, "score", other, 2020)
    with pytest.raises(ASDError, match="exists"):
        submission.write_scores(table, "score", other, 2020)


def test_write_errors(tmp_path):
    table = table_2020()
    scores = np.zeros(len(table))
    scores[np.flatnonzero(table.split == "test")[3]] = np.nan
    with pytest.raises(ASDError, match="NaN"):
        submission.write_scores(table, scores, tmp_path, 2020)
    with pytest.raises(ASDError, match="per row"):
        submission.write_scores(table, np.zeros(3), tmp_path, 2020)
    with pytest.raises(ASDError, match="2021"):
        submission.write_decisions(table, np.zeros(len(table)), tmp_path)
    t21 = table_2021()
    with pytest.raises(ASDError, match="0 .normal. or 1"):
        submission.write_decisions(t21, np.full(len(t21), 0.5), tmp_path)
    assert os.listdir(tmp_path) == []


def test_read_errors(tmp_path):
    with pytest.raises(ASDError, match="no score files"):
        submission.read_scores(tmp_path, 2020)
    (tmp_path / "results.csv").write_text("a,b\n")  # ignored: not a submission file name
    with pytest.raises(ASDError, match="no score files"):
        submission.read_scores(tmp_path, 2020)
    bad = tmp_path / "anomaly_score_fan_id_00.csv"
    bad.write_text("file,score\nnormal_id_00_00000000.wav,0.5\n")
    with pytest.raises(ASDError, match="header"):
        submission.read_scores(tmp_path, 2020)
    bad.write_text("normal_id_00_00000000.wav,0.5,1\n")
    with pytest.raises(ASDError, match="fields"):
        submission.read_scores(tmp_path, 2020)
    bad.write_text("normal_id_00_00000000.wav,0.5\nnormal_id_00_00000000.wav,0.7\n")
    with pytest.raises(ASDError, match="twice"):
        submission.read_scores(tmp_path, 2020)


def test_read_requires_matching_decisions(tmp_path):
    table = table_2021()
    submission.write_scores(table, np.ones(len(table)), tmp_path, 2021)
    submission.write_decisions(table[table.machine_type == "gearbox"], np.ones((table.machine_type == "gearbox").sum()),
                               tmp_path)
    with pytest.raises(ASDError, match="no decision"):
        submission.read_scores(tmp_path, 2021)


def test_attach_scores_checks_missing_and_extra(tmp_path):
    table = table_2020()
    table["score"] = np.arange(len(table), dtype=float)
    submission.write_scores(table[table.part == "dev"], "score", tmp_path, 2020)
    scores = submission.read_scores(tmp_path, 2020)
    joined = submission.attach_scores(table.drop(columns="score"), scores)
    test = joined[joined.split == "test"]
    assert (test[test.part == "dev"]["score"].to_numpy() == table[(table.split == "test") & (table.part == "dev")]
            ["score"].to_numpy()).all()
    assert test[test.part == "eval"]["score"].isna().all()  # unscored unit stays NaN
    assert joined[joined.split == "train"]["score"].isna().all()  # train names repeat test names in 2020
    extra = pd.concat([scores, scores.iloc[[0]].assign(file="normal_id_00_99999999.wav")])
    with pytest.raises(ASDError, match="not test clips"):
        submission.attach_scores(table, extra)
    with pytest.raises(ASDError, match="have no score"):
        submission.attach_scores(table, scores.iloc[1:])


def test_evaluate_system_known_scores(tmp_path):
    table = table_2021()
    perfect = (table["label"] == "anomaly").astype(float)
    submission.write_scores(table, perfect, tmp_path / "perfect", 2021)
    submission.write_scores(table, -perfect, tmp_path / "reversed", 2021)
    per_unit, summary = submission.evaluate_system(tmp_path / "perfect", table, 2021)
    assert len(per_unit) == 8 and (per_unit["auc"] == 1.0).all() and (per_unit["pauc"] == 1.0).all()
    official = summary[(summary.machine_type == "all") & (summary.domain == "all")
                       & (summary.statistic == "harmonic mean")]["score"]
    assert official.iloc[0] == pytest.approx(1.0)
    per_unit, _ = submission.evaluate_system(tmp_path / "reversed", table, 2021)
    assert (per_unit["auc"] == 0.0).all()

    rng = np.random.default_rng(1)
    table["r"] = rng.normal(size=len(table)) + perfect
    table["dec"] = (table["r"] > 0.5).astype(int)
    submission.write_scores(table, "r", tmp_path / "random", 2021)
    submission.write_decisions(table, "dec", tmp_path / "random")
    per_unit, _ = submission.evaluate_system(tmp_path / "random", table[["part", "machine_type", "unit", "domain",
                                                                         "split", "label", "file"]], 2021)
    assert {"precision", "recall", "f1"} <= set(per_unit.columns)
    for row in per_unit.itertuples():
        rows = table[(table.machine_type == row.machine_type) & (table.unit == row.unit)
                     & (table.domain == row.domain) & (table.split == "test")]
        assert row.auc == pytest.approx(roc_auc_score(rows.label == "anomaly", rows.r))


def test_evaluate_system_per_part(tmp_path):
    table = table_2020()
    table["score"] = np.where(table["label"] == "anomaly", 1.0, 0.0)
    table.loc[(table.part == "eval") & (table.split == "test"), "score"] *= -1  # eval reversed
    submission.write_scores(table, "score", tmp_path, 2020)
    per_unit, summary = submission.evaluate_system(tmp_path, table.drop(columns="score"), 2020)
    assert list(per_unit.columns[:4]) == ["part", "machine_type", "unit", "domain"]
    assert per_unit.set_index("unit")["auc"].to_dict() == {"id_00": 1.0, "id_02": 1.0, "id_05": 0.0}
    overall = summary[(summary.machine_type == "all") & (summary.statistic == "arithmetic mean")]
    assert overall.set_index("part")["auc"].to_dict() == {"dev": 1.0, "eval": 0.0}
