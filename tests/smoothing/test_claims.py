"""Fujimura et al.'s claims, each on the quantity Table II reports (eval All-hmean, ToyCar-5 AUC), on
hand-made scores whose AUC / pAUC are known."""
import numpy as np
import pandas as pd

from asdcore.claims import FAILS, HOLDS, NOT_TESTED
from smoothing.claims import claims_for


def _table():
    """fan and ToyCar, dev section 00 and eval sections 03 / 05, 4 normal + 4 anomalous clips per domain."""
    rows = []
    for part, mtype, unit in (("dev", "fan", "section_00"), ("eval", "fan", "section_03"),
                              ("eval", "ToyCar", "section_05")):
        for domain in ("source", "target"):
            for label in ("normal", "anomaly"):
                rows += [dict(part=part, machine_type=mtype, unit=unit, domain=domain, split="test", label=label)] * 4
    return pd.DataFrame(rows)


def _scores(table, eval_good, toycar_good=None, dev_good=True, seed=0):
    """Perfect (anomaly above normal) or reversed scores per part, ToyCar section 05 on its own."""
    rng = np.random.default_rng(seed)
    y = (table["label"] == "anomaly").to_numpy()
    good = np.where(table["part"] == "eval", eval_good, dev_good)
    if toycar_good is not None:
        good = np.where(table["unit"] == "section_05", toycar_good, good)
    return np.where(good, y, ~y).astype(float) + 0.01 * rng.random(len(table))


def test_claims_on_all_hmean_and_toycar5():
    table = _table()
    systems = {"Proposed": _scores(table, True), "AE": _scores(table, False, dev_good=True),
               "SerialOE": _scores(table, True, toycar_good=False), "Proposed_Oracle": _scores(table, True)}
    improves, robust, potential = claims_for(table, systems)
    assert improves.verdict == HOLDS and "eval All-hmean" in improves.evidence and "AE" in improves.claim
    assert robust.verdict == HOLDS and "SerialOE 0.00 %, Proposed 100.00 %" in robust.evidence
    # All-hmean of Oracle 1.0 vs SerialOE (ToyCar-5 reversed: its AUC and pAUC ~0) -> holds
    assert potential.verdict == HOLDS
    # the claim is judged on eval only: Proposed reversed on dev but perfect on eval beats an AE perfect on dev
    # and reversed on eval; the same two swapped (Proposed better on dev only) fails
    dev_only = {"Proposed": _scores(table, True, dev_good=False), "AE": _scores(table, False, dev_good=True)}
    assert claims_for(table, dict(systems, **dev_only))[0].verdict == HOLDS
    swapped = {"Proposed": _scores(table, False, dev_good=True), "AE": _scores(table, True, dev_good=False)}
    assert claims_for(table, dict(systems, **swapped))[0].verdict == FAILS
    assert claims_for(table, dict(systems, Proposed=_scores(table, False)))[0].verdict == FAILS
    # SerialOE above chance on ToyCar-5: the robustness claim is not tested
    assert claims_for(table, dict(systems, SerialOE=_scores(table, True)))[1].verdict == NOT_TESTED
    # Proposed falls below chance with SerialOE there: fails
    assert claims_for(table, dict(systems, Proposed=_scores(table, True, toycar_good=False)))[1].verdict == FAILS
    # no claim that Proposed beats SerialOE: no verdict names them as winner and loser
    assert not any("beats SerialOE" in c.claim and c.claim.startswith("Proposed beats") for c in
                   claims_for(table, systems))
    other = claims_for(table, {"Proposed": systems["Proposed"], "SubclusterAdaCos": systems["AE"],
                               "SerialOE": systems["SerialOE"]}, "SubclusterAdaCos")
    assert other[0].verdict == HOLDS and "SubclusterAdaCos" in other[0].claim and other[2].verdict == NOT_TESTED
