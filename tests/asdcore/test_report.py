"""Paper-shaped comparison tables and plots."""
import numpy as np
import pandas as pd

from asdcore.report import plot_scores


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
