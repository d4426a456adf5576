"""Classification accuracy of the learned networks (issue 14): the shared accuracy function against
scikit-learn, the cosine sub-cluster decision against a hand computation, the comparison.md section."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score

from asdcore.classification import (NOT_A_CLASSIFIER, accuracy_by_type, classification_section,
                                    nearest_centre_classes, normal_test_rows, with_sections)


def test_accuracy_by_type_matches_sklearn_per_type_and_overall():
    true = np.array(["fan/id_00", "fan/id_02", "fan/id_00", "pump/id_00", "pump/id_02", "pump/id_02", "pump/id_00"])
    pred = np.array(["fan/id_00", "fan/id_00", "fan/id_00", "pump/id_00", "pump/id_02", "fan/id_02", "pump/id_02"])
    types = np.array(["fan"] * 3 + ["pump"] * 4)
    frame = accuracy_by_type(true, pred, types, network="net", head="ID").set_index("machine_type")
    assert list(frame.index) == ["fan", "pump", "all"]
    assert frame.loc["fan", "accuracy"] == pytest.approx(accuracy_score(true[:3], pred[:3]))  # 2/3
    assert frame.loc["pump", "accuracy"] == pytest.approx(accuracy_score(true[3:], pred[3:]))  # 2/4
    assert frame.loc["all", "accuracy"] == pytest.approx(accuracy_score(true, pred))  # 4/7
    assert frame.loc["all", "n_clips"] == 7 and (frame["network"] == "net").all()


def test_accuracy_rejects_misaligned_inputs():
    from asdcore.errors import ASDError

    with pytest.raises(ASDError, match="true classes"):
        accuracy_by_type([0, 1], [0], ["fan", "fan"])


def test_nearest_centre_is_the_class_of_the_largest_subcluster_cosine():
    # class 0 has sub-clusters along +x and +y, class 1 along -x and (1, -1): a point near +y belongs to
    # class 0 although the mean of class 0's centres is not the nearest mean; scale does not matter
    centres = np.array([[[1.0, 0.0], [0.0, 5.0]], [[-2.0, 0.0], [1.0, -1.0]]])
    x = np.array([[0.1, 1.0], [-3.0, 0.2], [1.0, -1.2], [10.0, 0.5]])
    by_hand = []
    for v in x:
        cos = [max(v @ c / np.linalg.norm(v) / np.linalg.norm(c) for c in group) for group in centres]
        by_hand.append(int(np.argmax(cos)))
    np.testing.assert_array_equal(nearest_centre_classes(x, centres), by_hand)
    assert by_hand == [0, 1, 1, 0]


def test_normal_test_rows_only_labelled_normal_test_clips():
    table = pd.DataFrame({"split": ["train", "test", "test", "test"], "label": ["normal", "normal", "anomaly",
                                                                                 "unknown"]})
    np.testing.assert_array_equal(normal_test_rows(table), [1])


def test_section_shows_percent_and_na_and_is_appended_to_the_report():
    frame = pd.concat([accuracy_by_type([0, 1], [0, 0], ["fan", "fan"], network="a", head="ID"),
                       pd.DataFrame([{"network": "ddcsad", "head": NOT_A_CLASSIFIER, "machine_type": "all",
                                      "n_clips": 0, "correct": 0, "accuracy": np.nan}])])
    text = classification_section(frame, ["a note"])
    assert "50.0" in text and "n/a" in text and "> a note" in text
    report = with_sections(lambda ctx, per_unit, summary: ["table"], [text])
    assert report(None, None, None) == ["table", text]
