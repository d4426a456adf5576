"""asd fit ddcsad: eq. (5) with min-max statistics stored at fit time (ddcsad.scoring bounds)."""
from __future__ import annotations

import numpy as np
import pytest

from ddcsad.scoring import eq5


def test_eq5_with_stored_bounds_is_the_formula_and_independent_of_other_clips():
    rng = np.random.default_rng(0)
    logit, d = rng.normal(size=(3, 10)), rng.uniform(1, 5, size=(3, 10))
    lo, hi, alpha = 0.5, 4.0, 0.3
    by_hand = (alpha / (1 + np.exp(logit)) + (1 - alpha) * (d - lo) / (hi - lo)).mean(axis=1)
    assert eq5(logit, d, alpha, "crops", bounds=(lo, hi)) == pytest.approx(by_hand, rel=1e-12)
    alone = eq5(logit[:1], d[:1], alpha, "crops", bounds=(lo, hi))
    assert alone[0] == eq5(logit, d, alpha, "crops", bounds=(lo, hi))[0]
    # without stored bounds (the paper script) the score of clip 0 depends on the other clips
    assert eq5(logit[:1], d[:1], alpha)[0] != eq5(logit, d, alpha)[0]
    clips = eq5(logit, d, alpha, "clips", bounds=(lo, hi))
    assert clips == pytest.approx(alpha * (1 / (1 + np.exp(logit))).mean(1) + (1 - alpha) * (d.mean(1) - lo) / (hi - lo))
