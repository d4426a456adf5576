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
    run_mode,
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
    # settings the paper leaves open: the author's DCASE 2022 code (no class weights) or the paper's reading
    assert (c.class_weight, c.gmm_score, c.section_gmm_data, c.mixup_labels) == ("none", "component", "source",
                                                                                  "linear")
    assert c.training(4).class_weight == "none" and c.training(4).n_subclusters == 4
    q = c.quick()
    assert (q.epochs, q.checkpoint_every, q.subclusters) == (2, 1, (1, 2))
    assert dataclasses.replace(q, epochs=c.epochs, checkpoint_every=100, subclusters=c.subclusters) == c
    with pytest.raises(ASDError):
        dataclasses.replace(c, variant_choice="best").check()
    with pytest.raises(ASDError):
        dataclasses.replace(c, subclusters=()).check()
    for name, bad in (("class_weight", "auto"), ("gmm_score", "loglik"), ("section_gmm_data", "target"),
                      ("mixup_labels", "min")):
        with pytest.raises(ASDError, match=name):
            dataclasses.replace(c, **{name: bad}).check()


def test_a_full_run_with_overrides_is_not_labelled_paper_settings():
    c = MultiDistributionConfig()
    assert run_mode(False, c) == "paper settings"
    assert run_mode(True, c).startswith("QUICK MODE")
    for changed in ({"epochs": 10}, {"subclusters": (1, 2)}, {"class_weight": "balanced"}):
        mode = run_mode(False, dataclasses.replace(c, **changed))
        assert mode.startswith("custom settings") and "paper settings" not in mode
        assert next(iter(changed)) in mode


# --- the score sets the pipeline builds (Sec. 2.5) -------------------------------------------------------------

class _Folder:
    def __init__(self, path):
        self.path = path


def _toy_table():
    rows = []
    for section in ("section_00", "section_01"):
        for i in range(4):
            rows.append(("ToyCar", section, "train", "normal", "source", f"a_{i % 2}"))
        rows.append(("ToyCar", section, "train", "normal", "target", "b_0"))
        rows.append(("ToyCar", section, "test", "normal", "source", ""))
    return pd.DataFrame(rows, columns=["machine_type", "unit", "split", "label", "domain", "attributes"])


def _fake_pipeline(monkeypatch, diverged=()):
    """train_network / score_network stand-ins: every network records its seed and the first draw of the
    global NumPy state after seeding; a score set's values are known per (variant, S, epoch)."""
    import keras

    import subcluster_adacos.multi_distribution as md

    trained = []

    def train_network(variant, features, classes, training_config, model_dir=None, seed=0, verbose=2,
                      loss_weights=None):
        s, epochs, every = training_config.n_subclusters, training_config.epochs, training_config.checkpoint_every
        trained.append({"name": f"{variant}_S{s:02d}", "seed": seed, "draw": np.random.random(),
                        "class_weight": training_config.class_weight})
        if f"{variant}_S{s:02d}" in diverged:
            return None, {"diverged": True, "snapshots": {}}
        snapshots = {e: f"{variant}|{s}|{e}" for e in range(every, epochs + 1, every)}
        return f"{variant}|{s}|{epochs}", {"diverged": False, "snapshots": snapshots}

    def value(snapshot, n):
        variant, s, epoch = snapshot.split("|")
        return np.full(n, 1000.0 * (variant == md.BOTH_HEADS) + 10.0 * int(s) + int(epoch) / 100)

    calls = []

    def score_network(snapshot, features, table, classes, tmax_term, reg_covar, component_weights,
                      target_decision, batch_size, gmm_score="component", section_gmm_data="source"):
        calls.append((gmm_score, section_gmm_data))
        v = value(snapshot, len(table))
        return md.ScoreSet(v, v, {name: v for name in ("section", "attribute", "target")}, 1)

    monkeypatch.setattr(md, "train_network", train_network)
    monkeypatch.setattr(md, "score_network", score_network)
    monkeypatch.setattr(keras.models, "load_model", lambda path: str(path))
    monkeypatch.setattr(keras.backend, "clear_session", lambda free_memory=False: None)
    return trained, calls, value


def test_the_paper_ensemble_sums_20_score_sets_per_variant(tmp_path, monkeypatch):
    import logging

    from subcluster_adacos.experiments_2021 import build_ensembles
    from subcluster_adacos.multi_distribution import TrainingClasses

    trained, calls, value = _fake_pipeline(monkeypatch)
    table = _toy_table()
    classes = TrainingClasses.from_table(table)
    features = np.zeros((len(table), 3, 2), dtype=np.float32)
    config = dataclasses.replace(MultiDistributionConfig(), gmm_score="mixture", section_gmm_data="all")
    log = logging.getLogger("test")
    ensembles, listing = build_ensembles(features, table, classes, config, [BOTH_HEADS, SECTIONS_ONLY],
                                         _Folder(tmp_path), 3, log)
    for variant in (BOTH_HEADS, SECTIONS_ONLY):
        rows = listing[listing["variant"] == variant]
        assert len(rows) == 20 and ensembles[variant].n_sets == 20  # 5 values of S x 4 checkpoints
        assert sorted(set(rows["epoch"])) == [100, 200, 300, 400] and sorted(set(rows["n_subclusters"])) == [
            1, 2, 4, 8, 16]
        by_hand = sum(value(f"{variant}|{s}|{e}", len(table)) for s in (1, 2, 4, 8, 16) for e in (100, 200, 300, 400))
        np.testing.assert_allclose(ensembles[variant].score, by_hand)
    assert set(calls) == {("mixture", "all")}  # the settings reach every score set
    assert {t["class_weight"] for t in trained} == {"none"}


def test_each_2021_network_is_seeded_from_seed_and_its_name(tmp_path, monkeypatch):
    """Seed rule of the 2020 networks (asdcore.experiment.seed_for): the same network gets the same seed
    and the same global random state whatever was trained before it."""
    import logging
    import zlib

    from subcluster_adacos.experiments_2021 import build_ensembles
    from subcluster_adacos.multi_distribution import TrainingClasses

    table = _toy_table()
    classes = TrainingClasses.from_table(table)
    features = np.zeros((len(table), 3, 2), dtype=np.float32)
    runs = []
    for subclusters, variants in (((1, 2, 4), [BOTH_HEADS, SECTIONS_ONLY]), ((4,), [SECTIONS_ONLY])):
        trained, _, _ = _fake_pipeline(monkeypatch)
        config = dataclasses.replace(MultiDistributionConfig().quick(), subclusters=subclusters)
        build_ensembles(features, table, classes, config, variants, _Folder(tmp_path / str(len(runs))), 7,
                        logging.getLogger("test"))
        runs.append({t["name"]: t for t in trained})
    for name, t in runs[0].items():
        assert t["seed"] == (7 * 1_000_003 + zlib.crc32(name.encode())) % 2**31
    assert len({t["seed"] for t in runs[0].values()}) == 6
    alone = runs[1]["sections_S04"]
    assert (alone["seed"], alone["draw"]) == (runs[0]["sections_S04"]["seed"], runs[0]["sections_S04"]["draw"])


def test_a_diverged_2021_network_is_left_out_with_a_warning(tmp_path, monkeypatch, caplog):
    import logging

    from subcluster_adacos.experiments_2021 import build_ensembles, systems_for
    from subcluster_adacos.multi_distribution import TrainingClasses

    _, _, value = _fake_pipeline(monkeypatch, diverged={"sections_S02", "sections_attributes_S01",
                                                        "sections_attributes_S02"})
    table = _toy_table()
    classes = TrainingClasses.from_table(table)
    features = np.zeros((len(table), 3, 2), dtype=np.float32)
    config = MultiDistributionConfig().quick()  # 2 epochs, a checkpoint after each, S in {1, 2}
    with caplog.at_level(logging.WARNING, logger="test"):
        ensembles, listing = build_ensembles(features, table, classes, config, [BOTH_HEADS, SECTIONS_ONLY],
                                             _Folder(tmp_path), 0, logging.getLogger("test"))
    assert "sections_S02 diverged" in caplog.text and "every network diverged" in caplog.text
    assert BOTH_HEADS not in ensembles and ensembles[SECTIONS_ONLY].n_sets == 2
    np.testing.assert_allclose(ensembles[SECTIONS_ONLY].score,
                               value(f"{SECTIONS_ONLY}|1|1", len(table)) + value(f"{SECTIONS_ONLY}|1|2", len(table)))
    assert listing["diverged"].sum() == 3
    scores, _ = systems_for(["losses"], ensembles, ensembles[SECTIONS_ONLY])
    assert set(scores) == {"loss_sections", "proposed"}


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
