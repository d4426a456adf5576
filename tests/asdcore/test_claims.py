"""The confidence table and the claims list on hand-made numbers."""
import numpy as np
import pandas as pd
import pytest

from asdcore.claims import FAILS, HOLDS, NOT_TESTED, Claim, beats, render_claims, verdict
from asdcore.confidence import confidence_table, confidence_markdown, lookup
from asdcore.errors import ASDError


def _var(a, n_a, n_n):  # Hanley & McNeil 1982, eq. 2, by hand
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return (a * (1 - a) + (n_a - 1) * (q1 - a * a) + (n_n - 1) * (q2 - a * a)) / (n_a * n_n)


def _per_unit():
    rows = [("A", "dev", 0.9, 10, 10), ("A", "dev", 0.7, 10, 10), ("A", "eval", 0.8, 20, 20),
            ("B", "dev", 0.55, 10, 10), ("B", "dev", 0.45, 10, 10), ("B", "eval", 0.5, 20, 20)]
    return pd.DataFrame(rows, columns=["system", "part", "auc", "n_anomaly", "n_normal"])


def test_confidence_table_by_hand():
    table = confidence_table(_per_unit())
    assert set(zip(table["system"], table["part"])) == {(s, p) for s in "AB" for p in ("dev", "eval", "all")}
    row = lookup(table, "A", "all")
    se = np.sqrt(_var(0.9, 10, 10) + _var(0.7, 10, 10) + _var(0.8, 20, 20)) / 3
    assert row["n_units"] == 3 and row["n_normal"] == 40 and row["n_anomaly"] == 40
    assert row["mean_auc"] == pytest.approx(0.8)
    assert (row["se"], row["ci_low"], row["ci_high"]) == pytest.approx((se, 0.8 - 1.96 * se, 0.8 + 1.96 * se))
    assert row["above_chance"] and not lookup(table, "B", "all")["above_chance"]
    dev = lookup(table, "A", "dev")
    assert dev["mean_auc"] == pytest.approx(0.8) and dev["n_units"] == 2
    assert lookup(table, "C") is None
    text = "\n".join(confidence_markdown(table))
    assert "| A | 3 | 80.00 |" in text and "| yes |" in text and "| no |" in text


def test_confidence_table_one_part_and_bad_input():
    table = confidence_table(_per_unit().query("part == 'eval'"))
    assert list(table["part"]) == ["eval", "eval"]
    assert lookup(table, "A")["mean_auc"] == pytest.approx(0.8)  # "all" falls back to the only part
    with pytest.raises(ASDError, match="lack columns"):
        confidence_table(_per_unit().drop(columns="n_normal"))


def _confidence(means, half=0.02):
    return pd.DataFrame([{"system": s, "part": "all", "mean_auc": m, "ci_low": m - half, "ci_high": m + half}
                         for s, m in means.items()])


def test_beats_verdicts():
    conf = _confidence({"ens": 0.80, "s1": 0.70, "s4": 0.79, "bad": 0.40})
    held = beats("ensemble wins", conf, "ens", ["s1", "s4"], labels={"ens": "ensemble"})
    assert held.verdict == HOLDS
    assert "ensemble 80.00 % [78.00, 82.00]" in held.evidence and "s1 70.00 %" in held.evidence
    assert "overlap" in held.evidence and "s4" in held.evidence.split("overlap")[0].split("and")[-1]
    clear = beats("x", conf, "ens", ["s1"])
    assert clear.verdict == HOLDS and "overlap" not in clear.evidence
    assert beats("x", conf, "s4", ["ens", "s1"]).verdict == FAILS
    assert beats("x", conf, "bad", ["s1"]).verdict == FAILS
    ties = _confidence({"a": 0.6, "b": 0.6})
    assert beats("x", ties, "a", ["b"]).verdict == FAILS  # a tie is not "beats"
    missing = beats("x", conf, "ens", ["s1", "S64"])
    assert missing.verdict == NOT_TESTED and "S64" in missing.evidence
    assert beats("x", conf, "ens", []).verdict == NOT_TESTED


def test_verdict_claim_and_render():
    assert (verdict(True), verdict(False), verdict(None)) == (HOLDS, FAILS, NOT_TESTED)
    with pytest.raises(ValueError, match="verdict"):
        Claim("c", "maybe", "")
    lines = render_claims([Claim("c1", HOLDS, "e1"), Claim("c2", FAILS, "e2")])
    assert "- **c1**: holds here. e1" in lines and "- **c2**: does not hold here. e2" in lines
    assert any("not the paper's" in line for line in lines)
    assert "- no claim of the paper is checked by this run" in render_claims([])
