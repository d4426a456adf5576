"""asd fit subcluster-adacos / multi-distribution: requirement checks and the source-only scoring hook."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from asdcore.errors import ASDError
from subcluster_adacos.multi_distribution import DistributionScorer
from subcluster_adacos.own_system import ADAPTERS


def _table(counts, part="own"):
    rows = [{"machine": m, "machine_type": m, "unit": "id_00", "domain": "source", "split": "train",
             "label": "normal", "attributes": "", "part": part, "path": f"{m}{i}.wav", "file": f"{m}{i}.wav"}
            for m, n in counts.items() for i in range(n)]
    return pd.DataFrame(rows)


def test_one_machine_is_refused_and_too_many_components_warned(caplog):
    adapter = ADAPTERS["subcluster-adacos"]
    config = adapter.default_config(quick=False)  # S = 32
    log = logging.getLogger("test.own")
    with pytest.raises(ASDError, match="--auxiliary"):
        adapter.check(_table({"a": 40}), config, log)
    with caplog.at_level(logging.WARNING, logger="test.own"):
        adapter.check(pd.concat([_table({"a": 10, "b": 40}), _table({"c": 5}, "auxiliary")]), config, log)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "representation_subclusters=32" in warned[0] and " a " in warned[0]
    assert "--set representation_subclusters=4" in warned[0]


def test_terms_without_target_clips_score_the_source_domain_only():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"machine_type": ["m"] * 12, "unit": ["id_00"] * 12, "domain": ["source"] * 12,
                          "split": ["train"] * 10 + ["test"] * 2, "label": ["normal"] * 12, "attributes": [""] * 12})
    x = rng.normal(size=(12, 4))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    centres = {"m/id_00": x[:2]}
    scorer = DistributionScorer().fit(x, table, centres)
    with pytest.raises(ASDError, match="no target training clips"):
        scorer.terms(x, table)
    terms = scorer.terms(x, table, require_target=False)
    assert np.isnan(terms["target"]).all() and np.isfinite(terms["section"]).all()
    # the section term is the GMM's largest weighted component log-likelihood, by hand
    gmm = scorer.section_gmms_["m/id_00"].gmm_
    from scipy.stats import multivariate_normal

    by_hand = -np.max([np.log(w) + multivariate_normal(mu, cov).logpdf(x)
                       for w, mu, cov in zip(gmm.weights_, gmm.means_, gmm.covariances_)], axis=0)
    assert terms["section"] == pytest.approx(by_hand, rel=1e-6)
