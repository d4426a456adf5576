"""Folders of own recordings -> clip table (asdcore.folders)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdcore.errors import ASDError
from asdcore.folders import domain_of_path, machine_of_path, read_folders


def _wav(path: Path, seconds: float = 0.1):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(16000 * seconds), np.float32), 16000)
    return path


def test_each_sub_folder_is_a_machine_and_names_are_free(tmp_path):
    _wav(tmp_path / "normal" / "Pump 1" / "a b.wav")
    _wav(tmp_path / "normal" / "Pump 1" / "day 2" / "x.FLAC")
    _wav(tmp_path / "normal" / "Pump 1" / "target" / "changed.wav")
    _wav(tmp_path / "normal" / "fan-ü" / "0001.wav")
    (tmp_path / "normal" / "fan-ü" / "notes.txt").write_text("not audio")
    _wav(tmp_path / "normal" / "fan-ü" / ".hidden.wav")
    table = read_folders([tmp_path / "normal"])
    assert sorted(table["machine"]) == ["Pump 1", "Pump 1", "Pump 1", "fan-ü"]
    assert set(table["split"]) == {"train"} and set(table["label"]) == {"normal"}
    domains = dict(zip(table["file"], table["domain"]))
    assert domains == {"a b.wav": "source", "x.FLAC": "source", "changed.wav": "target", "0001.wav": "source"}
    # a folder of recordings without sub-folders is one machine named after it
    one = read_folders([tmp_path / "normal" / "fan-ü"])
    assert list(one["machine"]) == ["fan-ü"]


def test_bad_folders_are_one_line_errors(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ASDError, match="no .wav or .flac recordings found"):
        read_folders([tmp_path / "empty"])
    with pytest.raises(ASDError, match="no such folder"):
        read_folders([tmp_path / "nope"])
    _wav(tmp_path / "mixed" / "loose.wav")
    _wav(tmp_path / "mixed" / "m1" / "a.wav")
    with pytest.raises(ASDError, match="move them into a sub-folder"):
        read_folders([tmp_path / "mixed"])
    _wav(tmp_path / "a" / "m1" / "a.wav")
    _wav(tmp_path / "b" / "m1" / "b.wav")
    with pytest.raises(ASDError, match="comes from several folders"):
        read_folders([tmp_path / "a", tmp_path / "b"])


def test_test_folders_need_labels(tmp_path):
    _wav(tmp_path / "test" / "m1" / "normal" / "a.wav")
    _wav(tmp_path / "test" / "m1" / "anomaly" / "b.wav")
    _wav(tmp_path / "single" / "normal" / "c.wav")
    table = read_folders([tmp_path / "test", tmp_path / "single"], labelled=True)
    assert list(zip(table["machine"], table["label"])) == [("m1", "anomaly"), ("m1", "normal"),
                                                           ("single", "normal")]
    _wav(tmp_path / "unlabelled" / "m1" / "c.wav")
    with pytest.raises(ASDError, match="normal/ or anomaly/"):
        read_folders([tmp_path / "unlabelled"], labelled=True)


def test_a_dcase_root_is_read_with_the_layout_reader(tmp_path):
    from asdcore.synthetic import generate

    root = generate(2020, tmp_path / "dcase", preset="tiny", parts=("dev",), machine_types=("fan", "pump"),
                    n_train=2, n_test_normal=1, n_test_anomaly=1, duration=0.2)
    train = read_folders([root])
    assert set(train["split"]) == {"train"} and train["machine"].str.match(r"(fan|pump)/id_\d\d$").all()
    test = read_folders([root], labelled=True)
    assert set(test["label"]) == {"normal", "anomaly"} and set(test["machine"]) <= set(train["machine"])


def test_machine_of_a_path(tmp_path):
    machines = ["Pump 1", "fan/id_00", "fan/id_02"]
    assert machine_of_path(tmp_path / "x" / "Pump 1" / "normal" / "a.wav", machines) == "Pump 1"
    assert machine_of_path(tmp_path / "fan" / "test" / "anomaly_id_02_00000001.wav", machines) == "fan/id_02"
    assert machine_of_path(tmp_path / "a.wav", machines, explicit="Pump 1") == "Pump 1"
    assert machine_of_path(tmp_path / "a.wav", ["only"]) == "only"
    with pytest.raises(ASDError, match="cannot tell its machine"):
        machine_of_path(tmp_path / "a.wav", machines)
    with pytest.raises(ASDError, match="not a machine of this system"):
        machine_of_path(tmp_path / "a.wav", machines, explicit="nope")
    assert domain_of_path(tmp_path / "m" / "target" / "a.wav") == "target"
    assert domain_of_path(tmp_path / "section_00_target_test_normal_0001.wav") == "target"
    assert domain_of_path(tmp_path / "m" / "a.wav") == "source"
