"""``asd fit`` + ``asd score`` end to end for the four methods on small folders of recordings with arbitrary
names (tiny settings: seconds, not results): a saved system scores alone as among others, and a fresh
process reloading it gives the same scores to the last bit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asdcore import system as systems

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "own"))
from folders import make_own_data, write_machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
#: the tiniest settings that still run every step of each method
TINY = {
    "subcluster-adacos": ["epochs=1", "representation_subclusters=2", "batch_size=16"],
    "multi-distribution": ["epochs=1", "checkpoint_every=1", "subclusters=[1]", "batch_size=16"],
    "ddcsad": ["iterations=2", "bn_calibration_batches=1", "n_crops=2"],
    "smoothing": ["ae.epochs=1", "serial_oe.epochs=1", "k=4", "protocol.clip_seconds=4.0", "ae.n_segments=1",
                  "serial_oe.n_segments=1"],
}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    os.environ.setdefault("ASD_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    root = tmp_path_factory.mktemp("own")
    data = make_own_data(root, n_train=6, n_test=2, duration=1.0)
    # two recordings of a changed condition: the target domain of one machine only
    write_machine(data["normal"] / "Pump hall 2" / "target", "Pump hall 2", 2, first=800, duration=1.0)
    out = {}
    for method, settings in TINY.items():
        test = [data["test"]] if method == "subcluster-adacos" else []  # the evaluation step once
        out[method] = systems.fit(method, [data["normal"]], root / "systems" / method, quick=True,
                                  test=test, settings=settings, calibration_fraction=0.0)
    return data, out


@pytest.mark.parametrize("method", list(TINY))
def test_fit_and_score(fitted, method):
    data, out = fitted
    info = json.loads((out[method] / "system.json").read_text())
    assert info["machines"] == ["Pump hall 2", "lüfter-A"] and info["method"] == method
    if method == "multi-distribution":  # eq. (3) where a target domain was given, source-only elsewhere
        assert info["domains"] == {"Pump hall 2": "source and target", "lüfter-A": "source only"}
        assert set(info["thresholds"]) == {"Pump hall 2", "Pump hall 2@target", "lüfter-A"}
    else:
        assert set(info["thresholds"]) == {"Pump hall 2", "lüfter-A"}
    if method == "subcluster-adacos":
        results = pd.read_csv(out[method] / "test_results.csv")
        assert set(results["machine"]) == {"Pump hall 2", "lüfter-A"} and results["auc"].between(0, 1).all()
    loaded = systems.load(out[method])
    files = sorted(p for p in data["test"].rglob("*") if p.is_file())
    together = loaded.score(files)
    assert not together["error"].any() and np.isfinite(together["score"]).all()
    assert (together["machine"] == [p.parent.parent.name for p in files]).all()
    assert (together["decision"] == (together["score"] > together["threshold"]).astype(int)).all() or \
        method == "multi-distribution"  # decides on its own decision score (Sec. 2.6)
    alone = pd.concat([loaded.score([f]) for f in files[::3]], ignore_index=True)
    assert alone["score"].tolist() == together["score"].iloc[::3].tolist()  # exactly, not approximately
    if method == "multi-distribution":
        target = sorted((data["normal"] / "Pump hall 2" / "target").iterdir())[:1]
        as_target, as_source = loaded.score(target), loaded.score(target, threshold=None, machine="lüfter-A")
        assert as_target["threshold"][0] == info["thresholds"]["Pump hall 2@target"]
        assert np.isfinite(as_target["score"][0]) and as_source["threshold"][0] == info["thresholds"]["lüfter-A"]
    # the fit's own calibration scores came through the same per-recording path
    calibration = pd.read_csv(out[method] / "calibration_scores.csv")
    again = loaded.score(list(calibration["path"][:2]), machines=list(calibration["machine"][:2]))
    assert again["score"].tolist() == calibration["score"][:2].tolist()


@pytest.mark.slow
def test_a_fresh_process_gives_identical_scores(fitted, tmp_path):
    data, out = fitted
    files = sorted(str(p) for p in data["test"].rglob("*") if p.is_file())[:4]
    here = {m: systems.load(path).score(files)["score"].tolist() for m, path in out.items()}
    script = ("import json, sys; from asdcore import system; "
              "print(json.dumps({m: system.load(p).score(sys.argv[2:])['score'].tolist() "
              "for m, p in json.loads(sys.argv[1]).items()}))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", script, json.dumps({m: str(p) for m, p in out.items()}), *files],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == here


def test_cli_in_a_fresh_process_gives_identical_scores(fitted, tmp_path):
    """``asd score`` in a new process (the console script's module) = the scores of this process, bit for bit."""
    data, out = fitted
    csv = tmp_path / "scores.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "asdcore.asd_cli", "score", str(out["subcluster-adacos"]),
                           str(data["test"] / "lüfter-A"), "--csv", str(csv)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = done.stdout.strip().splitlines()
    assert printed[0] == "path,machine,score,decision" and len(printed) == 5
    frame = pd.read_csv(csv)
    assert list(frame.columns[:4]) == ["path", "machine", "score", "decision"] and len(frame) == 4
    here = systems.load(out["subcluster-adacos"]).score([data["test"] / "lüfter-A"])
    assert frame["score"].tolist() == here["score"].tolist()
    assert frame["decision"].tolist() == here["decision"].tolist()
