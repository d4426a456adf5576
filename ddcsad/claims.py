"""The qualitative claims of Kuroyanagi et al. (DCASE 2020) checked on a ``ddcsad`` run.

Table II: BCE + DDCSAD beats each loss alone (BCE, DSAD, DDCSAD) and BCE + DSAD. Fig. 2: a few real
anomalies in training raise the AUC of BCE + DDCSAD above the model trained without them (evaluated, as the
figure, on the test clips left after the anomaly pool is removed). Verdict rule: :func:`asdcore.claims.beats`.
"""
from __future__ import annotations

from asdcore.claims import NOT_TESTED, Claim, beats
from asdcore.confidence import confidence_table

__all__ = ["claims_for"]

PROPOSED = "bce+ddcsad"


def claims_for(confidence, config, few_anomalies_per_unit=None) -> list[Claim]:
    """Claims for a run with the losses of ``config`` and (when ``config.anomalies`` has counts > 0) the
    per-unit results of the few-anomaly systems ``<loss>_anomalies<k>``."""
    others = [loss for loss in config.losses if loss != PROPOSED]
    claims = [beats("BCE + DDCSAD beats each other loss (Table II)", confidence, PROPOSED, others)
              if PROPOSED in config.losses and others else
              Claim("BCE + DDCSAD beats each other loss (Table II)", NOT_TESTED,
                    "the run does not train BCE + DDCSAD and another loss")]
    counts = [k for k in config.anomalies if int(k) > 0]
    title = "a few real anomalies in training help BCE + DDCSAD (Fig. 2)"
    if not counts or few_anomalies_per_unit is None or few_anomalies_per_unit.empty or PROPOSED not in config.losses:
        return claims + [Claim(title, NOT_TESTED, "the run has no few-anomaly experiment (--anomalies 0)")]
    few = confidence_table(few_anomalies_per_unit)
    for k in counts:
        claims.append(beats(f"{k} real anomalies per ID help BCE + DDCSAD (Fig. 2)", few,
                            f"{PROPOSED}_anomalies{k}", [f"{PROPOSED}_anomalies0"],
                            labels={f"{PROPOSED}_anomalies{k}": f"{k} anomalies",
                                    f"{PROPOSED}_anomalies0": "no anomalies"}))
    return claims
