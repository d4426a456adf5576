"""The synthetic DCASE 2022-2025 sets (asdcore.synthetic) read back by asdcore.layouts into the clip table the
generator meant: the year is detected, every section has the planned clips per domain and label, the evaluation
test clips get label, domain and attributes from the written ground truth, hidden types say ``noAttribute``."""
import collections

import pytest

from asdcore import layouts, synthetic

SIZES = dict(n_train=3, n_target_train=1, n_test_normal=2, n_test_anomaly=1, duration=0.2)


@pytest.mark.parametrize("year", [2022, 2023, 2024, 2025])
def test_generated_names_read_back(year, tmp_path):
    root = synthetic.generate(year, tmp_path / str(year), seed=1, preset="tiny", **SIZES)
    assert layouts.detect_year(root) == year
    table = layouts.read_dataset(None, root)
    assert set(table["year"]) == {year}
    types = synthetic.TINY_LATER_TYPES[year]
    dev_types = [t for t in types if t in layouts.LATER_TYPES[year]["dev"]]
    eval_types = [t for t in types if t in layouts.LATER_TYPES[year]["eval"]]
    assert sorted(table.loc[table["part"] == "dev", "machine_type"].unique()) == sorted(dev_types)
    assert sorted(table.loc[table["part"] == "eval", "machine_type"].unique()) == sorted(eval_types)
    counts = collections.Counter(map(tuple, table[["part", "machine_type", "unit", "split", "domain",
                                                   "label"]].to_numpy()))
    expected = collections.Counter()
    for part, part_types in (("dev", dev_types), ("eval", eval_types)):
        for mtype in part_types:
            for unit in layouts.OFFICIAL_UNITS[year][part][mtype]:
                expected[(part, mtype, unit, "train", "source", "normal")] = SIZES["n_train"]
                expected[(part, mtype, unit, "train", "target", "normal")] = SIZES["n_target_train"]
                for domain in ("source", "target"):
                    expected[(part, mtype, unit, "test", domain, "normal")] = SIZES["n_test_normal"]
                    expected[(part, mtype, unit, "test", domain, "anomaly")] = SIZES["n_test_anomaly"]
    assert counts == expected
    # the evaluation test names carry nothing: label, domain and attributes came from the ground truth
    eval_test = table[(table["part"] == "eval") & (table["split"] == "test")]
    assert eval_test["file"].str.fullmatch(r"section_\d\d_\d{4}\.wav").all()
    assert (eval_test["attributes"] != "").all()
    for part in ("dev", "eval"):
        hidden = table["machine_type"].isin(layouts.HIDDEN_ATTRIBUTES[year][part]) & (table["part"] == part)
        assert (table.loc[hidden, "attributes"] == "noAttribute").all()
        assert not (table.loc[~hidden & (table["part"] == part), "attributes"] == "noAttribute").any()
    # a training clip's attributes are the ones the generator rendered it with
    row = table[(table["split"] == "train") & (table["part"] == "dev")].iloc[0]
    _, attributes = synthetic.render_clip(year, row["machine_type"], row["unit"], row["domain"], "train", "normal",
                                          int(row["index"]), seed=1, duration=0.2, part="dev")
    assert row["attributes"] == attributes
