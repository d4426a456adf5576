"""The ``ddcsad`` command end to end on a tiny synthetic set, and its pieces (flags, model reuse)."""
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from asdcore import synthetic
from asdcore.errors import ASDError
from ddcsad import data
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

    code = ("import sys; import ddcsad.experiments as e; from ddcsad.losses import VARIANTS; "
            "assert e.VARIANTS == VARIANTS")
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


def small_config(**changes):
    base = dataclasses.replace(E.QUICK_CONFIG, light_channels=(4, 8), light_input_pool=1, crop_frames=16,
                               batch_composition=(2, 2), steps_per_epoch=3, inference_batch_size=8)
    return dataclasses.replace(base, **changes)


def test_trainer_counts_iterations_updates_centroids_and_resets():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(10, 20, 16)).astype(np.float32)
    feats[:4] += 1.0
    sets = data.UnitSets("dev", "fan", "id_00", normal=np.arange(4), outlier=np.arange(4, 10))
    trainer = E.LossTrainer("bce+ddcsad", small_config(), (16, 16), seed=0)
    model = trainer.model
    initial = [w.copy() for w in trainer.initial_weights]
    info = trainer.train(feats, sets, iterations=5, composition=(2, 2), seed=0)
    assert int(model.encoder_optimizer.iterations.numpy()) == 5  # exactly the asked iterations
    assert int(model.head_optimizer.iterations.numpy()) == 5
    # one update from the random network + one per epoch end (3 iterations, then a short epoch of 2)
    assert info["centroid_updates"] == 3 and info["steps_per_epoch"] == 3 and info["epochs"] == 2
    # the centroids are the mean embeddings of the centre crops of the final network
    start = (20 - 16) // 2
    z = model.embed(feats[:, start: start + 16])
    np.testing.assert_allclose(model.c_p.numpy(), z[:4].mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.c_n.numpy(), z[4:].mean(axis=0), rtol=1e-4, atol=1e-5)
    assert any(not np.allclose(a, b) for a, b in zip(model.get_weights(), initial))
    trained = model.get_weights()
    trainer.reset()
    for a, b in zip(model.get_weights(), initial):
        np.testing.assert_array_equal(a, b)
    assert int(model.encoder_optimizer.iterations.numpy()) == 0 and int(model.centroid_updates.numpy()) == 0
    assert all(not np.any(v.numpy()) for v in model.head_optimizer.variables)
    trainer.reset(trained)  # fine-tuning starts from the trained weights, centroids included
    np.testing.assert_array_equal(model.c_p.numpy(), trained[[i for i, w in enumerate(model.weights)
                                                              if w.path.endswith("c_p")][0]])


def make_tiny(root):
    return synthetic.generate(2020, root, seed=0, preset="tiny", machine_types=("fan",), n_train=3,
                              n_test_normal=2, n_test_anomaly=2, duration=3.0)


def test_quick_command_end_to_end(tmp_path):
    from run_dcase2020 import main

    root = make_tiny(tmp_path / "data")
    settings = {"iterations": 3, "finetune_iterations": 2, "steps_per_epoch": 2, "units_per_type": 1,
                "light_channels": [4, 8], "alpha": "validation", "save_models": "all"}
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


def test_model_files_size_estimate_and_disk_check(tmp_path, monkeypatch):
    """save_models: the log's size is the weights file's size; too little space stops with one line."""
    import logging
    import shutil
    from collections import namedtuple

    from ddcsad.model import save_model_weights

    config = small_config(save_models="all")
    trainer = E.LossTrainer("bce+ddcsad", config, (16, 16), seed=0)
    save_model_weights(trainer.model, tmp_path / "one.weights.npz")
    actual = (tmp_path / "one.weights.npz").stat().st_size
    messages = []
    log = logging.getLogger("test-ddcsad-plan")
    monkeypatch.setattr(log, "info", lambda fmt, *a: messages.append(fmt % a))
    assert E.plan_model_files(config, 10, 5, trainer.model, tmp_path, log) == 15
    each_mb = float(messages[0].split(" of ")[1].split(" MB")[0])
    n_vars = len(trainer.model.weights)
    assert actual / 1e6 - 5e-4 <= each_mb <= (actual + 256 * n_vars + 1024) / 1e6 + 5e-4  # >= the file, close
    assert E.plan_model_files(dataclasses.replace(config, save_models="base"), 10, 5, trainer.model, tmp_path) == 10
    assert E.plan_model_files(dataclasses.replace(config, save_models="none"), 10, 5, trainer.model, tmp_path) == 0
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 ** 9, 10 ** 9, 15 * actual))
    with pytest.raises(ASDError) as err:
        E.plan_model_files(config, 10, 5, trainer.model, tmp_path)
    assert "save_models" in str(err.value) and "\n" not in str(err.value)


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
