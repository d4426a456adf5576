"""The Wilkinghoff 2020 / 2021 claims on hand-made mean AUCs and divergence records."""
import pandas as pd

from asdcore.claims import FAILS, HOLDS, NOT_TESTED
from subcluster_adacos.claims import claims_2020, claims_2021
from subcluster_adacos.experiments import SubClusterAdaCosConfig


def _conf(means):
    return pd.DataFrame([{"system": s, "part": "all", "mean_auc": m, "ci_low": m - 0.01, "ci_high": m + 0.01}
                         for s, m in means.items()])


CONFIG = SubClusterAdaCosConfig().quick()  # S in {1, 4}, representation S = 4
ALL = ("backends", "mixup", "subclusters", "representations", "ensemble")
MEANS = {"ensemble": 0.85, "ensemble_single": 0.80, "table5_combined": 0.82, "table4_S01_gmm": 0.78,
         "table4_S04_gmm": 0.80, "table3_subcluster_adacos_S01_nomixup": 0.7}
DIVERGED_OFF = [{"mixup": "no", "modified_adacos": "yes"}]


def test_claims_2020_all_hold():
    claims = {c.claim.split(" (")[0]: c for c in claims_2020(_conf(MEANS), ALL, CONFIG, DIVERGED_OFF)}
    assert [c.verdict for c in claims.values()] == [HOLDS, HOLDS, HOLDS]
    ensemble = claims["the ensemble beats every single network"]
    assert "single S = 1 GMM 78.00 %" in ensemble.evidence and "ensemble 85.00 %" in ensemble.evidence
    assert "without mixup diverged" in claims["mixup prevents the divergence of the modified AdaCos scale"].evidence


def test_claims_2020_fail_and_not_tested():
    means = dict(MEANS, table4_S01_gmm=0.9)  # a single network better than the ensemble and than S = 4
    claims = claims_2020(_conf(means), ALL, CONFIG, diverged=[])
    assert [c.verdict for c in claims] == [FAILS, FAILS, FAILS]
    assert "did not diverge" in claims[1].evidence and "70.00 %" in claims[1].evidence
    both = claims_2020(_conf(MEANS), ALL, CONFIG, DIVERGED_OFF + [{"mixup": "yes", "modified_adacos": "yes"}])
    assert both[1].verdict == FAILS  # with mixup diverging too, mixup did not prevent it
    only = claims_2020(_conf(MEANS), ("subclusters",), CONFIG, [])
    assert [c.verdict for c in only] == [NOT_TESTED, NOT_TESTED, HOLDS]


def test_claims_2021():
    means = {"proposed": 0.7, "distribution_section": 0.65, "distribution_attribute": 0.6,
             "distribution_target": 0.72, "loss_sections": 0.6, "loss_sections_attributes": 0.68}
    claims = claims_2021(_conf(means), ("distributions", "losses", "system"))
    assert [c.verdict for c in claims] == [FAILS, HOLDS, NOT_TESTED]  # no single score sets given
    assert "P(x|X_target(s),k) 72.00 %" in claims[0].evidence
    assert [c.verdict for c in claims_2021(_conf(means), ("system",))] == [NOT_TESTED] * 3
    singles = {"single_S01_epoch0001": 0.6, "single_S02_epoch0001": 0.69}
    ensemble = claims_2021(_conf({**means, **singles}), ("system",), list(singles))[2]
    assert ensemble.verdict == HOLDS and "single_S02_epoch0001 69.00 %" in ensemble.evidence
    worse = claims_2021(_conf({**means, **singles, "single_S02_epoch0001": 0.75}), ("system",), list(singles))
    assert worse[2].verdict == FAILS
