"""Fujimura et al.'s claim on hand-made mean AUCs."""
import pandas as pd

from asdcore.claims import FAILS, HOLDS, NOT_TESTED
from smoothing.claims import claims_for


def _conf(means):
    return pd.DataFrame([{"system": s, "part": "all", "mean_auc": m, "ci_low": m - 0.01, "ci_high": m + 0.01}
                         for s, m in means.items()])


def test_smoothing_claim():
    assert claims_for(_conf({"Proposed": 0.7, "AE": 0.6, "SerialOE": 0.65}))[0].verdict == HOLDS
    assert claims_for(_conf({"Proposed": 0.62, "AE": 0.6, "SerialOE": 0.65}))[0].verdict == FAILS
    assert claims_for(_conf({"Proposed": 0.7, "SerialOE": 0.65}))[0].verdict == NOT_TESTED
    other = claims_for(_conf({"Proposed": 0.7, "SubclusterAdaCos": 0.6, "SerialOE": 0.65}), "SubclusterAdaCos")
    assert other[0].verdict == HOLDS and "SubclusterAdaCos" in other[0].claim
