"""The ``ddcsad`` command end to end on a tiny synthetic set, and its pieces (flags, model reuse)."""
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from asdcore import synthetic
from asdcore.errors import ASDError
from asdcore.experiment import seed_for
from ddcsad import experiments as E


def test_parse_flags():
    assert E.parse_counts("0,1,2,4,...,64") == (0, 1, 2, 4, 8, 16, 32, 64)
    assert E.parse_counts("paper") == (0, 1, 2, 4, 8, 16, 32, 64)
    assert E.parse_counts("4,0,1,1") == (0, 1, 4)
    assert E.parse_counts([0, 2]) == (0, 2)
    for bad in ("-1", "a", "...,4", ""):
        with pytest.raises(ASDError):
            E.parse_counts(bad)
    assert E.parse_losses("bce, BCE+DDCSAD") == ("bce", "bce+ddcsad")
    assert E.parse_losses("all") == ("bce", "dsad", "ddcsad", "bce+dsad", "bce+ddcsad")
    with pytest.raises(ASDError):
        E.parse_losses("bce,triplet")


def test_help_needs_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys; import ddcsad.settings as e; from ddcsad.losses import VARIANTS; "
            "from ddcsad import data, scoring; assert e.VARIANTS == VARIANTS; "
            "assert e.AMPLITUDE_LEVELS == data.AMPLITUDE_LEVELS and e.EPOCH_DEFINITIONS == data.EPOCH_DEFINITIONS; "
            "assert e.AMPLITUDE_METHODS == data.AMPLITUDE_METHODS; "
            "assert e.MINMAX_OVER == scoring.MINMAX_OVER")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
    code = "import sys, ddcsad.experiments; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_paper_defaults():
    c = E.PAPER_CONFIG
    assert (c.backbone, c.iterations, c.finetune_iterations, c.halve_every) == ("resnet38", 4000, 2000, 1000)
    assert (c.encoder_learning_rate, c.head_learning_rate, c.lam, c.eta) == (1e-4, 1e-3, 1.0, 2.0)
    assert c.batch_composition_anomalies == (32, 31, 1) and (c.n_crops, c.crop_frames) == (10, 256)
    assert (c.n_mels, c.n_fft, c.hop_length, c.anomaly_pool) == (128, 1024, 512, 64)
    assert E.QUICK_CONFIG.backbone == "light" and E.QUICK_CONFIG.iterations < 100


def make_tiny(root):
    return synthetic.generate(2020, root, seed=0, preset="tiny", machine_types=("fan",), n_train=3,
                              n_test_normal=2, n_test_anomaly=2, duration=3.0)


def test_quick_command_end_to_end(tmp_path, training_logged):
    from run_dcase2020 import main

    root = make_tiny(tmp_path / "data")
    # a very large learning rate of the linear layer drives its logits far beyond float32's sigmoid range
    # (p == 1.0 exactly above ~17): the "no ties" check below then runs on saturated outputs
    settings = {"iterations": 3, "finetune_iterations": 2, "steps_per_epoch": 2, "units_per_type": 1,
                "light_channels": [4, 8], "alpha": "validation", "save_models": "all", "head_learning_rate": 30.0}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(settings))
    rc = main(["ddcsad", "--data-root", str(root), "--quick", "--out", str(tmp_path / "runs"),
               "--cache-dir", str(tmp_path / "cache"), "--config", str(tmp_path / "c.yaml"),
               "--losses", "bce,ddcsad,bce+ddcsad", "--anomalies", "0,1,2,4", "--seed", "1"])
    assert rc == 0
    runs = list((tmp_path / "runs" / "2020" / "ddcsad").iterdir())
    assert len(runs) == 1
    run = runs[0]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert "QUICK" in config["mode"] and config["settings"]["iterations"] == 3
    assert (run / "QUICK_MODE.txt").is_file()
    units = training_logged(run)  # each loss x ID: CSV log, tensorboard/, plots/training/<unit>.png
    log = pd.read_csv(next(u for u in units if u.name.endswith("-bce_ddcsad")) / "training_log.csv")
    assert {"bce", "centroid_loss", "dist_normal_cp", "dist_outlier_cn", "learning_rate_encoder"} <= set(log.columns)
    assert all((u / "training_log_anomalies1.csv").is_file() for u in units)  # each fine-tuning logs beside it
    # submission files: one folder per loss, one file per trained ID, every test clip scored once
    for loss in ("bce", "ddcsad", "bce+ddcsad"):
        for unit, n in (("id_00", 4), ("id_01", 4)):
            rows = pd.read_csv(run / "scores" / loss / f"anomaly_score_fan_{unit}.csv", header=None)
            assert len(rows) == n and rows[1].notna().all()
        assert (run / "models" / loss / "fan_id_00.weights.npz").is_file()
        assert (run / "models" / f"{loss}_anomalies1" / "fan_id_01.weights.npz").is_file()
        # Fig. 2 systems: the pooled anomaly (1 of 2 per ID) left the evaluation set
        rows = pd.read_csv(run / "few_anomalies" / "scores" / f"{loss}_anomalies1" / "anomaly_score_fan_id_01.csv",
                           header=None)
        assert len(rows) == 3
    results = pd.read_csv(run / "results.csv")
    assert set(results["system"]) == {"bce", "ddcsad", "bce+ddcsad"}
    # the per-ID AUC of the dev ID, recomputed with scikit-learn from its submission file (labels in names)
    from sklearn.metrics import roc_auc_score

    for loss in ("bce", "ddcsad", "bce+ddcsad"):
        sub = pd.read_csv(run / "scores" / loss / "anomaly_score_fan_id_00.csv", header=None)
        y = sub[0].str.startswith("anomaly").to_numpy()
        row = results[(results["row"] == "unit") & (results["system"] == loss) & (results["unit"] == "id_00")]
        assert len(row) == 1 and row["auc"].iloc[0] == pytest.approx(roc_auc_score(y, sub[1]))
        assert sub[1].nunique() == len(sub)  # no ties: 1 - p from the logit, d' per clip
    # ... on saturated outputs: BCE's clips (alpha 1: 1 - p alone) tie in a float32 sigmoid, not in the scores
    from ddcsad.training import load_outputs

    logits = np.concatenate([load_outputs(run / "units" / f"fan-{u}-bce")[0][1] for u in ("id_00", "id_01")])
    one_minus_p32 = (np.float32(1) - 1 / (1 + np.exp(-logits.astype(np.float32)))).mean(axis=1)
    assert len(np.unique(one_minus_p32)) < len(one_minus_p32)  # saturated: clips tie in float32
    table2 = pd.read_csv(run / "table2.csv")
    assert set(table2["part"]) == {"dev", "eval"} and (table2["mode"] == "QUICK").all()
    assert len(table2[table2["machine_type"] == "fan"]) == 2 * 3  # two parts x three losses
    alpha = pd.read_csv(run / "alpha.csv").set_index("loss")
    assert alpha.at["bce+ddcsad", "alpha_used"] == alpha.at["bce+ddcsad", "alpha_validation"]
    assert alpha.at["bce", "alpha_used"] == 1.0 and alpha.at["ddcsad", "alpha_used"] == 0.0
    fig2 = pd.read_csv(run / "fig2.csv")
    assert sorted(fig2["anomalies"].unique()) == [0, 1]  # 2 and 4 exceed the pools of the tiny set
    assert (run / "plots" / "fig2_eval.png").is_file() and (run / "plots" / "bce" / "fan.png").is_file()
    training = pd.read_csv(run / "training.csv")
    assert len(training) == 3 * 2 * 2 and set(training["iterations"]) == {3, 2}
    text = (run / "comparison.md").read_text()
    assert "QUICK MODE" in text and "Table II" in text and "Fig. 2" in text and "82.33 ± 3.00" not in text  # DSAD was not run
    assert "95.14 ± 1.70" in text  # the paper's BCE+DDCSAD fan cell beside ours
    # one unit per loss and ID, named by what it is and seeded by its name; the fine-tunes inside it
    units = pd.read_csv(run / "units.csv")
    assert list(units["name"]) == [E.unit_name(loss, "fan", unit) for loss in ("bce", "ddcsad", "bce+ddcsad")
                                   for unit in ("id_00", "id_01")]
    assert list(units["name"][:2]) == ["fan-id_00-bce", "fan-id_01-bce"]
    assert list(units["seed"]) == [seed_for(1, name) for name in units["name"]]
    # embedding maps: one figure per machine type (one panel per ID, the BCE+DDCSAD models), accuracy "n/a"
    assert [p.name for p in (run / "plots" / "embeddings").glob("*.png")] == ["fan.png"]
    classification = pd.read_csv(run / "classification.csv")
    assert len(classification) == 1 and classification["accuracy"].isna().all()
    assert "Classification accuracy" in text and "n/a" in text
    from ddcsad.training import load_embeddings

    rows, z, c_p, c_n = load_embeddings(run / "units" / "fan-id_01-bce_ddcsad")
    test_clips = pd.read_csv(run / "scores" / "bce+ddcsad" / "anomaly_score_fan_id_01.csv", header=None)
    assert z.shape == (len(test_clips), 8) and c_p.shape == c_n.shape == (8,)  # light_channels [4, 8]: z of 8
    assert sorted(p.name for p in (run / "units" / "fan-id_01-bce_ddcsad").iterdir()) == [
        "anomalies1.weights.npz", "model.weights.npz", "outputs.npz", "tensorboard", "training_log.csv",
        "training_log_anomalies1.csv", "unit.json"]


def _scores_of(run):
    return {p.relative_to(run).as_posix(): pd.read_csv(p, header=None)[1].to_numpy()
            for p in sorted(run.glob("**/scores/*/*.csv"))}


def test_plan_train_unit_assemble_match_a_normal_run(tmp_path):
    """The job-array path (plan, train-unit --index i for each unit, assemble) works from the unit folders
    alone and gives the scores of a run in one process."""
    from run_dcase2020 import main

    root = make_tiny(tmp_path / "data")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"iterations": 2, "finetune_iterations": 1, "steps_per_epoch": 1,
                                                     "units_per_type": 1, "light_channels": [4],
                                                     "bn_calibration_batches": 1}))
    argv = ["ddcsad", "--data-root", str(root), "--quick", "--cache-dir", str(tmp_path / "cache"), "--config",
            str(tmp_path / "c.yaml"), "--losses", "bce+ddcsad", "--anomalies", "0,1", "--seed", "3"]
    assert main(argv + ["--out", str(tmp_path / "serial")]) == 0
    assert main(argv + ["--out", str(tmp_path / "array"), "--plan"]) == 0
    run = next((tmp_path / "array" / "2020" / "ddcsad").iterdir())
    names = list(pd.read_csv(run / "units.csv")["name"])
    assert names == ["fan-id_00-bce_ddcsad", "fan-id_01-bce_ddcsad"] and not (run / "units").exists()
    for i in reversed(range(len(names))):  # any order: each unit depends on its name only
        assert main(["train-unit", str(run), "--index", str(i)]) == 0
    assert main(["assemble", str(run)]) == 0
    serial = next((tmp_path / "serial" / "2020" / "ddcsad").iterdir())
    ours, theirs = _scores_of(run), _scores_of(serial)
    assert sorted(ours) == sorted(theirs) and any("few_anomalies" in k for k in ours)
    for key in ours:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-7, err_msg=key)
    assert (run / "comparison.md").read_text().count("Table II") >= 1


def test_paper_default_saves_no_model_files():
    # ResNet38: 68.5 M values, 274 MB per weights file; 205 models of the full run would not fit a 64 GB disk
    assert E.PAPER_CONFIG.save_models == "none" and E.PAPER_CONFIG.feature_frames is None
    assert E.PAPER_CONFIG.bn_calibration_batches > 0


def test_bad_settings_fail_with_one_line(tmp_path, capsys):
    from run_dcase2020 import main

    (tmp_path / "c.yaml").write_text("alpha: 2\n")
    rc = main(["ddcsad", "--data-root", str(tmp_path), "--config", str(tmp_path / "c.yaml"),
               "--out", str(tmp_path / "runs")])
    assert rc == 2 and "alpha" in capsys.readouterr().err


@pytest.mark.slow
def test_default_quick_command_on_the_quick_synthetic_set(tmp_path):
    """The default command (no flags but the output and cache folders): five losses, quick mode."""
    from run_dcase2020 import main

    assert main(["ddcsad", "--out", str(tmp_path / "runs")]) == 0
    run = next((tmp_path / "runs" / "2020" / "ddcsad").iterdir())
    table2 = pd.read_csv(run / "table2.csv")
    assert set(table2["method"]) == {"BCE", "DSAD", "DDCSAD", "BCE+DSAD", "BCE+DDCSAD"}
    assert len(table2[(table2["part"] == "eval") & (table2["machine_type"] != "Machine Average")]) == 6 * 5
