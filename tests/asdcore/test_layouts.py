"""DCASE 2020/2021 task 2 file-name grammar and folder layouts -> clip table (asdcore.layouts).

Every data tree is written by the tests into tmp_path (empty files: the layout reader never opens them);
expected tables are written out by hand from REFERENCE.md section 1.
"""

import os
import time
import warnings

import pandas as pd
import pytest

from asdcore import layouts
from asdcore.errors import ASDError, DataLayoutError

COLUMNS = ["path", "file", "year", "part", "machine_type", "unit", "domain", "split", "label", "attributes",
           "index"]


def touch(root, *relpaths):
    for rel in relpaths:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


# ------------------------------------------------------------------------------------------ grammar

@pytest.mark.parametrize("file, part, split, expected", [
    ("normal_id_01_00000000.wav", "dev", "train", ("id_01", "normal", "00000000")),
    ("normal_id_00_00000999.wav", "eval", "train", ("id_00", "normal", "00000999")),
    ("normal_id_01_00000000.wav", "dev", "test", ("id_01", "normal", "00000000")),
    ("anomaly_id_02_00000123.wav", "dev", "test", ("id_02", "anomaly", "00000123")),
    ("id_05_00000001.wav", "eval", "test", ("id_05", "unknown", "00000001")),
    ("anomaly_id_06_00000007.WAV", "eval", "test", ("id_06", "anomaly", "00000007")),
])
def test_parse_name_2020_real_names(file, part, split, expected):
    got = layouts.parse_name_2020(file, part, split)
    assert (got["unit"], got["label"], got["index"]) == expected
    assert got["domain"] == "" and got["attributes"] == "" and got["split"] == split


@pytest.mark.parametrize("file, folder, expected", [
    ("section_00_source_train_normal_0000_strength_1_ambient.wav", "train",
     ("section_00", "source", "train", "normal", "0000", "strength_1_ambient")),
    ("section_02_target_train_normal_0002_pro_A1_spd_28V_mic_1_noise_1.wav", "train",
     ("section_02", "target", "train", "normal", "0002", "pro_A1_spd_28V_mic_1_noise_1")),
    ("section_01_source_train_normal_0123_volt_1.0_wt_30.wav", "train",
     ("section_01", "source", "train", "normal", "0123", "volt_1.0_wt_30")),
    ("section_00_source_train_normal_0005.wav", "train",
     ("section_00", "source", "train", "normal", "0005", "")),
    ("section_01_target_test_anomaly_0042.wav", "target_test",
     ("section_01", "target", "test", "anomaly", "0042", "")),
    ("section_00_source_test_normal_0099.wav", "source_test",
     ("section_00", "source", "test", "normal", "0099", "")),
    ("section_03_target_test_0007.wav", "target_test",
     ("section_03", "target", "test", "unknown", "0007", "")),
    ("section_04_source_test_0000.wav", "source_test",
     ("section_04", "source", "test", "unknown", "0000", "")),
    # the later single test folder: the domain comes from the name
    ("section_00_target_test_anomaly_0001_car_A1.wav", "test",
     ("section_00", "target", "test", "anomaly", "0001", "car_A1")),
])
def test_parse_name_2021_real_names(file, folder, expected):
    got = layouts.parse_name_2021(file, "dev", folder)
    assert (got["unit"], got["domain"], got["split"], got["label"], got["index"], got["attributes"]) == expected


@pytest.mark.parametrize("file, split", [
    ("normal_id_01.wav", "train"),
    ("normal_id_01_00000000.flac", "train"),
    ("abnormal_id_01_00000000.wav", "test"),
    ("normal_id_xx_00000000.wav", "test"),
    ("normalid_01_00000000.wav", "test"),
    ("normal_id_01_00000000.wav.bak", "test"),
    ("anomaly_id_01_00000000.wav", "train"),  # training clips are normal
    ("id_01_00000000.wav", "train"),
    ("section_00_source_train_normal_0000.wav", "test"),  # a 2021 name
    ("", "train"),
])
def test_parse_name_2020_rejects(file, split):
    with pytest.raises(DataLayoutError, match="expected"):
        layouts.parse_name_2020(file, "dev", split)


@pytest.mark.parametrize("file, folder", [
    ("section_00_source_train_anomaly_0000.wav", "train"),          # anomaly in train
    ("section_00_source_train_0000.wav", "train"),                  # unlabelled train
    ("section_00_source_test_normal_0000.wav", "train"),            # a test name in train
    ("section_00_source_train_normal_0000.wav", "source_test"),     # a train name in a test folder
    ("section_00_source_test_normal_0000.wav", "target_test"),      # wrong domain folder
    ("section_01_target_test_anomaly_0042.wav", "source_test"),
    ("section_00_train_normal_0000.wav", "train"),                  # no domain
    ("section_0a_source_test_0001.wav", "source_test"),
    ("section_00_sauce_test_0001.wav", "source_test"),
    ("section_00_source_test_abnormal_0001.wav", "source_test"),
    ("normal_id_01_00000000.wav", "train"),                         # a 2020 name
    ("section_00_source_train_normal_0000_x.mp3", "train"),
])
def test_parse_name_2021_rejects(file, folder):
    with pytest.raises(DataLayoutError, match="expected"):
        layouts.parse_name_2021(file, "dev", folder)


def test_parse_name_2021_unknown_split_folder():
    with pytest.raises(DataLayoutError, match="expected one of"):
        layouts.parse_name_2021("section_00_source_test_0001.wav", "dev", "validation")


# ------------------------------------------------------------------------------------------ 2020 tree

def dcase2020_tree(root):
    touch(root,
          "dev_data/fan/train/normal_id_00_00000000.wav",
          "dev_data/fan/train/normal_id_00_00000001.wav",
          "dev_data/fan/train/normal_id_02_00000000.wav",
          "dev_data/fan/test/normal_id_00_00000000.wav",
          "dev_data/fan/test/anomaly_id_00_00000000.wav",
          "dev_data/fan/test/anomaly_id_02_00000123.wav",
          "dev_data/ToyCar/train/normal_id_01_00000000.wav",
          "dev_data/ToyCar/test/anomaly_id_01_00000000.wav",
          "eval_data/fan/train/normal_id_01_00000000.wav",
          "eval_data/fan/test/id_01_00000000.wav",
          "eval_data/fan/test/id_01_00000001.wav",
          "eval_data/ToyCar/train/normal_id_05_00000000.wav",
          "eval_data/ToyCar/test/id_05_00000001.wav",
          )


def test_read_dcase2020_table(tmp_path):
    dcase2020_tree(tmp_path)
    (tmp_path / "eval_data_list.csv").write_text(
        "fan\n"
        "id_01_00000000.wav,normal_id_01_00000010.wav,0\n"
        "id_01_00000001.wav,anomaly_id_01_00000003.wav,1\n"
        "ToyCar\n"
        "id_05_00000001.wav,anomaly_id_05_00000000.wav,1\n")
    table = layouts.read_dcase2020(tmp_path)
    assert list(table.columns) == COLUMNS
    assert table["year"].dtype.kind == "i" and set(table["year"]) == {2020}
    expected = [  # sorted by (part, machine_type, unit, split, domain, file); 'T' < 'f' in byte order
        ("dev", "ToyCar", "id_01", "test", "anomaly_id_01_00000000.wav", "anomaly", "00000000"),
        ("dev", "ToyCar", "id_01", "train", "normal_id_01_00000000.wav", "normal", "00000000"),
        ("dev", "fan", "id_00", "test", "anomaly_id_00_00000000.wav", "anomaly", "00000000"),
        ("dev", "fan", "id_00", "test", "normal_id_00_00000000.wav", "normal", "00000000"),
        ("dev", "fan", "id_00", "train", "normal_id_00_00000000.wav", "normal", "00000000"),
        ("dev", "fan", "id_00", "train", "normal_id_00_00000001.wav", "normal", "00000001"),
        ("dev", "fan", "id_02", "test", "anomaly_id_02_00000123.wav", "anomaly", "00000123"),
        ("dev", "fan", "id_02", "train", "normal_id_02_00000000.wav", "normal", "00000000"),
        ("eval", "ToyCar", "id_05", "test", "id_05_00000001.wav", "anomaly", "00000001"),
        ("eval", "ToyCar", "id_05", "train", "normal_id_05_00000000.wav", "normal", "00000000"),
        ("eval", "fan", "id_01", "test", "id_01_00000000.wav", "normal", "00000000"),
        ("eval", "fan", "id_01", "test", "id_01_00000001.wav", "anomaly", "00000001"),
        ("eval", "fan", "id_01", "train", "normal_id_01_00000000.wav", "normal", "00000000"),
    ]
    got = list(table[["part", "machine_type", "unit", "split", "file", "label", "index"]].itertuples(
        index=False, name=None))
    assert got == expected
    assert (table["domain"] == "").all() and (table["attributes"] == "").all()
    for row in table.itertuples():
        assert os.path.isabs(row.path)
        folder = "dev_data" if row.part == "dev" else "eval_data"
        assert row.path == str(tmp_path / folder / row.machine_type / row.split / row.file)


def test_read_dcase2020_without_ground_truth_is_unknown(tmp_path):
    dcase2020_tree(tmp_path)
    table = layouts.read_dataset(2020, tmp_path)
    eval_test = table[(table.part == "eval") & (table.split == "test")]
    assert len(eval_test) == 3 and set(eval_test["label"]) == {"unknown"}
    assert set(table[table.part == "dev"]["label"]) == {"normal", "anomaly"}


def test_read_dcase2020_explicit_ground_truth_and_partial_warning(tmp_path):
    dcase2020_tree(tmp_path)
    gt = tmp_path / "labels" / "eval_data_list.csv"
    gt.parent.mkdir()
    # CRLF line ends, a BOM and a blank line, as files edited on other systems have
    gt.write_bytes("\ufefffan\r\nid_01_00000000.wav,normal_id_01_00000000.wav,0\r\n\r\n"
                   "id_01_00000001.wav,anomaly_id_01_00000001.wav,1\r\n".encode("utf-8"))
    with pytest.warns(UserWarning, match="1 of 3"):
        table = layouts.read_dataset("2020", tmp_path, ground_truth=gt)
    labels = dict(zip(table["file"][table.part == "eval"], table["label"][table.part == "eval"]))
    assert labels["id_01_00000000.wav"] == "normal"
    assert labels["id_01_00000001.wav"] == "anomaly"
    assert labels["id_05_00000001.wav"] == "unknown"
    # a folder holding the file works as well
    with pytest.warns(UserWarning):
        again = layouts.read_dataset(2020, tmp_path, ground_truth=gt.parent)
    pd.testing.assert_frame_equal(table, again)


def test_eval_data_list_parsing(tmp_path):
    path = tmp_path / "eval_data_list.csv"
    path.write_text("ToyCar\nid_05_00000000.wav,normal_id_05_00000000.wav,0\n"
                    "id_05_00000001.wav,anomaly_id_05_00000003.wav,1\n"
                    "valve\nid_01_00000000.wav,anomaly_id_01_00000000.wav,1\n")
    assert layouts.read_eval_data_list(path) == {
        ("ToyCar", "id_05_00000000.wav"): "normal",
        ("ToyCar", "id_05_00000001.wav"): "anomaly",
        ("valve", "id_01_00000000.wav"): "anomaly",
    }


@pytest.mark.parametrize("text, what", [
    ("id_05_00000000.wav,normal_id_05_00000000.wav,0\n", "before any machine type"),
    ("ToyCar\nid_05_00000000.wav,normal_id_05_00000000.wav,yes\n", "line 2"),
])
def test_eval_data_list_malformed(tmp_path, text, what):
    path = tmp_path / "eval_data_list.csv"
    path.write_text(text)
    with pytest.raises(DataLayoutError, match=what) as err:
        layouts.read_eval_data_list(path)
    assert str(path) in str(err.value)


def test_ground_truth_errors_2020(tmp_path):
    dcase2020_tree(tmp_path)
    with pytest.raises(DataLayoutError, match="does not exist"):
        layouts.read_dcase2020(tmp_path, ground_truth=tmp_path / "nope.csv")
    wrong = tmp_path / "other.csv"
    wrong.write_text("pump\nid_01_00000000.wav,normal_id_01_00000000.wav,0\n")
    with pytest.raises(DataLayoutError, match="labels none of the 3 unlabelled"):
        layouts.read_dcase2020(tmp_path, ground_truth=wrong)


# ------------------------------------------------------------------------------------------ 2021 tree

def dcase2021_tree(root):
    touch(root,
          "dev_data/gearbox/train/section_00_source_train_normal_0000_volt_1.0_wt_30.wav",
          "dev_data/gearbox/train/section_00_target_train_normal_0000_volt_1.3_wt_30.wav",
          "dev_data/gearbox/source_test/section_00_source_test_normal_0000.wav",
          "dev_data/gearbox/source_test/section_00_source_test_anomaly_0000.wav",
          "dev_data/gearbox/target_test/section_00_target_test_anomaly_0042.wav",
          "eval_data/gearbox/train/section_03_source_train_normal_0000_strength_1_ambient.wav",
          "eval_data/gearbox/source_test/section_03_source_test_0000.wav",
          "eval_data/gearbox/source_test/section_03_source_test_0001.wav",
          "eval_data/gearbox/target_test/section_03_target_test_0007.wav",
          )


def write_gt_2021(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ground_truth_gearbox_section_03_source_test.csv").write_text(
        "section_03_source_test_0000.wav,1\nsection_03_source_test_0001.wav,0\n")
    (folder / "ground_truth_gearbox_section_03_target_test.csv").write_text(
        "section_03_target_test_0007.wav,1\n")


def test_read_dcase2021_table_with_ground_truth_in_root(tmp_path):
    dcase2021_tree(tmp_path)
    write_gt_2021(tmp_path / "ground_truth")
    table = layouts.read_dcase2021(tmp_path)
    assert list(table.columns) == COLUMNS
    expected = [
        ("dev", "section_00", "test", "source", "section_00_source_test_anomaly_0000.wav", "anomaly", "", "0000"),
        ("dev", "section_00", "test", "source", "section_00_source_test_normal_0000.wav", "normal", "", "0000"),
        ("dev", "section_00", "test", "target", "section_00_target_test_anomaly_0042.wav", "anomaly", "", "0042"),
        ("dev", "section_00", "train", "source", "section_00_source_train_normal_0000_volt_1.0_wt_30.wav",
         "normal", "volt_1.0_wt_30", "0000"),
        ("dev", "section_00", "train", "target", "section_00_target_train_normal_0000_volt_1.3_wt_30.wav",
         "normal", "volt_1.3_wt_30", "0000"),
        ("eval", "section_03", "test", "source", "section_03_source_test_0000.wav", "anomaly", "", "0000"),
        ("eval", "section_03", "test", "source", "section_03_source_test_0001.wav", "normal", "", "0001"),
        ("eval", "section_03", "test", "target", "section_03_target_test_0007.wav", "anomaly", "", "0007"),
        ("eval", "section_03", "train", "source", "section_03_source_train_normal_0000_strength_1_ambient.wav",
         "normal", "strength_1_ambient", "0000"),
    ]
    got = list(table[["part", "unit", "split", "domain", "file", "label", "attributes", "index"]].itertuples(
        index=False, name=None))
    assert got == expected
    assert set(table["year"]) == {2021} and set(table["machine_type"]) == {"gearbox"}
    row = table[table.file == "section_03_target_test_0007.wav"].iloc[0]
    assert row.path == str(tmp_path / "eval_data" / "gearbox" / "target_test" / row.file)


@pytest.mark.parametrize("where", ["ground_truth", "ground_truth_data", "."])
def test_read_dcase2021_finds_ground_truth_folders(tmp_path, where):
    dcase2021_tree(tmp_path)
    write_gt_2021(tmp_path / where)
    table = layouts.read_dataset(2021, tmp_path)
    assert (table["label"] != "unknown").all()


def test_read_dcase2021_explicit_ground_truth(tmp_path):
    dcase2021_tree(tmp_path)
    table = layouts.read_dataset(2021, tmp_path)
    assert (table[table.part == "eval"].query("split == 'test'")["label"] == "unknown").all()
    write_gt_2021(tmp_path.parent / (tmp_path.name + "_gt"))
    table = layouts.read_dataset(2021, tmp_path, ground_truth=tmp_path.parent / (tmp_path.name + "_gt"))
    assert (table["label"] != "unknown").all()
    # one file is accepted too (the other domain stays unknown, with a warning)
    single = tmp_path.parent / (tmp_path.name + "_gt") / "ground_truth_gearbox_section_03_target_test.csv"
    with pytest.warns(UserWarning, match="2 of 3"):
        table = layouts.read_dataset(2021, tmp_path, ground_truth=single)
    assert table.set_index("file").loc["section_03_target_test_0007.wav", "label"] == "anomaly"


def test_ground_truth_2021_parsing_and_errors(tmp_path):
    folder = tmp_path / "gt"
    write_gt_2021(folder)
    (folder / "README.txt").write_text("not a ground truth file")
    assert layouts.read_ground_truth_2021(folder) == {
        ("gearbox", "section_03_source_test_0000.wav"): "anomaly",
        ("gearbox", "section_03_source_test_0001.wav"): "normal",
        ("gearbox", "section_03_target_test_0007.wav"): "anomaly",
    }
    bad = tmp_path / "bad" / "ground_truth_fan_section_04_source_test.csv"
    bad.parent.mkdir()
    bad.write_text("section_04_source_test_0000.wav,1\nsection_04_source_test_0001.wav\n")
    with pytest.raises(DataLayoutError, match="line 2"):
        layouts.read_ground_truth_2021(bad.parent)
    dcase2021_tree(tmp_path / "data")
    empty = tmp_path / "empty_gt"
    empty.mkdir()
    with pytest.raises(DataLayoutError, match="holds no ground_truth"):
        layouts.read_dcase2021(tmp_path / "data", ground_truth=empty)


def test_single_test_folder_2021(tmp_path):
    touch(tmp_path,
          "dev_data/fan/train/section_00_source_train_normal_0000_a_1.wav",
          "dev_data/fan/test/section_00_source_test_normal_0000.wav",
          "dev_data/fan/test/section_00_target_test_anomaly_0000.wav")
    table = layouts.read_dcase2021(tmp_path)
    assert list(table["domain"]) == ["source", "target", "source"]
    assert list(table["split"]) == ["test", "test", "train"]


# ------------------------------------------------------------------------------------------ decisions

def test_own_machine_types_and_subsets_are_accepted(tmp_path):
    touch(tmp_path,
          "dev_data/compressor_line3/train/normal_id_00_00000000.wav",
          "dev_data/compressor_line3/test/anomaly_id_00_00000000.wav")
    table = layouts.read_dcase2020(tmp_path)
    assert set(table["machine_type"]) == {"compressor_line3"} and set(table["part"]) == {"dev"}


def test_files_that_are_not_recordings_are_skipped(tmp_path):
    dcase2020_tree(tmp_path)
    touch(tmp_path, "dev_data/fan/train/README", "dev_data/fan/train/notes.txt", "dev_data/fan/test/list.csv",
          "dev_data/fan/test/.DS_Store", "dev_data/fan/test/._anomaly_id_00_00000000.wav",
          "dev_data/fan.zip", "dev_data/fan/readme.md", "README.md", "dev_data/.cache/x/y.wav")
    table = layouts.read_dcase2020(tmp_path)
    assert len(table) == 13
    assert all(f.endswith(".wav") and not f.startswith(".") for f in table["file"])


def test_other_audio_formats_are_an_error(tmp_path):
    dcase2020_tree(tmp_path)
    touch(tmp_path, "dev_data/fan/train/normal_id_00_00000009.flac")
    with pytest.raises(DataLayoutError, match="not in WAV format") as err:
        layouts.read_dcase2020(tmp_path)
    assert "normal_id_00_00000009.flac" in str(err.value)


# ------------------------------------------------------------------------------------------ errors

def test_missing_root(tmp_path):
    with pytest.raises(DataLayoutError, match="does not exist") as err:
        layouts.read_dcase2020(tmp_path / "nowhere")
    assert "dev_data" in str(err.value) and str(tmp_path / "nowhere") in str(err.value)
    (tmp_path / "file").write_text("")
    with pytest.raises(DataLayoutError, match="not a folder"):
        layouts.read_dcase2021(tmp_path / "file")
    with pytest.raises(DataLayoutError):
        layouts.read_dcase2021(None)


def test_root_without_dev_or_eval_data(tmp_path):
    (tmp_path / "something").mkdir()
    with pytest.raises(DataLayoutError, match="neither dev_data/ nor eval_data/") as err:
        layouts.read_dcase2020(tmp_path)
    assert str(tmp_path) in str(err.value)
    # pointing at dev_data itself gets a hint
    dcase2020_tree(tmp_path)
    with pytest.raises(DataLayoutError, match="pass its parent"):
        layouts.read_dcase2020(tmp_path / "dev_data")
    with pytest.raises(DataLayoutError, match="two levels up"):
        layouts.read_dcase2020(tmp_path / "dev_data" / "fan")


def test_empty_data_and_type_folders(tmp_path):
    (tmp_path / "dev_data").mkdir()
    with pytest.raises(DataLayoutError, match="no machine type folder"):
        layouts.read_dcase2020(tmp_path)
    (tmp_path / "dev_data" / "fan").mkdir()
    with pytest.raises(DataLayoutError, match="machine type folder.* empty") as err:
        layouts.read_dcase2020(tmp_path)
    assert str(tmp_path / "dev_data" / "fan") in str(err.value)


def test_missing_and_empty_split_folders(tmp_path):
    touch(tmp_path, "dev_data/fan/train/normal_id_00_00000000.wav")
    with pytest.raises(DataLayoutError, match="split folder.* missing") as err:
        layouts.read_dcase2020(tmp_path)
    assert str(tmp_path / "dev_data" / "fan" / "test") in str(err.value)
    (tmp_path / "dev_data" / "fan" / "test").mkdir()
    touch(tmp_path, "dev_data/fan/test/README.txt")
    with pytest.raises(DataLayoutError, match="hold no .wav recording") as err:
        layouts.read_dcase2020(tmp_path)
    assert str(tmp_path / "dev_data" / "fan" / "test") in str(err.value)
    touch(tmp_path, "dev_data/pump/train/section_00_source_train_normal_0000.wav")
    with pytest.raises(DataLayoutError):
        layouts.read_dcase2021(tmp_path)


def test_2021_missing_target_test(tmp_path):
    touch(tmp_path, "dev_data/fan/train/section_00_source_train_normal_0000.wav",
          "dev_data/fan/source_test/section_00_source_test_normal_0000.wav")
    with pytest.raises(DataLayoutError, match="missing") as err:
        layouts.read_dcase2021(tmp_path)
    assert "target_test" in str(err.value)


def test_wrong_year_folders_get_a_hint(tmp_path):
    dcase2021_tree(tmp_path)
    with pytest.raises(DataLayoutError, match="DCASE 2021 data"):
        layouts.read_dcase2020(tmp_path)


def test_unexpected_subfolder_in_split(tmp_path):
    dcase2020_tree(tmp_path)
    (tmp_path / "dev_data" / "fan" / "train" / "more").mkdir()
    with pytest.raises(DataLayoutError, match="unexpected sub-folder"):
        layouts.read_dcase2020(tmp_path)


def test_bad_names_are_collected_and_at_most_three_named(tmp_path):
    dcase2020_tree(tmp_path)
    bad = [f"dev_data/fan/test/broken_{i}.wav" for i in range(5)]
    touch(tmp_path, *bad)
    with pytest.raises(DataLayoutError) as err:
        layouts.read_dcase2020(tmp_path)
    msg = str(err.value)
    assert isinstance(err.value, ASDError) and isinstance(err.value, ValueError)
    assert "\n" not in msg
    assert sum(f"broken_{i}.wav" in msg for i in range(5)) == 3
    assert "and 2 more" in msg and "5 recording name(s)" in msg
    assert "normal_id_XX_NNNNNNNN.wav" in msg  # says what was expected


def test_2021_domain_folder_mismatch_names_the_file(tmp_path):
    dcase2021_tree(tmp_path)
    touch(tmp_path, "dev_data/gearbox/source_test/section_00_target_test_normal_0003.wav")
    with pytest.raises(DataLayoutError, match="target clip in the source_test folder") as err:
        layouts.read_dcase2021(tmp_path)
    assert "section_00_target_test_normal_0003.wav" in str(err.value)


def test_unsupported_year(tmp_path):
    dcase2020_tree(tmp_path)
    with pytest.raises(DataLayoutError, match="expected one of 2020, 2021, 2022, 2023, 2024, 2025"):
        layouts.read_dataset(2019, tmp_path)


def test_empty_table_has_the_columns():
    # a reader that finds nothing raises, but the column list is public and complete
    assert layouts.COLUMNS == COLUMNS


def test_official_units_match_reference():
    units = layouts.OFFICIAL_UNITS
    assert sum(len(u) for part in units[2020].values() for u in part.values()) == 41
    assert sum(len(u) for part in units[2021].values() for u in part.values()) == 42
    assert units[2020]["eval"]["ToyConveyor"] == ("id_04", "id_05", "id_06")
    assert units[2020]["dev"]["valve"] == ("id_00", "id_02", "id_04", "id_06")


# ------------------------------------------------------------------------------------------ speed

def test_forty_thousand_files_parse_fast(tmp_path):
    """A full-size 2021 tree (~40k recordings, the size of the dev + eval sets) parses in about a second."""
    n = 0
    for part, sections in (("dev_data", (0, 1, 2)), ("eval_data", (3, 4, 5))):
        for mtype in layouts.MACHINE_TYPES[2021]:
            base = tmp_path / part / mtype
            for folder in ("train", "source_test", "target_test"):
                (base / folder).mkdir(parents=True)
            for s in sections:
                for i in range(900 if part == "dev_data" else 750):
                    open(base / "train" / f"section_{s:02d}_source_train_normal_{i:04d}_speed_1_a.wav", "wb").close()
                    n += 1
                for dom in ("source", "target"):
                    for i in range(60):
                        name = (f"section_{s:02d}_{dom}_test_{'normal' if i % 2 else 'anomaly'}_{i:04d}.wav"
                                if part == "dev_data" else f"section_{s:02d}_{dom}_test_{i:04d}.wav")
                        open(base / f"{dom}_test" / name, "wb").close()
                        n += 1
    assert n > 39000
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = layouts.read_dcase2021(tmp_path)
    elapsed = time.perf_counter() - start
    assert len(table) == n
    assert elapsed < 5.0, f"{n} files took {elapsed:.2f} s"  # ~0.3 s on an idle laptop core
