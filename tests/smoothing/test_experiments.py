"""The ``smoothing`` command of run_dcase2021.py: arguments, configs, amplitude standardisation, given
generative scores, compiled-model reuse, and the quick run end to end on a tiny synthetic set."""
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

import run_dcase2021
from asdcore.errors import ASDError
from asdcore.features import LogMelConfig, compute_logmel
from asdcore.amplitude import waveform_std
from asdcore.experiment import seed_for
from asdcore.runner import assemble_command, train_unit_command
from smoothing import experiments as E
from smoothing import protocol as P
from smoothing.training import standardize_features

SYSTEMS = ("SerialOE", "AE", "Proposed", "Proposed_Oracle")


# ------------------------------------------------------------------------------------------- arguments
def test_missing_generative_scores_is_a_one_line_error(capsys, tmp_path):
    rc = run_dcase2021.main(["smoothing", "--generative", "subcluster-adacos", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "run_dcase2021.py multi-distribution" in err and "--generative-scores" in err
    assert not (tmp_path / "2021").exists()  # nothing started


def test_generative_scores_without_subcluster_adacos(capsys, tmp_path):
    assert run_dcase2021.main(["smoothing", "--out", str(tmp_path), "--generative-scores", "x"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_configs_default_to_the_paper(tmp_path):
    protocol, ae, oe = E.load_configs()
    assert (ae.epochs, ae.batch_segments, ae.learning_rate, ae.n_segments) == (1500, 16, 1e-3, 7)  # IV-A
    assert (oe.backbone, oe.epochs, oe.batch_size, oe.n_mels, oe.hop_length) == ("efficientnet_b0", 150, 128, 224, 256)
    assert (protocol.source_fraction, protocol.n_target_fit, protocol.k_max, protocol.n_draws) == (0.85, 2, 2048, 20)
    assert protocol.fractions == tuple(round(0.05 * i, 2) for i in range(1, 21))  # Fig. 5
    assert protocol.standardize_amplitude and protocol.datas == ("source", "all")
    q_protocol, q_ae, q_oe = E.load_configs(quick=True)
    assert q_oe.backbone == "light" and q_ae.epochs < 1500 and q_oe.epochs < 150 and q_protocol.n_draws < 20
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"ae": {"epochs": 3}, "protocol": {"pool": "machine_type"}}))
    protocol, ae, oe = E.load_configs(path, quick=True)
    assert ae.epochs == 3 and protocol.pool == "machine_type" and oe.backbone == "light"
    for bad in ({"ae": {"epoch": 3}}, {"network": {"epochs": 3}}, {"protocol": {"level": "frame"}}):
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(ASDError):
            E.load_configs(path)


# ----------------------------------------------------------------------------- amplitude standardisation
@pytest.mark.parametrize("config", [
    LogMelConfig(n_fft=1024, hop_length=512, n_mels=128, fmin=50, fmax=7800, window="hann",
                 floor=float(np.finfo(float).eps), n_frames=None),          # the autoencoder's (log)
    LogMelConfig(n_fft=2048, hop_length=256, n_mels=224, fmin=50, fmax=7800, window="hann", power=1.0,
                 log=False, n_frames=None, mel_norm=None, htk=True),       # SerialOE's (magnitude)
])
def test_standardised_features_equal_features_of_the_standardised_wave(config):
    rng = np.random.default_rng(0)
    wave = (0.05 * rng.normal(size=16000) + 0.01 * np.sin(np.arange(16000) * 0.3) + 0.02).astype(np.float32)
    standardised = ((wave - wave.mean()) / wave.std()).astype(np.float32)
    want = compute_logmel(standardised, config, workers=1)
    got = standardize_features(compute_logmel(wave, config, workers=1), np.array([wave.std()]), config)
    if config.log:
        np.testing.assert_allclose(got, want, atol=2e-3)
    else:
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-4 * np.abs(want).max())


def test_waveform_std_and_cache(tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for i in range(3):
        wave = rng.normal(scale=0.1 * (i + 1), size=8000)
        paths.append(tmp_path / f"c{i}.wav")
        sf.write(paths[-1], wave, 16000, subtype="FLOAT")
    want = [np.std(sf.read(p, dtype="float64")[0]) for p in paths]
    got = waveform_std(paths, tmp_path / "cache")
    np.testing.assert_allclose(got, want, rtol=1e-6)
    cached = pd.read_csv(tmp_path / "cache" / "waveform_stats_sr16000.csv")
    assert len(cached) == 3
    np.testing.assert_allclose(waveform_std(paths, tmp_path / "cache"), got)


# ---------------------------------------------------------------------------------- given a_G scores
def scored_table():
    rows = []
    for unit in ("section_00", "section_03"):
        for domain in ("source", "target"):
            for label in ("normal", "anomaly"):
                for i in range(2):
                    rows.append(dict(path=f"/x/{unit}_{domain}_{label}_{i}.wav", file=f"{unit}_{domain}_test_{label}_{i:04d}.wav",
                                     year=2021, part="dev" if unit == "section_00" else "eval", machine_type="fan",
                                     unit=unit, domain=domain, split="test", label=label, attributes="", index=f"{i:04d}"))
    rows.append(dict(path="/x/t.wav", file="section_00_source_train_normal_0000_a_1.wav", year=2021, part="dev",
                     machine_type="fan", unit="section_00", domain="source", split="train", label="normal",
                     attributes="a_1", index="0000"))
    return pd.DataFrame(rows)


def test_given_scores_are_read_per_clip(tmp_path):
    from asdcore.submission import write_scores

    table = scored_table()
    scores = np.where(table["split"] == "test", np.arange(len(table)) * 0.5, np.nan)
    write_scores(table, scores, tmp_path / "given", 2021)
    got = E._given_scores(table, tmp_path / "given")
    test = (table["split"] == "test").to_numpy()
    np.testing.assert_array_equal(got[test], scores[test])
    assert np.isnan(got[~test]).all()
    partial = tmp_path / "partial"
    write_scores(table[table["unit"] == "section_00"], scores[(table["unit"] == "section_00").to_numpy()], partial, 2021)
    with pytest.raises(ASDError, match="multi-distribution"):
        E._given_scores(table, partial)


# ------------------------------------------------------------------------------------------ end to end
UNITS = ["ae_ToyCar", "ae_fan", "serial_oe_ToyCar", "serial_oe_fan"]


@pytest.fixture(scope="module")
def tiny_data(synthetic_set):
    """fan + ToyCar, sections 00-05, 5 s clips (4 s crops fit)."""
    return synthetic_set(2021, duration=5.0)


def tiny_run(out, data, extra=()):
    """A quick run of the smoothing command on ``data`` with one epoch per network; returns its folder (the
    last one under ``out``) and what it printed."""
    import contextlib
    import io

    config = out / "tiny.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump({"ae": {"epochs": 1}, "serial_oe": {"epochs": 1},
                                      "protocol": {"clip_seconds": 5.0, "n_draws": 2, "fractions": [0.5, 1.0]}}))
    argv = ["smoothing", "--data-root", str(data), "--quick", "--config", str(config), "--out", str(out / "runs"),
            "--cache-dir", str(out.parent / "cache"), *extra]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run_dcase2021.main(argv) == 0
    return sorted((out / "runs" / "2021").glob("*/*"))[-1], printed.getvalue()


@pytest.fixture(scope="module")
def quick_run(tiny_data, tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("smoothing") / "serial", tiny_data)


def _scores(run, system):
    return pd.concat([pd.read_csv(p, header=None, names=["file", "score"]).assign(name=p.name)
                      for p in sorted((run / "scores" / system).glob("anomaly_score_*.csv"))], ignore_index=True)


def test_quick_run_end_to_end(quick_run, training_logged):
    run, out = quick_run
    units = training_logged(run)  # AE and SerialOE of each type: CSV log, tensorboard/, plots/training/<unit>.png
    oe = pd.read_csv(next(u for u in units if "serial" in u.name) / "training_log.csv")
    assert {"loss", "mac_loss", "id_loss", "val_loss"} <= set(oe.columns)  # SerialOE's two losses
    epoch_lines = [line for line in (run / "run.log").read_text().splitlines() if " epoch " in line]
    assert all(any(f" {u.name} epoch " in line for u in units) for line in epoch_lines)  # each names its unit
    assert "run 100% (" in epoch_lines[-1] and "run 100% (" not in epoch_lines[-2]  # the estimate counts every step
    assert "Table II" in out and "Table I" in out and "Fig. 5" in out
    assert run.parent.name == "smoothing-all"  # one folder naming rule; quick mode is in the outputs
    assert "mode: QUICK" in (run / "config.yaml").read_text()
    n_files = 2 * 6 * 2  # fan and ToyCar, six sections, two domains
    for system in SYSTEMS:
        assert len(list((run / "scores" / system).glob("anomaly_score_*_test.csv"))) == n_files
    assert not (run / "plots" / "AE").exists()  # quick runs skip the per-system ROC plots
    results = pd.read_csv(run / "results.csv")
    assert set(results["system"]) == set(SYSTEMS) and set(results["mode"]) == {"QUICK"}
    summary = results[(results["row"] == "summary") & (results["domain"] == "all")
                      & (results["statistic"] == "harmonic mean") & (results["machine_type"] == "all")]
    assert set(summary["part"]) == {"dev", "eval"} and summary["score"].between(0, 1).all()
    text = (run / "comparison.md").read_text()
    assert text.count("QUICK MODE") >= 3 and "Table II" in text and "Table I" in text and "Fig. 5" in text
    assert (run / "plots" / "fig5_fraction.png").stat().st_size > 0
    for name in UNITS:
        for file in ("model.keras", "history.csv", "unit.json"):
            assert (run / "units" / name / file).is_file()
    assert (run / "models" / "split.csv").is_file()
    selection = pd.read_csv(run / "selection.csv")
    assert set(selection["mode"]) == {"QUICK"} and set(selection["system"]) == {"Proposed", "SerialOE"}
    # Proposed uses, per machine type, the setting that is best on the dev sections
    proposed = selection[(selection["system"] == "Proposed") & (selection["part"] == "dev")]
    for mtype in ("fan", "ToyCar"):
        best = proposed[proposed["machine_type"] == mtype]["score"].max()
        dev = results[(results["row"] == "summary") & (results["system"] == "Proposed") & (results["part"] == "dev")
                      & (results["machine_type"] == mtype) & (results["domain"] == "all")
                      & (results["statistic"] == "harmonic mean")]
        assert dev["score"].iloc[0] == pytest.approx(best, rel=1e-9)
    # default reading: 4 s segments (3 per clip in quick mode) of the clips of one section, a segment's own
    # clip left out of its neighbours; a K covering the rest of its section is flagged saturated, and a
    # saturated row scores exactly as the largest K (a larger K changes nothing)
    assert "level segment" in (run / "run.log").read_text() and "saturated K" in (run / "run.log").read_text()
    per_section = {}
    for path in (run / "scores" / "AE").glob("anomaly_score_*_test.csv"):
        machine_type, section = path.name.split("_")[2], "_".join(path.name.split("_")[3:5])
        key = (machine_type, section)
        per_section[key] = per_section.get(key, 0) + 3 * len(pd.read_csv(path, header=None))
    proposed = selection[(selection["system"] == "Proposed") & (selection["machine_type"] != "all")]
    assert proposed["k"].max() > max(per_section.values())  # the grid is not cut at the pool size
    for r in proposed[proposed["data"] == "all"].itertuples():
        sections = [n for (t, s), n in per_section.items() if t == r.machine_type
                    and (s < "section_03") == (r.part == "dev")]
        assert bool(r.saturated) == (r.k - 1 >= max(sections) - 3), r  # the other clips' segments
        if r.saturated:
            largest = proposed[(proposed["data"] == "all") & (proposed["part"] == r.part)
                               & (proposed["machine_type"] == r.machine_type) & (proposed["k"] == 2048)]
            assert r.score == largest["score"].iloc[0]
    # Table I (table1.csv = the comparison.md table): our chosen settings and their saturation flags
    table1 = pd.read_csv(run / "table1.csv")
    ours = table1.dropna(subset=["Data (ours)"])
    assert set(ours["machine type"]) == {"fan", "ToyCar", "ToyCar-5 (section 05)"}
    assert len(table1) == 21 + 1 + 0  # the paper's 3 methods x 7 machine types, then ToyCar-5
    for method, part, column in (("Proposed", "dev", "dev K (ours)"), ("Proposed (Oracle)", "eval", "eval K (ours)")):
        for _, r in ours[(ours["method"] == method) & ours["machine type"].isin(["fan", "ToyCar"])].iterrows():
            want = selection[(selection["system"] == "Proposed") & (selection["part"] == part)
                             & (selection["machine_type"] == r["machine type"])
                             & (selection["data"] == r["Data (ours)"].lower()) & (selection["k"] == r[column])]
            assert r["saturated (ours)"] == want["saturated"].iloc[0]
    toycar5 = table1[table1["machine type"] == "ToyCar-5 (section 05)"].iloc[0]
    flag = selection[(selection["system"] == "Proposed") & (selection["part"] == "eval")
                     & (selection["machine_type"] == "ToyCar") & (selection["data"] == toycar5["Data (ours)"].lower())
                     & (selection["k"] == toycar5["eval K (ours)"])]["saturated"]
    assert len(flag) == 1 and toycar5["saturated (ours)"] == flag.iloc[0]  # a scored setting, flagged alike
    assert "ToyCar-5 (section 05)" in text and "ToyCar-5 AUC (ours)" in text
    fraction = pd.read_csv(run / "fraction.csv")
    assert "draws with every chosen K saturated" in text  # Fig. 5 flags saturated settings like Table I
    draws = pd.read_csv(run / "fraction_draws.csv")
    for r in fraction[(fraction["system"] == "Proposed") & (fraction["machine_type"] != "all")].itertuples():
        flags = draws[(draws["fraction"] == r.fraction) & (draws["machine_type"] == r.machine_type)
                      & (draws["data"] == r.data) & (draws["k"] == r.k)]["saturated"]
        assert r.saturated_draws == int(flags.astype(bool).sum())
    assert set(fraction["fraction"]) == {0.5, 1.0} and set(fraction["system"]) == {"Proposed", "AE"}
    split = pd.read_csv(run / "models" / "split.csv")
    assert set(split["role"]) == {"fit", "val"}
    # maps of SerialOE's f_D per machine type and its section accuracy on the normal test clips
    assert sorted(p.name for p in (run / "plots" / "embeddings").glob("*.png")) == ["ToyCar.png", "fan.png"]
    accuracy = pd.read_csv(run / "classification.csv").set_index("machine_type")
    assert list(accuracy.index) == ["ToyCar", "fan", "all"] and accuracy["accuracy"].between(0, 1).all()
    assert "Classification accuracy of the learned networks" in text


def test_units_are_named_and_seeded_by_name_and_assemble_needs_only_their_folders(quick_run, tiny_data, tmp_path):
    """--plan lists the four networks (seed = seed_for(--seed, name)); train-unit trains each one in its own
    context, in any order; assemble, from the unit folders alone, gives the scores of the serial run."""
    serial, _ = quick_run
    units = pd.read_csv(serial / "units.csv")
    assert sorted(units["name"]) == UNITS
    assert list(units["seed"]) == [seed_for(0, name) for name in units["name"]]
    for name, seed in zip(units["name"], units["seed"]):
        assert json.loads((serial / "units" / name / "unit.json").read_text())["seed"] == seed
    run, _ = tiny_run(tmp_path / "array", tiny_data, ["--plan"])
    assert list(pd.read_csv(run / "units.csv")["name"]) == list(units["name"]) and not (run / "results.csv").exists()
    for index in reversed(range(len(units))):
        assert train_unit_command([str(run), "--index", str(index)], 2021) == 0
    assert assemble_command([str(run)], 2021) == 0
    for system in SYSTEMS:
        ours, want = _scores(run, system), _scores(serial, system)
        assert list(ours["file"]) == list(want["file"])
        np.testing.assert_allclose(ours["score"], want["score"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_subcluster_adacos_scores_are_smoothed(quick_run, tiny_data, tmp_path):
    first, _ = quick_run
    run, _ = tiny_run(tmp_path / "given", tiny_data, ["--experiment", "table", "--generative", "subcluster-adacos",
                                                      "--generative-scores", str(first / "scores" / "AE")])
    assert {p.name for p in (run / "scores").iterdir()} == {"SerialOE", "SubclusterAdaCos", "Proposed",
                                                            "Proposed_Oracle"}
    assert sorted(pd.read_csv(run / "units.csv")["name"]) == ["serial_oe_ToyCar", "serial_oe_fan"]
    text = (run / "comparison.md").read_text()
    assert "a_G = sub-cluster AdaCos" in text and "(a_G = AE)" in text


# ------------------------------------------------------------------------ pool reading (issue 11)
def real_layout_test_table(machine_type="fan"):
    """The test clips of one machine type as in the DCASE 2021 data: sections 00-02 (dev) and 03-05 (eval),
    per section and domain 100 normal + 100 anomalous clips."""
    rows = []
    for section in range(6):
        for domain in ("source", "target"):
            for label in ("normal", "anomaly"):
                rows += [{"machine_type": machine_type, "unit": f"section_{section:02d}", "domain": domain,
                          "label": label, "part": "dev" if section < 3 else "eval", "split": "test"}] * 100
    return pd.DataFrame(rows)


def table1_settings():
    from asdcore import published

    paper = published.load_table("fujimura2021_table1")
    rows = paper[paper["method"].isin(["Proposed", "Proposed (Oracle)"])]
    return [(r.method, r.machine_type, r.data, int(r.value)) for r in rows.itertuples()]


def test_default_pool_makes_every_table1_k_a_real_choice():
    """Issue 11: under the default reading (4 s segments of one section) every K of Table I, Oracle and
    ToyCar-5 (128, All) included, is below its pool; one clip per item (the old default) saturates K >= 256
    (Source) and K >= 512 (All)."""
    table = real_layout_test_table()
    test = np.ones(len(table), bool)
    emb = np.zeros((len(table), 7, 2), np.float32)
    gen = np.zeros(len(table))
    default = E.ProtocolConfig()
    assert (default.level, default.pool, default.k_max) == ("segment", "section", 2048)
    features, scores, domains, pools, clip_index = P.smoothing_items(table, emb, gen, np.zeros((len(table), 7)), test,
                                                                     default.pool, default.level)
    sizes = P.pool_sizes(domains, pools)
    # by counting: 2 domains x 200 clips x 7 segments per section, 1,400 of them source
    assert len(sizes) == 6 and set(sizes["all"]) == {2800} and set(sizes["source"]) == {1400}
    ks = P.k_grid()
    saturated = P.saturation_frame(table, domains, pools, clip_index, ks, ("source", "all"))
    hit = saturated[saturated["saturated"]]
    assert set(zip(hit["data"], hit["k"])) == {("source", 2048)}  # 2048 > 1,400 source segments, only
    for _, _, data, k in table1_settings() + [("", "ToyCar", "all", 128)]:
        assert k - 1 < (1400 if data == "source" else 2800) - 1
    clip_level = replace_config(default, level="clip")
    _, _, d_clip, p_clip, i_clip = P.smoothing_items(table, emb, gen, None, test, clip_level.pool, clip_level.level)
    sat_clip = P.saturation_frame(table, d_clip, p_clip, i_clip, ks, ("source", "all"))
    first = {d: sat_clip[(sat_clip["data"] == d) & sat_clip["saturated"]]["k"].min() for d in ("source", "all")}
    # by counting: a target clip has every source clip of its section as candidate, a clip every other one
    n_source = int(((table["unit"] == "section_00") & (table["domain"] == "source")).sum())
    n_all = int((table["unit"] == "section_00").sum())
    assert first == {"source": min(k for k in ks if k - 1 >= n_source), "all": min(k for k in ks if k - 1 >= n_all - 1)}
    wasted = [s for s in table1_settings() if s[3] >= first[s[2]]]
    assert wasted  # several K of Table I would be saturated under the clip reading, none under the default
    type_pool = replace_config(default, pool="machine_type")
    _, _, d_t, p_t, _ = P.smoothing_items(table, emb, gen, np.zeros((len(table), 7)), test, type_pool.pool,
                                          type_pool.level)
    assert set(P.pool_sizes(d_t, p_t)["all"]) == {3 * 2800}  # ASDKit's reading: all sections of a part


def replace_config(config, **changes):
    from dataclasses import replace

    return replace(config, **changes)


def test_toycar5_oracle_takes_its_own_best_setting():
    from sklearn.metrics import roc_auc_score

    table = pd.concat([real_layout_test_table("ToyCar"), real_layout_test_table("fan")], ignore_index=True)
    rng = np.random.default_rng(0)
    y = (table["label"] == "anomaly").to_numpy()
    grid = {("source", 2): rng.random(len(table)), ("all", 128): rng.random(len(table)) + 0.3 * y,
            ("all", 256): rng.random(len(table)) + 0.1 * y}
    got = P.toycar5_oracle(table, grid)
    rows = ((table["machine_type"] == "ToyCar") & (table["unit"] == "section_05")).to_numpy()
    by_hand = {s: 100 * roc_auc_score(y[rows], v[rows]) for s, v in grid.items()}
    best = max(by_hand, key=by_hand.get)
    assert (got["data"], got["k"]) == best == ("all", 128)
    assert got["auc"] == pytest.approx(by_hand[best], rel=1e-12)
    assert P.toycar5_oracle(table[table["machine_type"] == "fan"], {k: v[table["machine_type"] == "fan"]
                                                                    for k, v in grid.items()}) is None


def test_segment_items_are_each_clips_crops_in_their_section_pool():
    table = pd.DataFrame({"machine_type": ["fan"] * 3 + ["pump"], "unit": ["section_00", "section_00", "section_03",
                                                                           "section_00"],
                          "part": ["dev", "dev", "eval", "dev"], "domain": ["source", "target", "source", "source"]})
    emb = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)  # 4 clips x 3 crops x 2 dims
    gen_seg = np.arange(12, dtype=float).reshape(4, 3)
    rows = np.array([True, True, True, False])
    features, scores, domains, pools, clip_index = P.smoothing_items(table, emb, gen_seg.mean(1), gen_seg, rows)
    np.testing.assert_array_equal(clip_index, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    for item, clip in enumerate(clip_index):
        np.testing.assert_array_equal(features[item], emb[clip, item % 3])
        assert scores[item] == gen_seg[clip, item % 3]
    assert list(domains) == ["source"] * 3 + ["target"] * 3 + ["source"] * 3
    assert list(pools) == ["fan/section_00"] * 6 + ["fan/section_03"] * 3
