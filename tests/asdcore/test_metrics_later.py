"""The DCASE 2022-2025 official scores (asdcore.metrics, asdcore.submission, the evaluate command).

The rule (the official evaluators dcase2022_task2_evaluator, dcase2023_task2_evaluator): per section,
AUC(source) over the source normal clips and *all* anomalous clips, AUC(target) likewise, one pAUC over every
clip of the section (domains pooled); the official score is the harmonic mean of every AUC(source), AUC(target)
and pAUC. Checked against numbers worked out by hand and against scikit-learn/scipy on the evaluator's masks.
"""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import hmean
from sklearn.metrics import roc_auc_score

from asdcore import metrics
from asdcore.layouts import read_dataset
from asdcore.submission import evaluate_system, read_scores, write_decisions, write_scores

from .test_layouts import touch


def _table(year, rows):
    """rows: (machine_type, unit, domain, label, score[, decision])."""
    frame = pd.DataFrame(rows, columns=["machine_type", "unit", "domain", "label", "score", "decision"][:len(rows[0])])
    frame["year"] = year
    frame["split"] = "test"
    frame["part"] = "dev"
    frame["file"] = [f"clip_{i:04d}.wav" for i in range(len(frame))]
    return frame


def test_one_section_by_hand():
    # source normals 0.1 0.4, target normals 0.3 0.6, anomalies 0.5 (source) 0.2 (target)
    table = _table(2023, [("fan", "section_00", "source", "normal", 0.1, 0), ("fan", "section_00", "source", "normal", 0.4, 1),
                          ("fan", "section_00", "target", "normal", 0.3, 0), ("fan", "section_00", "target", "normal", 0.6, 1),
                          ("fan", "section_00", "source", "anomaly", 0.5, 1), ("fan", "section_00", "target", "anomaly", 0.2, 0)])
    per_unit = metrics.evaluate_clips(table, "score", decision_column="decision")
    by_domain = per_unit.set_index("domain")
    # AUC(source): anomalies {0.5, 0.2} above normals {0.1, 0.4}: 0.5>0.1, 0.5>0.4, 0.2>0.1 -> 3 of 4 pairs
    assert by_domain.loc["source", "auc"] == pytest.approx(0.75)
    # AUC(target): anomalies {0.5, 0.2} above normals {0.3, 0.6}: only 0.5>0.3 -> 1 of 4
    assert by_domain.loc["target", "auc"] == pytest.approx(0.25)
    # pooled pAUC: the highest score is a normal clip (FPR 1/4 > 0.1 at TPR 0), so the partial area is 0 and
    # McClish's standardisation gives 0.5 * (1 + (0 - p^2/2) / (p - p^2/2)) with p = 0.1
    p = 0.1
    pauc = 0.5 * (1 + (0 - p * p / 2) / (p - p * p / 2))
    assert by_domain.loc["source", "pauc"] == pytest.approx(pauc) and by_domain.loc["target", "pauc"] == pytest.approx(pauc)
    # precision/recall per domain on that domain's clips: source decisions 0,1 | 1 -> tp 1, fp 1
    assert by_domain.loc["source", "precision"] == pytest.approx(0.5) and by_domain.loc["source", "recall"] == 1.0
    # target decisions 0,1 | 0 -> tp 0, fp 1
    assert by_domain.loc["target", "precision"] == 0.0 and by_domain.loc["target", "recall"] == 0.0
    official = 3.0 / (1 / 0.75 + 1 / 0.25 + 1 / pauc)   # the pAUC counted once
    assert metrics.official_score(per_unit, year=2023) == pytest.approx(official)
    summary = metrics.summarize(per_unit, 2023)
    row = summary[(summary["machine_type"] == "all") & (summary["domain"] == "all")
                  & (summary["statistic"] == "harmonic mean")]
    assert float(row["score"].iloc[0]) == pytest.approx(official)
    # the 2021 rule would have scored the same clips per domain: a different number (the rule matters)
    per_unit_2021 = metrics.evaluate_clips(table.assign(year=2021), "score")
    assert metrics.official_score(per_unit_2021) != pytest.approx(official)


def _random_later_table(year, rng, sections):
    rows = []
    for machine_type, unit in sections:
        for domain in ("source", "target"):
            for label, n, shift in (("normal", 7, 0.0), ("anomaly", 4, 0.8)):
                for _ in range(n):
                    rows.append((machine_type, unit, domain, label, float(rng.normal() + shift + (domain == "target") * 0.5),
                                 int(rng.integers(0, 2))))
    return _table(year, rows)


def _evaluator(table):
    """The evaluators' computation, restated with sklearn/scipy: AUC/pAUC lists per section."""
    aucs_s, aucs_t, paucs, per_type = [], [], [], {}
    for (machine_type, unit), sec in table.groupby(["machine_type", "unit"], sort=True):
        y = (sec["label"] == "anomaly").to_numpy().astype(int)
        s = sec["score"].to_numpy()
        dom = (sec["domain"] == "target").to_numpy().astype(int)
        a_s = roc_auc_score(y[(dom == 0) | (y != 0)], s[(dom == 0) | (y != 0)])
        a_t = roc_auc_score(y[(dom == 1) | (y != 0)], s[(dom == 1) | (y != 0)])
        pa = roc_auc_score(y, s, max_fpr=0.1)
        aucs_s.append(a_s), aucs_t.append(a_t), paucs.append(pa)
        per_type.setdefault(machine_type, []).append((a_s, a_t, pa))
    official = hmean(np.maximum(aucs_s + aucs_t + paucs, np.finfo(float).eps))
    return aucs_s, aucs_t, paucs, per_type, official


@pytest.mark.parametrize("year", [2022, 2023, 2024, 2025])
def test_random_tables_against_the_evaluator_rule(year):
    rng = np.random.default_rng(year)
    sections = [("fan", "section_00"), ("fan", "section_01"), ("valve", "section_00")]
    table = _random_later_table(year, rng, sections)
    per_unit = metrics.evaluate_clips(table, "score", decision_column="decision")
    aucs_s, aucs_t, paucs, per_type, official = _evaluator(table)
    got = per_unit.sort_values(["machine_type", "unit", "domain"])
    assert got[got["domain"] == "source"]["auc"].tolist() == pytest.approx(aucs_s)
    assert got[got["domain"] == "target"]["auc"].tolist() == pytest.approx(aucs_t)
    assert got[got["domain"] == "source"]["pauc"].tolist() == pytest.approx(paucs)
    summary = metrics.summarize(per_unit, year)
    top = summary[(summary["machine_type"] == "all") & (summary["domain"] == "all")
                  & (summary["statistic"] == "harmonic mean")]
    assert float(top["score"].iloc[0]) == pytest.approx(official)
    # per type: the evaluators' "harmonic mean" row (AUC over both domains and sections; pAUC over sections)
    for machine_type, values in per_type.items():
        row = summary[(summary["machine_type"] == machine_type) & (summary["domain"] == "all")
                      & (summary["statistic"] == "harmonic mean")]
        assert float(row["auc"].iloc[0]) == pytest.approx(hmean([v[0] for v in values] + [v[1] for v in values]))
        assert float(row["pauc"].iloc[0]) == pytest.approx(hmean([v[2] for v in values]))
        src = summary[(summary["machine_type"] == machine_type) & (summary["domain"] == "source")]
        assert float(src["auc"].iloc[0]) == pytest.approx(hmean([v[0] for v in values]))


def test_unknown_domain_is_an_error_naming_the_fix():
    table = _table(2024, [("fan", "section_00", "source", "normal", 0.1), ("fan", "section_00", "", "anomaly", 0.5)])
    with pytest.raises(Exception, match="ground_truth_domain"):
        metrics.evaluate_clips(table, "score")


def test_submission_files_and_evaluate_command(tmp_path):
    """Files named as the evaluator expects (one per section), read back and scored; the command detects 2024."""
    root = tmp_path / "data"
    names = []
    for domain in ("source", "target"):
        for label, n in (("normal", 3), ("anomaly", 2)):
            for i in range(n):
                names.append(f"section_00_{domain}_test_{label}_{len(names):04d}_mdl_A_spd_1.wav")
    touch(root, *[f"dev_data/gearbox/test/{n}" for n in names],
          "dev_data/gearbox/train/section_00_source_train_normal_0000_noAttribute.wav",
          "eval_data/3DPrinter/train/section_00_source_train_normal_0001_mdl_A_spd_1.wav",
          "eval_data/3DPrinter/test/section_00_0001.wav")
    table = read_dataset(None, root)
    assert set(table["year"]) == {2024}
    test = table[(table["split"] == "test") & (table["part"] == "dev")].reset_index(drop=True)
    rng = np.random.default_rng(3)
    scores = rng.normal(size=len(test)) + (test["label"] == "anomaly").to_numpy()
    system = tmp_path / "scores" / "mine"
    written = write_scores(test, scores, system, 2024)
    write_decisions(test, (scores > 0.3).astype(int), system)
    assert [p.name for p in written] == ["anomaly_score_gearbox_section_00_test.csv"]
    assert (system / "decision_result_gearbox_section_00_test.csv").is_file()
    back = read_scores(system, 2024)
    assert sorted(back["file"]) == sorted(test["file"]) and set(back["domain"]) == {""}
    per_unit, summary = evaluate_system(system, table, 2024)
    expected = _evaluator(test.assign(score=scores))[-1]
    top = summary[(summary["machine_type"] == "all") & (summary["domain"] == "all")
                  & (summary["statistic"] == "harmonic mean")]
    assert float(top["score"].iloc[0]) == pytest.approx(expected)

    import run_dcase2020  # any script's evaluate reads a 2022-2025 root by its own rule
    assert run_dcase2020.main(["evaluate", str(system), "--data-root", str(root), "--out", str(tmp_path / "runs")]) == 0
    run = next((tmp_path / "runs" / "2024" / "evaluate").iterdir())
    results = pd.read_csv(run / "results.csv", keep_default_na=False)
    assert set(results["rules"]) == {"DCASE 2024"}
    official = results[(results["row"] == "summary") & (results["machine_type"] == "all")
                       & (results["domain"] == "all") & (results["statistic"] == "harmonic mean")]
    assert float(official["score"].iloc[0]) == pytest.approx(expected)
