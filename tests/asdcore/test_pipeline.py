"""The core's data steps take explicit settings, not a command line (issue 12): ``open_data`` and
``load_features`` are called with keywords only; the runner's RunContext is the one reader of the flags."""
import numpy as np
import pandas as pd
import pytest

from asdcore.experiment import RunFolder, resolve_quick
from asdcore.features import LogMelConfig, extract_features
from asdcore.pipeline import load_features, open_data


def test_open_data_reads_the_given_root(tiny_2021):
    source, table = open_data(2021, data_root=tiny_2021)
    wavs = sorted(p.name for p in tiny_2021.rglob("*.wav"))  # every recording of the root, counted by hand
    assert sorted(table["file"]) == wavs
    assert source.synthetic and source.year == 2021 and str(tiny_2021) in source.description


def test_open_data_generates_the_synthetic_set_in_the_given_cache(tmp_path, monkeypatch):
    calls = {}

    def fake_ensure(year, cache_dir, preset, seed):
        calls.update(year=year, cache_dir=cache_dir, preset=preset)
        raise RuntimeError("stop after the call")

    monkeypatch.setattr("asdcore.synthetic.ensure_synthetic", fake_ensure)
    with pytest.raises(RuntimeError, match="stop"):
        open_data(2020, synthetic_preset="tiny", cache_dir=tmp_path / "c")
    assert calls == {"year": 2020, "cache_dir": tmp_path / "c" / "synthetic", "preset": "tiny"}


def test_load_features_uses_the_given_cache_and_skips_bad_files(tiny_2021, tmp_path):
    _, table = open_data(2021, data_root=tiny_2021)
    table = table.head(4).copy()
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not audio")
    table.loc[table.index[1], "path"] = str(bad)
    run = RunFolder.create(tmp_path / "runs", 2021, "x", log_to_console=False)
    try:
        kept, features = load_features(table, LogMelConfig(), cache_dir=tmp_path / "cache", skip_bad_files=True,
                                       run=run)
        listed = pd.read_csv(run.path / "bad_files.csv")
    finally:
        run.close()
    assert list(kept["path"]) == [table["path"].iloc[i] for i in (0, 2, 3)]
    assert list(listed["path"]) == [str(bad)]
    assert any((tmp_path / "cache" / "features").rglob("*"))  # cached under the given root, nowhere else
    direct = extract_features(kept, LogMelConfig(), cache_dir=None)  # the same clips, computed afresh
    np.testing.assert_allclose(np.asarray(features), direct.features, atol=1e-5)
    with pytest.raises(Exception, match="broken.wav"):
        load_features(table, LogMelConfig(), cache_dir=tmp_path / "cache")  # skip_bad_files defaults to False
    with pytest.raises(TypeError):
        load_features(table, LogMelConfig(), object())  # settings are keywords, never a namespace


def test_resolve_quick_takes_the_flags_as_keywords():
    assert resolve_quick(quick=True, data_root="/data") == (True, "--quick")
    assert resolve_quick(data_root="/data") == (False, "")
    quick, why = resolve_quick()  # no data root: the synthetic data in quick mode
    assert quick and "no --data-root" in why
    assert resolve_quick(full=True) == (False, "")


def test_the_runner_is_the_one_reader_of_the_command_line():
    """No module of the core but the runner and the commands' own mains reads an argparse namespace."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2] / "asdcore"
    mains = {"runner.py", "cli.py", "asd_cli.py", "evaluation.py", "synthetic.py"}  # runner + command entry points
    readers = sorted(p.name for p in root.glob("*.py") if p.name not in mains
                     and re.search(r"getattr\(args\b|\bargs\.[a-z_]+", p.read_text(encoding="utf-8")))
    assert readers == []
