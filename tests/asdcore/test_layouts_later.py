"""DCASE 2022-2025 task 2 layouts -> clip table (asdcore.layouts): real file names, attribute files, ground truth.

The names below are copied from the organisers' public files (no audio is needed: the reader never opens a
recording): the 2022 evaluator's ground truth (Kota-Dohi/dcase2022_evaluator: ``ground_truth_data``,
``ground_truth_domain``, ``ground_truth_attributes/fan/attributes_03.csv``), the 2023 evaluator's ground truth
(nttcslab/dcase2023_task2_evaluator, ToyDrone and bandsaw), the baseline's lists
(nttcslab/dcase2023_task2_baseline_ae ``datasets/eval_data_list_2024.csv``, ``eval_data_list_2025.csv`` and the
2024 gearbox ``attributes_00_train_correspondence.csv``). Expected tables are written out by hand.
"""

import pytest

from asdcore import layouts
from asdcore.errors import DataLayoutError

from .test_layouts import touch


# ------------------------------------------------------------------------------------------ grammar

@pytest.mark.parametrize("file, split, expected", [
    # (unit, domain, split, label, attributes, index)
    ("section_00_source_train_normal_0001_pro_A_wt_200.wav", "train",
     ("section_00", "source", "train", "normal", "pro_A_wt_200", "0001")),
    ("section_00_source_train_normal_0001_noAttribute.wav", "train",
     ("section_00", "source", "train", "normal", "noAttribute", "0001")),
    ("section_03_target_test_normal_0002_m-n_Y.wav", "test",
     ("section_03", "target", "test", "normal", "m-n_Y", "0002")),
    ("section_00_target_test_anomaly_0012_car_C1_spd_1_mic_2.wav", "test",
     ("section_00", "target", "test", "anomaly", "car_C1_spd_1_mic_2", "0012")),
    ("section_00_target_test_anomaly_0001_mdl_B_spd_2.wav", "test",
     ("section_00", "target", "test", "anomaly", "mdl_B_spd_2", "0001")),
    ("section_00_target_test_anomaly_0012_id_C1_spd_2_mic_2.wav", "test",
     ("section_00", "target", "test", "anomaly", "id_C1_spd_2_mic_2", "0012")),
    ("section_03_0000.wav", "test", ("section_03", "", "test", "unknown", "", "0000")),
    ("section_00_0200.wav", "test", ("section_00", "", "test", "unknown", "", "0200")),
    ("section_03_test_0000.wav", "test", ("section_03", "", "test", "unknown", "", "0000")),
])
def test_parse_name_later_real_names(file, split, expected):
    got = layouts.parse_name_later(file, "dev", split)
    assert (got["unit"], got["domain"], got["split"], got["label"], got["attributes"], got["index"]) == expected


@pytest.mark.parametrize("file, split", [
    ("section_00_0000.wav", "train"),                                   # unlabelled name in train
    ("section_00_source_test_normal_0001_a_1.wav", "train"),            # test name in train
    ("section_00_source_train_anomaly_0001_a_1.wav", "train"),          # anomalous training clip
    ("normal_id_01_00000000.wav", "test"),                              # a 2020 name
])
def test_parse_name_later_rejects(file, split):
    with pytest.raises(DataLayoutError):
        layouts.parse_name_later(file, "dev", split)


# --------------------------------------------------------------------------------------- data roots

def _rows(table):
    return [tuple(r) for r in table[["part", "machine_type", "unit", "domain", "split", "label", "attributes",
                                     "index", "file"]].itertuples(index=False)]


def test_2022_eval_with_the_evaluator_ground_truth(tmp_path):
    root = tmp_path / "data"
    touch(root, "dev_data/fan/train/section_00_source_train_normal_0000_m-n_W.wav",
          "dev_data/fan/test/section_00_source_test_anomaly_0000_m-n_W.wav",
          "eval_data/fan/train/section_03_target_train_normal_0000_m-n_Y.wav",
          "eval_data/fan/test/section_03_0000.wav", "eval_data/fan/test/section_03_0002.wav",
          "eval_data/fan/test/section_03_0003.wav")
    gt = tmp_path / "dcase2022_evaluator"
    (gt / "ground_truth_data").mkdir(parents=True)
    (gt / "ground_truth_domain").mkdir()
    (gt / "ground_truth_attributes" / "fan").mkdir(parents=True)
    (gt / "ground_truth_data" / "ground_truth_fan_section_03_test.csv").write_text(
        "section_03_0000.wav,0\nsection_03_0002.wav,0\nsection_03_0003.wav,1\n")
    (gt / "ground_truth_domain" / "ground_truth_fan_section_03_test.csv").write_text(
        "section_03_0000.wav,0\nsection_03_0002.wav,1\nsection_03_0003.wav,0\n")
    (gt / "ground_truth_attributes" / "fan" / "attributes_03.csv").write_text(
        "file_name,d1p,d1v,file_name_with_full_attributes\n"
        "fan/test/section_03_0000.wav,m-n,X,fan/test/section_03_source_test_normal_0000_m-n_X.wav\n"
        "fan/test/section_03_0002.wav,m-n,Y,fan/test/section_03_target_test_normal_0002_m-n_Y.wav\n"
        "fan/test/section_03_0003.wav,m-n,W,fan/test/section_03_source_test_anomaly_0003_m-n_W.wav\n")
    assert layouts.detect_year(root) == 2022
    table = layouts.read_dataset(2022, root, ground_truth=gt)
    assert set(table["year"]) == {2022}
    assert _rows(table) == [
        ("dev", "fan", "section_00", "source", "test", "anomaly", "m-n_W", "0000",
         "section_00_source_test_anomaly_0000_m-n_W.wav"),
        ("dev", "fan", "section_00", "source", "train", "normal", "m-n_W", "0000",
         "section_00_source_train_normal_0000_m-n_W.wav"),
        ("eval", "fan", "section_03", "source", "test", "normal", "m-n_X", "0000", "section_03_0000.wav"),
        ("eval", "fan", "section_03", "source", "test", "anomaly", "m-n_W", "0003", "section_03_0003.wav"),
        ("eval", "fan", "section_03", "target", "test", "normal", "m-n_Y", "0002", "section_03_0002.wav"),
        ("eval", "fan", "section_03", "target", "train", "normal", "m-n_Y", "0000",
         "section_03_target_train_normal_0000_m-n_Y.wav"),
    ]
    # the ground_truth_data folder itself is accepted too (its siblings are found)
    again = layouts.read_dataset(2022, root, ground_truth=gt / "ground_truth_data")
    assert _rows(again) == _rows(table)


def test_2023_eval_type_without_ground_truth_then_with_it(tmp_path):
    root = tmp_path / "dcase2023t2"
    touch(root, "dev_data/raw/fan/train/section_00_source_train_normal_0000_m-n_W.wav",
          "dev_data/raw/fan/test/section_00_target_test_normal_0000_m-n_X.wav",
          "eval_data/raw/ToyDrone/train/section_00_source_train_normal_0000_car_B2_spd_2_mic_1.wav",
          "eval_data/raw/ToyDrone/test/section_00_0000.wav", "eval_data/raw/ToyDrone/test/section_00_0002.wav")
    assert layouts.detect_year(root) == 2023
    with _no_warning():
        bare = layouts.read_dataset(None, root)
    eval_test = bare[(bare["part"] == "eval") & (bare["split"] == "test")]
    assert list(eval_test["label"]) == ["unknown", "unknown"] and list(eval_test["domain"]) == ["", ""]
    # the 2023 evaluator's layout beside dev_data: found without an option
    for sub, text in (("ground_truth_data", "section_00_0000.wav,1\nsection_00_0002.wav,0\n"),
                      ("ground_truth_domain", "section_00_0000.wav,1\nsection_00_0002.wav,0\n"),
                      ("ground_truth_attributes",
                       "section_00_0000.wav,section_00_target_test_anomaly_0012_car_C1_spd_1_mic_2\n"
                       "section_00_0002.wav,section_00_source_test_normal_0031_car_B2_spd_2_mic_1\n")):
        (root / sub).mkdir()
        (root / sub / "ground_truth_ToyDrone_section_00_test.csv").write_text(text)
    table = layouts.read_dataset(2023, root)
    eval_rows = [r for r in _rows(table) if r[0] == "eval"]
    assert eval_rows == [
        ("eval", "ToyDrone", "section_00", "source", "test", "normal", "car_B2_spd_2_mic_1", "0002",
         "section_00_0002.wav"),
        ("eval", "ToyDrone", "section_00", "target", "test", "anomaly", "car_C1_spd_1_mic_2", "0000",
         "section_00_0000.wav"),
        ("eval", "ToyDrone", "section_00", "source", "train", "normal", "car_B2_spd_2_mic_1", "0000",
         "section_00_source_train_normal_0000_car_B2_spd_2_mic_1.wav"),
    ]


class _no_warning:
    def __enter__(self):
        import warnings
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_2024_hidden_attributes_and_the_baseline_list(tmp_path):
    root = tmp_path / "d"
    touch(root,
          "dev_data/gearbox/train/section_00_source_train_normal_0001_noAttribute.wav",
          "dev_data/gearbox/test/section_00_source_test_normal_0001_noAttribute.wav",
          "eval_data/3DPrinter/train/section_00_source_train_normal_0001_mdl_A_spd_1.wav",
          "eval_data/3DPrinter/test/section_00_0001.wav", "eval_data/3DPrinter/test/section_00_0003.wav",
          "eval_data/AirCompressor/train/section_00_source_train_normal_0001_noAttribute.wav",
          "eval_data/AirCompressor/test/section_00_0001.wav", "eval_data/AirCompressor/test/section_00_0003.wav")
    listing = tmp_path / "eval_data_list_2024.csv"
    listing.write_text("3DPrinter\n"
                       "section_00_0001.wav,section_00_target_test_anomaly_0001_mdl_B_spd_2.wav\n"
                       "section_00_0003.wav,section_00_source_test_normal_0003_mdl_A_spd_1.wav\n"
                       "AirCompressor\n"
                       "section_00_0001.wav,section_00_source_test_normal_0001_noAttribute.wav\n"
                       "section_00_0003.wav,section_00_target_test_anomaly_0003_noAttribute.wav\n")
    assert layouts.detect_year(root) == 2024
    table = layouts.read_dataset(2024, root, ground_truth=listing)
    got = {(r[1], r[8]): (r[3], r[5], r[6]) for r in _rows(table) if r[4] == "test"}
    assert got == {
        ("gearbox", "section_00_source_test_normal_0001_noAttribute.wav"): ("source", "normal", "noAttribute"),
        ("3DPrinter", "section_00_0001.wav"): ("target", "anomaly", "mdl_B_spd_2"),
        ("3DPrinter", "section_00_0003.wav"): ("source", "normal", "mdl_A_spd_1"),
        ("AirCompressor", "section_00_0001.wav"): ("source", "normal", "noAttribute"),
        ("AirCompressor", "section_00_0003.wav"): ("target", "anomaly", "noAttribute"),
    }
    # a development set alone: gearbox named noAttribute -> 2024; bearing -> 2025
    dev_only = tmp_path / "dev_only"
    touch(dev_only, "dev_data/gearbox/train/section_00_source_train_normal_0001_noAttribute.wav",
          "dev_data/fan/train/section_00_source_train_normal_0001_m-n_W.wav")
    assert layouts.detect_year(dev_only) == 2024


def test_2025_supplemental_only_on_request_and_attribute_csv(tmp_path):
    root = tmp_path / "d"
    touch(root, "eval_data/AutoTrash/train/section_00_source_train_normal_0001_noAttribute.wav",
          "eval_data/AutoTrash/test/section_00_0000.wav",
          "eval_data/AutoTrash/supplemental/section_00_machine_0001_.wav",
          "dev_data/bearing/train/section_00_source_train_normal_0001_noAttribute.wav",
          "dev_data/bearing/test/section_00_source_test_anomaly_0001_noAttribute.wav",
          "dev_data/valve/train/section_00_source_train_normal_0000.wav",
          "dev_data/valve/test/section_00_source_test_normal_0000_pat_00.wav")
    (root / "dev_data/valve/attributes_00.csv").write_text(
        "file_name,d1p,d1v\nvalve/train/section_00_source_train_normal_0000.wav,pat,00\n")
    assert layouts.detect_year(root) == 2025
    table = layouts.read_dataset(2025, root)
    assert "supplemental" not in set(table["split"])
    valve_train = table[(table["machine_type"] == "valve") & (table["split"] == "train")]
    assert list(valve_train["attributes"]) == ["pat_00"]   # from attributes_00.csv: the name has none
    with_sup = layouts.read_dataset(2025, root, include_supplemental=True)
    sup = with_sup[with_sup["split"] == "supplemental"]
    assert list(sup["file"]) == ["section_00_machine_0001_.wav"] and list(sup["label"]) == ["normal"]


def test_2021_roots_keep_their_year(tmp_path):
    touch(tmp_path, "dev_data/fan/train/section_00_source_train_normal_0000_strength_1_ambient.wav",
          "dev_data/fan/source_test/section_00_source_test_normal_0000.wav",
          "dev_data/fan/target_test/section_00_target_test_normal_0000.wav")
    assert layouts.detect_year(tmp_path) == 2021
    assert layouts.resolve_year(2020, tmp_path) == 2020      # not a later root: the script's own grammar
    assert layouts.resolve_year(2020, tmp_path, 2024) == 2024  # --year forces
    with pytest.raises(DataLayoutError, match="--year 2019"):
        layouts.resolve_year(2020, tmp_path, 2019)


def test_explicit_ground_truth_that_names_no_clip_is_an_error(tmp_path):
    root = tmp_path / "d"
    touch(root, "eval_data/ToyDrone/train/section_00_source_train_normal_0000_car_B2_spd_2_mic_1.wav",
          "eval_data/ToyDrone/test/section_00_0000.wav")
    listing = tmp_path / "eval_data_list_2023.csv"
    listing.write_text("bandsaw\nsection_00_0000.wav,section_00_source_test_normal_0000_vel_6.wav\n")
    with pytest.raises(DataLayoutError, match="names none of the 1 unlabelled"):
        layouts.read_dataset(2023, root, ground_truth=listing)


# ------------------------------------------------------------------- released hidden attributes (2024, 2025)
# Rows copied from nttcslab/dcase2024_task2_evaluator (ground_truth_attributes_all/, ground_truth_attributes/)
# and nttcslab/dcase2023_task2_baseline_ae (datasets/ground_truth_attributes/dcase2025t2/).

def _correspondence(folder, *rows):
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("source_file_name,target_file_name\n" + "".join(f"{a},{b}\n" for a, b in rows))


def test_2024_released_attributes_replace_noattribute_only_on_request(tmp_path):
    root = tmp_path / "d"
    touch(root, "dev_data/gearbox/train/section_00_source_train_normal_0001_noAttribute.wav",
          "dev_data/gearbox/train/section_00_target_train_normal_0001_noAttribute.wav",
          "dev_data/gearbox/test/section_00_target_test_normal_0001_noAttribute.wav",
          "eval_data/AirCompressor/train/section_00_source_train_normal_0001_noAttribute.wav",
          "eval_data/AirCompressor/test/section_00_0001.wav")
    evaluator = tmp_path / "dcase2024_task2_evaluator"
    for folder, text in (("ground_truth_data", "section_00_0001.wav,0\n"), ("ground_truth_domain", "section_00_0001.wav,0\n"),
                         ("ground_truth_attributes", "section_00_0001.wav,section_00_source_test_normal_0001_noAttribute,"
                                                     "section_00_source_test_normal_0001_fl_2_nos_3.wav\n")):
        (evaluator / folder).mkdir(parents=True)
        (evaluator / folder / "ground_truth_AirCompressor_section_00_test.csv").write_text(text)
    released = evaluator / "ground_truth_attributes_all"
    _correspondence(released / "dev_data/gearbox/attributes_00_train_correspondence.csv",
                    ("section_00_source_train_normal_0001_pro_A_wt_200.wav",
                     "section_00_source_train_normal_0001_noAttribute.wav"),
                    ("section_00_target_train_normal_0001_pro_A_wt_250.wav",
                     "section_00_target_train_normal_0001_noAttribute.wav"))
    _correspondence(released / "dev_data/gearbox/attributes_00_test_correspondence.csv",
                    ("section_00_target_test_normal_0001_pro_A_wt_250.wav",
                     "section_00_target_test_normal_0001_noAttribute.wav"))
    _correspondence(released / "eval_data/AirCompressor/attributes_00_train_correspondence.csv",
                    ("section_00_source_train_normal_0001_fl_0_nos_3.wav",
                     "section_00_source_train_normal_0001_noAttribute.wav"))

    def attributes(table):
        return {(r[1], r[8]): r[6] for r in _rows(table)}

    hidden = layouts.read_dataset(2024, root, ground_truth=evaluator)
    assert set(attributes(hidden).values()) == {"noAttribute"}
    for where in (evaluator, released):  # the evaluator's folder or its ground_truth_attributes_all/
        table = layouts.read_dataset(2024, root, ground_truth=evaluator, revealed_attributes=where)
        assert attributes(table) == {
            ("gearbox", "section_00_source_train_normal_0001_noAttribute.wav"): "pro_A_wt_200",
            ("gearbox", "section_00_target_train_normal_0001_noAttribute.wav"): "pro_A_wt_250",
            ("gearbox", "section_00_target_test_normal_0001_noAttribute.wav"): "pro_A_wt_250",
            ("AirCompressor", "section_00_source_train_normal_0001_noAttribute.wav"): "fl_0_nos_3",
            ("AirCompressor", "section_00_0001.wav"): "fl_2_nos_3",  # third ground_truth_attributes column
        }
        assert table.loc[table["file"] == "section_00_0001.wav", ["domain", "label"]].values.tolist() == [
            ["source", "normal"]]


def test_2025_released_attributes_from_the_baselines_folder(tmp_path):
    root = tmp_path / "d"
    touch(root, "dev_data/bearing/train/section_00_source_train_normal_0000_noAttribute.wav",
          "dev_data/bearing/test/section_00_source_test_normal_0001_noAttribute.wav",
          "eval_data/AutoTrash/train/section_00_source_train_normal_0001_noAttribute.wav",
          "eval_data/AutoTrash/test/section_00_0095.wav", "eval_data/AutoTrash/test/section_00_0114.wav")
    released = tmp_path / "datasets" / "ground_truth_attributes" / "dcase2025t2"
    _correspondence(released / "dev_data/bearing/attributes_00_train_correspondence.csv",
                    ("section_00_source_train_normal_0000_pro_A_vel_12_loc_B.wav",
                     "section_00_source_train_normal_0000_noAttribute.wav"))
    _correspondence(released / "eval_data/AutoTrash/attributes_00_test_correspondence.csv",
                    ("section_00_source_test_anomaly_0001_id_A1_spd_1_mic_2.wav", "section_00_0095.wav"),
                    ("section_00_source_test_normal_0001_id_B2_spd_1_mic_2.wav", "section_00_0114.wav"))
    table = layouts.read_dataset(2025, root, revealed_attributes=tmp_path / "datasets")
    assert {(r[1], r[8]): r[6] for r in _rows(table)} == {
        ("bearing", "section_00_source_train_normal_0000_noAttribute.wav"): "pro_A_vel_12_loc_B",
        ("bearing", "section_00_source_test_normal_0001_noAttribute.wav"): "noAttribute",  # not in the files given
        ("AutoTrash", "section_00_source_train_normal_0001_noAttribute.wav"): "noAttribute",
        ("AutoTrash", "section_00_0095.wav"): "id_A1_spd_1_mic_2",
        ("AutoTrash", "section_00_0114.wav"): "id_B2_spd_1_mic_2",
    }
    # only the attributes: the evaluation clips stay unlabelled without the ground truth
    assert set(table.loc[table["part"] == "eval", "label"]) == {"normal", "unknown"}
    # files of another edition name none of these clips: an error, not a silent no-op
    other = tmp_path / "other"
    _correspondence(other / "dev_data/gearbox/attributes_00_train_correspondence.csv",
                    ("section_00_source_train_normal_0001_pro_A_wt_200.wav",
                     "section_00_source_train_normal_0009_noAttribute.wav"))
    with pytest.raises(DataLayoutError, match="no correspondence names a clip"):
        layouts.read_dataset(2025, root, revealed_attributes=other)
    with pytest.raises(DataLayoutError, match="source_file_name,target_file_name"):
        (other / "dev_data/gearbox/attributes_00_train_correspondence.csv").write_text("file_name,d1p\n")
        layouts.read_dataset(2025, root, revealed_attributes=other)


def test_revealed_attributes_flag_reaches_the_clip_table(tmp_path):
    """``--revealed-attributes DIR`` on a command line gives the clips named in the released files their
    attributes, through the same path every command opens its data with (runner args -> open_data)."""
    from asdcore.pipeline import open_data
    from asdcore.runner import _parse_method_args, load_method

    root = tmp_path / "d"
    touch(root, "dev_data/bearing/train/section_00_source_train_normal_0000_noAttribute.wav",
          "dev_data/bearing/test/section_00_source_test_normal_0001_noAttribute.wav")
    released = tmp_path / "datasets" / "ground_truth_attributes" / "dcase2025t2"
    _correspondence(released / "dev_data/bearing/attributes_00_train_correspondence.csv",
                    ("section_00_source_train_normal_0000_pro_A_vel_12_loc_B.wav",
                     "section_00_source_train_normal_0000_noAttribute.wav"))
    args = _parse_method_args(load_method("subcluster_adacos.experiments_2021"),
                              ["--data-root", str(root), "--revealed-attributes", str(tmp_path / "datasets")])
    assert args.revealed_attributes == tmp_path / "datasets"
    _, table = open_data(2025, data_root=root, revealed_attributes=args.revealed_attributes)
    assert dict(zip(table["file"], table["attributes"])) == {
        "section_00_source_train_normal_0000_noAttribute.wav": "pro_A_vel_12_loc_B",
        "section_00_source_test_normal_0001_noAttribute.wav": "noAttribute"}
    _, hidden = open_data(2025, data_root=root)
    assert set(hidden["attributes"]) == {"noAttribute"}
