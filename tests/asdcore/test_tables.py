"""asdcore.tables: a TableSpec renders ours beside the published numbers, in the paper's rows and columns."""
import numpy as np
import pandas as pd
import pytest

from asdcore.errors import ASDError
from asdcore.published import load_table
from asdcore.tables import TableSpec, render, render_markdown, tidy_results

TABLE4 = TableSpec("wilkinghoff2020_table4", "Table IV", row_columns=("n_subclusters", "backend"),
                   filters={"statistic": "arithmetic mean", "machine_type": "all"})


def _summary(system, auc_dev, pauc_dev, auc_eval, pauc_eval, machine_type="all"):
    return pd.DataFrame([
        {"system": system, "part": "dev", "machine_type": machine_type, "domain": "", "statistic": "arithmetic mean",
         "n_units": 3, "auc": auc_dev, "pauc": pauc_dev},
        {"system": system, "part": "eval", "machine_type": machine_type, "domain": "", "statistic": "arithmetic mean",
         "n_units": 3, "auc": auc_eval, "pauc": pauc_eval},
    ])


def test_paper_side_is_the_published_csv_in_its_row_order():
    frame = render(TABLE4, None)
    tidy = load_table("wilkinghoff2020_table4")
    tidy = tidy[(tidy["statistic"] == "arithmetic mean") & (tidy["machine_type"] == "all")]
    rows = tidy[["n_subclusters", "backend"]].drop_duplicates()
    assert list(zip(frame["n_subclusters"], frame["backend"])) == list(rows.itertuples(index=False, name=None))
    for _, r in tidy.iterrows():
        label = f"{r['set']} {'AUC' if r['metric'] == 'auc' else 'pAUC'} (paper)"
        got = frame.loc[(frame["n_subclusters"] == r["n_subclusters"]) & (frame["backend"] == r["backend"]), label]
        assert got.item() == pytest.approx(r["value"])
    assert list(frame.columns[2:]) == ["machine type", "dev AUC (ours)", "dev AUC (paper)", "dev pAUC (ours)",
                                       "dev pAUC (paper)", "eval AUC (ours)", "eval AUC (paper)",
                                       "eval pAUC (ours)", "eval pAUC (paper)"]


def test_our_systems_fill_the_rows_they_name_in_percent():
    spec = TableSpec(**{**TABLE4.__dict__, "systems": {"gmm_S04": {"n_subclusters": "4", "backend": "GMM"},
                                                       "new": {"n_subclusters": "128", "backend": "GMM"}}})
    ours = tidy_results(pd.concat([_summary("gmm_S04", 0.8, 0.6, 0.9, 0.7), _summary("new", 0.5, 0.5, 0.5, 0.5),
                                   _summary("other", 0.1, 0.1, 0.1, 0.1)]))
    frame = render(spec, ours)
    row = frame[(frame["n_subclusters"] == "4") & (frame["backend"] == "GMM")].iloc[0]
    assert row["dev AUC (ours)"] == pytest.approx(80.0) and row["eval pAUC (ours)"] == pytest.approx(70.0)
    paper = load_table("wilkinghoff2020_table4")
    expected = paper[(paper["n_subclusters"] == "4") & (paper["backend"] == "GMM") & (paper["set"] == "dev")
                     & (paper["metric"] == "auc") & (paper["machine_type"] == "all")]["value"].item()
    assert row["dev AUC (paper)"] == pytest.approx(expected)
    # a row the paper does not have is kept, last, with empty paper cells
    last = frame.iloc[-1]
    assert (last["n_subclusters"], last["backend"]) == ("128", "GMM")
    assert np.isnan(last["dev AUC (paper)"]) and last["dev AUC (ours)"] == pytest.approx(50.0)
    # a system not named by the spec is not shown
    assert len(frame) == len(render(TABLE4, None)) + 1


def test_words_in_the_paper_and_in_ours():
    spec = TableSpec("wilkinghoff2020_table3", "Table III", row_columns=("mixup", "modified_adacos"),
                     filters={"statistic": "arithmetic mean", "machine_type": "all"},
                     systems={"nomix_mod": {"mixup": "no", "modified_adacos": "yes"}},
                     cell_text=lambda system: "diverges" if system == "nomix_mod" else None)
    frame = render(spec, tidy_results(_summary("nomix_mod", 0.5, 0.5, 0.5, 0.5)))
    row = frame[(frame["mixup"] == "no") & (frame["modified_adacos"] == "yes")].iloc[0]
    assert row["dev AUC (paper)"] == "diverges" and row["dev AUC (ours)"] == "diverges"
    text, _ = render_markdown(spec, None, notes=["synthetic"])
    assert "## Table III" in text and "> synthetic" in text and "diverges" in text


def test_per_type_rows_follow_the_papers_machine_order():
    spec = TableSpec("wilkinghoff2020_table5", "Table V", row_columns=("representation",),
                     filters={"statistic": "arithmetic mean"}, systems={"mean": {"representation": "mean"}})
    ours = tidy_results(pd.concat([_summary("mean", 0.7, 0.6, 0.8, 0.7, machine_type=t)
                                   for t in ("valve", "fan", "all")]))
    frame = render(spec, ours)
    mean_rows = frame[frame["representation"] == "mean"]
    paper = load_table("wilkinghoff2020_table5")
    paper_types = list(dict.fromkeys(paper.loc[paper["representation"] == "mean", "machine_type"]))
    assert list(mean_rows["machine type"]) == paper_types
    assert mean_rows.set_index("machine type").loc["valve", "dev AUC (ours)"] == pytest.approx(70.0)


def test_two_values_for_one_cell_is_an_error():
    spec = TableSpec(**{**TABLE4.__dict__, "systems": {"a": {"n_subclusters": "1", "backend": "GMM"},
                                                       "b": {"n_subclusters": "1", "backend": "GMM"}}})
    ours = tidy_results(pd.concat([_summary("a", 0.8, 0.6, 0.9, 0.7), _summary("b", 0.5, 0.5, 0.5, 0.5)]))
    with pytest.raises(ASDError, match="two values for one cell"):
        render(spec, ours)


def test_unknown_row_column_names_the_fix():
    with pytest.raises(ASDError, match="TableSpec"):
        render(TableSpec("wilkinghoff2020_table4", "x", row_columns=("nope",)), None)
