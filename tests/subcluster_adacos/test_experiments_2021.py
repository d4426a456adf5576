"""The multi-distribution command of run_dcase2021.py: settings, tables and one quick run end to end."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import dataclasses  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from asdcore.errors import ASDError  # noqa: E402
from subcluster_adacos.experiments_2021 import (  # noqa: E402
    DISTRIBUTION_SYSTEMS,
    EXPERIMENTS,
    LOSS_SYSTEMS,
    MultiDistributionConfig,
    paper_tables,
    variants_needed,
)
from subcluster_adacos.multi_distribution import BOTH_HEADS, SECTIONS_ONLY  # noqa: E402


def test_defaults_are_the_papers_settings():
    c = MultiDistributionConfig()
    assert (c.epochs, c.batch_size, c.checkpoint_every, c.subclusters) == (400, 64, 100, (1, 2, 4, 8, 16))
    assert c.loss_weights == (1.0, 1.0) and c.mixup and c.reg_covar == 1e-3
    assert c.sections_only_types == ("fan", "gearbox", "valve") and c.tmax_types == ("valve",)
    assert c.threshold_percentile == 90.0 and c.target_decision == "first_term"
    # settings the paper leaves open: the author's DCASE 2022 code (no class weights, max-mixed labels) or the
    # paper's reading (eqs. (2)-(4): component scores, source clips, the eq. (4) term in every score set)
    assert (c.class_weight, c.gmm_score, c.section_gmm_data, c.mixup_labels, c.tmax_term) == (
        "none", "component", "source", "max", "per_set")
    assert c.training(4).class_weight == "none" and c.training(4).n_subclusters == 4
    assert c.training(4).mixup_labels == "max"
    q = c.quick()
    assert (q.epochs, q.checkpoint_every, q.subclusters) == (2, 1, (1, 2))
    assert dataclasses.replace(q, epochs=c.epochs, checkpoint_every=100, subclusters=c.subclusters) == c
    with pytest.raises(ASDError):
        dataclasses.replace(c, variant_choice="best").check()
    with pytest.raises(ASDError):
        dataclasses.replace(c, subclusters=()).check()
    for name, bad in (("class_weight", "auto"), ("gmm_score", "loglik"), ("section_gmm_data", "target"),
                      ("mixup_labels", "min"), ("tmax_term", "twice")):
        with pytest.raises(ASDError, match=name):
            dataclasses.replace(c, **{name: bad}).check()


# --- the score sets the assemble step sums (Sec. 2.5) -----------------------------------------------------------

class _Unit:
    """A finished unit as build_ensembles sees it: name, spec and the result of train_unit."""

    def __init__(self, variant, n_sub, epochs, diverged=False):
        self.name = f"{variant}_S{n_sub:02d}"
        self.spec = {"variant": variant, "n_subclusters": n_sub}
        self._result = {"diverged": diverged, "epochs": [] if diverged else list(epochs)}

    def result(self):
        return self._result


def _value(unit, epoch, n=5):
    """A known score per (variant, S, epoch)."""
    return np.full(n, 1000.0 * (unit.spec["variant"] == BOTH_HEADS) + 10.0 * unit.spec["n_subclusters"] + epoch / 100)


def _score_set(unit, epoch):
    from subcluster_adacos.multi_distribution import ScoreSet

    v = _value(unit, epoch)
    return ScoreSet(v, v, {name: v for name in ("section", "attribute", "target")}, 1)


def test_the_paper_ensemble_sums_20_score_sets_per_variant():
    import logging

    from subcluster_adacos.multi_distribution import build_ensembles

    units = [_Unit(v, s, (100, 200, 300, 400)) for v in (BOTH_HEADS, SECTIONS_ONLY) for s in (1, 2, 4, 8, 16)]
    ensembles, listing = build_ensembles(units, _score_set, logging.getLogger("test"))
    for variant in (BOTH_HEADS, SECTIONS_ONLY):
        rows = listing[listing["variant"] == variant]
        assert len(rows) == 20 and ensembles[variant].n_sets == 20  # 5 values of S x 4 checkpoints
        assert sorted(set(rows["epoch"])) == [100, 200, 300, 400] and sorted(set(rows["n_subclusters"])) == [
            1, 2, 4, 8, 16]
        by_hand = sum(_value(u, e) for u in units if u.spec["variant"] == variant for e in (100, 200, 300, 400))
        np.testing.assert_allclose(ensembles[variant].score, by_hand)


def test_a_diverged_2021_network_is_left_out_with_a_warning(caplog):
    import logging

    from subcluster_adacos.experiments_2021 import systems_for
    from subcluster_adacos.multi_distribution import build_ensembles

    units = [_Unit(BOTH_HEADS, 1, (), diverged=True), _Unit(BOTH_HEADS, 2, (), diverged=True),
             _Unit(SECTIONS_ONLY, 1, (1, 2)), _Unit(SECTIONS_ONLY, 2, (), diverged=True)]
    with caplog.at_level(logging.WARNING, logger="test"):
        ensembles, listing = build_ensembles(units, _score_set, logging.getLogger("test"))
    assert "sections_S02 diverged" in caplog.text and "every network diverged" in caplog.text
    assert BOTH_HEADS not in ensembles and ensembles[SECTIONS_ONLY].n_sets == 2
    np.testing.assert_allclose(ensembles[SECTIONS_ONLY].score, _value(units[2], 1) + _value(units[2], 2))
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


def _paper(table, **labels):
    """One published value, read from the CSV directly (not through the renderer)."""
    from asdcore.published import load_table

    rows = load_table(f"wilkinghoff2021_{table}")
    for column, value in labels.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, labels
    return float(rows["value"].iloc[0])


def _rendered(experiments, per_unit, summary, notes=()):
    from asdcore.tables import render_markdown

    out = {}
    for spec, ours in paper_tables(experiments, per_unit, summary):
        markdown, frame = render_markdown(spec, ours, list(notes))
        out[spec.published.rsplit("_", 1)[1]] = (markdown, frame)
    return out


def _cell(frame, column, **labels):
    rows = frame
    for key, value in labels.items():
        rows = rows[rows[key.replace("_", " ")] == value]
    assert len(rows) == 1, labels
    return rows[column].iloc[0]


def test_tables_have_the_papers_rows_and_numbers():
    """Each rendered cell is the published CSV's value or the value of our results it stands for, each
    looked up independently; rows: the paper's, for the machine types we ran, in its order."""
    systems = ["proposed", "distribution_section", "distribution_attribute", "distribution_target",
               "loss_sections", "loss_sections_attributes"]
    per_unit, summary = fake_results(systems)
    tables = _rendered(list(EXPERIMENTS), per_unit, summary, ["QUICK note"])
    assert sorted(tables) == ["table2", "table3", "table4", "table5"]

    # Table 2: per section and domain, then the harmonic mean per machine type (section "all")
    markdown, t2 = tables["table2"]
    assert "QUICK note" in markdown and "Table 2" in markdown
    assert list(zip(t2["machine type"], t2["section"], t2["domain"])) == [
        ("ToyCar", f"section_0{i}", d) for d in ("source", "target") for i in range(3)] + [
        ("ToyCar", "all", "all"), ("all", "all", "all")]
    for row in per_unit[(per_unit["system"] == "proposed") & (per_unit["part"] == "dev")].itertuples():
        key = dict(machine_type=row.machine_type, section=row.unit, domain=row.domain)
        assert _cell(t2, "dev AUC (ours)", **key) == pytest.approx(100 * row.auc)
        assert _cell(t2, "dev pAUC (ours)", **key) == pytest.approx(100 * row.pauc)
        assert _cell(t2, "dev F1 (ours)", **key) == pytest.approx(100 * row.f1)
        labels = dict(machine_type=row.machine_type, unit=row.unit, domain=row.domain)
        assert _cell(t2, "dev AUC (paper)", **key) == _paper("table2", system="proposed system", metric="auc",
                                                             **labels)
        assert _cell(t2, "dev pAUC (paper)", **key) == _paper("table2", system="proposed system", metric="pauc",
                                                              **labels)
        for system, short in (("baseline autoencoder", "AE"), ("baseline MobileNetV2", "MobileNetV2")):
            for metric, name in (("auc", "AUC"), ("pauc", "pAUC")):
                assert _cell(t2, f"{short} dev {name} (paper)", **key) == _paper("table2", system=system,
                                                                                 metric=metric, **labels)
    # ToyCar section 0 source as printed: AE 67.63 / 51.87, MobileNetV2 66.56 / 66.47, proposed 75.03 / 60.32
    first = t2.iloc[0]
    assert (first["AE dev AUC (paper)"], first["MobileNetV2 dev pAUC (paper)"], first["dev AUC (paper)"]) == (
        67.63, 66.47, 75.03)
    hmean = t2[t2["section"] == "all"]
    ours_hmean = summary[(summary["system"] == "proposed") & (summary["part"] == "dev")
                         & (summary["domain"] == "all")].set_index("machine_type")
    assert list(hmean["dev AUC (ours)"]) == pytest.approx(list(100 * ours_hmean.loc[["ToyCar", "all"], "auc"]))
    assert list(hmean["dev AUC (paper)"]) == [78.37, 77.69]
    assert "dev F1 (paper)" not in t2  # the paper prints no F1

    # Table 5: per machine type and domain, then the official score (all, all)
    _, t5 = tables["table5"]
    assert list(zip(t5["machine type"], t5["domain"])) == [("ToyCar", "source"), ("ToyCar", "target"),
                                                           ("all", "source"), ("all", "target"), ("all", "all")]
    ours5 = summary[(summary["system"] == "proposed") & (summary["part"] == "eval")
                    & (summary["statistic"] == "harmonic mean")]
    for row in ours5[ours5["domain"] != "all"].itertuples():
        key = dict(machine_type=row.machine_type, domain=row.domain)
        assert _cell(t5, "eval AUC (ours)", **key) == pytest.approx(100 * row.auc)
        assert _cell(t5, "eval pAUC (ours)", **key) == pytest.approx(100 * row.pauc)
        assert np.isnan(_cell(t5, "eval score (ours)", **key))
        for system, prefix in (("proposed system", ""), ("baseline autoencoder", "AE "),
                               ("baseline MobileNetV2", "MobileNetV2 ")):
            assert _cell(t5, f"{prefix}eval AUC (paper)", **key) == _paper("table5", system=system, metric="auc",
                                                                          **key)
    official = _cell(t5, "eval score (ours)", machine_type="all", domain="all")
    assert official == pytest.approx(100 * ours5[(ours5["machine_type"] == "all")
                                                 & (ours5["domain"] == "all")]["score"].item())
    assert _cell(t5, "eval score (paper)", machine_type="all", domain="all") == 64.20
    assert _cell(t5, "AE eval score (paper)", machine_type="all", domain="all") == 56.38
    assert t5.iloc[0]["eval AUC (paper)"] == 67.07

    # Tables 3 and 4: one row per distribution / loss, machine type and domain; rows of our systems only
    _, t3 = tables["table3"]
    assert set(t3[t3["distribution"] == "P(x|a,k)"]["domain"]) == {"source"}  # as in the paper: no target row
    assert set(t3[t3["distribution"] == "P(x|X_target(s),k)"]["domain"]) == {"target"}
    assert len(t3) == 12 and list(t3["machine type"]) == ["ToyCar"] * 6 + ["all"] * 6
    _, t4 = tables["table4"]
    assert len(t4) == 12
    for frame, column, table, systems_ in ((t3, "distribution", "table3", DISTRIBUTION_SYSTEMS),
                                           (t4, "loss", "table4", LOSS_SYSTEMS)):
        for system, label in systems_.items():
            for row in summary[(summary["system"] == system) & (summary["part"] == "dev")
                               & summary["domain"].isin(["source", "target"])].itertuples():
                key = {column: label, "machine_type": row.machine_type, "domain": row.domain}
                if frame[(frame[column] == label) & (frame["domain"] == row.domain)].empty:
                    continue  # a term the paper defines on the other domain only
                assert _cell(frame, "dev AUC (ours)", **key) == pytest.approx(100 * row.auc)
                assert _cell(frame, "dev pAUC (ours)", **key) == pytest.approx(100 * row.pauc)
                assert _cell(frame, "dev AUC (paper)", **key) == _paper(table, metric="auc", **key)
                assert _cell(frame, "dev pAUC (paper)", **key) == _paper(table, metric="pauc", **key)
    assert _cell(t3, "dev AUC (paper)", distribution="P(x|s,k)", machine_type="ToyCar", domain="source") == 82.49
    assert _cell(t4, "dev AUC (paper)", loss="sections and file endings", machine_type="ToyCar",
                 domain="source") == 88.58


def test_table2_sections_do_not_give_the_ensemble_rows_of_tables_3_and_4_and_the_note_says_so(capsys):
    """Table 2's per-section values of the proposed system (printed in the paper, typed here) reduced to
    harmonic means are not Table 3's "proposed ensemble" row: the note under Tables 3 and 4 says by how much,
    and our "proposed ensemble" rows are compared with Table 3's own numbers."""
    from types import SimpleNamespace

    from scipy.stats import hmean

    from subcluster_adacos.tables_2021 import report, table2_vs_ensemble_gaps

    gaps = table2_vs_ensemble_gaps().set_index(["machine_type", "domain", "metric"])
    toytrain = gaps.loc[("ToyTrain", "target", "auc")]  # Table 2: sections 0-2 target 71.32, 50.89, 92.98
    assert toytrain["table2"] == pytest.approx(hmean([71.32, 50.89, 92.98])) and toytrain["table3"] == 66.81
    assert gaps.loc[("ToyCar", "source", "pauc")]["table2"] == pytest.approx(hmean([60.32, 73.26, 75.32]))
    assert gaps["gap"].abs().max() == pytest.approx(hmean([71.32, 50.89, 92.98]) - 66.81)
    per_unit, summary = fake_results(["proposed", "loss_sections", "loss_sections_attributes", "distribution_section",
                                      "distribution_attribute", "distribution_target"])
    text = "\n".join(report(SimpleNamespace(quick=False), ["system", "distributions", "losses"], per_unit, summary,
                            ["a note"]))
    note = "do not give the \"proposed ensemble\" harmonic means of Tables 3 and 4 (up to 0.72 points apart"
    sections = {title.split(":")[0]: body for title, body in
                (part.split("\n", 1) for part in text.split("## ")[1:])}
    assert [t for t, body in sections.items() if note in body] == ["Table 3", "Table 4"]
    _, t3 = _rendered(["distributions"], per_unit, summary)["table3"]
    proposed = t3[(t3["distribution"] == "proposed ensemble") & (t3["machine type"] == "ToyCar")
                  & (t3["domain"] == "target")]
    assert proposed["dev AUC (paper)"].item() == _paper("table3", distribution="proposed ensemble",
                                                        machine_type="ToyCar", domain="target", metric="auc")


def test_table5_is_left_out_without_eval_labels():
    per_unit, summary = fake_results(["proposed"], parts=("dev",))
    assert sorted(_rendered(["system"], per_unit, summary)) == ["table2"]


def test_only_the_experiments_tables_and_a_missing_loss_variant_keeps_its_paper_rows():
    per_unit, summary = fake_results(["proposed", "loss_sections"])
    tables = _rendered(["losses"], per_unit, summary)
    assert sorted(tables) == ["table4"]
    _, t4 = tables["table4"]
    both = t4[t4["loss"] == "sections and file endings"]  # every network of the variant diverged: paper only
    assert len(both) == 4 and both["dev AUC (ours)"].isna().all() and both["dev AUC (paper)"].notna().all()


# --- the command end to end ----------------------------------------------------------------------------------

def _only_run_folder(base: Path) -> Path:
    folders = [p for p in base.iterdir() if p.is_dir()]
    assert len(folders) == 1
    return folders[0]


@pytest.fixture(scope="module")
def tiny_toycar(synthetic_set):
    """ToyCar only, 6 + 3 training clips and 3 + 3 test clips per section and domain, 2 s clips."""
    return synthetic_set(2021, seed=1, machine_types=("ToyCar",), n_train=6, n_target_train=3, n_test_normal=3,
                         n_test_anomaly=3, duration=2.0)


def _argv(root, out, config, *extra):
    return [str(a) for a in ["multi-distribution", "--experiment", "system", "--data-root", root, "--out", out,
                             "--quick", "--config", config, *extra]]


@pytest.fixture(scope="module")
def quick_run(tiny_toycar, tmp_path_factory):
    """One quick run: two two-head networks (ToyCar; S = 1, 2), one epoch each."""
    import run_dcase2021

    tmp = tmp_path_factory.mktemp("md2021")
    config = tmp / "settings.yaml"
    # the settings the paper leaves open set to their non-default values: the YAML must reach the network and
    # the scorer (test_quick_run_end_to_end checks both)
    config.write_text("epochs: 1\ncheckpoint_every: 1\nsubclusters: [1, 2]\n"
                      "gmm_score: mixture\nsection_gmm_data: all\nmixup_labels: linear\n")
    import json

    import subcluster_adacos.multi_distribution as md

    seen = []  # the settings of every DistributionScorer the run builds (gmm_score barely moves 128-d scores)

    class Spy(md.DistributionScorer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append({"gmm_score": self.gmm_score, "section_data": self.section_data})

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ASD_CACHE_DIR", str(tmp / "cache"))
        patch.setattr(md, "DistributionScorer", Spy)
        assert run_dcase2021.main(_argv(tiny_toycar, tmp / "runs", config)) == 0
        (tmp / "scorers.json").write_text(json.dumps(seen))
        yield tmp, config, _only_run_folder(tmp / "runs" / "2021" / "multi-distribution-system")


def _scores(run: Path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p, header=None, names=["file", "score"]).assign(name=p.name)
                      for p in sorted((run / "scores").glob("*/*.csv"))], ignore_index=True)


def _section_term_by_hand(run: Path, table: pd.DataFrame) -> np.ndarray:
    """The first term of eqs. (2)-(3) with the quick run's YAML settings, by scikit-learn alone: per score set
    (``outputs_epoch_*.npz``) and section one GaussianMixture on all of the section's normal training clips
    (``section_gmm_data: all``), S components started at the section's learned centres, 1e-3 on the diagonal;
    term = minus the mixture log-likelihood (``gmm_score: mixture``); summed over the score sets."""
    from sklearn.mixture import GaussianMixture

    sections = (table["machine_type"] + "/" + table["unit"]).to_numpy()
    train = ((table["split"] == "train") & (table["label"] == "normal")).to_numpy()
    total, n_sets = np.zeros(len(table)), 0
    for path in sorted(run.glob("units/*/outputs_epoch_*.npz")):
        with np.load(path) as data:
            x, names, centres = data["embeddings"].astype(np.float64), list(data["section_names"]), data["section_centres"]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        for section in np.unique(sections):
            rows = sections == section
            means = centres[names.index(section)].astype(np.float64)
            means /= np.linalg.norm(means, axis=1, keepdims=True)
            gmm = GaussianMixture(len(means), covariance_type="full", reg_covar=1e-3, means_init=means,
                                  random_state=0).fit(x[rows & train])
            total[rows] -= gmm.score_samples(x[rows])
        n_sets += 1
    assert n_sets == 2
    return total


def test_quick_run_end_to_end(quick_run, training_logged, tiny_toycar):
    import json

    import keras

    import subcluster_adacos.network  # noqa: F401 - registers the layers
    from asdcore.pipeline import open_data

    tmp, _, run = quick_run
    # gmm_score and section_gmm_data from the YAML reached every score set's scorer (one per snapshot)
    assert json.loads((tmp / "scorers.json").read_text()) == [{"gmm_score": "mixture", "section_data": "all"}] * 2
    # mixup_labels from the YAML reached each network's Mixup layer (the default is "max")
    for unit in ("sections_attributes_S01", "sections_attributes_S02"):
        model = keras.models.load_model(run / "units" / unit / "epoch_0001.keras")
        assert model.get_layer("mixup").label_rule == "linear"
    # target-domain decisions: the first term of eq. (3) of each test clip against the 90th percentile of the
    # same term of the section's target training clips (Sec. 2.6), recomputed by hand with the YAML's
    # gmm_score and section_gmm_data
    _, table = open_data(2021, data_root=tiny_toycar)
    first_term = _section_term_by_hand(run, table)
    thresholds = pd.read_csv(run / "thresholds" / "proposed.csv")
    names = table["path"].map(lambda p: Path(p).name).to_numpy()
    for row in thresholds[thresholds["domain"] == "target"].itertuples():
        clips = ((table["unit"] == row.unit) & (table["domain"] == "target")).to_numpy()
        train = clips & (table["split"] == "train").to_numpy()
        assert row.threshold == pytest.approx(np.percentile(first_term[train], 90), rel=1e-6)
        decisions = pd.read_csv(run / "scores" / "proposed" / f"decision_result_ToyCar_{row.unit}_target_test.csv",
                                header=None, names=["file", "decision"])
        by_name = dict(zip(names[clips], first_term[clips]))
        expected = (decisions["file"].map(by_name) > row.threshold).astype(int)
        np.testing.assert_array_equal(decisions["decision"], expected)
    for unit in training_logged(run):  # CSV log, tensorboard/, plots/training/<unit>.png
        assert {"scale", "scale_head_1", "learning_rate"} <= set(pd.read_csv(unit / "training_log.csv").columns)
    assert "mode: QUICK" in (run / "config.yaml").read_text()
    units = pd.read_csv(run / "units.csv")
    assert list(units["name"]) == ["sections_attributes_S01", "sections_attributes_S02"]
    for name in units["name"]:
        assert (run / "units" / name / "epoch_0001.keras").is_file()
        assert (run / "units" / name / "outputs_epoch_0001.npz").is_file()
    assert len(pd.read_csv(run / "models" / "score_sets.csv")) == 2 and (run / "models" / "normalizer.npz").is_file()
    system = run / "scores" / "proposed"
    for part, sections in (("dev", ("00", "01", "02")), ("eval", ("03", "04", "05"))):
        for section in sections:
            for domain in ("source", "target"):
                for kind in ("anomaly_score", "decision_result"):
                    assert (system / f"{kind}_ToyCar_section_{section}_{domain}_test.csv").is_file()
    results = pd.read_csv(run / "results.csv")
    assert (results["mode"] == "QUICK").all()
    units = results[(results["row"] == "unit") & (results["part"] == "dev") & (results["system"] == "proposed")]
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
    assert "dev AUC (ours)" in comparison and "AE dev AUC (paper)" in comparison and "eval score (paper)" in comparison
    assert "nan" not in comparison  # empty cells are written "-"
    # embedding map of a network of the ensemble (sections, source / target) and the section accuracy of
    # every network on the normal test clips
    assert [p.name for p in (run / "plots" / "embeddings").glob("*.png")] == ["ToyCar.png"]
    accuracy = pd.read_csv(run / "classification.csv")
    overall = accuracy[accuracy["machine_type"] == "all"]
    assert list(overall["network"]) == ["sections_attributes_S01 (epoch 1)", "sections_attributes_S02 (epoch 1)"]
    assert (overall["n_clips"] == 6 * 2 * 3).all() and overall["accuracy"].between(0, 1).all()
    assert "Classification accuracy of the learned networks" in comparison


def test_quick_run_confidence_and_claims(quick_run):
    """confidence.csv against the per-unit AUCs of results.csv (the Hanley-McNeil formula by hand); the single
    score sets are evaluated and the claims list names them."""
    _, _, run = quick_run
    results = pd.read_csv(run / "results.csv")
    confidence = pd.read_csv(run / "confidence.csv")
    assert {"single_S01_epoch0001", "single_S02_epoch0001", "proposed"} <= set(confidence["system"])
    units = results[(results["row"] == "unit") & (results["system"] == "proposed")]
    a, n_a, n_n = units["auc"].to_numpy(), units["n_anomaly"].to_numpy(), units["n_normal"].to_numpy()
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = np.sqrt(np.sum((a * (1 - a) + (n_a - 1) * (q1 - a * a) + (n_n - 1) * (q2 - a * a)) / (n_a * n_n))) / len(a)
    row = confidence[(confidence["system"] == "proposed") & (confidence["part"] == "all")].iloc[0]
    assert row["n_units"] == 12 and row["mean_auc"] == pytest.approx(a.mean())
    assert row["ci_low"] == pytest.approx(max(0.0, a.mean() - 1.96 * se))
    comparison = (run / "comparison.md").read_text()
    assert "## Mean AUC with 95 % confidence interval" in comparison and "## Claims of the paper" in comparison
    assert "each single network / checkpoint (Sec. 2.5)**:" in comparison and "single_S02_epoch0001" in comparison


def test_units_are_named_and_seeded_by_name_and_assemble_needs_only_their_folders(quick_run, tiny_toycar):
    """--plan lists the networks (seed = seed_for(--seed, name), whatever else the run trains); a job array
    trains them one by one in any order (train-unit), and assemble, in a fresh context that knows only the
    unit folders, gives the scores of the one-process run."""
    import run_dcase2021
    from asdcore.experiment import seed_for

    tmp, config, serial = quick_run
    assert run_dcase2021.main(_argv(tiny_toycar, tmp / "array", config, "--plan")) == 0
    run = _only_run_folder(tmp / "array" / "2021" / "multi-distribution-system")
    units = pd.read_csv(run / "units.csv")
    assert list(units["name"]) == ["sections_attributes_S01", "sections_attributes_S02"]
    assert list(units["seed"]) == [seed_for(0, name) for name in units["name"]]
    assert not (run / "results.csv").exists()
    for index in reversed(range(len(units))):
        assert run_dcase2021.main(["train-unit", str(run), "--index", str(index)]) == 0
    assert run_dcase2021.main(["assemble", str(run)]) == 0
    ours, theirs = _scores(run), _scores(serial)
    assert list(ours["file"]) == list(theirs["file"])
    np.testing.assert_allclose(ours["score"], theirs["score"], rtol=1e-6)
    # a run with other networks gives this one the same seed; overrides are not labelled paper settings
    argv = [a for a in _argv(tiny_toycar, tmp / "other", config, "--plan", "--subclusters", "2,4", "--epochs", "3")
            if a != "--quick"]
    assert run_dcase2021.main(argv) == 0
    other = _only_run_folder(tmp / "other" / "2021" / "multi-distribution-system")
    assert pd.read_csv(other / "units.csv").set_index("name")["seed"]["sections_attributes_S02"] == units["seed"][1]
    label = yaml.safe_load((other / "config.yaml").read_text())["settings_label"]
    assert label.startswith("not the paper's settings: ") and "epochs = 3 (paper: 400; command line)" in label
    assert "subclusters = [2, 4] (paper: [1, 2, 4, 8, 16]; command line)" in label
    assert f"checkpoint_every = 1 (paper: 100; --config {config})" in label


def test_each_unit_trains_with_its_own_seed_so_shuffles_and_mixup_draws_differ(tiny_toycar, tmp_path, monkeypatch):
    """train_unit hands each network its unit's seed (seed_for(--seed, name)), down to the trainer: two units'
    first-epoch shuffles and mixup draws (the real data pipeline and Mixup layer, fed the seeds the trainer
    received) differ. Sharing one seed (e.g. the run's --seed) makes them equal and fails this test."""
    import logging
    from types import SimpleNamespace

    import subcluster_adacos.training as training
    from asdcore.experiment import seed_for
    from asdcore.pipeline import open_data
    from asdcore.runner import RunContext
    from subcluster_adacos.experiments_2021 import METHOD
    from subcluster_adacos.layers import Mixup
    from subcluster_adacos.multi_distribution import TrainingClasses

    _, table = open_data(2021, data_root=tiny_toycar)
    classes = TrainingClasses.from_table(table)
    ctx = SimpleNamespace(seed=7, run=SimpleNamespace(path=tmp_path), table=table, log=logging.getLogger("test"),
                          config=MultiDistributionConfig().quick(),
                          state={"classes": classes, "view": np.zeros((len(table), 4, 3), np.float32),
                                 "experiments": ["losses"]})
    ctx.seed_for = lambda *names: RunContext.seed_for(ctx, *names)
    ctx.unit = lambda name, spec=None: RunContext.unit(ctx, name, spec)
    received = {}

    def trainer(features, *args, seed=0, **kwargs):
        received[len(received)] = seed
        return None, {"diverged": True, "snapshots": {}}

    monkeypatch.setattr(training, "train_model", trainer)
    monkeypatch.setattr(training, "train_multi_head_model", trainer)
    units = [u for u in METHOD.units(ctx) if u.spec["n_subclusters"] == 1]
    assert [u.name for u in units] == ["sections_attributes_S01", "sections_S01"]
    for unit in units:
        unit.folder.mkdir(parents=True)
        METHOD.train_unit(ctx, unit)
    seeds = [received[0], received[1]]
    assert seeds == [seed_for(7, u.name) for u in units]
    n = int(classes.rows.sum())
    orders = [np.concatenate(list(training._index_batches(n, 8, True, s, False).as_numpy_iterator())) for s in seeds]
    draws = [np.asarray(Mixup(seed=s).mixing_weights(16)) for s in seeds]
    assert not np.array_equal(orders[0], orders[1]) and not np.allclose(draws[0], draws[1])


@pytest.mark.parametrize("variant", [BOTH_HEADS, SECTIONS_ONLY])
def test_mixup_labels_of_a_yaml_file_reach_the_networks_mixup_layer(variant, tiny_toycar, tmp_path, monkeypatch):
    """``mixup_labels: max`` in a --config file (max is also the 2021 default, but not the trainer's nor the
    layer's default, "linear") builds each variant's network with a max-label Mixup; the end-to-end run sets
    "linear" (not the 2021 default) and checks its saved networks, so both directions are covered."""
    import subcluster_adacos.training as training
    from asdcore.experiment import resolve_config
    from asdcore.pipeline import open_data
    from subcluster_adacos.multi_distribution import TrainingClasses, train_network

    settings = tmp_path / "settings.yaml"
    settings.write_text("mixup_labels: max\n")
    config = resolve_config(MultiDistributionConfig().quick(), settings).check()
    _, table = open_data(2021, data_root=tiny_toycar)
    classes = TrainingClasses.from_table(table)
    built = []
    monkeypatch.setattr(training, "_fit", lambda model, *args, **kwargs: (built.append(model), {}))
    features = np.zeros((int(classes.rows.sum()), 313, 128), np.float32)
    train_network(variant, features, classes, config.training(1))
    assert built[0].get_layer("mixup").label_rule == "max"
