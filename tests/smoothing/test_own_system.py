"""asd fit smoothing: the reference pool check (a K covering the whole pool is a warning)."""
from __future__ import annotations

import logging
from dataclasses import replace

import pandas as pd
import pytest

from asdcore.errors import ASDError
from smoothing.own_system import ADAPTERS


def _table(counts, part="own"):
    rows = [{"machine": m, "machine_type": m, "unit": "id_00", "domain": "source", "split": "train",
             "label": "normal", "attributes": "", "part": part, "path": f"/x/{m}{i}.wav", "file": f"{m}{i:03d}.wav"}
            for m, n in counts.items() for i in range(n)]
    return pd.DataFrame(rows)


def test_k_covering_the_pool_is_a_warning_naming_the_fix(caplog):
    adapter = ADAPTERS["smoothing"]
    config = adapter.default_config(quick=True)  # 3 segments per clip
    log = logging.getLogger("test.own.smoothing")
    with pytest.raises(ASDError, match="--auxiliary"):
        adapter.check(_table({"a": 20}), config, log)
    table = _table({"a": 20, "b": 100})  # 15 % held out: 3 and 15 clips -> 9 and 45 segments
    with caplog.at_level(logging.WARNING, logger="test.own.smoothing"):
        adapter.check(table, replace(config, k=16), log)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "k=16 covers the whole reference pool of a (9 items)" in warned[0]
    assert "--set k=2" in warned[0]
