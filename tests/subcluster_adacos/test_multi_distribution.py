"""Multiple distributions (Wilkinghoff 2021): classes, eqs. (2)-(4), thresholds, ensembles, the two-head network.

Every expected value is computed here independently: Gaussians by hand with numpy and
``scipy.stats.multivariate_normal``, percentiles with ``numpy.percentile``.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy.stats import multivariate_normal  # noqa: E402

from asdcore.errors import ASDError  # noqa: E402
from asdcore.layouts import parse_name_2021  # noqa: E402
from subcluster_adacos.multi_distribution import (  # noqa: E402
    BOTH_HEADS,
    SECTIONS_ONLY,
    DistributionScorer,
    ScoreSet,
    TemporalMaxScorer,
    TrainingClasses,
    attribute_keys,
    choose_variants_on_dev,
    combine_terms,
    decide,
    decision_thresholds,
    head_centres,
    paper_variants,
    score_network,
    section_keys,
    select_by_type,
    sum_score_sets,
)
from subcluster_adacos.network import SplitColumns, build_multi_head_training_model, head_layer  # noqa: E402

REG = 1e-3


def clip_table(rows):
    """A clip table from (machine_type, part, split_folder, file name) with the real name grammar."""
    records = []
    for machine_type, part, folder, name in rows:
        fields = parse_name_2021(name, part, folder)
        records.append({"path": f"/data/{part}/{machine_type}/{folder}/{name}", "file": name, "year": 2021,
                        "part": part, "machine_type": machine_type, **fields})
    return pd.DataFrame(records)


# --- classes from real DCASE 2021 file names ----------------------------------------------------------------

def test_classes_from_real_dcase2021_names():
    table = clip_table([
        ("fan", "dev", "train", "section_00_source_train_normal_0001_strength_1_ambient.wav"),
        ("fan", "dev", "train", "section_00_source_train_normal_0002_strength_2_ambient.wav"),
        ("fan", "dev", "train", "section_00_target_train_normal_0000_strength_3_ambient.wav"),
        ("ToyCar", "dev", "train", "section_01_source_train_normal_0003_car_A1_spd_28V_mic_1_noise_1.wav"),
        ("ToyCar", "eval", "train", "section_03_source_train_normal_0000_car_B2_spd_31V_mic_1_noise_1.wav"),
        ("gearbox", "dev", "train", "section_02_target_train_normal_0002_volt_1.3_wt_30.wav"),
        ("fan", "dev", "train", "section_00_source_train_normal_0004_strength_1_ambient.wav"),
        ("fan", "dev", "target_test", "section_00_target_test_anomaly_0042.wav"),
        ("ToyCar", "eval", "source_test", "section_03_source_test_0007.wav"),
    ])
    assert list(section_keys(table)[:6]) == ["fan/section_00", "fan/section_00", "fan/section_00",
                                             "ToyCar/section_01", "ToyCar/section_03", "gearbox/section_02"]
    assert list(attribute_keys(table)[:6]) == [
        "fan/section_00/strength_1_ambient", "fan/section_00/strength_2_ambient",
        "fan/section_00/strength_3_ambient", "ToyCar/section_01/car_A1_spd_28V_mic_1_noise_1",
        "ToyCar/section_03/car_B2_spd_31V_mic_1_noise_1", "gearbox/section_02/volt_1.3_wt_30"]
    classes = TrainingClasses.from_table(table)
    # training clips of both parts and both domains; test clips (no attributes) are no class
    assert list(classes.rows) == [True] * 7 + [False] * 2
    assert list(classes.section_names) == ["ToyCar/section_01", "ToyCar/section_03", "fan/section_00",
                                           "gearbox/section_02"]
    assert classes.n_attributes == 6
    names = classes.attribute_names
    assert [names[i] for i in classes.attribute_labels] == list(attribute_keys(table)[:7])
    assert [classes.section_names[i] for i in classes.section_labels] == list(section_keys(table)[:7])


# --- hand-made Gaussian data ---------------------------------------------------------------------------------

def toy_embeddings(seed=0, dim=3):
    """Two sections of one machine type, two source attributes each, three target clips each, test clips."""
    rng = np.random.default_rng(seed)
    rows, emb = [], []
    attribute_means = {("section_00", "a_1"): [4, 1, 0], ("section_00", "a_2"): [1, 4, 0],
                       ("section_01", "a_1"): [0, 1, 4], ("section_01", "a_3"): [-4, 0, 1]}
    for (section, attribute), mean in attribute_means.items():
        for i in range(25):
            rows.append(("source", "train", "normal", section, attribute))
            emb.append(np.array(mean[:dim]) + rng.normal(scale=0.8, size=dim))
    for section in ("section_00", "section_01"):
        for i in range(3):
            rows.append(("target", "train", "normal", section, "t_9"))
            emb.append(rng.normal(size=dim) * 3)
        for domain in ("source", "target"):
            for label in ("normal", "anomaly"):
                for i in range(4):
                    rows.append((domain, "test", label, section, ""))
                    emb.append(rng.normal(size=dim) * 3)
    table = pd.DataFrame(rows, columns=["domain", "split", "label", "unit", "attributes"])
    table.insert(0, "machine_type", "fan")
    table.insert(1, "part", "dev")
    return table, np.array(emb, dtype=np.float64)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def gaussian_by_hand(X):
    """Maximum-likelihood Gaussian (biased covariance) plus REG on the diagonal."""
    mean = X.mean(axis=0)
    cov = (X - mean).T @ (X - mean) / len(X) + REG * np.eye(X.shape[1])
    return mean, cov


def test_eq2_and_eq3_with_single_gaussians_by_hand():
    table, emb = toy_embeddings()
    sections, attributes = section_keys(table), attribute_keys(table)
    centres = {s: unit(np.ones((1, 3))) for s in np.unique(sections)}
    attr_centres = {a: unit(np.ones((1, 3))) for a in np.unique(attributes)}
    scorer = DistributionScorer(reg_covar=REG).fit(emb, table, centres, attr_centres)
    terms = scorer.terms(emb, table)
    x = unit(emb)
    source = ((table["split"] == "train") & (table["domain"] == "source")).to_numpy()
    target = ((table["split"] == "train") & (table["domain"] == "target")).to_numpy()
    expected = {k: np.empty(len(table)) for k in ("section", "attribute", "target")}
    for section in np.unique(sections):
        rows = sections == section
        mean, cov = gaussian_by_hand(x[source & rows])
        expected["section"][rows] = -multivariate_normal(mean, cov).logpdf(x[rows])  # one component: weight 1
        per_attribute = []
        for attribute in np.unique(attributes[source & rows]):
            mean, cov = gaussian_by_hand(x[source & (attributes == attribute)])
            per_attribute.append(multivariate_normal(mean, cov).logpdf(x[rows]))
        assert len(per_attribute) == 2  # A(s): only the attributes present in the section's source clips
        expected["attribute"][rows] = -np.max(per_attribute, axis=0)
        # eq. (3): three components collapse onto the three target clips, covariance REG * I, weights 1/3
        clips = x[target & rows]
        per_clip = [np.log(1 / 3) + multivariate_normal(t, REG * np.eye(3)).logpdf(x[rows]) for t in clips]
        expected["target"][rows] = -np.max(per_clip, axis=0)
    for name in ("section", "attribute", "target"):
        np.testing.assert_allclose(terms[name], expected[name], rtol=1e-6, atol=1e-6, err_msg=name)
    # the target term is a scaled squared distance to the closest target clip (the paper's remark)
    rows = sections == "fan/section_00"
    clips = x[target & rows]
    distance = np.min(((x[rows][:, None, :] - clips[None]) ** 2).sum(-1), axis=1)
    constant = -np.log(1 / 3) + 1.5 * np.log(2 * np.pi * REG)
    np.testing.assert_allclose(terms["target"][rows], distance / (2 * REG) + constant, rtol=1e-6)


@pytest.mark.parametrize("component_weights", [True, False])
def test_eq2_with_two_components_against_scipy(component_weights):
    table, emb = toy_embeddings(seed=1)
    sections, attributes = section_keys(table), attribute_keys(table)
    rng = np.random.default_rng(2)
    centres = {s: unit(rng.normal(size=(2, 3))) for s in np.unique(sections)}
    attr_centres = {a: unit(rng.normal(size=(2, 3))) for a in np.unique(attributes)}
    scorer = DistributionScorer(REG, component_weights).fit(emb, table, centres, attr_centres)
    terms = scorer.terms(emb, table)
    x = unit(emb)

    def max_log_p(backend, X):
        gmm = backend.gmm_
        assert gmm.n_components == 2 and gmm.reg_covar == REG and gmm.covariance_type == "full"
        logs = [multivariate_normal(m, c).logpdf(X) + (np.log(w) if component_weights else 0.0)
                for m, c, w in zip(gmm.means_, gmm.covariances_, gmm.weights_)]
        return np.max(logs, axis=0)

    for section in np.unique(sections):
        rows = sections == section
        expected = -max_log_p(scorer.section_gmms_[section], x[rows])
        np.testing.assert_allclose(terms["section"][rows], expected, rtol=1e-6, atol=1e-6)
        expected = -np.max([max_log_p(scorer.attribute_gmms_[a], x[rows])
                            for a in scorer.attributes_of_section_[section]], axis=0)
        np.testing.assert_allclose(terms["attribute"][rows], expected, rtol=1e-6, atol=1e-6)


def test_mixture_log_likelihood_setting_against_scikit_learn():
    """gmm_score="mixture" (the author's DCASE 2022 code): every term is minus the full mixture
    log-likelihood, scikit-learn's ``score_samples`` of a GMM fitted here with the same start."""
    from sklearn.mixture import GaussianMixture

    table, emb = toy_embeddings(seed=1)
    sections, attributes = section_keys(table), attribute_keys(table)
    rng = np.random.default_rng(2)
    centres = {s: unit(rng.normal(size=(2, 3))) for s in np.unique(sections)}
    attr_centres = {a: unit(rng.normal(size=(2, 3))) for a in np.unique(attributes)}
    terms = DistributionScorer(REG, gmm_score="mixture").fit(emb, table, centres, attr_centres).terms(emb, table)
    component = DistributionScorer(REG).fit(emb, table, centres, attr_centres).terms(emb, table)
    x = unit(emb)
    source = ((table["split"] == "train") & (table["domain"] == "source")).to_numpy()
    for section in np.unique(sections):
        rows = sections == section
        gmm = GaussianMixture(2, covariance_type="full", reg_covar=REG, means_init=centres[section],
                              random_state=0).fit(x[source & rows])
        np.testing.assert_allclose(terms["section"][rows], -gmm.score_samples(x[rows]), rtol=1e-6, atol=1e-6)
        # the mixture sums over components: never below the largest weighted component
        assert np.all(terms["section"][rows] <= component["section"][rows] + 1e-9)
    assert not np.allclose(terms["section"], component["section"])
    with pytest.raises(ASDError, match="gmm_score"):
        DistributionScorer(REG, gmm_score="loglik")


def test_section_gmm_on_all_clips_setting_adds_the_target_clips():
    """section_data="all" (the author's DCASE 2022 code) fits the section GMM on the source and target
    clips of the section; the default (the paper's "normal data of the source domain") on source only."""
    table, emb = toy_embeddings()
    sections = section_keys(table)
    centres = {s: unit(np.ones((1, 3))) for s in np.unique(sections)}
    x = unit(emb)
    train = (table["split"] == "train").to_numpy()
    source = train & (table["domain"] == "source").to_numpy()
    for data, selected in (("source", source), ("all", train)):
        scorer = DistributionScorer(REG, section_data=data).fit(emb, table, centres, None)
        terms = scorer.terms(emb, table)
        for section in np.unique(sections):
            rows = sections == section
            mean, cov = gaussian_by_hand(x[selected & rows])
            np.testing.assert_allclose(terms["section"][rows], -multivariate_normal(mean, cov).logpdf(x[rows]),
                                       rtol=1e-6, atol=1e-6, err_msg=data)
    with pytest.raises(ASDError, match="section_gmm_data"):
        DistributionScorer(REG, section_data="target")


def test_section_only_network_starts_attribute_gmms_at_the_section_centres():
    table, emb = toy_embeddings(seed=3)
    centres = {s: unit(np.array([[1.0, 0, 0], [0, 1.0, 0]])) for s in np.unique(section_keys(table))}
    scorer = DistributionScorer(REG).fit(emb, table, centres, None)
    assert all(g.gmm_.n_components == 2 for g in scorer.attribute_gmms_.values())
    np.testing.assert_allclose(scorer.attribute_gmms_["fan/section_00/a_1"].means_init, centres["fan/section_00"])
    with pytest.raises(ASDError, match="no learned centres"):
        DistributionScorer(REG).fit(emb, table, centres, {"fan/section_00/a_1": centres["fan/section_00"]})


def test_a_class_with_one_clip_gets_a_gaussian_at_that_clip():
    table, emb = toy_embeddings()
    keep = ~((table["attributes"] == "a_2").to_numpy() & (np.arange(len(table)) % 25 != 0))
    table, emb = table[keep].reset_index(drop=True), emb[keep]
    centres = {s: unit(np.ones((1, 3))) for s in np.unique(section_keys(table))}
    scorer = DistributionScorer(REG).fit(emb, table, centres, None)
    gmm = scorer.attribute_gmms_["fan/section_00/a_2"].gmm_
    single = unit(emb[(table["attributes"] == "a_2").to_numpy()])
    np.testing.assert_allclose(gmm.means_[0], single[0], atol=1e-12)
    np.testing.assert_allclose(gmm.covariances_[0], REG * np.eye(3), atol=1e-12)


def test_eq4_temporal_maximum_term_by_hand():
    table, tmax = toy_embeddings(seed=4)
    valve = table.copy()
    valve["machine_type"] = "valve"
    both = pd.concat([valve, table], ignore_index=True)
    both_tmax = np.concatenate([tmax, tmax + 1.0])
    term = TemporalMaxScorer(("valve",), REG).fit(both_tmax, both).term(both_tmax, both)
    is_valve = (both["machine_type"] == "valve").to_numpy()
    np.testing.assert_array_equal(term[~is_valve], 0.0)
    sections, attributes = section_keys(both), attribute_keys(both)
    source = ((both["split"] == "train") & (both["domain"] == "source")).to_numpy() & is_valve
    for section in ("valve/section_00", "valve/section_01"):
        rows = sections == section
        log_p = []
        for attribute in np.unique(attributes[source & rows]):
            mean, cov = gaussian_by_hand(both_tmax[source & (attributes == attribute)])  # no L2 normalisation
            log_p.append(multivariate_normal(mean, cov).logpdf(both_tmax[rows]))
        np.testing.assert_allclose(term[rows], -np.max(log_p, axis=0), rtol=1e-6)


def test_combine_terms_follows_eqs_2_to_4_and_sec_2_6():
    table, _ = toy_embeddings()
    rng = np.random.default_rng(5)
    terms = {k: rng.normal(size=len(table)) for k in ("section", "attribute", "target")}
    tmax = rng.normal(size=len(table))
    source = (table["domain"] == "source").to_numpy()
    test = (table["split"] == "test").to_numpy()
    result = combine_terms(terms, table, tmax)
    expected = np.where(source, terms["section"] + terms["attribute"] + tmax, terms["section"] + terms["target"])
    np.testing.assert_allclose(result.score, expected)
    np.testing.assert_allclose(result.decision, np.where(source, expected, terms["section"]))
    full = combine_terms(terms, table, tmax, target_decision="full")
    np.testing.assert_allclose(full.decision, np.where(source | test, expected, terms["section"]))
    np.testing.assert_allclose(combine_terms(terms, table).score[source],
                               (terms["section"] + terms["attribute"])[source])
    with pytest.raises(ASDError):
        combine_terms(terms, table, target_decision="second")


# --- thresholds and decisions (Sec. 2.6), ensembles (Sec. 2.5) ----------------------------------------------

def test_threshold_is_the_90th_percentile_of_the_normal_training_scores():
    table, _ = toy_embeddings()
    scores = np.random.default_rng(6).normal(size=len(table))
    thresholds = decision_thresholds(scores, table, 90)
    assert len(thresholds) == 4  # 2 sections x 2 domains
    for row in thresholds.itertuples():
        rows = ((table["unit"] == row.unit) & (table["domain"] == row.domain) & (table["split"] == "train")).to_numpy()
        values = np.sort(scores[rows])
        # numpy's default (linear) percentile, by hand: position 0.9 * (n - 1) between two sorted values
        position = 0.9 * (len(values) - 1)
        low = int(np.floor(position))
        by_hand = values[low] + (position - low) * (values[min(low + 1, len(values) - 1)] - values[low])
        assert row.threshold == pytest.approx(by_hand)
        assert row.n_train == len(values)
    decisions = decide(scores, table, thresholds)
    test = (table["split"] == "test").to_numpy()
    assert np.isnan(decisions[~test]).all()
    for i in np.flatnonzero(test):
        t = thresholds[(thresholds["unit"] == table["unit"][i]) & (thresholds["domain"] == table["domain"][i])]
        assert decisions[i] == float(scores[i] > t["threshold"].item())


def test_ensemble_sums_the_score_sets():
    rng = np.random.default_rng(7)
    sets = [ScoreSet(rng.normal(size=5), rng.normal(size=5),
                     {k: rng.normal(size=5) for k in ("section", "attribute", "target", "tmax")}) for _ in range(20)]
    total = sum_score_sets(sets)
    assert total.n_sets == 20
    np.testing.assert_allclose(total.score, np.sum([s.score for s in sets], axis=0))
    np.testing.assert_allclose(total.decision, np.sum([s.decision for s in sets], axis=0))
    for name in ("section", "attribute", "target", "tmax"):
        np.testing.assert_allclose(total.terms[name], np.sum([s.terms[name] for s in sets], axis=0))
    with pytest.raises(ASDError):
        sum_score_sets([])


def test_temporal_max_term_per_score_set_or_once_in_the_ensemble():
    """tmax_term "per_set" (eq. (4) in each of the n score sets: n times the term in the sum) against "once"
    (the sum of the sets without it, plus the term once): on source clips they differ by (n - 1) x the term,
    on target clips not at all; decisions follow the scores on the source domain."""
    from subcluster_adacos.multi_distribution import add_temporal_max

    table, _ = toy_embeddings()
    rng = np.random.default_rng(8)
    source = (table["domain"] == "source").to_numpy()
    tmax = rng.normal(size=len(table))
    term_sets = [{k: rng.normal(size=len(table)) for k in ("section", "attribute", "target")} for _ in range(4)]
    per_set = sum_score_sets([combine_terms(t, table, tmax) for t in term_sets])
    once = add_temporal_max(sum_score_sets([combine_terms(t, table) for t in term_sets]), tmax, table)
    by_hand = np.sum([np.where(source, t["section"] + t["attribute"], t["section"] + t["target"])
                      for t in term_sets], axis=0)
    np.testing.assert_allclose(once.score, by_hand + np.where(source, tmax, 0.0))
    np.testing.assert_allclose(per_set.score, by_hand + np.where(source, 4 * tmax, 0.0))
    np.testing.assert_allclose(once.decision[source], once.score[source])
    np.testing.assert_allclose(once.decision[~source], per_set.decision[~source])
    np.testing.assert_allclose(once.terms["tmax"], np.where(source, tmax, 0.0))
    assert once.n_sets == per_set.n_sets == 4
    assert add_temporal_max(per_set, None, table) is per_set


def test_variant_per_machine_type():
    choice = paper_variants(["ToyCar", "ToyTrain", "fan", "gearbox", "pump", "slider", "valve"])
    assert choice == {"ToyCar": BOTH_HEADS, "ToyTrain": BOTH_HEADS, "pump": BOTH_HEADS, "slider": BOTH_HEADS,
                      "fan": SECTIONS_ONLY, "gearbox": SECTIONS_ONLY, "valve": SECTIONS_ONLY}
    table = pd.DataFrame({"machine_type": ["fan", "fan", "pump", "pump"], "part": "dev", "split": "test",
                          "unit": "section_00", "domain": "source", "label": ["normal", "anomaly"] * 2})
    both = ScoreSet(np.array([0.0, 1.0, 1.0, 0.0]), np.zeros(4), {"section": np.arange(4.0)}, 20)
    sections = ScoreSet(np.array([1.0, 0.0, 0.0, 1.0]), np.ones(4), {"section": -np.arange(4.0)}, 20)
    sets = {BOTH_HEADS: both, SECTIONS_ONLY: sections}
    chosen = select_by_type(table, sets, {"fan": SECTIONS_ONLY, "pump": BOTH_HEADS})
    np.testing.assert_array_equal(chosen.score, [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(chosen.decision, [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(chosen.terms["section"], [0.0, -1.0, 2.0, 3.0])
    # on the dev set: fan is ranked perfectly by BOTH_HEADS, pump by SECTIONS_ONLY
    picked, scores = choose_variants_on_dev(table, {v: s.score for v, s in sets.items()},
                                            paper_variants(["fan", "pump"]))
    assert picked == {"fan": BOTH_HEADS, "pump": SECTIONS_ONLY}
    assert len(scores) == 4 and scores["dev_score"].max() == pytest.approx(1.0)


# --- the two-head network -----------------------------------------------------------------------------------

TINY = (32, 16)


def two_label_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    sections = np.repeat(np.arange(3), n // 3)
    attributes = np.tile(np.arange(4), n // 4)
    x = rng.normal(size=(n,) + TINY).astype("float32")
    for c in range(3):
        x[sections == c, :, 4 * c:4 * c + 4] += 2.0
    for c in range(4):
        x[attributes == c, 8 * c:8 * c + 8, :] += 1.5
    return x, np.eye(3, dtype="float32")[sections], np.eye(4, dtype="float32")[attributes]


def test_one_mixup_mixes_both_label_sets_with_the_same_lambda():
    keras.utils.set_random_seed(0)
    x, y1, y2 = two_label_data(n=12)
    model = build_multi_head_training_model([3, 4], 2, input_shape=TINY, embedding_dim=8, seed=4)
    # the mixed features (the mixup layer's first output) and both mixed label sets, from one call
    mixed = keras.Model(model.inputs, [model.get_layer("mixup").output[0], model.get_layer("split_labels").output])
    xm, (m1, m2) = mixed([x, y1, y2], training=True)
    xm, m1, m2 = (keras.ops.convert_to_numpy(t) for t in (xm, m1, m2))
    n = len(x)
    checked = 0
    for i in range(n):
        j = n - 1 - i  # the partner: the batch reversed
        a1, b1 = np.argmax(y1[i]), np.argmax(y1[j])
        a2, b2 = np.argmax(y2[i]), np.argmax(y2[j])
        if a1 != b1 and a2 != b2:
            lam = m1[i, a1]
            assert lam == pytest.approx(m2[i, a2], abs=1e-6)  # λ_i in both label sets
            np.testing.assert_allclose(xm[i], lam * x[i] + (1 - lam) * x[j], atol=1e-5)  # and in the features
            checked += 1
    assert checked >= n // 2
    np.testing.assert_allclose(m1.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(m2.sum(axis=1), 1.0, atol=1e-6)
    assert [layer.name for layer in model.layers if layer.name.startswith(("head", "loss"))] == [
        "head", "head_1", "loss", "loss_1"]


def test_two_head_model_trains_and_both_scales_update(tmp_path):
    keras.utils.set_random_seed(0)
    x, y1, y2 = two_label_data()
    model = build_multi_head_training_model([3, 4], 2, input_shape=TINY, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), run_eagerly=True)
    heads = [model.get_layer("head"), model.get_layer("head_1")]
    initial = [float(h.scale) for h in heads]
    assert initial == pytest.approx([np.sqrt(2) * np.log(3 * 2 - 1), np.sqrt(2) * np.log(4 * 2 - 1)])
    losses = model.fit([x, y1, y2], batch_size=8, epochs=3, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0]
    for head, before in zip(heads, initial):
        scale = float(head.scale)
        assert np.isfinite(scale) and scale > 0 and scale != before
    # saved and loaded with its custom layers; the same embeddings and centres afterwards
    path = tmp_path / "two_heads.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("split_labels"), SplitColumns)
    classes = TrainingClasses(np.ones(24, bool), np.array(["s0", "s1", "s2"]), np.array(["a0", "a1", "a2", "a3"]),
                              np.zeros(24, int), np.zeros(24, int))
    sections, attributes = head_centres(loaded, classes)
    assert sorted(sections) == ["s0", "s1", "s2"] and sorted(attributes) == ["a0", "a1", "a2", "a3"]
    assert attributes["a1"].shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(attributes["a1"], axis=1), 1.0)
    np.testing.assert_allclose(sections["s2"][1], keras.ops.convert_to_numpy(head_layer(model).centers)[:, 5]
                               / np.linalg.norm(keras.ops.convert_to_numpy(head_layer(model).centers)[:, 5]),
                               rtol=1e-6)


def test_unequal_loss_weights_scale_the_head_losses():
    x, y1, y2 = two_label_data(n=12)
    losses = {}
    for weights in ((1.0, 1.0), (1.0, 0.0), (0.0, 1.0)):
        keras.utils.set_random_seed(0)
        model = build_multi_head_training_model([3, 4], 1, mixup=False, input_shape=TINY, l2=0.0,
                                                loss_weights=weights)
        model([x, y1, y2], training=False)
        losses[weights] = sum(float(v) for v in model.losses if v.shape == ())
    assert losses[(1.0, 1.0)] == pytest.approx(losses[(1.0, 0.0)] + losses[(0.0, 1.0)], rel=1e-5)


def test_score_network_gives_a_finite_score_set():
    keras.utils.set_random_seed(0)
    table, _ = toy_embeddings()
    table = table[table["unit"] == "section_00"].reset_index(drop=True)
    classes = TrainingClasses.from_table(table)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(len(table),) + TINY).astype("float32")
    model = build_multi_head_training_model([classes.n_sections + 1, classes.n_attributes], 2, input_shape=TINY)
    with pytest.raises(ASDError, match="section head has 2 classes"):
        score_network(model, features, table, classes)
    model = build_multi_head_training_model([2, classes.n_attributes], 2, input_shape=TINY)
    classes.section_names = np.array(["fan/section_00", "fan/section_99"])
    result = score_network(model, features, table, classes, batch_size=16)
    assert np.all(np.isfinite(result.score)) and result.n_sets == 1
    source = (table["domain"] == "source").to_numpy()
    np.testing.assert_allclose(result.score[source],
                               (result.terms["section"] + result.terms["attribute"])[source])
