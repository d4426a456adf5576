"""The subcluster-adacos command of run_dcase2020.py: which network and back-end each paper row uses
(Tables II-V, the ensemble of Fig. 2/3), the "combined" rule, and networks that diverge.

A stand-in for the trained networks returns known scores for every (network, back-end, components), so
every expected row is computed here by hand from those scores.
"""
import logging

import numpy as np
import pandas as pd
import pytest

from subcluster_adacos.experiments import (ModelSpec, SubClusterAdaCosConfig, TABLE_II_BACKENDS, comparison,
                                           run_experiment)

TYPES = np.array(["fan"] * 4 + ["ToyConveyor"] * 4)


class FakeNetworks:
    """Known scores per (network, back-end, components); networks in ``diverged`` give None, like
    :meth:`TrainedNetworks.backend` for a network whose training diverged."""

    def __init__(self, config, diverged=()):
        self.config = config
        self.table = pd.DataFrame({"machine_type": TYPES})
        self.log = logging.getLogger("test")
        self.diverged = set(diverged)
        self.calls = []

    @staticmethod
    def scores(spec, backend, n_components):
        seed = abs(hash((spec.name, backend, n_components))) % 2**32
        return np.random.default_rng(seed).normal(size=len(TYPES))

    def backend(self, spec, backend, n_components=None):
        n_components = n_components or spec.n_subclusters
        self.calls.append((spec, backend, n_components))
        if spec in self.diverged:
            return None
        return self.scores(spec, backend, n_components)

    def combined(self, spec):
        """The ScoringSystem's scores in the real run (tested in test_training_scoring.py): stands for the
        rule combined_scores(learned GMM, temporal mean)."""
        if spec in self.diverged:
            return None
        return np.where(TYPES == "ToyConveyor", MEAN, self.scores(spec, "gmm", spec.n_subclusters))


CONFIG = SubClusterAdaCosConfig()
MEAN = np.arange(8, dtype=float) * 100.0
REPRESENTATIONS = {"mean": MEAN, "max": -MEAN}


def sac(s, mixup=True):
    return ModelSpec("subcluster_adacos", mixup, s)


def test_table2_rows_use_the_standard_adacos_network_with_mixup():
    nets = FakeNetworks(CONFIG)
    systems, labels, diverged, _ = run_experiment("backends", nets, {})
    spec = ModelSpec("adacos", True, 1)
    assert list(systems) == [f"table2_{b}" for b in TABLE_II_BACKENDS] and not diverged
    for backend in TABLE_II_BACKENDS:
        np.testing.assert_array_equal(systems[f"table2_{backend}"], nets.scores(spec, backend, 1))
    assert labels["table2_plda"] == {"backend": "two-covariance PLDA"}


def test_table3_rows_are_the_full_gaussian_on_the_four_networks_and_diverged_rows_are_listed():
    adacos_nomix, sac_nomix = ModelSpec("adacos", False, 1), sac(1, mixup=False)
    nets = FakeNetworks(CONFIG, diverged={sac_nomix})
    systems, labels, diverged, _ = run_experiment("mixup", nets, {})
    assert diverged == [{"mixup": "no", "modified_adacos": "yes"}]
    assert len(systems) == 3
    np.testing.assert_array_equal(systems[f"table3_{adacos_nomix.name}"],
                                  nets.scores(adacos_nomix, "gaussian_full", 1))
    assert labels[f"table3_{sac(1).name}"] == {"mixup": "yes", "modified_adacos": "yes"}


def test_table4_gaussian_has_one_component_and_gmm_has_s():
    nets = FakeNetworks(CONFIG)
    systems, labels, _, _ = run_experiment("subclusters", nets, {})
    for s in CONFIG.subclusters:
        np.testing.assert_array_equal(systems[f"table4_S{s:02d}_gaussian"], nets.scores(sac(s), "gmm", 1))
        np.testing.assert_array_equal(systems[f"table4_S{s:02d}_gmm"], nets.scores(sac(s), "gmm", s))
        assert labels[f"table4_S{s:02d}_gmm"] == {"n_subclusters": str(s), "backend": "GMM"}


def test_table5_combined_takes_the_temporal_mean_for_toyconveyor_only():
    nets = FakeNetworks(CONFIG)
    systems, _, _, _ = run_experiment("representations", nets, REPRESENTATIONS)
    learned = nets.scores(sac(32), "gmm", 32)
    np.testing.assert_array_equal(systems["table5_learned"], learned)
    np.testing.assert_array_equal(systems["table5_combined"], np.concatenate([learned[:4], MEAN[4:]]))
    np.testing.assert_array_equal(systems["table5_mean"], MEAN)


def test_ensemble_sums_the_combined_scores_of_every_s_and_proposed_is_learned_s32():
    """Fig. 2/3: ToyConveyor is scored by the temporal-mean Gaussian inside the sum over S (public code)."""
    nets = FakeNetworks(CONFIG)
    systems, labels, diverged, notes = run_experiment("ensemble", nets, REPRESENTATIONS)
    by_hand = np.zeros(8)
    for s in (1, 2, 4, 8, 16, 32, 64):
        learned = nets.scores(sac(s), "gmm", s)
        by_hand[:4] += learned[:4]
        by_hand[4:] += MEAN[4:]
    np.testing.assert_allclose(systems["ensemble"], by_hand, rtol=1e-12)
    np.testing.assert_array_equal(systems["ensemble_single"], nets.scores(sac(32), "gmm", 32))
    assert labels == {"ensemble": {"system": "ensemble"}, "ensemble_single": {"system": "proposed approach"}}
    assert not diverged and not notes


def test_diverged_networks_give_diverges_rows_never_a_crash(caplog):
    nets = FakeNetworks(CONFIG, diverged={sac(32), sac(4)})
    with caplog.at_level(logging.WARNING, logger="test"):
        systems, labels, diverged, notes = run_experiment("ensemble", nets, REPRESENTATIONS)
    by_hand = sum(np.concatenate([nets.scores(sac(s), "gmm", s)[:4], MEAN[4:]]) for s in (1, 2, 8, 16, 64))
    np.testing.assert_allclose(systems["ensemble"], by_hand, rtol=1e-12)
    assert diverged == [{"system": "proposed approach"}]
    assert "[4, 32]" in notes[0] and "[4, 32]" in caplog.text
    # the representations experiment with a diverged S = 32 network: mean and max still scored
    systems, _, diverged, _ = run_experiment("representations", nets, REPRESENTATIONS)
    assert set(systems) == {"table5_mean", "table5_max"}
    assert diverged == [{"representation": "learned"}, {"representation": "combined"}]
    # every member diverged: the ensemble row diverges too
    everything = FakeNetworks(CONFIG, diverged={sac(s) for s in CONFIG.subclusters})
    systems, _, diverged, _ = run_experiment("ensemble", everything, REPRESENTATIONS)
    assert systems == {} and diverged == [{"system": "ensemble"}, {"system": "proposed approach"}]


def summary_rows(systems, value=0.8):
    rows = []
    for system in systems:
        for part in ("dev", "eval"):
            for machine_type in ("fan", "ToyConveyor", "all"):
                rows.append({"system": system, "part": part, "machine_type": machine_type,
                             "statistic": "arithmetic mean", "auc": value, "pauc": value - 0.1})
    return pd.DataFrame(rows)


def test_comparison_writes_diverges_and_the_divergence_rule():
    spec = sac(1)
    labels = {f"table3_{spec.name}": {"mixup": "yes", "modified_adacos": "yes"}}
    diverged = [{"mixup": "no", "modified_adacos": "yes"}]
    markdown, merged = comparison("mixup", summary_rows(labels), labels, diverged, ["SYNTHETIC"], CONFIG)
    row = merged[(merged["mixup"] == "no") & (merged["modified_adacos"] == "yes")].iloc[0]
    assert row["dev AUC (ours)"] == "diverges" and row["eval pAUC (ours)"] == "diverges"
    ok = merged[(merged["mixup"] == "yes") & (merged["modified_adacos"] == "yes")].iloc[0]
    assert float(ok["dev AUC (ours)"]) == pytest.approx(80.0)
    assert "diverges" in markdown and "exceeded 1e+08 or became NaN" in markdown
    # Table V with per-type rows: every machine type of the run reads "diverges"
    labels = {"table5_mean": {"representation": "mean"}}
    _, merged = comparison("representations", summary_rows(labels), labels, [{"representation": "learned"}],
                           [], CONFIG)
    learned = merged[merged["representation"] == "learned"]
    ours = learned[learned["dev AUC (ours)"] == "diverges"]
    assert set(ours["machine type"]) == {"fan", "ToyConveyor", "all"}


@pytest.mark.slow  # about 2.5 min on a shared CPU: two runs of two networks each
def test_units_are_the_networks_named_and_seeded_by_name_and_assemble_works_from_their_folders(
        synthetic_set, cli_env):
    """One unit per network (ModelSpec.name), seeded seed_for(--seed, name); a cluster-style run (--plan,
    train-unit --index I for each unit, assemble) gives the scores of a normal run."""
    import json
    from pathlib import Path

    from asdcore.experiment import seed_for
    from asdcore.runner import assemble_command, run_command, train_unit_command
    from subcluster_adacos.experiments import METHOD

    root = synthetic_set(2020, seed=4, machine_types=("fan",), duration=1.0)
    config = cli_env / "tiny.yaml"
    config.write_text("epochs: 1\nsubclusters: [1, 2]\nbatch_size: 16\n")
    common = ["--experiment", "subclusters", "--quick", "--config", str(config), "--data-root", str(root)]

    def only_run(out):
        (run,) = list((Path(out) / "2020" / "subcluster-adacos-subclusters").iterdir())
        return run

    assert run_command(METHOD, common + ["--out", str(cli_env / "serial")]) == 0
    serial = only_run(cli_env / "serial")
    assert run_command(METHOD, common + ["--out", str(cli_env / "array"), "--plan"]) == 0
    array = only_run(cli_env / "array")
    units = pd.read_csv(array / "units.csv")
    assert list(units["name"]) == ["subcluster_adacos_S01_mixup", "subcluster_adacos_S02_mixup"]
    assert list(units["seed"]) == [seed_for(0, name) for name in units["name"]]
    assert not (array / "results.csv").exists()
    for index in reversed(range(len(units))):  # any order: each unit's seed comes from its name
        assert train_unit_command([str(array), "--index", str(index)], 2020) == 0
    for name, seed in zip(units["name"], units["seed"]):
        record = json.loads((array / "units" / name / "unit.json").read_text())
        assert record["seed"] == seed and record["result"]["diverged"] is False
        for written in ("embeddings.npy", "centres.npy", "model_output.npy", "epoch_0001.keras"):
            assert (array / "units" / name / written).is_file(), written
    assert assemble_command([str(array)], 2020) == 0
    ours, theirs = pd.read_csv(serial / "results.csv"), pd.read_csv(array / "results.csv")
    assert {"table4_S01_gaussian", "table4_S02_gmm"} <= set(ours["system"])
    pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=1e-5)
    for csv in sorted((serial / "scores" / "table4_S02_gmm").glob("*.csv")):
        a = pd.read_csv(csv, header=None)[1].to_numpy()
        b = pd.read_csv(array / "scores" / "table4_S02_gmm" / csv.name, header=None)[1].to_numpy()
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert "Table IV" in (array / "comparison.md").read_text()


def test_plan_lists_each_network_once_named_and_seeded_by_name(synthetic_set, cli_env):
    """--experiment all --plan: one unit per distinct network of the chosen tables (shared between them),
    named ModelSpec.name and seeded seed_for(--seed, name); nothing is trained."""
    from pathlib import Path

    from asdcore.experiment import seed_for
    from asdcore.runner import run_command
    from subcluster_adacos.experiments import METHOD

    root = synthetic_set(2020, seed=4, machine_types=("fan",), duration=1.0)
    out = cli_env / "plan"
    assert run_command(METHOD, ["--quick", "--seed", "7", "--data-root", str(root), "--out", str(out), "--plan"]) == 0
    (run,) = list((Path(out) / "2020" / "subcluster-adacos-all").iterdir())
    units = pd.read_csv(run / "units.csv")
    assert list(units["name"]) == ["adacos_S01_mixup", "adacos_S01_nomixup", "subcluster_adacos_S01_nomixup",
                                   "subcluster_adacos_S01_mixup", "subcluster_adacos_S04_mixup"]
    assert list(units["seed"]) == [seed_for(7, name) for name in units["name"]]
    assert not (run / "units").exists() and not (run / "results.csv").exists()
