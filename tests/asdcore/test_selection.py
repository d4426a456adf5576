"""asdcore.selection against masks written by hand on a small clip table."""
import numpy as np
import pandas as pd

from asdcore import selection


def _table():
    return pd.DataFrame({
        "machine_type": ["fan", "fan", "fan", "pump", "pump", "pump"],
        "unit": ["id_00", "id_00", "id_02", "id_00", "id_00", "id_00"],
        "domain": ["", "", "", "source", "target", None],
        "split": ["train", "test", "test", "train", "test", "test"],
        "label": ["normal", "anomaly", "unknown", "normal", "normal", "anomaly"],
    })


def test_masks_match_hand_written_ones():
    t = _table()
    assert selection.train(t).tolist() == [True, False, False, True, False, False]
    assert selection.test(t).tolist() == [False, True, True, False, True, True]
    assert selection.labelled_test(t).tolist() == [False, True, False, False, True, True]
    assert selection.rows(t, machine_type=["pump"], split="test").tolist() == [False] * 4 + [True, True]
    assert selection.rows(t).all()


def test_keys():
    t = _table()
    assert selection.unit_keys(t).tolist() == ["fan/id_00", "fan/id_00", "fan/id_02", "pump/id_00", "pump/id_00",
                                               "pump/id_00"]
    assert selection.section_keys(t)[3:].tolist() == ["pump/id_00/source", "pump/id_00/target", "pump/id_00/"]
    assert isinstance(selection.unit_keys(t), np.ndarray)
