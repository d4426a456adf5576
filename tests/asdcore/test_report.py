"""Paper-shaped comparison tables and plots."""
import numpy as np
import pandas as pd
import pytest

from sklearn.metrics import roc_auc_score

from asdcore.report import plot_scores, run_tag, standardised_by_normals


def test_plot_scores_writes_one_png_per_machine_type(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"machine_type": ["fan"] * 20 + ["pump"] * 20, "part": "dev", "unit": "id_00",
                          "domain": "", "split": "test", "label": (["normal"] * 10 + ["anomaly"] * 10) * 2,
                          "score": rng.normal(size=40)})
    paths = plot_scores(table, "score", tmp_path)
    assert sorted(p.name for p in paths) == ["fan.png", "pump.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_markdown_writes_missing_cells_as_dash_and_escapes_pipes():
    from asdcore.report import comparison_markdown

    text = comparison_markdown("T", pd.DataFrame({"P(x|s,k)": [1.0, np.nan], "b": ["a|b", None]}), ["note"])
    assert "nan" not in text and "| -" in text
    assert "P(x\\|s,k)" in text and "a\\|b" in text and "> note" in text


def test_plot_grid_draws_one_panel_per_type_with_bands(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from asdcore.report import plot_grid

    frame = pd.DataFrame([{"machine_type": t, "system": s, "k": k, "auc": 0.5 + 0.01 * k, "lo": 0.4, "hi": 0.9}
                          for t in ("valve", "fan", "all") for s in ("BCE", "DDCSAD") for k in (1, 2, 4)])
    closed = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (closed.append(fig), real_close(fig)))
    path = plot_grid(frame, "k", "auc", tmp_path / "fig" / "grid.png", low="lo", high="hi", categorical_x=True)
    captured = {"axes": [ax for ax in closed[-1].axes if ax.axison]}
    assert path.is_file() and path.stat().st_size > 0
    axes = captured["axes"]
    assert [ax.get_title() for ax in axes] == ["all", "fan", "valve"]  # "all" first, then the papers' order
    first = axes[0]
    assert [line.get_label() for line in first.get_lines()] == ["BCE", "DDCSAD"]
    np.testing.assert_allclose(first.get_lines()[0].get_ydata(), [51.0, 52.0, 54.0])
    np.testing.assert_allclose(first.get_lines()[0].get_xdata(), [0, 1, 2])  # categorical positions
    assert len(first.collections) == 2  # one band per line


def _drawn_figure(monkeypatch):
    """The figures closed by save_figure, kept for inspection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    closed = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (closed.append(fig), real_close(fig)))
    return closed


def _units_table(rng):
    """12 units of one machine type (2 parts x 3 IDs x 2 domains), each on its own score scale."""
    rows = []
    for part in ("dev", "eval"):
        for i, unit in enumerate(("id_00", "id_02", "id_04")):
            for domain in ("source", "target"):
                shift, scale = rng.uniform(-50, 50), rng.uniform(0.1, 20)
                for label, n in (("normal", 15), ("anomaly", 9)):
                    for z in rng.normal(size=n) + (rng.uniform(0, 2) if label == "anomaly" else 0):
                        rows.append({"machine_type": "fan", "part": part, "unit": unit, "domain": domain,
                                     "split": "test", "label": label, "score": shift + scale * z})
    return pd.DataFrame(rows)


def test_roc_legend_gives_each_units_auc_in_its_own_colour_and_the_pauc_region(tmp_path, monkeypatch):
    import re

    import matplotlib.colors as mcolors

    closed = _drawn_figure(monkeypatch)
    table = _units_table(np.random.default_rng(3))
    plot_scores(table, "score", tmp_path, title="system gmm", tag=run_tag(synthetic=True, quick=True))
    fig = closed[-1]
    ax_roc, ax_hist = fig.axes
    legend = [t.get_text() for t in ax_roc.get_legend().get_texts()]
    units = {}
    for text in legend:
        found = re.fullmatch(r"(dev|eval) (id_\d\d) (source|target): AUC (\d+\.\d) %", text)
        if found:
            units[found.groups()[:3]] = float(found.group(4))
    assert len(units) == 12, legend
    for (part, unit, domain), shown in units.items():
        rows = table[(table["part"] == part) & (table["unit"] == unit) & (table["domain"] == domain)]
        expected = 100 * roc_auc_score(rows["label"] == "anomaly", rows["score"])
        assert abs(shown - expected) <= 0.05 + 1e-9, (part, unit, domain, shown, expected)
    lines = [line for line in ax_roc.get_lines() if "AUC" in line.get_label() and "chance" not in line.get_label()]
    assert len({mcolors.to_hex(line.get_color()) for line in lines}) == 12  # no colour twice
    region = [p for p in ax_roc.patches if "pAUC" in p.get_label()]
    assert len(region) == 1 and "0.1" in region[0].get_label()
    x0, x1 = region[0].get_x(), region[0].get_x() + region[0].get_width()
    assert (x0, x1) == (0, 0.1)
    assert "SYNTHETIC data" in fig._suptitle.get_text() and "QUICK mode" in fig._suptitle.get_text()
    assert "standardised" in ax_hist.get_xlabel()
    # the histograms hold every labelled clip once, as z-values of its unit's normal clips
    counts = sum(sum(p.get_height() * p.get_width() for p in c.patches) for c in ax_hist.containers)
    assert counts == pytest.approx(2.0)  # two density histograms, each integrating to one


def test_scores_are_standardised_by_each_units_normal_clips():
    rng = np.random.default_rng(4)
    table = _units_table(rng)
    z = standardised_by_normals(table, "score", ["part", "unit", "domain"])
    for _, rows in table.groupby(["part", "unit", "domain"]):
        normal = rows.loc[rows["label"] == "normal", "score"].to_numpy()
        expected = (rows["score"].to_numpy() - normal.mean()) / normal.std()
        np.testing.assert_allclose(z[rows.index], expected)


def test_run_tag_names_the_data_and_the_mode():
    assert run_tag(True, True) == "SYNTHETIC data, QUICK mode"
    assert run_tag(True, True, preset="medium").startswith("SYNTHETIC data, MEDIUM run")
    assert run_tag(False, False) == "real data, PAPER settings"
    assert run_tag(False, False, overrides=True) == "real data, paper settings with overrides"
