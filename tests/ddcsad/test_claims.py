"""Kuroyanagi et al.'s claims, judged on the quantity the paper compares (eval Machine Average), on
hand-made Table II / Fig. 2 frames."""
import dataclasses

import numpy as np
import pandas as pd

from asdcore.claims import FAILS, HOLDS, NOT_TESTED
from ddcsad.claims import claims_for
from ddcsad.experiments import QUICK_CONFIG


def _table2(eval_average, dev_average=None):
    """Table II rows: per loss and part a few machine types and the Machine Average."""
    rows = []
    for part, averages in (("eval", eval_average), ("dev", dev_average or {})):
        for loss, value in averages.items():
            rows.append({"loss": loss, "part": part, "machine_type": "fan", "auc": value})
            rows.append({"loss": loss, "part": part, "machine_type": "Machine Average", "auc": value})
    return pd.DataFrame(rows)


def _fig2(auc0, auc4):
    """Fig. 2 rows of BCE + DDCSAD: two machine types on eval; dev rows that say the opposite."""
    rows = []
    for k, (a, b) in ((0, auc0), (4, auc4)):
        rows += [{"loss": "bce+ddcsad", "anomalies": k, "part": "eval", "machine_type": t, "auc": v}
                 for t, v in (("fan", a), ("valve", b))]
        rows.append({"loss": "bce+ddcsad", "anomalies": k, "part": "dev", "machine_type": "fan", "auc": 1.0 - a})
    return pd.DataFrame(rows)


EVAL = {"bce": 0.6, "dsad": 0.55, "ddcsad": 0.58, "bce+dsad": 0.62, "bce+ddcsad": 0.65}


def test_table2_claims_on_the_eval_machine_average():
    config = QUICK_CONFIG
    ddcsad_dsad, multitask, best, fig2 = claims_for(_table2(EVAL), config)
    assert ddcsad_dsad.verdict == multitask.verdict == best.verdict == HOLDS
    assert "eval Machine Average AUC: BCE+DDCSAD 65.00 %" in best.evidence
    assert fig2.verdict == NOT_TESTED  # anomalies = (0,)
    # the development set does not decide: dev says the opposite, eval still holds
    flipped_dev = {k: 1.0 - v for k, v in EVAL.items()}
    assert [c.verdict for c in claims_for(_table2(EVAL, flipped_dev), config)[:3]] == [HOLDS] * 3
    # BCE above BCE + DDCSAD on eval: multi-task and best fail, DDCSAD vs DSAD still holds
    verdicts = [c.verdict for c in claims_for(_table2(dict(EVAL, bce=0.7)), config)[:3]]
    assert verdicts == [HOLDS, FAILS, FAILS]
    assert claims_for(_table2(dict(EVAL, dsad=0.59)), config)[0].verdict == FAILS
    alone = dataclasses.replace(config, losses=("bce+ddcsad",))
    assert claims_for(_table2({"bce+ddcsad": 0.65}), alone)[2].verdict == NOT_TESTED
    assert claims_for(pd.DataFrame(), config)[0].verdict == NOT_TESTED  # no eval part


def test_few_anomalies_claim_on_the_eval_mean_over_types():
    config = dataclasses.replace(QUICK_CONFIG, anomalies=(0, 4))
    helped = claims_for(_table2(EVAL), config, _fig2((0.6, 0.7), (0.7, 0.72)))[3]
    assert helped.verdict == HOLDS
    assert f"4 anomalies {100 * np.mean([0.7, 0.72]):.2f} %" in helped.evidence  # mean over the two types
    # one type up, the mean over types down: fails
    assert claims_for(_table2(EVAL), config, _fig2((0.6, 0.8), (0.65, 0.7)))[3].verdict == FAILS
    assert claims_for(_table2(EVAL), config, None)[3].verdict == NOT_TESTED
