"""Learning curves over seeds, the seed spread on the page, per-character text units, and
figures whose texts never overlap (``argen.report.compare_curves``, ``argen.report.curve_plot``,
``argen.report.plot_axes``), on fake run directories (no training)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pytest

from argen.report.compare import aggregate, collect_runs
from argen.report.compare_curves import row_curves, seed_curve, without_curves
from argen.report.curve_plot import curve_figure
from argen.report.plot_axes import (
    empty_axes,
    new_figure,
    overlapping_texts,
    readable_log_axis,
    shown_tick_labels,
    texts_outside,
)
from argen.report.results_page import PAGE
from argen.report.tradeoff_plot import tradeoff_figure
from tests.compare_fakes import close_runs, metrics, rendered, write_epochs, write_run

MODELS = {"row_lstm": 85.56, "diagonal_bilstm": 85.61, "gated_pixelcnn": 85.72}


def rows_of(root: Path, data: str = "binarized_mnist"):
    return aggregate(collect_runs([root]))[data]


def test_seeds_form_one_row_with_their_spread_and_one_curve(tmp_path):
    rows = {row.model: row for row in rows_of(close_runs(tmp_path, MODELS))}
    assert set(rows) == set(MODELS)
    row = rows["row_lstm"]
    nlls = [85.56, 85.61, 85.66]
    assert len(row.runs) == 3 and row.variant == "" and row.seeds == [1, 2, 3]
    assert row.nll.mean == pytest.approx(statistics.fmean(nlls))
    assert (row.nll.low, row.nll.high) == pytest.approx((85.56, 85.66))

    curves = row_curves(row, "nll")
    assert set(curves) == {"train_flops", "cpu_seconds"}
    flops = curves["train_flops"]  # every seed validated at the same FLOPs: no interpolation
    assert flops.aligned and flops.seeds == 3 and len(flops.x) == 5
    per_seed = np.array(
        [[float(r["val/nll"]) for r in write_epochs(tmp_path, n, 1e6, 1e-3)] for n in nlls]
    )
    assert np.allclose(flops.mean, per_seed.mean(axis=0))
    assert np.allclose(flops.low, per_seed.min(axis=0))
    assert np.allclose(flops.high, per_seed.max(axis=0))
    assert np.allclose(flops.x, 1e6 * 1000 * np.arange(1, 6))


def test_cpu_seconds_of_different_seeds_are_interpolated_in_log_x_inside_their_common_range(
    tmp_path,
):
    root = tmp_path / "runs"
    for seed, scale in [(1, 1.0), (2, 2.0)]:
        run_dir = write_run(root, f"s{seed}", "pixelcnn", "mnist", seed, metrics(80, 0.15, 1, 1))
        rows = write_epochs(run_dir, 80.0, 1e6, 1e-3 * scale)
    curve = seed_curve(rows_of(root, "mnist")[0].runs, "cpu_seconds", "val/nll")
    assert curve is not None and not curve.aligned and curve.seeds == 2
    # seed 1 covers 1..5 s, seed 2 covers 2..10 s: the common range is 2..5 s
    assert curve.x[0] == pytest.approx(2.0) and curve.x[-1] == pytest.approx(5.0)
    nll = [float(r["val/nll"]) for r in rows]  # the same NLL at each validation for both seeds
    # at x = 4 s seed 1 measured nll[3]; seed 2 measured nll[1] at 4 s too (2 s per 1000)
    at_4 = int(np.argmin(abs(curve.x - 4.0)))
    assert curve.mean[at_4] == pytest.approx((nll[3] + nll[1]) / 2)
    # at x = 3 s seed 2 lies halfway in log x between its points at 2 s and 4 s
    at_3 = int(np.argmin(abs(curve.x - 3.0)))
    t = math.log(3 / 2) / math.log(4 / 2)
    seed2 = nll[0] + t * (nll[1] - nll[0])
    assert curve.low[at_3] == pytest.approx(min(nll[2], seed2))
    assert curve.high[at_3] == pytest.approx(max(nll[2], seed2))


def test_seeds_without_a_common_range_are_drawn_each_on_its_own(tmp_path):
    """Two seeds whose FLOPs never overlap (e.g. different budgets): no mean or band, but every
    measured point is still drawn."""
    root = tmp_path / "runs"
    for seed, per_example in [(1, 1e6), (2, 1e8)]:
        run_dir = write_run(root, f"s{seed}", "made", "mnist", seed, metrics(88, 0.16, 1, 1))
        write_epochs(run_dir, 88.0, per_example, 1e-3)
    rows = rows_of(root, "mnist")
    curve = seed_curve(rows[0].runs, "train_flops", "val/nll")
    assert curve is not None and len(curve.x) == 0 and len(curve.seed_points) == 2
    figure = curve_figure(rows, "mnist")
    flops = figure.axes[0]
    assert flops.get_title() == "against training FLOPs"
    assert sorted(len(line.get_xdata()) for line in flops.lines) == [5, 5]  # both seeds
    assert empty_axes(figure) == [] and overlapping_texts(figure) == []


def test_runs_without_the_columns_have_no_curve_and_the_page_says_so(tmp_path):
    root = close_runs(tmp_path / "results", {"pixelcnn": 81.0})
    old = write_run(root, "made_old", "made", "binarized_mnist", 1, metrics(88.0, 0.16, 700, 2.0))
    write_epochs(old, 88.0, 1, 1, columns=["epoch", "val/nll", "train/nll"])  # an old run
    rows = rows_of(root)
    assert [row.model for row in without_curves(rows, "nll")] == ["made"]
    code, _ = rendered([str(root), "--out", str(root)])
    assert code == 0
    page = (root / PAGE).read_text()
    assert (
        "![Binarized MNIST: validation NLL against training FLOPs and process CPU seconds]" in page
    )
    assert (
        "No learning curve (no training FLOPs and process CPU seconds in epochs.csv): MADE." in page
    )
    figure = curve_figure(rows, "binarized_mnist")
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["PixelCNN (3 seeds)"]


def test_no_curve_figure_without_curves(tmp_path):
    write_run(tmp_path, "a", "made", "mnist", 1, metrics(88.0, 0.16, 700, 2.0))
    assert curve_figure(rows_of(tmp_path, "mnist"), "mnist") is None
    code, _ = rendered([str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 0 and not (tmp_path / "out" / "curves_mnist.png").exists()
    page = (tmp_path / "out" / PAGE).read_text()
    assert "No learning curves: no run records training FLOPs and process CPU seconds" in page


def test_page_states_which_differences_exceed_the_seed_spread(tmp_path):
    # row_lstm 85.56-85.66 and diagonal_bilstm 85.61-85.71 overlap; pixelcnn 90-90.1 is apart
    root = close_runs(tmp_path, {**MODELS, "pixelcnn": 90.0})
    write_run(root, "nade", "nade", "binarized_mnist", 1, metrics(95.0, 0.17, 400, 1.0))
    code, _ = rendered([str(root), "--out", str(root)])
    assert code == 0
    page = (root / PAGE).read_text()
    assert "| NLL min–max over seeds |" in page and "| 85.56–85.66 |" in page
    assert (
        "* Row LSTM vs Diagonal BiLSTM: within the seed spread (85.56–85.66 and 85.61–85.71 "
        "overlap)" in page
    )
    assert (
        "* Gated PixelCNN vs PixelCNN: exceeds the seed spread (85.72–85.82 below 90.00–90.10)"
        in page
    )
    assert "* PixelCNN vs NADE: not judged (3 seeds and 1 seed)" in page


def test_single_runs_are_said_to_measure_no_spread(tmp_path):
    for model, nll in [("made", 88.0), ("nade", 87.0)]:
        write_run(tmp_path, model, model, "mnist", 1, metrics(nll, 0.16, 700, 2.0))
    rendered([str(tmp_path), "--out", str(tmp_path)])
    assert "Every row is a single run: no seed spread was measured" in (tmp_path / PAGE).read_text()


# ------------------------------------------------------------------------------- text units


def test_text_throughput_is_characters_per_second_from_the_exact_window(tmp_path):
    text = {**metrics(1.5, 2.16, 20.0, 0.01), "data_kind": "text"}
    write_run(tmp_path, "rnn", "char_rnn", "tinyshakespeare", 1, text, datamodule={"seq_len": 100})
    write_run(tmp_path, "tf", "char_transformer", "tinyshakespeare", 1, text)  # no seq_len
    rows = {row.model: row for row in rows_of(tmp_path, "tinyshakespeare")}
    assert rows["char_rnn"].speed.mean == pytest.approx(2000.0)  # 20 windows/s x 100 chars
    assert rows["char_transformer"].speed.mean is None  # the window is unknown: absent
    # a run that counted its characters: characters_seen / wall_seconds, whatever its window
    recorded = {**text, "characters_seen": 123_400, "wall_seconds": 100.0}
    write_run(
        tmp_path, "gru", "char_gru", "tinyshakespeare", 1, recorded, datamodule={"seq_len": 7}
    )
    assert rows_of(tmp_path, "tinyshakespeare")[0].speed.mean == pytest.approx(1234.0)
    code, _ = rendered([str(tmp_path), "--out", str(tmp_path / "out")])
    page = (tmp_path / "out" / PAGE).read_text()
    assert "| train characters/s |" in page and "examples/s" not in page.split("## ")[1]
    assert "| 2,000.0 |" in page


# ---------------------------------------------------------------------------------- figures


def test_overlap_check_finds_overlapping_texts():
    """The check the figure tests rely on can fail."""
    figure = new_figure(4, 3)
    axes = figure.add_subplot()
    axes.plot([1, 2], [1, 2])
    axes.text(1.5, 1.5, "Row LSTM")
    axes.text(1.5, 1.5, "Diagonal BiLSTM")
    assert ("Row LSTM", "Diagonal BiLSTM") in overlapping_texts(figure)
    assert empty_axes(figure) == [] and texts_outside(figure) == []
    figure.text(0.9, 0.5, "a title too long for the figure")
    assert texts_outside(figure) == ["a title too long for the figure"]
    figure.add_subplot(2, 2, 4)
    assert empty_axes(figure) == ["untitled"]


@pytest.mark.parametrize("seeds", [1, 3])
def test_figures_of_close_models_have_no_overlapping_text_and_no_empty_panel(tmp_path, seeds):
    models = {**MODELS, "pixelcnn": 90.07, "made": 88.14, "nade": 87.88, "fvsbn": 97.42}
    rows = rows_of(close_runs(tmp_path, models, seeds))
    for figure in (tradeoff_figure(rows, "binarized_mnist"), curve_figure(rows, "binarized_mnist")):
        assert figure is not None
        assert overlapping_texts(figure) == []
        assert texts_outside(figure) == []
        assert empty_axes(figure) == []
        labels = [t.get_text() for t in figure.legends[0].get_texts()]
        assert len(labels) == len(models)  # every model named once, in the legend
        for axes in figure.axes:
            assert axes.get_xscale() == "log"
            assert len(shown_tick_labels(axes)) >= 2  # a log axis with two labelled ticks or more


def test_a_panel_without_data_is_left_out(tmp_path):
    """Text runs have no sampling time: the trade-off figure has only its throughput panel."""
    text = {**metrics(1.5, 2.16, 20.0, 0.01), "data_kind": "text"}
    text.pop("sample_seconds_per_example")
    for model, speed in [("char_rnn", 21.0), ("char_transformer", 3.8)]:
        summary = {**text, "train_examples_per_sec": speed}
        write_run(
            tmp_path, model, model, "tinyshakespeare", 1, summary, datamodule={"seq_len": 100}
        )
    figure = tradeoff_figure(rows_of(tmp_path, "tinyshakespeare"), "tinyshakespeare")
    assert len(figure.axes) == 1 and "characters/s" in figure.axes[0].get_xlabel()
    assert empty_axes(figure) == [] and overlapping_texts(figure) == []


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ((0.9, 1.1), ["0.5", "0.7", "1", "1.5"]),  # widened to 0.6 decades about the centre
        ((300.0, 3000.0), ["500", "1,000", "2,000"]),
        ((3.8, 21.0), ["5", "7", "10", "15", "20"]),
        ((1e10, 1e16), [f"$10^{{{k}}}$" for k in range(10, 17)]),
        ((1e6, 1e16), [f"$10^{{{k}}}$" for k in range(6, 17, 2)]),  # many decades: every other
        ((1e-4, 2e-2), ["$10^{-4}$", "$10^{-3}$", "$10^{-2}$"]),  # one style per axis
    ],
)
def test_log_axes_have_readable_ticks(limits, expected):
    figure = new_figure(5, 4)
    axes = figure.add_subplot()
    axes.plot(limits, [1, 2])
    readable_log_axis(axes)
    assert shown_tick_labels(axes) == expected
    assert overlapping_texts(figure) == []
