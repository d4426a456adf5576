"""The named adaptations of the four methods to the DCASE 2022-2025 data (docs/later-dcase.md), each checked by
hand on a small table: the multi-distribution domain-free score, DDCSAD's outliers, smoothing's pooled choice."""
import numpy as np
import pandas as pd

from ddcsad.data import unit_sets
from smoothing.protocol import fill_unseen_types
from subcluster_adacos.multi_distribution import add_temporal_max, combine_terms, decide, sum_score_sets


def _table(year, rows):
    return pd.DataFrame(rows, columns=["machine_type", "unit", "domain", "split", "label"]).assign(year=year, part="dev")


def test_multi_distribution_scores_a_test_clip_of_unknown_domain_by_the_smaller_equation():
    table = _table(2024, [("fan", "section_00", "source", "train", "normal"),
                          ("fan", "section_00", "target", "train", "normal"),
                          ("fan", "section_00", "", "test", "unknown"),
                          ("fan", "section_00", "", "test", "unknown")])
    terms = {"section": np.array([1.0, 1.0, 2.0, 2.0]), "attribute": np.array([0.5, 0.5, 3.0, 0.25]),
             "target": np.array([0.7, 0.7, 1.0, 4.0])}
    out = combine_terms(terms, table)
    # eq. (2): section + attribute; eq. (3): section + target; unknown domain: the smaller of the two
    assert out.score.tolist() == [1.5, 1.7, min(5.0, 3.0), min(2.25, 6.0)]
    # decision: the smaller of the source score and the section term, thresholded like a source clip
    assert out.decision[2:].tolist() == [2.0, 2.0]
    thresholds = pd.DataFrame([{"machine_type": "fan", "unit": "section_00", "domain": "source", "threshold": 1.9},
                               {"machine_type": "fan", "unit": "section_00", "domain": "target", "threshold": 9.0}])
    assert decide(out.decision, table, thresholds)[2:].tolist() == [1.0, 1.0]


def test_multi_distribution_tmax_once_reaches_test_clips_of_unknown_domain():
    # tmax_term: once; valve has the eq. (4) term, fan not; clip 0 a source test clip, 1 and 2 of unknown domain
    table = pd.DataFrame({"machine_type": ["valve", "valve", "fan"], "unit": "section_00",
                          "domain": ["source", "", ""], "split": "test", "label": "unknown"})
    set_1 = combine_terms({"section": np.array([1.0, 1.0, 1.0]), "attribute": np.array([2.0, 0.5, 0.5]),
                           "target": np.array([0.25, 3.0, 3.0])}, table)
    set_2 = combine_terms({"section": np.array([1.0, 1.0, 1.0]), "attribute": np.array([2.0, 4.0, 4.0]),
                           "target": np.array([0.25, 0.5, 1.0])}, table)
    tmax = np.array([10.0, 0.75, 0.0])
    with_term = np.array([True, True, False])
    out = add_temporal_max(sum_score_sets([set_1, set_2]), tmax, table, with_term)
    # by hand: source clip (1 + 2) + (1 + 2) + 10 = 16; valve clip of unknown domain: the ensemble's source
    # reading (1 + 0.5) + (1 + 4) + 0.75 = 7.25 against its target reading (1 + 3) + (1 + 0.5) = 5.5 -> 5.5
    # (without the term, the sets' minima summed: 1.5 + 1.5 = 3); fan has no term: min(1.5, 4) + min(5, 2) = 3.5
    assert out.score.tolist() == [16.0, 5.5, 3.5]
    # decision: the smaller of the source reading and the section term: min(7.25, 2) = 2; fan per set 1 + 1
    assert out.decision.tolist() == [16.0, 2.0, 2.0]
    assert out.terms["tmax"].tolist() == [10.0, 0.75, 0.0]
    # a single set: eq. (4) literally, min(1 + 0.5 + 0.75, 1 + 3) = 2.25
    assert add_temporal_max(set_1, tmax, table, with_term).score.tolist() == [13.0, 2.25, 1.5]


def test_ddcsad_outliers_are_every_other_section_of_every_type_from_2021_on():
    rows = [("fan", "section_00", "source", "train", "normal"), ("fan", "section_01", "source", "train", "normal"),
            ("ToyDrone", "section_00", "source", "train", "normal"), ("fan", "section_00", "source", "test", "normal")]
    later = unit_sets(_table(2023, rows), "fan", "section_00")
    assert later.normal.tolist() == [0] and later.outlier.tolist() == [1, 2] and later.test.tolist() == [3]
    # 2020: only the same source data set (MIMII for fan); ToyCar is ToyADMOS and never an outlier of fan
    ids = [("fan", "id_00", "", "train", "normal"), ("valve", "id_00", "", "train", "normal"),
           ("ToyCar", "id_01", "", "train", "normal")]
    assert unit_sets(_table(2020, ids), "fan", "id_00").outlier.tolist() == [1]


def test_smoothing_types_without_development_sections_get_the_pooled_choice():
    grid = pd.DataFrame([{"part": "dev", "machine_type": "fan", "data": "all", "k": 4, "score": 0.7},
                         {"part": "dev", "machine_type": "fan", "data": "all", "k": 8, "score": 0.6},
                         {"part": "dev", "machine_type": "all", "data": "all", "k": 4, "score": 0.55},
                         {"part": "dev", "machine_type": "all", "data": "all", "k": 8, "score": 0.65}])
    choice = pd.DataFrame([{"machine_type": "fan", "data": "all", "k": 4, "score": 0.7}])
    filled = fill_unseen_types(choice, grid, ("data", "k"), "dev", ["fan", "ToyDrone"])
    assert dict(zip(filled["machine_type"], filled["k"])) == {"ToyDrone": 8, "fan": 4}
