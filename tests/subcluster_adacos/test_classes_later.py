"""The classes of sub-cluster AdaCos 2020 (``classes`` setting) on small hand-written clip tables.

The attribute strings are the organisers': 2022 from the 2022 evaluator's full test names
(Kota-Dohi/dcase2022_evaluator ``ground_truth_attributes/ToyCar/attributes_03.csv``, ``fan/attributes_03.csv``:
``car_G1_spd_31V_mic_1_noise_6``, ``m-n_W``), 2024 from the 2024 evaluator's correspondence files
(nttcslab/dcase2024_task2_evaluator ``ground_truth_attributes_all``: gearbox ``pro_A_wt_200`` / ``noAttribute``,
BrushlessMotor ``spd1000_BckgA``). Every expected class table is written out by hand.
"""
import numpy as np
import pandas as pd
import pytest

from asdcore.errors import ASDError
from subcluster_adacos.scoring import _gmm_factory, _output_scores, classes_of_units
from subcluster_adacos.training import class_groups, class_labels, resolved_classes


def _table(year, files):
    """Clip table rows from ``(machine_type, file name)``; the fields parsed by the later-year grammar."""
    from asdcore.layouts import parse_name_later

    rows = []
    for machine_type, name in files:
        split = "train" if "_train_" in name else "test"
        f = parse_name_later(name, "dev", split)
        rows.append({"file": name, "year": year, "machine_type": machine_type, **f})
    return pd.DataFrame(rows)


TABLE_2022 = [
    ("ToyCar", "section_03_source_train_normal_0000_car_G1_spd_31V_mic_1_noise_6.wav"),
    ("ToyCar", "section_03_source_train_normal_0001_car_G2_spd_34V_mic_1_noise_6.wav"),
    ("ToyCar", "section_03_source_train_normal_0002_car_G1_spd_31V_mic_1_noise_6.wav"),
    ("ToyCar", "section_03_target_train_normal_0000_car_H1_spd_31V_mic_1_noise_6.wav"),
    ("ToyCar", "section_03_target_train_normal_0001_car_G1_spd_31V_mic_1_noise_6.wav"),  # same attributes as source
    ("ToyCar", "section_03_target_test_normal_0030_car_G1_spd_34V_mic_1_noise_6.wav"),    # attributes not trained
    ("ToyCar", "section_03_0000.wav"),                                                   # evaluation name
    ("fan", "section_03_source_train_normal_0000_m-n_W.wav"),
    ("fan", "section_03_target_train_normal_0000_m-n_Y.wav"),
    ("fan", "section_03_source_test_normal_0001_m-n_W.wav"),
]


def test_2022_classes_are_section_and_attribute_string_without_the_domain():
    table = _table(2022, TABLE_2022)
    labels, names = class_labels(table, classes="section_attributes")
    assert names.tolist() == ["ToyCar/section_03/car_G1_spd_31V_mic_1_noise_6",
                              "ToyCar/section_03/car_G2_spd_34V_mic_1_noise_6",
                              "ToyCar/section_03/car_H1_spd_31V_mic_1_noise_6",
                              "fan/section_03/m-n_W", "fan/section_03/m-n_Y"]
    # by hand: G1 -> 0, G2 -> 1, H1 -> 2 (the target G1 clip shares class 0); test clips: their own class when
    # trained (fan m-n_W -> 3), else the first class of their unit (ToyCar -> 0)
    assert labels.tolist() == [0, 1, 0, 2, 0, 0, 0, 3, 4, 3]
    assert class_groups(names).tolist() == [0, 0, 0, 1, 1]
    # "auto" on 2022 data = section_attributes
    assert resolved_classes(table) == "section_attributes"
    assert class_labels(table, classes="auto")[1].tolist() == names.tolist()
    # "sections": one class per type and section, as the paper (2020 IDs)
    labels, names = class_labels(table, classes="sections")
    assert names.tolist() == ["ToyCar/section_03", "fan/section_03"] and labels.tolist() == [0] * 7 + [1] * 3
    assert class_groups(names) is None


def test_2024_hidden_attribute_types_stay_one_class_per_section():
    table = _table(2024, [
        ("gearbox", "section_00_source_train_normal_0001_noAttribute.wav"),
        ("gearbox", "section_00_target_train_normal_0001_noAttribute.wav"),
        ("gearbox", "section_00_source_test_anomaly_0001_noAttribute.wav"),
        ("BrushlessMotor", "section_00_source_train_normal_0000_spd1000_BckgA.wav"),
        ("BrushlessMotor", "section_00_source_train_normal_0001_spd1000_BckgA.wav"),
        ("BrushlessMotor", "section_00_target_train_normal_0000_spd1200_BckgC.wav"),
        ("BrushlessMotor", "section_00_0001.wav"),
    ])
    labels, names = class_labels(table, classes="auto")  # auto -> section_attributes on 2024 data
    assert names.tolist() == ["BrushlessMotor/section_00/spd1000_BckgA", "BrushlessMotor/section_00/spd1200_BckgC",
                              "gearbox/section_00"]
    assert labels.tolist() == [2, 2, 2, 0, 0, 1, 0]
    assert class_groups(names).tolist() == [0, 0, 1]


def test_2020_and_2021_data_keep_the_papers_classes():
    table = pd.DataFrame({
        "year": 2021, "machine_type": ["fan", "fan", "fan"], "unit": ["section_00", "section_00", "section_01"],
        "split": ["train", "train", "test"], "attributes": ["strength_1_ambient", "strength_2_ambient", ""]})
    assert resolved_classes(table) == "sections"
    assert class_labels(table, classes="auto")[1].tolist() == ["fan/section_00", "fan/section_01"]
    ids = pd.DataFrame({"year": 2020, "machine_type": ["pump"], "unit": ["id_00"], "split": ["train"],
                        "attributes": [""]})
    assert resolved_classes(ids) == "sections"
    with pytest.raises(ASDError, match="classes must be one of"):
        resolved_classes(ids, "attributes")


def test_model_output_of_attribute_classes_is_minus_log_of_the_units_probability():
    p = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.25, 0.125, 0.125]])
    groups = np.array([0, 0, 0, 1])  # classes 0-2 one unit, class 3 another
    got = _output_scores(p, np.array([1, 3]), groups)
    np.testing.assert_allclose(got, [-np.log(0.6), -np.log(0.125)])
    # one class per unit: the class's own probability, exactly as before
    assert _output_scores(p, np.array([2, 0])).tolist() == [-np.log(0.3), -np.log(0.5)]


def test_gmm_means_start_at_the_centres_only_for_a_unit_with_one_class():
    names = ["fan/section_03/m-n_W", "fan/section_03/m-n_Y", "valve/section_03"]
    centres = np.arange(3 * 2 * 4, dtype=float).reshape(3, 2, 4)
    groups = classes_of_units(names)
    assert groups == {"fan/section_03": [0, 1], "valve/section_03": [2]}
    make = _gmm_factory(centres, groups, 2, "max_component")
    assert make("fan/section_03").means_init is None
    np.testing.assert_array_equal(make("valve/section_03").means_init, centres[2])
    one = _gmm_factory(centres, groups, 1, "max_component")
    np.testing.assert_array_equal(one("valve/section_03").means_init, centres[2].mean(axis=0, keepdims=True))
