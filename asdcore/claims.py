"""The papers' qualitative claims checked on a run's numbers: the "claims" list of ``comparison.md``.

A method lists its paper's claims as :class:`Claim` items (its own module decides what to compare); this
module holds the one verdict rule for "system A beats systems B, C, ..." (:func:`beats`) and renders the
list (:func:`render_claims`). The verdict is about *these* data: a run on the built-in synthetic set says
nothing about the paper's data, and "does not hold here" is a result, not an error.

Verdict rule of :func:`beats`: the claim holds when the winner's mean AUC (``part``, default both parts)
is higher than every other system's; the evidence gives each mean with its 95 % interval
(:mod:`asdcore.confidence`) and says when the intervals overlap (the difference is then not resolved by
these clips). :func:`beats_on` is the same rule on one number per system that the method computes itself,
so that a claim is judged on the quantity the paper states (e.g. an evaluation-set average of Table II).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HOLDS", "FAILS", "NOT_TESTED", "Claim", "verdict", "beats", "beats_on", "describe", "render_claims"]

HOLDS = "holds here"
FAILS = "does not hold here"
NOT_TESTED = "not tested in this run"


@dataclass(frozen=True)
class Claim:
    """One of a paper's qualitative claims, its verdict on this run and the numbers behind it."""

    claim: str
    verdict: str
    evidence: str

    def __post_init__(self):
        if self.verdict not in (HOLDS, FAILS, NOT_TESTED):
            raise ValueError(f"verdict must be {HOLDS!r}, {FAILS!r} or {NOT_TESTED!r}, got {self.verdict!r}")


def verdict(condition: bool | None) -> str:
    """``HOLDS`` for True, ``FAILS`` for False, ``NOT_TESTED`` for None (the run lacks what is compared)."""
    return NOT_TESTED if condition is None else (HOLDS if condition else FAILS)


def describe(label: str, row: dict) -> str:
    """``label 81.20 % [78.00, 84.40]``: a mean AUC with its 95 % interval, in percent."""
    return f"{label} {100 * row['mean_auc']:.2f} % [{100 * row['ci_low']:.2f}, {100 * row['ci_high']:.2f}]"


def beats(claim: str, confidence, winner: str, others, part: str = "all", labels: dict | None = None) -> Claim:
    """Does ``winner`` have a higher mean AUC than every system of ``others``?

    Parameters
    ----------
    confidence : DataFrame of :func:`asdcore.confidence.confidence_table`.
    winner : system name the paper says is best; others : the system names it should beat.
    labels : optional system name -> wording in the evidence (default: the system name).
    """
    from asdcore.confidence import lookup

    labels = labels or {}
    others = list(others)
    rows = {name: lookup(confidence, name, part) for name in [winner] + others}
    absent = [name for name, row in rows.items() if row is None]
    if absent or not others:
        return Claim(claim, NOT_TESTED, f"the run has no system {', '.join(absent)}" if absent
                     else "nothing to compare with")
    ours = rows[winner]
    holds = all(ours["mean_auc"] > rows[o]["mean_auc"] for o in others)
    overlap = [o for o in others if ours["ci_low"] <= rows[o]["ci_high"] and rows[o]["ci_low"] <= ours["ci_high"]]
    evidence = "; ".join(describe(labels.get(n, n), rows[n]) for n in [winner] + others)
    if overlap:
        evidence += (f" (95 % intervals of {labels.get(winner, winner)} and "
                     f"{', '.join(labels.get(o, o) for o in overlap)} overlap)")
    return Claim(claim, verdict(holds), evidence)


def beats_on(claim: str, values: dict, winner: str, others, quantity: str, labels: dict | None = None) -> Claim:
    """Is ``values[winner]`` higher than ``values[o]`` for every ``o`` in ``others``?

    ``values``: system name -> the number the paper compares (a fraction, e.g. an AUC; NaN or absent = not
    in this run); ``quantity`` names it in the evidence (e.g. "eval Machine Average AUC").
    """
    labels = labels or {}
    others = list(others)
    absent = [n for n in [winner] + others if n not in values or values[n] != values[n]]
    if absent or not others:
        return Claim(claim, NOT_TESTED, f"the run has no {quantity} of {', '.join(labels.get(n, n) for n in absent)}"
                     if absent else "nothing to compare with")
    holds = all(values[winner] > values[o] for o in others)
    evidence = f"{quantity}: " + "; ".join(f"{labels.get(n, n)} {100 * values[n]:.2f} %" for n in [winner] + others)
    return Claim(claim, verdict(holds), evidence)


def render_claims(claims, title: str = "Claims of the paper on these data") -> list[str]:
    """The markdown section: one bullet per claim, ``**claim**: verdict. evidence``."""
    lines = [f"## {title}", "",
             "Each claim of the paper checked on this run, on the quantity named in its line (mean AUCs of "
             "both parts come with their 95 % Hanley-McNeil intervals, see above). The synthetic data are not "
             "the paper's: a verdict says what happens on these data only.", ""]
    if not claims:
        return lines + ["- no claim of the paper is checked by this run", ""]
    for c in claims:
        lines.append(f"- **{c.claim}**: {c.verdict}. {c.evidence}")
    return lines + [""]
