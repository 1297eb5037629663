"""The results page (``python -m argen.compare results/ --out results/``): tables beside the papers'
figures, the autoencoder apart, trade-off figures, and a page that regenerates byte for byte."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from argen.report.compare import aggregate, collect_runs
from argen.report.results_page import PAGE
from argen.report.tradeoff_plot import tradeoff_figure
from tests.compare_fakes import ROOT, metrics, rendered, write_run

COMMITTED = ROOT / "results"


def results_dir(root: Path) -> Path:
    """A results/ folder as the lead commits it: <data>/<experiment>/{summary.json,config.yaml}."""
    mnist, cifar = root / "binarized_mnist", root / "cifar10"
    for seed, nll in [(1, 81.0), (2, 82.0)]:
        summary = metrics(nll, nll / 784 / 0.6931, 100.0, 2.0, params=12345, seconds=4000.0)
        write_run(
            mnist, f"pixelcnn_seed{seed}", "pixelcnn", "binarized_mnist", seed, summary, hydra=False
        )
    for masks, nll in [(1, 90.0), (8, 87.5)]:
        summary = metrics(nll, nll / 784 / 0.6931, 900.0, 0.004, params=500_000, seconds=600.0)
        net = {"num_masks": masks}
        write_run(mnist, f"made_{masks}", "made", "binarized_mnist", 1, summary, net, hydra=False)
    summary = metrics(85.0, 0.156, 200.0, 0.5, params=3000)
    write_run(mnist, "gated", "gated_pixelcnn", "binarized_mnist", 1, summary, hydra=False)
    ae = {
        "params": 50,
        "epochs": 3,
        "train_seconds": 30.0,
        "train_examples_per_sec": 5000.0,
        "test_recon_loss": 0.0734,
    }
    write_run(mnist, "autoencoder", "autoencoder", "binarized_mnist", 1, ae, hydra=False)
    failed = {"status": "failed", "error": "ValueError: data=cifar10 has 256 levels"}
    write_run(mnist, "nade_broken", "nade", "binarized_mnist", 1, failed, hydra=False)
    summary = metrics(6700.0, 3.15, 50.0, 30.0, params=4_000_000, seconds=36_000.0)
    write_run(cifar, "pixelcnn", "pixelcnn", "cifar10", 1, summary, hydra=False)
    return root


def section(page: str, heading: str) -> str:
    """The text of a page's ``## heading`` section."""
    start = page.index(f"\n## {heading}\n")
    end = page.find("\n## ", start + 1)
    return page[start : end if end >= 0 else None]


def test_page_tables_name_the_papers_and_keep_the_autoencoder_apart(tmp_path):
    root = results_dir(tmp_path / "results")
    code, _ = rendered([str(root), "--out", str(root)])
    assert code == 0
    page = (root / PAGE).read_text()
    mnist = section(page, "Binarized MNIST")
    header = (
        "| model | runs | seeds | params | epochs | test NLL (nats) | NLL min–max over seeds "
        "| test bits/dim | paper (nats) "
        "| train time | train examples/s | sampling ms/image |"
    )
    rows = [
        "| PixelCNN | 2 | 1,2 | 12,345 | 2 | 81.50 ± 0.71 | 81.00–82.00 | 0.1500 ± 0.0013 "
        "| 81.30 — van den Oord et al. 2016a, Table 4 | 66.7 min | 100.0 | 2,000 |",
        "| Gated PixelCNN | 1 | 1 | 3,000 | 2 | 85.00 | 1 seed | 0.1560 "
        "| none (van den Oord et al. 2016b report no binarized-MNIST figure) | 10 s | 200.0 | 500 |",
        "| MADE (num_masks=8) | 1 | 1 | 500,000 | 2 | 87.50 | 1 seed | 0.1610 "
        "| 88.40 (1 mask), 86.64 (32 masks) — Germain et al. 2015, Table 6 | 10.0 min | 900.0 | 4.00 |",
        "| MADE (num_masks=1) | 1 | 1 | 500,000 | 2 | 90.00 | 1 seed | 0.1656 "
        "| 88.40 (1 mask), 86.64 (32 masks) — Germain et al. 2015, Table 6 | 10.0 min | 900.0 | 4.00 |",
    ]
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"
    nll_table = "\n".join([header, rule, *rows])
    assert nll_table + "\n" in mnist  # sorted by test NLL, nothing else in the table
    recon = "| Autoencoder | 1 | 1 | 50 | 3 | 0.0734 | 30 s | 5,000.0 |"
    assert "test recon loss" in mnist and recon in mnist
    assert mnist.index(recon) > mnist.index(rows[-1]) and "Autoencoder" not in nll_table
    link = "![Binarized MNIST: test NLL against sampling time and training throughput]"
    assert f"{link}(tradeoff_binarized_mnist.png)" in mnist
    cifar = section(page, "CIFAR-10")
    assert "| paper (bits/dim) |" in cifar
    assert (
        "| 6,700.00 | 1 seed | 3.1500 | 3.14 — van den Oord et al. 2016a, Table 5 | 10.00 h |"
        in cifar
    )
    assert "(tradeoff_cifar10.png)" in cifar
    failed = section(page, "Failed, interrupted or incomplete runs")
    assert (
        "| binarized_mnist/nade_broken | nade | binarized_mnist | 1 | failed "
        "| ValueError: data=cifar10 has 256 levels |" in failed
    )
    for name in ("tradeoff_binarized_mnist.png", "tradeoff_cifar10.png"):
        assert (root / name).read_bytes().startswith(b"\x89PNG")
    with (root / "comparison.csv").open() as handle:
        labels = [(r["data"], r["label"], r["paper"][:5]) for r in csv.DictReader(handle)]
    assert labels[2] == ("binarized_mnist", "MADE (num_masks=8)", "88.40")


def test_page_and_figures_do_not_depend_on_where_they_are_written(tmp_path, monkeypatch):
    root = results_dir(tmp_path / "results")
    rendered([str(root), "--out", str(root)])
    monkeypatch.chdir(tmp_path)
    code, _ = rendered(["results", "--out", "elsewhere/report"])
    assert code == 0
    again = tmp_path / "elsewhere" / "report"
    for name in (PAGE, "tradeoff_binarized_mnist.png", "tradeoff_cifar10.png"):
        assert (again / name).read_bytes() == (root / name).read_bytes(), name


def test_tradeoff_figure_has_one_point_per_model_named_in_the_legend_and_seed_ranges(tmp_path):
    rows = aggregate(collect_runs([results_dir(tmp_path)]))["binarized_mnist"]
    figure = tradeoff_figure(rows, "binarized_mnist")
    assert figure is not None and len(figure.axes) == 2
    labels = ["PixelCNN", "Gated PixelCNN", "MADE (num_masks=8)", "MADE (num_masks=1)"]
    assert [text.get_text() for text in figure.legends[0].get_texts()] == labels  # no autoencoder
    for axes in figure.axes:
        assert axes.get_xscale() == "log"
        assert len(axes.containers) == len(labels) and not axes.texts  # no labels by the points
        with_bars = [c for c in axes.containers if c.has_yerr]
        assert len(with_bars) == 1  # PixelCNN, the only model with two seeds
        low, high = with_bars[0].lines[2][0].get_segments()[0][:, 1]
        assert (low, high) == pytest.approx((81.0, 82.0))  # the min-max range of its seeds
    sampling, throughput = figure.axes
    assert "sampling time" in sampling.get_xlabel() and "examples/s" in throughput.get_xlabel()


def test_committed_results_page_is_up_to_date(tmp_path):
    """results/README.md is exactly what `python -m argen.compare results/ --out results/` writes
    from the committed summaries."""
    page = COMMITTED / PAGE
    if not page.exists():
        pytest.skip(
            "results/README.md is not committed yet "
            "(generate it with `python -m argen.compare results/ --out results/`)"
        )
    code, _ = rendered([str(COMMITTED), "--out", str(tmp_path)])
    assert code == 0
    assert (tmp_path / PAGE).read_bytes() == page.read_bytes(), (
        "results/README.md is stale: regenerate it with "
        "`python -m argen.compare results/ --out results/`"
    )


def test_every_run_is_listed_with_its_budget_commit_and_command(tmp_path):
    """Item 2 of issue 22: the page shows the commit and the command of every row's runs; a run
    made before provenance was recorded says so instead of showing anything made up."""
    from argen.report.results_page import provenance_lines

    recorded = {
        "test_nll": 90.0,
        "git_commit": "0123456789abcdef",
        "git_dirty": True,
        "command": "python train.py experiment=fair/pixelcnn seed=2",
        "budget_kind": "flops",
        "budget_value": 1e13,
    }
    write_run(tmp_path, "new", "pixelcnn", "binarized_mnist", 2, summary=recorded)
    write_run(tmp_path, "old", "pixelcnn", "binarized_mnist", 1, summary={"test_nll": 91.0})
    (row,) = aggregate(collect_runs([tmp_path]))["binarized_mnist"]
    table = provenance_lines([row])
    assert table[1] == "How each run was made:"
    lines = [line for line in "\n".join(table).splitlines() if line.startswith("| PixelCNN")]
    assert lines == [
        "| PixelCNN | 1 | not recorded | not recorded | not recorded |",
        "| PixelCNN | 2 | 1e+13 training FLOPs | 0123456 (uncommitted changes) | "
        "`python train.py experiment=fair/pixelcnn seed=2` |",
    ]
