"""The multi-distribution command of run_dcase2021.py: settings, tables and one quick run end to end."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import dataclasses  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from asdcore.errors import ASDError  # noqa: E402
from subcluster_adacos.experiments_2021 import (  # noqa: E402
    MultiDistributionConfig,
    table2,
    table3,
    table4,
    table5,
    variants_needed,
)
from subcluster_adacos.multi_distribution import BOTH_HEADS, SECTIONS_ONLY  # noqa: E402


def test_defaults_are_the_papers_settings():
    c = MultiDistributionConfig()
    assert (c.epochs, c.batch_size, c.checkpoint_every, c.subclusters) == (400, 64, 100, (1, 2, 4, 8, 16))
    assert c.loss_weights == (1.0, 1.0) and c.mixup and c.reg_covar == 1e-3
    assert c.sections_only_types == ("fan", "gearbox", "valve") and c.tmax_types == ("valve",)
    assert c.threshold_percentile == 90.0 and c.target_decision == "first_term"
    # 5 values of S x 4 checkpoints = 20 score sets per variant (Sec. 2.5)
    assert len(c.subclusters) * (c.epochs // c.checkpoint_every) == 20
    q = c.quick()
    assert (q.epochs, q.checkpoint_every, q.subclusters) == (2, 1, (1, 2))
    assert dataclasses.replace(q, epochs=c.epochs, checkpoint_every=100, subclusters=c.subclusters) == c
    with pytest.raises(ASDError):
        dataclasses.replace(c, variant_choice="best").check()
    with pytest.raises(ASDError):
        dataclasses.replace(c, subclusters=()).check()


def test_variants_needed():
    config = MultiDistributionConfig()
    assert variants_needed(["system"], config, ["fan", "valve"]) == [SECTIONS_ONLY]
    assert variants_needed(["system"], config, ["ToyCar"]) == [BOTH_HEADS]
    assert variants_needed(["distributions"], config, ["ToyCar", "fan"]) == [BOTH_HEADS, SECTIONS_ONLY]
    assert variants_needed(["losses"], config, ["fan"]) == [BOTH_HEADS, SECTIONS_ONLY]
    assert variants_needed(["system"], dataclasses.replace(config, variant_choice="dev"), ["fan"]) == [
        BOTH_HEADS, SECTIONS_ONLY]


def fake_results(systems, parts=("dev", "eval")):
    """per_unit and summary frames as evaluate_systems returns them, with known values."""
    per_unit, summary = [], []
    for k, system in enumerate(systems):
        for part in parts:
            sections = ["section_00", "section_01", "section_02"] if part == "dev" else ["section_03"]
            for domain in ("source", "target"):
                for i, section in enumerate(sections):
                    per_unit.append({"system": system, "part": part, "machine_type": "ToyCar", "unit": section,
                                     "domain": domain, "auc": 0.5 + 0.01 * i + 0.1 * k, "pauc": 0.6, "f1": 0.3})
                summary.append({"system": system, "part": part, "machine_type": "ToyCar", "domain": domain,
                                "statistic": "harmonic mean", "auc": 0.7 + 0.01 * k, "pauc": 0.55, "f1": 0.3,
                                "score": 0.6})
                summary.append({"system": system, "part": part, "machine_type": "all", "domain": domain,
                                "statistic": "harmonic mean", "auc": 0.71, "pauc": 0.56, "f1": 0.3, "score": 0.61})
            for machine_type in ("ToyCar", "all"):
                summary.append({"system": system, "part": part, "machine_type": machine_type, "domain": "all",
                                "statistic": "harmonic mean", "auc": 0.8, "pauc": 0.65, "f1": 0.3, "score": 0.7123})
    return pd.DataFrame(per_unit), pd.DataFrame(summary)


def test_tables_have_the_papers_rows_and_numbers():
    per_unit, summary = fake_results(["proposed", "distribution_section", "distribution_attribute",
                                      "distribution_target", "loss_sections", "loss_sections_attributes"])
    markdown, t2 = table2(per_unit, summary, ["QUICK note"])
    assert "QUICK note" in markdown
    assert list(t2["machine type"]) == ["ToyCar"] * 7 + ["all"]
    assert list(t2["section"][:3]) == ["section_00", "section_01", "section_02"]
    assert list(t2["domain"][:6]) == ["source"] * 3 + ["target"] * 3
    first = t2.iloc[0]
    # ToyCar section 0 source in the paper's Table 2: AE 67.63 / 51.87, MobileNetV2 66.56 / 66.47, 75.03 / 60.32
    assert (first["AE AUC (paper)"], first["MobileNetV2 pAUC (paper)"], first["AUC (paper)"]) == (67.63, 66.47, 75.03)
    assert first["AUC (ours)"] == pytest.approx(50.0) and first["F1 (ours)"] == pytest.approx(30.0)
    hmean = t2[t2["section"] == "harmonic mean"]
    assert list(hmean["AUC (paper)"]) == [78.37, 77.69] and list(hmean["AUC (ours)"]) == pytest.approx([80.0, 80.0])

    _, t3 = table3(summary, [])
    assert list(t3["machine type"]) == ["ToyCar", "ToyCar", "all", "all"]
    assert list(t3["domain"]) == ["source", "target", "source", "target"]
    source, target = t3.iloc[0], t3.iloc[1]
    assert source["P(x|s,k) AUC (paper)"] == 82.49 and source["P(x|a,k) AUC (paper)"] == 86.22
    assert np.isnan(target["P(x|a,k) AUC (ours)"]) and np.isnan(source["P(x|X_target(s),k) AUC (ours)"])
    assert target["P(x|X_target(s),k) AUC (paper)"] == 76.02
    assert source["proposed ensemble AUC (ours)"] == pytest.approx(70.0)

    _, t4 = table4(summary, [])
    row = t4.iloc[0]
    assert (row["sections AUC (paper)"], row["sections and file endings AUC (paper)"]) == (74.49, 88.58)
    assert row["sections AUC (ours)"] == pytest.approx(74.0)

    _, t5 = table5(summary, [])
    assert list(t5["domain"]) == ["source", "target", "source", "target", "both (official score)"]
    last = t5.iloc[-1]
    assert (last["AUC (paper)"], last["AE AUC (paper)"], last["AUC (ours)"]) == (64.20, 56.38, pytest.approx(71.23))
    assert t5.iloc[0]["AUC (paper)"] == 67.07


def test_table5_is_left_out_without_eval_labels():
    _, summary = fake_results(["proposed"], parts=("dev",))
    markdown, frame = table5(summary, [])
    assert markdown == "" and frame.empty


# --- the command end to end ----------------------------------------------------------------------------------

def _only_run_folder(base: Path) -> Path:
    folders = [p for p in base.iterdir() if p.is_dir()]
    assert len(folders) == 1
    return folders[0]


def test_quick_run_end_to_end(tmp_path, monkeypatch):
    """One two-head network (ToyCar), one epoch, on a tiny synthetic set with 2 s clips."""
    import run_dcase2021
    from asdcore.synthetic import generate

    monkeypatch.setenv("ASD_CACHE_DIR", str(tmp_path / "cache"))
    root = generate(2021, tmp_path / "data", seed=1, preset="tiny", machine_types=("ToyCar",), n_train=6,
                    n_target_train=3, n_test_normal=3, n_test_anomaly=3, duration=2.0)
    config = tmp_path / "settings.yaml"
    config.write_text("epochs: 1\ncheckpoint_every: 1\nsubclusters: [2]\n")
    out = tmp_path / "runs"
    argv = ["multi-distribution", "--experiment", "system", "--data-root", root, "--out", out, "--quick",
            "--config", config]
    assert run_dcase2021.main([str(a) for a in argv]) == 0
    run = _only_run_folder(out / "2021" / "multi-distribution-system")
    assert "quick: true" in (run / "config.yaml").read_text()
    assert (run / "models" / "sections_attributes_S02" / "epoch_0001.keras").is_file()
    system = run / "scores" / "proposed"
    for part, sections in (("dev", ("00", "01", "02")), ("eval", ("03", "04", "05"))):
        for section in sections:
            for domain in ("source", "target"):
                for kind in ("anomaly_score", "decision_result"):
                    assert (system / f"{kind}_ToyCar_section_{section}_{domain}_test.csv").is_file()
    results = pd.read_csv(run / "results.csv")
    assert (results["mode"] == "QUICK").all()
    units = results[(results["row"] == "unit") & (results["part"] == "dev")]
    assert len(units) == 6
    thresholds = pd.read_csv(run / "thresholds" / "proposed.csv")
    assert len(thresholds) == 12 and (thresholds["n_train"].sort_values().to_numpy() == [3] * 6 + [6] * 6).all()
    for row in units.itertuples():
        name = f"ToyCar_{row.unit}_{row.domain}_test.csv"
        scores = pd.read_csv(system / f"anomaly_score_{name}", header=None, names=["file", "score"])
        decisions = pd.read_csv(system / f"decision_result_{name}", header=None, names=["file", "decision"])
        labels = scores["file"].str.contains("_anomaly_").astype(int)
        assert row.auc == pytest.approx(roc_auc_score(labels, scores["score"]), abs=1e-12)
        assert list(decisions["file"]) == list(scores["file"]) and set(decisions["decision"]) <= {0, 1}
        if row.domain == "source":  # source decisions: the anomaly score above the section's threshold
            t = thresholds[(thresholds["unit"] == row.unit) & (thresholds["domain"] == "source")]["threshold"].item()
            np.testing.assert_array_equal(decisions["decision"], (scores["score"] > t).astype(int))
        tp = ((decisions["decision"] == 1) & (labels == 1)).sum()
        assert row.precision == pytest.approx(tp / max((decisions["decision"] == 1).sum(), np.finfo(float).eps))
    comparison = (run / "comparison.md").read_text()
    assert "QUICK MODE" in comparison and "SYNTHETIC" in comparison
    assert "Table 2" in comparison and "Table 5" in comparison and "75.03" in comparison
    assert "nan" not in comparison  # empty cells are written "-"
