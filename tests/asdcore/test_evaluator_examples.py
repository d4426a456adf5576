"""Our official scores against the figures the DCASE evaluators document in their README.md: the 2024 evaluator
(nttcslab/dcase2024_task2_evaluator: the 3DPrinter section of the MSE baseline's result file, the aggregated
results of both baselines), the 2023 evaluator (nttcslab/dcase2023_task2_evaluator) and the 2025 evaluator
(dcase2025_task2_evaluator, its README only): aggregated results; the 2022 evaluator (Kota-Dohi/dcase2022_evaluator):
the ToyCar rows of its example result file.

The evaluator ships no submission files, only its printed results. For one section the result fixes the
counts behind it: AUC(source) 0.7912 = 3956 of the 50 x 100 (source normal, anomaly) pairs ranked right,
AUC(target) 0.4796 = 2398 of 5000, pAUC 0.49421... = (McClish) 39 anomalies ranked above the ten
highest-scored normal clips together, precision/recall 33/46 and 33/50 (source), 43/83 and 43/50 (target).
:func:`_section_submission` writes a 200-clip submission with exactly these counts and ``evaluate`` must print
the README's numbers. The other figures are the README's per-type values, aggregated by our summaries.
"""
import numpy as np
import pandas as pd
import pytest

import run_dcase2021
from asdcore.metrics import official_score, summarize


def _section_submission(tmp_path):
    """A DCASE 2024 evaluation root with one 3DPrinter section, the evaluator's ground-truth folders and one
    submission, built from the counts above (see the module docstring)."""
    # anomalies above each normal clip, the normals in descending score order: the ten highest sum to 39
    top = [0, 0, 1, 2, 3, 4, 5, 6, 8, 10]
    target_counts = top + [59] * 39 + [58]          # 50 target normals: 39 + 2301 + 58 = 2398
    source_counts = [79] * 44 + [80] * 6             # 50 source normals: 3476 + 480 = 3956
    clips = []  # (domain, label, score, decision)
    for i in range(100):  # anomalies: scores 1000, 990, ..., 10; 50 per domain
        domain = "source" if i % 2 == 0 else "target"
        clips.append([domain, 1, 1000.0 - 10 * i, 0])
    for domain, counts in (("source", source_counts), ("target", target_counts)):
        for c in counts:  # just below the c-th anomaly from the top
            clips.append([domain, 0, 1000.0 - 10 * c + 5, 0])
    clips = pd.DataFrame(clips, columns=["domain", "anomaly", "score", "decision"])
    for domain, tp, fp in (("source", 33, 13), ("target", 43, 40)):
        for anomaly, n in ((1, tp), (0, fp)):
            rows = clips.index[(clips["domain"] == domain) & (clips["anomaly"] == anomaly)][:n]
            clips.loc[rows, "decision"] = 1
    clips["file"] = [f"section_00_{i:04d}.wav" for i in np.random.default_rng(0).permutation(200) + 1]

    root = tmp_path / "dcase2024t2"
    for name in ["train/section_00_source_train_normal_0001_mdl_A_spd_1.wav"] + [f"test/{f}" for f in clips["file"]]:
        path = root / "eval_data" / "3DPrinter" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    evaluator = tmp_path / "evaluator"
    for folder, column in (("ground_truth_data", "anomaly"), ("ground_truth_domain", "domain")):
        (evaluator / folder).mkdir(parents=True)
        values = clips[column] if column == "anomaly" else (clips["domain"] == "target").astype(int)
        pd.DataFrame({"f": clips["file"], "v": values}).to_csv(
            evaluator / folder / "ground_truth_3DPrinter_section_00_test.csv", header=False, index=False)
    system = tmp_path / "submission" / "mse"
    system.mkdir(parents=True)
    for kind, column in (("anomaly_score", "score"), ("decision_result", "decision")):
        clips[["file", column]].to_csv(system / f"{kind}_3DPrinter_section_00_test.csv", header=False, index=False)
    return root, evaluator, system


def test_evaluate_prints_the_2024_evaluators_3dprinter_section(tmp_path, capsys):
    root, evaluator, system = _section_submission(tmp_path)
    assert run_dcase2021.main(["evaluate", str(system), "--data-root", str(root), "--ground-truth", str(evaluator),
                               "--out", str(tmp_path / "runs")]) == 0
    assert "DCASE 2024" in capsys.readouterr().out
    results = pd.read_csv(next((tmp_path / "runs" / "2024" / "evaluate").iterdir()) / "results.csv",
                          keep_default_na=False)
    units = results[results["row"] == "unit"].set_index("domain")
    # README: "00,0.6354,0.7912,0.47959999999999997,0.4942105263157895,0.717391304347826,0.5180722891566265,
    #          0.66,0.86,0.6875,0.6466165413533834"
    readme = {"source": (0.7912, 0.4942105263157895, 0.717391304347826, 0.66, 0.6875),
              "target": (0.47959999999999997, 0.4942105263157895, 0.5180722891566265, 0.86, 0.6466165413533834)}
    for domain, values in readme.items():
        got = units.loc[domain, ["auc", "pauc", "precision", "recall", "f1"]].astype(float).to_numpy()
        np.testing.assert_allclose(got, values, rtol=1e-12)
    summary = results[(results["row"] == "summary") & (results["machine_type"] == "3DPrinter")]

    def row(domain, statistic):
        r = summary[(summary["domain"] == domain) & (summary["statistic"] == statistic)]
        return r[["auc", "pauc", "precision", "recall", "f1"]].astype(float).to_numpy()[0]

    # README rows "arithmetic mean", "harmonic mean", "source harmonic mean", "target harmonic mean"
    np.testing.assert_allclose(row("all", "arithmetic mean"),
                               [0.6354, 0.4942105263157895, 0.6177317967522262, 0.76, 0.6670582706766917], rtol=1e-12)
    np.testing.assert_allclose(row("all", "harmonic mean"),
                               [0.5971978596159899, 0.49421052631578954, 0.6016535933856264, 0.746842105263158,
                                0.666431842197957], rtol=1e-12)
    np.testing.assert_allclose(row("source", "harmonic mean"),
                               [0.7912, 0.49421052631578954, 0.717391304347826, 0.66, 0.6875], rtol=1e-12)
    np.testing.assert_allclose(row("target", "harmonic mean"),
                               [0.47959999999999997, 0.49421052631578954, 0.5180722891566265, 0.86,
                                0.6466165413533834], rtol=1e-12)


#: 2024 README "Aggregated results": per machine type (one section each; 3DPrinter AirCompressor Scanner ToyCircuit
#: HoveringDrone HairDryer ToothBrush RoboticArm BrushlessMotor) AUC(source), AUC(target), pAUC
BASELINES = {
    "MSE": ([0.7912, 0.65, 0.6916, 0.7658, 0.8601999999999999, 0.6224000000000001, 0.7504000000000001, 0.6596,
             0.7070000000000001],
            [0.47959999999999997, 0.4824, 0.5374000000000001, 0.5266000000000001, 0.43879999999999997, 0.4598,
             0.6948, 0.4152, 0.6352],
            [0.4942105263157895, 0.5547368421052632, 0.5010526315789474, 0.5, 0.5021052631578947,
             0.5163157894736842, 0.5273684210526316, 0.511578947368421, 0.5557894736842105]),
    "MAHALA": ([0.7544, 0.6609999999999999, 0.5684, 0.6794, 0.8387999999999999, 0.606, 0.6556, 0.5834, 0.8032],
               [0.42399999999999993, 0.555, 0.5549999999999999, 0.4464, 0.46399999999999997, 0.5898, 0.579,
                0.42499999999999993, 0.7338],
               [0.508421052631579, 0.6078947368421053, 0.4926315789473684, 0.4921052631578947, 0.5800000000000001,
                0.5510526315789473, 0.48368421052631577, 0.5178947368421053, 0.5905263157894737]),
}
#: README: h-mean of AUC(source), AUC(target), pAUC, TOTAL score (h-mean, a-mean)
PUBLISHED = {"MSE": (0.7150555228086642, 0.5057977147441246, 0.5172271108149132, 0.5650830191796572,
                     0.5863391812865497),
             "MAHALA": (0.6718221907158789, 0.5144113485475758, 0.5324024369331867, 0.5648933421610234,
                        0.5832003898635478)}


#: 2023 README "Aggregated results" (bandsaw grinder shaker ToyDrone ToyNscale ToyTank Vacuum)
BASELINES_2023 = {
    "MSE": ([0.6667348190554078, 0.706837186424004, 0.69428983714698, 0.7968000000000001, 0.77, 0.7212000000000001,
             0.8816],
            [0.48287671232876717, 0.5516569200779727, 0.5604118104118104, 0.561, 0.4716, 0.6468,
             0.45320000000000005],
            [0.5091087658743451, 0.5846166760294185, 0.5491654428600755, 0.5368421052631579, 0.5178947368421053,
             0.5826315789473684, 0.5947368421052631]),
    "MAHALA": ([0.836434267021059, 0.7409411378914575, 0.8476602762317048, 0.8130000000000001, 0.6678000000000002,
                0.8011999999999999, 0.8383999999999999],
               [0.5885844748858448, 0.50682261208577, 0.6299533799533801, 0.4622, 0.409, 0.4532, 0.9006],
               [0.5753594967896497, 0.5955291246149972, 0.6233307541280444, 0.5142105263157895, 0.5089473684210526,
                0.5384210526315789, 0.653157894736842]),
}
PUBLISHED_2023 = {"MSE": (0.7423494890244248, 0.5253826834789426, 0.5517419647782388, 0.5925469043549957,
                          0.6114287349222227),
                  "MAHALA": (0.7871141310430937, 0.53090862919051, 0.5682103280865886, 0.6105082186925268,
                             0.6430834459860557)}
#: 2025 evaluator README "Aggregated results" (AutoTrash HomeCamera ToyPet ToyRCCar BandSealer CoffeeGrinder
#: Polisher ScrewFeeder)
BASELINES_2025 = {
    "MSE": ([0.8102, 0.8140000000000001, 0.677, 0.5284, 0.7198, 0.7303999999999999, 0.6686000000000001, 0.6486],
            [0.3436, 0.4976, 0.36699999999999994, 0.6271999999999999, 0.3956, 0.4436, 0.443, 0.6592],
            [0.5421052631578948, 0.5284210526315789, 0.55, 0.5552631578947368, 0.5205263157894737,
             0.5342105263157895, 0.5231578947368422, 0.6210526315789474]),
    "MAHALA": ([0.7726000000000001, 0.8616, 0.6981999999999999, 0.5586, 0.7638, 0.7498, 0.7041999999999999, 0.729],
               [0.526, 0.42640000000000006, 0.509, 0.5548, 0.3268, 0.4042, 0.5278, 0.7904000000000001],
               [0.541578947368421, 0.5184210526315789, 0.5684210526315789, 0.54, 0.49105263157894735,
                0.5142105263157895, 0.5378947368421052, 0.7005263157894737]),
}
PUBLISHED_2025 = {"MSE": (0.6879822239700398, 0.44954916968961445, 0.5452967030441773, 0.5442827820713174,
                          0.5728557017543859),
                  "MAHALA": (0.719933864244911, 0.4788331261490967, 0.5459161077739156, 0.5650558189601554,
                             0.596471052631579)}
CASES = [(2023, name, BASELINES_2023[name], PUBLISHED_2023[name]) for name in sorted(BASELINES_2023)] + \
        [(2024, name, BASELINES[name], PUBLISHED[name]) for name in sorted(BASELINES)] + \
        [(2025, name, BASELINES_2025[name], PUBLISHED_2025[name]) for name in sorted(BASELINES_2025)]


@pytest.mark.parametrize("year, system, values, published", CASES, ids=[f"{y}-{n}" for y, n, _, _ in CASES])
def test_official_score_of_the_baselines_from_their_published_section_values(year, system, values, published):
    source, target, pauc = values
    per_unit = pd.DataFrame([{"machine_type": f"type{i}", "unit": "section_00", "domain": d, "auc": a, "pauc": p}
                             for i, (s, g, p) in enumerate(zip(source, target, pauc))
                             for d, a in (("source", s), ("target", g))])
    h_source, h_target, h_pauc, total, total_arithmetic = published
    n = len(source)
    assert official_score(per_unit, year=year) == pytest.approx(total, rel=1e-12)
    summary = summarize(per_unit, year).set_index(["machine_type", "domain", "statistic"])
    assert summary.loc[("all", "source", "harmonic mean"), "auc"] == pytest.approx(h_source, rel=1e-12)
    assert summary.loc[("all", "target", "harmonic mean"), "auc"] == pytest.approx(h_target, rel=1e-12)
    assert summary.loc[("all", "all", "harmonic mean"), "pauc"] == pytest.approx(h_pauc, rel=1e-12)
    assert summary.loc[("all", "all", "harmonic mean"), "score"] == pytest.approx(total, rel=1e-12)
    # the a-mean of the 3n values (README "TOTAL score, a-mean"), from the summary's arithmetic rows
    arithmetic = summary.loc[("all", "all", "arithmetic mean")]
    assert (2 * n * arithmetic["auc"] + n * arithmetic["pauc"]) / (3 * n) == pytest.approx(total_arithmetic, rel=1e-12)


def test_2022_per_type_means_of_the_example_result_file():
    # README rows "03", "04", "05" of ToyCar: AUC(source), AUC(target), pAUC, precision, recall, F1 per domain
    sections = {"section_03": (0.8204, 0.6954, 0.71, (0.6666666666666666, 0.7575757575757576), (0.28, 1.0),
                               (0.3943661971830986, 0.8620689655172413)),
                "section_04": (0.6164, 0.4202, 0.4942105263157895, (0.6333333333333333, 0.46296296296296297),
                               (0.38, 0.5), (0.4750000000000001, 0.4807692307692307)),
                "section_05": (0.8371999999999999, 0.512, 0.6447368421052632, (0.8333333333333334, 0.5476190476190477),
                               (0.3, 0.92), (0.4411764705882353, 0.6865671641791046))}
    per_unit = pd.DataFrame([{"machine_type": "ToyCar", "unit": unit, "domain": d, "auc": v[k], "pauc": v[2],
                              "precision": v[3][k], "recall": v[4][k], "f1": v[5][k]}
                             for unit, v in sections.items() for k, d in enumerate(("source", "target"))])
    summary = summarize(per_unit, 2022).set_index(["machine_type", "domain", "statistic"])
    columns = ["auc", "pauc", "precision", "recall", "f1"]
    # README "arithmetic mean" and "harmonic mean" rows
    np.testing.assert_allclose(summary.loc[("ToyCar", "all", "arithmetic mean"), columns].astype(float),
                               [0.6502666666666667, 0.6163157894736843, 0.6502485169151835, 0.5633333333333334,
                                0.5566580047061518], rtol=1e-12)
    np.testing.assert_allclose(summary.loc[("ToyCar", "all", "harmonic mean"), columns].astype(float),
                               [0.6118288605395442, 0.6020590065980902, 0.6259758490782256, 0.44042200910247076,
                                0.5170556917115303], rtol=1e-12)
    # its "source/target harmonic mean" rows take the wrong slices (source: section 03 alone, 0.8204); ours are
    # the harmonic means over the three sections of each domain
    assert summary.loc[("ToyCar", "source", "harmonic mean"), "auc"] == pytest.approx(
        3 / (1 / 0.8204 + 1 / 0.6164 + 1 / 0.8371999999999999), rel=1e-12)
