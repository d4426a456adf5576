"""The qualitative claims of Wilkinghoff 2020 and 2021 checked on a run (the "claims" list of comparison.md).

2020 (sub-cluster AdaCos): the ensemble beats the single networks (Fig. 2/3); mixup prevents the divergence
of the modified (sub-cluster) AdaCos scale (Table III); sub-clusters S > 1 beat S = 1 (Table IV).
2021 (multiple distributions): the proposed ensemble beats each single distribution (Table 3) and each loss
variant alone (Table 4). The verdict rule is :func:`asdcore.claims.beats`.
"""
from __future__ import annotations

from asdcore.claims import FAILS, HOLDS, NOT_TESTED, Claim, beats, describe
from asdcore.confidence import lookup

__all__ = ["claims_2020", "claims_2021"]


def _mixup_claim(confidence, experiments, diverged) -> Claim:
    """Table III: without mixup the modified AdaCos scale diverges, with mixup it does not."""
    claim = "mixup prevents the divergence of the modified AdaCos scale (Table III)"
    if "mixup" not in experiments:
        return Claim(claim, NOT_TESTED, "the run has no mixup experiment (--experiment mixup or all)")
    off = {"mixup": "no", "modified_adacos": "yes"} in diverged
    on = {"mixup": "yes", "modified_adacos": "yes"} in diverged
    row = lookup(confidence, "table3_subcluster_adacos_S01_nomixup")
    without = "diverged" if off else ("did not diverge" + (f" ({describe('AUC', row)})" if row else ""))
    evidence = (f"modified AdaCos without mixup {without}; with mixup "
                f"{'diverged' if on else 'did not diverge'}")
    if off and not on:
        return Claim(claim, HOLDS, evidence)
    return Claim(claim, FAILS, evidence + (" in this many epochs" if not off else ""))


def claims_2020(confidence, experiments, config, diverged) -> list[Claim]:
    """Claims of Wilkinghoff 2020 for the experiments of a ``subcluster-adacos`` run.

    ``diverged`` lists the Table III row labels of the networks that diverged.
    """
    claims = []
    if "ensemble" in experiments:
        singles = ["ensemble_single", "table5_combined"] + [f"table4_S{int(s):02d}_gmm" for s in config.subclusters]
        present = [s for s in singles if lookup(confidence, s) is not None]
        labels = {"ensemble": "ensemble", "ensemble_single": f"single S = {config.representation_subclusters}",
                  "table5_combined": f"single S = {config.representation_subclusters} combined rule",
                  **{f"table4_S{int(s):02d}_gmm": f"single S = {s} GMM" for s in config.subclusters}}
        claims.append(beats("the ensemble beats every single network (Fig. 2/3)", confidence, "ensemble", present,
                            labels=labels))
    else:
        claims.append(Claim("the ensemble beats every single network (Fig. 2/3)", NOT_TESTED,
                            "the run has no ensemble experiment"))
    claims.append(_mixup_claim(confidence, experiments, diverged))
    larger = [int(s) for s in config.subclusters if int(s) > 1]
    if "subclusters" in experiments and 1 in [int(s) for s in config.subclusters] and larger:
        for s in larger:
            claims.append(beats(f"S = {s} sub-clusters beat S = 1 (Table IV, GMM back-end)", confidence,
                                f"table4_S{s:02d}_gmm", ["table4_S01_gmm"],
                                labels={f"table4_S{s:02d}_gmm": f"S = {s}", "table4_S01_gmm": "S = 1"}))
    else:
        claims.append(Claim("sub-clusters S > 1 beat S = 1 (Table IV)", NOT_TESTED,
                            "the run has no sub-cluster experiment with S = 1 and some S > 1"))
    return claims


def claims_2021(confidence, experiments, singles=()) -> list[Claim]:
    """Claims of Wilkinghoff 2021 for the experiments of a ``multi-distribution`` run; ``singles`` names the
    systems scored from one network and checkpoint (``single_S01_epoch0002``: the proposed per-type choice of
    variant, but one score set instead of the sum of Sec. 2.5)."""
    claims = []
    labels = {"proposed": "proposed ensemble", "distribution_section": "P(x|s,k)",
              "distribution_attribute": "P(x|a,k)", "distribution_target": "P(x|X_target(s),k)",
              "loss_sections": "sections only", "loss_sections_attributes": "sections and file endings"}
    if "distributions" in experiments:
        claims.append(beats("combining the distributions beats each single distribution (Table 3)", confidence,
                            "proposed", ["distribution_section", "distribution_attribute", "distribution_target"],
                            labels=labels))
    else:
        claims.append(Claim("combining the distributions beats each single distribution (Table 3)", NOT_TESTED,
                            "the run has no distributions experiment"))
    if "losses" in experiments:
        claims.append(beats("the per-type choice of loss beats each loss variant alone (Table 4)", confidence,
                            "proposed", ["loss_sections", "loss_sections_attributes"], labels=labels))
    else:
        claims.append(Claim("the per-type choice of loss beats each loss variant alone (Table 4)", NOT_TESTED,
                            "the run has no losses experiment"))
    title = "the ensemble over S and checkpoints beats each single network / checkpoint (Sec. 2.5)"
    if singles:
        claims.append(beats(title, confidence, "proposed", list(singles), labels=labels))
    else:
        claims.append(Claim(title, NOT_TESTED, "the run has no single score sets"))
    return claims
