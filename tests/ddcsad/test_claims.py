"""Kuroyanagi et al.'s claims on hand-made per-unit AUCs."""
import dataclasses

import pandas as pd

from asdcore.claims import FAILS, HOLDS, NOT_TESTED
from ddcsad.claims import claims_for
from ddcsad.experiments import QUICK_CONFIG


def _conf(means):
    return pd.DataFrame([{"system": s, "part": "all", "mean_auc": m, "ci_low": m - 0.01, "ci_high": m + 0.01}
                         for s, m in means.items()])


def _few(auc0, auc4):
    rows = [(f"bce+ddcsad_anomalies{k}", p, a, 15, 20) for k, a in ((0, auc0), (4, auc4)) for p in ("dev", "eval")]
    return pd.DataFrame(rows, columns=["system", "part", "auc", "n_anomaly", "n_normal"])


MEANS = {"bce": 0.6, "dsad": 0.55, "ddcsad": 0.58, "bce+dsad": 0.62, "bce+ddcsad": 0.65}


def test_table2_claim():
    config = QUICK_CONFIG
    assert claims_for(_conf(MEANS), config)[0].verdict == HOLDS
    assert claims_for(_conf(dict(MEANS, bce=0.7)), config)[0].verdict == FAILS
    assert claims_for(_conf(MEANS), config)[1].verdict == NOT_TESTED  # anomalies = (0,)
    alone = dataclasses.replace(config, losses=("bce+ddcsad",))
    assert claims_for(_conf(MEANS), alone)[0].verdict == NOT_TESTED


def test_few_anomalies_claim():
    config = dataclasses.replace(QUICK_CONFIG, anomalies=(0, 4))
    helped = claims_for(_conf(MEANS), config, _few(0.6, 0.7))[1]
    assert helped.verdict == HOLDS and "4 anomalies 70.00 %" in helped.evidence
    assert claims_for(_conf(MEANS), config, _few(0.7, 0.6))[1].verdict == FAILS
    assert claims_for(_conf(MEANS), config, None)[1].verdict == NOT_TESTED
