"""The qualitative claim of Fujimura et al. (DCASE 2021) checked on a ``smoothing`` run.

Table II: the smoothed score a_prop (Proposed, eq. 7, K and data chosen on the development set) beats the
unsmoothed generative score a_G (AE) and the discriminative SerialOE score alone. Verdict rule:
:func:`asdcore.claims.beats`.
"""
from __future__ import annotations

from asdcore.claims import Claim, beats

__all__ = ["claims_for"]


def claims_for(confidence, generative_name: str = "AE") -> list[Claim]:
    """``Proposed`` against ``generative_name`` (the unsmoothed a_G) and ``SerialOE``."""
    return [beats(f"the smoothed score (Proposed) beats the unsmoothed {generative_name} and SerialOE alone "
                  "(Table II)", confidence, "Proposed", [generative_name, "SerialOE"])]
