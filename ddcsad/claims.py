"""The qualitative claims of Kuroyanagi et al. (DCASE 2020) checked on a ``ddcsad`` run, each on the quantity
the paper compares.

Sec. IV-B, Table II, "The averaged results (Machine Average) in Table II show that ...": on the evaluation
set's Machine Average AUC (the mean over the six machine types of each type's AUC),

- DDCSAD beats DSAD;
- BCE + DDCSAD beats BCE alone and DDCSAD alone ("the effectiveness of multi-task learning");
- and Table II's best column: BCE + DDCSAD beats every other loss.

Sec. IV-C, Fig. 2 ("results when using the evaluation data"): the AUC rises when real anomalies join the
training data; judged for BCE + DDCSAD on the evaluation set's mean over machine types of the AUCs of
Fig. 2 (the test clips left after the anomaly pool is removed), each count against no anomalies.

Verdict rule: :func:`asdcore.claims.beats_on` (higher is better; no intervals: the paper gives none for
the Machine Average).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from asdcore.claims import NOT_TESTED, Claim, beats_on

__all__ = ["claims_for", "eval_machine_average"]

PROPOSED = "bce+ddcsad"
LABELS = {"bce": "BCE", "dsad": "DSAD", "ddcsad": "DDCSAD", "bce+dsad": "BCE+DSAD", "bce+ddcsad": "BCE+DDCSAD"}
QUANTITY = "eval Machine Average AUC"


def eval_machine_average(table2: pd.DataFrame) -> dict:
    """``{loss: eval Machine Average AUC}`` of a ``table2.csv`` frame (:func:`ddcsad.scoring.table2_frame`)."""
    if table2 is None or table2.empty:
        return {}
    rows = table2[(table2["part"] == "eval") & (table2["machine_type"] == "Machine Average")]
    return {r.loss: float(r.auc) for r in rows.itertuples()}


def _fig2_average(fig2: pd.DataFrame, loss: str) -> dict:
    """``{k: mean over machine types of the eval AUC}`` of one loss in a ``fig2.csv`` frame."""
    rows = fig2[(fig2["loss"] == loss) & (fig2["part"] == "eval") & (fig2["machine_type"] != "Machine Average")]
    return {int(k): float(np.mean(g["auc"])) for k, g in rows.groupby("anomalies")}


def claims_for(table2: pd.DataFrame, config, fig2: pd.DataFrame | None = None) -> list[Claim]:
    """The claims of a run with the losses of ``config``: Table II's on ``table2`` (eval Machine Average),
    Fig. 2's on ``fig2`` (when ``config.anomalies`` has counts > 0)."""
    values = eval_machine_average(table2)
    claims = [
        beats_on("DDCSAD beats DSAD (Sec. IV-B, Table II)", values, "ddcsad", ["dsad"], QUANTITY, LABELS),
        beats_on("BCE + DDCSAD beats BCE alone and DDCSAD alone: multi-task learning helps (Sec. IV-B, Table II)",
                 values, PROPOSED, ["bce", "ddcsad"], QUANTITY, LABELS),
        beats_on("BCE + DDCSAD beats every other loss (Table II)", values, PROPOSED,
                 [loss for loss in config.losses if loss != PROPOSED], QUANTITY, LABELS),
    ]
    counts = [int(k) for k in config.anomalies if int(k) > 0]
    title = "a few real anomalies in training help BCE + DDCSAD (Fig. 2)"
    if not counts or fig2 is None or fig2.empty or PROPOSED not in config.losses:
        return claims + [Claim(title, NOT_TESTED, "the run has no few-anomaly experiment (--anomalies 0)")]
    per_k = _fig2_average(fig2, PROPOSED)
    for k in counts:
        values = {f"k{k}": per_k.get(k, np.nan), "k0": per_k.get(0, np.nan)}
        claims.append(beats_on(f"{k} real anomalies per ID help BCE + DDCSAD (Fig. 2)", values, f"k{k}", ["k0"],
                               "eval AUC, mean over machine types",
                               {f"k{k}": f"{k} anomalies", "k0": "no anomalies"}))
    return claims
