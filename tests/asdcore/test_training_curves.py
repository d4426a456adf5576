"""asdcore.training_curves: plots/training/<unit>.png from a unit's CSV log, and the Table III scale figure."""
import numpy as np
import pandas as pd
import pytest

from asdcore.errors import ASDError
from asdcore.training_curves import curve_panels, plot_scale_curves, plot_training_log, plot_unit_logs


@pytest.fixture()
def drawn(monkeypatch):
    """The figures saved during the test (their axes are inspected after ``savefig``)."""
    from matplotlib.figure import Figure

    figures = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return figures


def _ddcsad_log(path, epochs=4):
    """A log as Keras' CSVLogger writes it (epochs from 0) with DDCSAD's columns."""
    e = np.arange(epochs)
    frame = pd.DataFrame({"epoch": e, "bce": 0.7 / (e + 1), "centroid_loss": 2.0 / (e + 1), "loss": 2.7 / (e + 1),
                          "dist_normal_cn": 5.0 + e, "dist_normal_cp": 1.0 + e, "dist_outlier_cn": 2.0 + e,
                          "dist_outlier_cp": 6.0 + e, "learning_rate_encoder": 1e-4 * 0.5 ** e,
                          "learning_rate_linear": 1e-3 * 0.5 ** e})
    frame.to_csv(path, index=False)
    return frame


def test_ddcsad_log_gives_loss_terms_distances_and_learning_rates(tmp_path, drawn):
    frame = _ddcsad_log(tmp_path / "training_log.csv")
    assert plot_training_log(tmp_path / "training_log.csv", tmp_path / "u.png").stat().st_size > 1000
    (fig,) = drawn
    titles = [ax.get_ylabel() for ax in fig.axes]
    assert len(fig.axes) == 3 and titles[0] == "loss" and "distance" in titles[1] and titles[2] == "learning rate"
    assert [len(ax.get_lines()) for ax in fig.axes] == [3, 4, 2]  # bce, centroid_loss, loss | 4 distances | 2 rates
    assert [line.get_label() for line in fig.axes[1].get_lines()] == [
        "normal to c_p", "normal to c_n", "outlier to c_p", "outlier to c_n"]
    x, y = fig.axes[1].get_lines()[0].get_data()
    np.testing.assert_array_equal(x, frame["epoch"] + 1)  # epochs counted from 1 on the figure
    np.testing.assert_allclose(y, frame["dist_normal_cp"])
    assert fig.axes[2].get_yscale() == "log"  # the rates span 1.25e-5 .. 1e-3: more than a decade


def test_two_heads_scales_get_a_log_panel_and_a_resumed_log_keeps_the_last_rows(tmp_path):
    columns = ["epoch", "loss", "scale", "scale_head_1", "learning_rate", "val_loss"]
    rows = [[0, 3.0, 9.0, 12.0, 1e-3, 2.0], [1, 2.0, 8.0, 11.0, 1e-3, 1.5], [1, 1.9, 7.9, 10.9, 1e-3, 1.4]]
    assert curve_panels(columns) == [("loss", ["loss", "val_loss"], False),
                                     ("adaptive scale", ["scale", "scale_head_1"], True),
                                     ("learning rate", ["learning_rate"], True)]
    frame = pd.DataFrame(rows, columns=columns).assign(val_scale=np.nan)  # as Keras' CSVLogger: empty val_*
    frame.to_csv(tmp_path / "training_log.csv", index=False)
    from asdcore.training_curves import read_training_log

    log = read_training_log(tmp_path / "training_log.csv")
    assert list(log["epoch"]) == [1, 2] and log["loss"].iloc[-1] == 1.9  # the resumed epoch's row wins
    assert "val_scale" not in log.columns  # an empty column draws no empty line


def test_sparse_values_stay_one_line_and_narrow_ranges_use_a_linear_axis(tmp_path, drawn):
    e = np.arange(6)
    pd.DataFrame({"epoch": e, "loss": 2.0 - 0.1 * e, "val_loss": [np.nan, np.nan, 1.5, np.nan, np.nan, 1.2],
                  "val_learning_rate": np.nan, "scale": 5.0 - 0.2 * e, "learning_rate": 1e-3}).to_csv(
        tmp_path / "training_log.csv", index=False)
    plot_training_log(tmp_path / "training_log.csv", tmp_path / "u.png")
    (fig,) = drawn
    loss_ax, scale_ax, lr_ax = fig.axes
    assert [line.get_label() for line in loss_ax.get_lines()] == ["loss", "val_loss"]
    x, y = loss_ax.get_lines()[1].get_data()
    np.testing.assert_array_equal(x, [3, 6])  # epochs from 1
    np.testing.assert_allclose(y, [1.5, 1.2])
    assert scale_ax.get_yscale() == "linear" and lr_ax.get_yscale() == "linear"  # 4-5 and a constant


def test_runner_helper_draws_one_png_per_unit_with_a_log(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()  # no log: no figure
    _ddcsad_log(tmp_path / "a" / "training_log.csv")
    written = plot_unit_logs([tmp_path / "a", tmp_path / "b"], tmp_path / "plots")
    assert [p.name for p in written] == ["a.png"] and written[0].is_file()


def test_scale_figure_has_one_line_per_network_and_the_threshold(tmp_path, drawn):
    logs = {}
    for i, (name, scales) in enumerate({"no mixup": [10.0, 1e4, 1e9], "mixup": [10.0, 9.0, 8.5],
                                        "other": [5.0, 5.0, 5.0]}.items()):
        logs[name] = tmp_path / f"{i}.csv"
        pd.DataFrame({"epoch": range(3), "loss": 1.0, "scale": scales}).to_csv(logs[name], index=False)
    logs["missing"] = tmp_path / "nothing.csv"
    plot_scale_curves(logs, tmp_path / "t3.png", threshold=1e8)
    (fig,) = drawn
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["no mixup (diverges)", "mixup", "other", "divergence threshold 1e+08"]
    assert ax.get_yscale() == "log" and list(ax.get_lines()[-1].get_ydata()) == [1e8, 1e8]
    assert len(fig.axes[1].get_lines()) == 3  # the same three curves on their own range, no threshold
    np.testing.assert_allclose(fig.axes[1].get_lines()[1].get_ydata(), [10.0, 9.0, 8.5])
    with pytest.raises(ASDError, match="scale"):
        plot_scale_curves({"missing": tmp_path / "nothing.csv"}, tmp_path / "x.png", threshold=1e8)
