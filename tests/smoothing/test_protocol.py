"""The protocol of Fujimura et al. (IV-A, Tables I-II, Fig. 5) with hand-made data: the training split,
the evaluation statistic, the smoothing grid, the selection on sections 00-02 / 03-05, Fig. 5's draws."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import hmean
from sklearn.metrics import roc_auc_score

from asdcore.errors import ASDError
from smoothing import protocol as P


# ----------------------------------------------------------------------------------------- helpers
def train_table(sizes, seed=0):
    """Training clips: sizes = {(part, type, section): (n_source, n_target)}, plus one test clip each."""
    rows = []
    for (part, mtype, unit), (n_src, n_tgt) in sizes.items():
        for domain, n in (("source", n_src), ("target", n_tgt)):
            for i in range(n):
                rows.append(dict(part=part, machine_type=mtype, unit=unit, domain=domain, split="train",
                                 label="normal", file=f"{unit}_{domain}_train_normal_{i:04d}_a_1.wav"))
        rows.append(dict(part=part, machine_type=mtype, unit=unit, domain="source", split="test", label="normal",
                         file=f"{unit}_source_test_normal_0000.wav"))
    return pd.DataFrame(rows)


def labelled_tests(spec, seed=0):
    """Labelled test clips: spec = {(part, type, section): n per (domain, label)}."""
    rng = np.random.default_rng(seed)
    rows = []
    for (part, mtype, unit), n in spec.items():
        for domain in ("source", "target"):
            for label in ("normal", "anomaly"):
                for i in range(n):
                    rows.append(dict(part=part, machine_type=mtype, unit=unit, domain=domain, split="test",
                                     label=label, file=f"{unit}_{domain}_test_{label}_{i:04d}.wav"))
    table = pd.DataFrame(rows)
    return table.iloc[rng.permutation(len(table))].reset_index(drop=True)


# ------------------------------------------------------------------------------------------- split
def test_split_proportions():
    table = train_table({("dev", "fan", "section_00"): (20, 3), ("dev", "fan", "section_01"): (7, 3),
                         ("eval", "fan", "section_03"): (1000, 3), ("dev", "pump", "section_00"): (2, 1)})
    role = P.training_split(table, 0.85, 2, seed=0)
    assert set(role[table["split"] == "test"]) == {""}
    for (part, unit, mtype), n_src, n_fit in ((("dev", "section_00", "fan"), 20, 17),
                                              (("dev", "section_01", "fan"), 7, 6),   # 5.95 -> 6
                                              (("eval", "section_03", "fan"), 1000, 850),
                                              (("dev", "section_00", "pump"), 2, 2)):  # 1.7 -> 2
        group = (table["part"] == part) & (table["unit"] == unit) & (table["machine_type"] == mtype) & \
                (table["split"] == "train")
        src = group & (table["domain"] == "source")
        tgt = group & (table["domain"] == "target")
        assert (role[src] == "fit").sum() == n_fit and (role[src] == "val").sum() == n_src - n_fit
        n_tgt = int(tgt.sum())
        assert (role[tgt] == "fit").sum() == min(2, n_tgt) and (role[tgt] == "val").sum() == n_tgt - min(2, n_tgt)


def test_split_is_deterministic_and_independent_of_order_and_other_sections():
    sizes = {("dev", "fan", "section_00"): (40, 3), ("dev", "fan", "section_01"): (40, 3),
             ("dev", "valve", "section_00"): (40, 3)}
    table = train_table(sizes)
    role = pd.Series(P.training_split(table, seed=3), index=table["machine_type"] + table["file"])
    again = pd.Series(P.training_split(table, seed=3), index=role.index)
    pd.testing.assert_series_equal(role, again)
    other_seed = pd.Series(P.training_split(table, seed=4), index=role.index)
    assert (other_seed != role).any()
    shuffled = table.sample(frac=1.0, random_state=1).reset_index(drop=True)
    role_shuffled = pd.Series(P.training_split(shuffled, seed=3), index=shuffled["machine_type"] + shuffled["file"])
    pd.testing.assert_series_equal(role_shuffled.loc[role.index], role)
    smaller = table[table["machine_type"] == "fan"].reset_index(drop=True)  # valve removed
    role_smaller = pd.Series(P.training_split(smaller, seed=3), index=smaller["machine_type"] + smaller["file"])
    pd.testing.assert_series_equal(role_smaller, role.loc[role_smaller.index])


def test_split_bad_input():
    table = train_table({("dev", "fan", "section_00"): (4, 2)})
    with pytest.raises(ASDError):
        P.training_split(table, source_fraction=0.0)
    with pytest.raises(ASDError):
        P.training_split(table[table["split"] == "test"])


# -------------------------------------------------------------------------------------- evaluation
def test_unit_evaluator_matches_sklearn_and_hmean():
    table = labelled_tests({("eval", "fan", "section_03"): 9, ("eval", "fan", "section_04"): 7,
                        ("eval", "pump", "section_03"): 8})
    rng = np.random.default_rng(0)
    scores = rng.normal(size=len(table)) + (table["label"] == "anomaly") * 0.7
    scores[:10] = np.round(scores[:10], 1)  # some ties
    evaluator = P.UnitEvaluator(table)
    got = evaluator.score(scores)
    y = (table["label"] == "anomaly").to_numpy()
    by_type = {}
    for (mtype, unit, domain), idx in table.groupby(["machine_type", "unit", "domain"]).indices.items():
        a = roc_auc_score(y[idx], scores[idx])
        p = roc_auc_score(y[idx], scores[idx], max_fpr=0.1)
        by_type.setdefault(mtype, []).extend([a, p])
    for mtype, values in by_type.items():
        assert got[mtype] == pytest.approx(hmean(values), rel=1e-12)
    assert got["all"] == pytest.approx(hmean(sum(by_type.values(), [])), rel=1e-12)


def test_unit_evaluator_needs_both_labels():
    table = labelled_tests({("dev", "fan", "section_00"): 2})
    with pytest.raises(ASDError):
        P.UnitEvaluator(table[table["label"] == "normal"])
    unknown = table.assign(label="unknown")
    with pytest.raises(ASDError):
        P.UnitEvaluator(unknown)


# --------------------------------------------------------------------------------------- smoothing
def test_k_grid():
    assert P.k_grid() == [2 ** i for i in range(1, 12)]  # 2 ... 2048 (Table I), no cut at the pool size
    assert P.k_grid(k_min=64) == [64, 128, 256, 512, 1024, 2048]
    assert P.k_grid(k_min=1, k_max=8) == [1, 2, 4, 8]
    assert P.k_grid(k_min=3, k_max=4) == [4]
    with pytest.raises(ASDError):
        P.k_grid(k_min=0)
    with pytest.raises(ASDError):
        P.k_grid(k_min=5, k_max=7)


def test_saturated_settings_by_counting_neighbours():
    # pool a: 5 source + 3 target items; pool b: 4 source items only
    pools = np.array(["a"] * 8 + ["b"] * 4)
    domains = np.array(["source"] * 5 + ["target"] * 3 + ["source"] * 4)
    ks = list(range(1, 12))
    got = P.saturated_settings(domains, pools, ks)
    for data in ("all", "source"):
        for k in ks:
            # by hand: every item's candidate count, item by item
            counts = []
            for i in range(len(pools)):
                cands = [j for j in range(len(pools)) if j != i and pools[j] == pools[i]
                         and (data == "all" or domains[j] == "source")]
                counts.append(len(cands))
            assert got[(data, k)] == (k - 1 >= max(counts)), (data, k)
    assert not got[("all", 7)] and got[("all", 8)] and got[("source", 6)] and not got[("source", 5)]
    sizes = P.pool_sizes(domains, pools)
    assert sizes.to_dict("list") == {"pool": ["a", "b"], "all": [8, 4], "source": [5, 4]}


def test_saturated_settings_leave_out_the_items_own_clip():
    """With segments grouped by clip, an item's candidates exclude its whole clip: counted by hand, and at
    saturation a_prop is one sum per clip (the segment plus every candidate outside its clip)."""
    pools = np.array(["a"] * 12 + ["b"] * 6)
    clips = np.repeat(np.arange(6), 3)  # three segments per clip; clips 0-3 in pool a, 4-5 in b
    domains = np.where(np.isin(clips, [1, 3]), "target", "source")
    ks = list(range(1, 14))
    got = P.saturated_settings(domains, pools, ks, groups=clips)
    for data in ("all", "source"):
        for k in ks:
            counts = [sum(1 for j in range(len(pools)) if pools[j] == pools[i] and clips[j] != clips[i]
                          and (data == "all" or domains[j] == "source")) for i in range(len(pools))]
            assert got[(data, k)] == (k - 1 >= max(counts)), (data, k)
    assert got[("all", 10)] and not got[("all", 9)]  # pool a: 12 segments - 3 of the own clip = 9 candidates
    rng = np.random.default_rng(4)
    X, s = rng.normal(size=(18, 3)), rng.gamma(2.0, size=18)
    smoothed = P.smooth_grid(X, s, domains, pools, clips, 6, [64], ("all",))[("all", 64)]
    for c in range(6):
        rows, others = clips == c, (pools == pools[clips == c][0]) & (clips != c)
        want = np.mean((s[rows] + s[others].sum()) / (1 + others.sum()))
        assert smoothed[c] == pytest.approx(want, rel=1e-12)


def test_saturated_grid_gives_auc_and_pauc_of_exactly_one_half():
    """A saturated K must not rank clips by rounding noise (issue 11): AUC == pAUC == 0.5 exactly, by the
    evaluator and by scikit-learn."""
    rng = np.random.default_rng(3)
    n = 400
    table = pd.DataFrame({"machine_type": "fan", "unit": "section_00",
                          "domain": np.where(np.arange(n) % 4 < 2, "source", "target"),
                          "label": np.where(np.arange(n) % 2 == 1, "anomaly", "normal")})
    y = (table["label"] == "anomaly").to_numpy()
    X = rng.normal(size=(n, 8)) + y[:, None]
    s = rng.gamma(2.0, size=n) * np.where(y, 2.0, 1.0) * 1e3
    pools = np.array(["fan/section_00"] * n)
    got = P.smooth_grid(X, s, table["domain"].to_numpy(), pools, np.arange(n), n, [512, 2048], ("all",))
    evaluator = P.UnitEvaluator(table)
    for k in (512, 2048):
        assert np.unique(got[("all", k)]).size == 1
        values = evaluator.unit_values(got[("all", k)])
        assert (values == 0.5).all(), values
        for d in ("source", "target"):
            rows = (table["domain"] == d).to_numpy()
            assert roc_auc_score(y[rows], got[("all", k)][rows]) == 0.5
            assert roc_auc_score(y[rows], got[("all", k)][rows], max_fpr=0.1) == 0.5


def eq7_by_hand(X, s, domains, k, data, groups=None):
    """Eq. (7) with loops: own score plus the k-1 most cosine-similar other items (source only if asked);
    with ``groups`` no item of the item's own group (its clip) is a neighbour."""
    out = np.empty(len(s))
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    groups = np.arange(len(s)) if groups is None else np.asarray(groups)
    for i in range(len(s)):
        cands = [j for j in range(len(s)) if groups[j] != groups[i] and (data == "all" or domains[j] == "source")]
        cands.sort(key=lambda j: (1 - Xn[i] @ Xn[j], j))
        used = cands[:k - 1]
        out[i] = (s[i] + sum(s[j] for j in used)) / (1 + len(used))
    return out


@pytest.mark.parametrize("exclude", ["clip", "item"])
@pytest.mark.parametrize("per_clip", [1, 3])
def test_smooth_grid_by_hand(per_clip, exclude):
    """Eq. (7) by loops; with segments of a clip (per_clip = 3) the default leaves the clip's own segments
    out of each segment's neighbours ("except for i": the observed sound), exclude="item" only the segment."""
    rng = np.random.default_rng(1)
    n_clips = 14
    pools_clip = np.array(["fan/section_00"] * 8 + ["fan/section_01"] * 6)
    dom_clip = np.array(["source", "target"] * 7)
    clip_index = np.repeat(np.arange(n_clips), per_clip)
    X = rng.normal(size=(len(clip_index), 4))
    s = rng.gamma(2.0, size=len(clip_index))
    pools, domains = pools_clip[clip_index], dom_clip[clip_index]
    got = P.smooth_grid(X, s, domains, pools, clip_index, n_clips, [1, 2, 4, 32], ("source", "all"),
                        exclude=exclude)
    for data in ("source", "all"):
        for k in (1, 2, 4, 32):
            items = np.empty(len(s))
            for pool in np.unique(pools):
                rows = np.flatnonzero(pools == pool)
                items[rows] = eq7_by_hand(X[rows], s[rows], domains[rows], k, data,
                                          clip_index[rows] if exclude == "clip" else None)
            want = np.array([items[clip_index == c].mean() for c in range(n_clips)])
            np.testing.assert_allclose(got[(data, k)], want, rtol=1e-12)
    np.testing.assert_allclose(got[("all", 1)], [s[clip_index == c].mean() for c in range(n_clips)])


def test_smooth_grid_with_mask_uses_observed_clips_only():
    rng = np.random.default_rng(2)
    X, s = rng.normal(size=(10, 3)), rng.gamma(2.0, size=10)
    domains, pools = np.array(["source"] * 10), np.array(["a"] * 10)
    mask = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], bool)
    got = P.smooth_grid(X, s, domains, pools, np.arange(10), 10, [4], ("all",), clip_mask=mask)[("all", 4)]
    assert np.isnan(got[~mask]).all()
    np.testing.assert_allclose(got[mask], eq7_by_hand(X[mask], s[mask], domains[mask], 4, "all"), rtol=1e-12)


# --------------------------------------------------------------------------------------- selection
def selection_case():
    """Two machine types; on dev, fan is best with ("source", 4) and pump with ("all", 2); on eval the
    other way round. Settings' scores are perfect (score = label) or uninformative (constant)."""
    table = labelled_tests({("dev", "fan", "section_00"): 4, ("dev", "pump", "section_00"): 4,
                        ("eval", "fan", "section_03"): 4, ("eval", "pump", "section_03"): 4})
    y = (table["label"] == "anomaly").to_numpy().astype(float)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=len(table)) * 0.01

    def setting(good):  # good: set of (part, type) where this setting separates perfectly
        hit = np.array([(p, t) in good for p, t in zip(table["part"], table["machine_type"])])
        return np.where(hit, y + noise, -y + noise)  # elsewhere reversed: AUC 0

    grid = {("source", 4): setting({("dev", "fan"), ("eval", "pump")}),
            ("all", 2): setting({("dev", "pump"), ("eval", "fan")}),
            ("all", 8): setting(set())}
    parts = {p: (table["part"] == p).to_numpy() for p in ("dev", "eval")}
    evaluators = {p: P.UnitEvaluator(table[rows]) for p, rows in parts.items()}
    rows_of = {p: np.flatnonzero(rows) for p, rows in parts.items()}
    return table, grid, evaluators, rows_of


def test_selection_on_dev_and_oracle_on_eval():
    table, grid, evaluators, rows_of = selection_case()
    frame = P.grid_table(evaluators, grid, ("data", "k"), rows_of)
    assert len(frame) == 2 * 3 * 3  # parts x settings x (fan, pump, all)
    dev = P.select_best(frame, ("data", "k"), "dev").set_index("machine_type")
    assert (dev.loc["fan", "data"], dev.loc["fan", "k"]) == ("source", 4)
    assert (dev.loc["pump", "data"], dev.loc["pump", "k"]) == ("all", 2)
    assert dev["score"].tolist() == pytest.approx([1.0, 1.0])
    oracle = P.select_best(frame, ("data", "k"), "eval").set_index("machine_type")
    assert (oracle.loc["fan", "data"], oracle.loc["fan", "k"]) == ("all", 2)
    assert (oracle.loc["pump", "data"], oracle.loc["pump", "k"]) == ("source", 4)
    # the composed system takes each type's chosen scores: perfect on dev for the dev choice
    composed = P.compose(table["machine_type"], dev.reset_index(), grid, ("data", "k"))
    fan = (table["machine_type"] == "fan").to_numpy()
    np.testing.assert_array_equal(composed[fan], grid[("source", 4)][fan])
    np.testing.assert_array_equal(composed[~fan], grid[("all", 2)][~fan])
    assert evaluators["dev"].score(composed[rows_of["dev"]])["all"] == pytest.approx(1.0)


def test_selection_ties_go_to_the_first_setting():
    table, grid, evaluators, rows_of = selection_case()
    grid = {("source", 2): grid[("source", 4)], ("source", 4): grid[("source", 4)].copy()}
    frame = P.grid_table(evaluators, grid, ("data", "k"), rows_of)
    dev = P.select_best(frame, ("data", "k"), "dev").set_index("machine_type")
    assert dev.loc["fan", "k"] == 2 and dev.loc["pump", "k"] == 2


# ------------------------------------------------------------------------------------------ Fig. 5
def test_fraction_draw_keeps_ratios():
    strata = np.array(["fan/00/source/normal"] * 100 + ["fan/00/source/anomaly"] * 100 +
                      ["fan/00/target/normal"] * 50 + ["fan/00/target/anomaly"] * 30 + ["fan/01/source/normal"] * 3)
    rng = np.random.default_rng(0)
    for fraction in (0.05, 0.3, 0.55, 1.0):
        mask = P.fraction_draw(strata, fraction, rng)
        for key in np.unique(strata):
            n = int((strata == key).sum())
            assert int(mask[strata == key].sum()) == min(n, max(1, int(np.floor(fraction * n + 0.5))))
    a = P.fraction_draw(strata, 0.3, np.random.default_rng(1))
    b = P.fraction_draw(strata, 0.3, np.random.default_rng(1))
    c = P.fraction_draw(strata, 0.3, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    with pytest.raises(ASDError):
        P.fraction_draw(strata, 0.0, rng)


def fraction_case():
    """Clip features cluster by label, a_G is noisy: smoothing helps."""
    table = labelled_tests({("eval", "fan", "section_03"): 10, ("eval", "pump", "section_03"): 10}, seed=3)
    rng = np.random.default_rng(4)
    y = (table["label"] == "anomaly").to_numpy()
    X = rng.normal(size=(len(table), 5)) * 0.3 + np.where(y[:, None], 1.0, -1.0) * np.eye(5)[0]
    a_g = y * 0.5 + rng.normal(size=len(table))
    return table, X, a_g


def test_fraction_curve_flags_settings_saturated_in_a_draw():
    """Fig. 5 with the Oracle's setting: a K below a section's candidates on the full test set saturates once
    only a fraction of the clips is observed; the flag follows a count by hand of the observed clips."""
    table, X, a_g = fraction_case()  # per section and domain 10 normal + 10 anomalous clips: 40 per section
    domains = table["domain"].to_numpy()
    pools = (table["machine_type"] + "/" + table["unit"]).to_numpy()
    oracle = pd.DataFrame({"machine_type": ["fan", "pump"], "data": ["all", "all"], "k": [16, 16]})
    curve, draws = P.fraction_curve(table, X, a_g, domains, pools, np.arange(len(table)), [16], ("all",),
                                    fractions=(0.25, 1.0), n_draws=2, seed=0, selection="oracle", oracle=oracle)
    proposed = curve[curve["system"] == "Proposed"].set_index(["fraction", "machine_type"])
    # full set: 40 clips per section, 39 candidates > K - 1 = 15; a quarter: round(0.25 * 10) = 3 clips of
    # each of the 4 strata, 12 clips, 11 candidates <= 15: saturated in every draw
    per_section = 4 * max(1, int(np.floor(0.25 * 10 + 0.5)))
    assert per_section - 1 <= 15 < 40 - 1
    for mtype in ("fan", "pump", "all"):
        assert proposed.loc[(1.0, mtype), "saturated_draws"] == 0
        assert proposed.loc[(0.25, mtype), "saturated_draws"] == 2
    quarter = draws[(draws["fraction"] == 0.25) & (draws["machine_type"] != "all")]
    assert quarter["saturated"].astype(bool).all()


def test_fraction_curve_full_set_equals_the_oracle():
    table, X, a_g = fraction_case()
    ks, datas = [2, 4, 8], ("source", "all")
    domains = table["domain"].to_numpy()
    pools = (table["machine_type"] + "/" + table["unit"]).to_numpy()
    curve, draws = P.fraction_curve(table, X, a_g, domains, pools, np.arange(len(table)), ks, datas,
                                    fractions=(0.5, 1.0), n_draws=3, seed=0, generative=a_g)
    assert set(curve["system"]) == {"Proposed", "generative"}
    assert len(draws) == 2 * 3 * len(ks) * len(datas) * 3  # fractions x draws x settings x (fan, pump, all)
    full = curve[curve["fraction"] == 1.0].set_index(["system", "machine_type"])
    assert (full["std"] == 0).all()  # every draw holds every clip
    # the best setting per type on the full set, by an independent evaluation (sklearn + scipy)
    smoothed = P.smooth_grid(X, a_g, domains, pools, np.arange(len(table)), len(table), ks, datas)
    y = (table["label"] == "anomaly").to_numpy()
    groups = table.groupby(["machine_type", "unit", "domain"]).indices
    best, chosen_values = {}, []
    for mtype in ("fan", "pump"):
        per_setting = {}
        for setting, s in smoothed.items():
            values = [f(y[i], s[i]) for (t, _, _), i in groups.items() if t == mtype
                      for f in (roc_auc_score, lambda a, b: roc_auc_score(a, b, max_fpr=0.1))]
            per_setting[setting] = (hmean(values), values)
        setting = max(per_setting, key=lambda k: per_setting[k][0])
        best[mtype] = per_setting[setting][0]
        chosen_values += per_setting[setting][1]
        assert full.loc[("Proposed", mtype), "mean"] == pytest.approx(best[mtype], rel=1e-12)
    assert full.loc[("Proposed", "all"), "mean"] == pytest.approx(hmean(chosen_values), rel=1e-12)
    gen_values = [f(y[i], a_g[i]) for i in groups.values()
                  for f in (roc_auc_score, lambda a, b: roc_auc_score(a, b, max_fpr=0.1))]
    assert full.loc[("generative", "all"), "mean"] == pytest.approx(hmean(gen_values), rel=1e-12)
    half = curve[(curve["fraction"] == 0.5) & (curve["system"] == "Proposed")]
    assert (half["n_draws"] == 3).all() and np.isfinite(half["mean"]).all()


def test_fraction_curve_oracle_selection_uses_the_given_settings():
    table, X, a_g = fraction_case()
    domains = table["domain"].to_numpy()
    pools = (table["machine_type"] + "/" + table["unit"]).to_numpy()
    oracle = pd.DataFrame({"machine_type": ["fan", "pump"], "data": ["all", "source"], "k": [8, 2],
                           "score": [0.0, 0.0]})
    curve, _ = P.fraction_curve(table, X, a_g, domains, pools, np.arange(len(table)), [2, 8], ("source", "all"),
                                fractions=(0.5,), n_draws=2, selection="oracle", oracle=oracle)
    chosen = curve[curve["machine_type"] != "all"].set_index("machine_type")
    assert (chosen.loc["fan", "data"], chosen.loc["fan", "k"]) == ("all", 8)
    assert (chosen.loc["pump", "data"], chosen.loc["pump", "k"]) == ("source", 2)
    with pytest.raises(ASDError):
        P.fraction_curve(table, X, a_g, domains, pools, np.arange(len(table)), [2], ("all",), fractions=(0.5,),
                         n_draws=1, selection="oracle")
