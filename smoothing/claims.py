"""The claims Fujimura et al. (DCASE 2021) make, checked on a ``smoothing`` run, each on the quantity the paper
reports (Table II: sections 03-05, the harmonic mean of AUC and pAUC over all machine types and sections,
"All-hmean", and the AUC of ToyCar section 05, "ToyCar-5").

- Sec. IV-B: "the proposed method improves the performance of AE ... an absolute improvement of 7 % in
  All-hmean": Proposed beats the unsmoothed a_G (AE) on All-hmean.
- Sec. IV-B: "SerialOE has an AUC less than 50 % in ToyCar-5 ... Even in such a situation, the proposed
  method works robustly": where SerialOE's ToyCar-5 AUC is below 50 %, Proposed's is above 50 % (not
  tested when SerialOE does not fall below chance there).
- Sec. V (3): "it had the potential to outperform SerialOE": Proposed (Oracle), the best settings on the
  evaluation sections, beats SerialOE on All-hmean.

The paper does *not* claim that Proposed beats SerialOE: its own Table II has Proposed 63.52 against
SerialOE 64.72 All-hmean. Verdict rule: :func:`asdcore.claims.beats_on`.
"""
from __future__ import annotations

import numpy as np

from asdcore.claims import NOT_TESTED, Claim, beats_on, verdict

__all__ = ["claims_for", "eval_quantities"]

ALL_HMEAN = "eval All-hmean (AUC and pAUC, sections 03-05)"


def eval_quantities(table, systems: dict) -> tuple[dict, dict]:
    """``({system: eval All-hmean}, {system: ToyCar-5 AUC})`` as fractions (NaN where the run lacks them)."""
    from smoothing.protocol import UnitEvaluator, toycar5_auc

    rows = ((table["part"] == "eval") & (table["split"] == "test")
            & table["label"].isin(["normal", "anomaly"])).to_numpy()
    evaluator = UnitEvaluator(table[rows]) if rows.any() else None  # one evaluator for every system
    hmean, toycar5 = {}, {}
    for name, scores in systems.items():
        scores = np.asarray(scores, np.float64)
        hmean[name] = evaluator.score(scores[rows])["all"] if evaluator is not None else np.nan
        toycar5[name] = toycar5_auc(table, scores) / 100.0
    return hmean, toycar5


def claims_for(table, systems: dict, generative_name: str = "AE") -> list[Claim]:
    """The three claims above for the systems of a run (``Proposed``, ``Proposed_Oracle``, ``SerialOE`` and
    the unsmoothed ``generative_name``), scores over the rows of ``table``."""
    hmean, toycar5 = eval_quantities(table, systems)
    labels = {"Proposed_Oracle": "Proposed (Oracle)"}
    claims = [
        beats_on(f"smoothing improves the generative score: Proposed beats {generative_name} (Sec. IV-B, Table II)",
                 hmean, "Proposed", [generative_name], ALL_HMEAN, labels),
    ]
    title = "Proposed works robustly where SerialOE falls below chance (ToyCar-5, Sec. IV-B)"
    oe, prop = toycar5.get("SerialOE", np.nan), toycar5.get("Proposed", np.nan)
    if not (np.isfinite(oe) and np.isfinite(prop)):
        claims.append(Claim(title, NOT_TESTED, "the run has no ToyCar section 05 with both labels"))
    elif oe >= 0.5:
        claims.append(Claim(title, NOT_TESTED, f"SerialOE does not fall below chance here (ToyCar-5 AUC: SerialOE "
                                               f"{100 * oe:.2f} %, Proposed {100 * prop:.2f} %)"))
    else:
        claims.append(Claim(title, verdict(prop > 0.5), f"ToyCar-5 AUC: SerialOE {100 * oe:.2f} %, Proposed "
                                                        f"{100 * prop:.2f} %"))
    claims.append(beats_on("Proposed (Oracle) beats SerialOE: the potential of smoothing (Sec. V, Table II)",
                           hmean, "Proposed_Oracle", ["SerialOE"], ALL_HMEAN, labels))
    return claims
