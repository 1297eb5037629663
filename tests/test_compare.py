"""argen.compare on fake run directories (no training): reading, aggregation, outputs, CLI, W&B."""

from __future__ import annotations

import csv
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from argen import compare
from argen.compare import (
    FAILED,
    FINISHED,
    INCOMPLETE,
    CompareError,
    aggregate,
    collect_runs,
    main,
    markdown_report,
    unfinished,
    write_outputs,
)

ROOT = Path(__file__).resolve().parents[1]


def write_run(
    root: Path,
    name: str,
    model: str,
    data: str,
    seed: int,
    summary: dict[str, Any] | None = None,
    net: dict[str, Any] | None = None,
    workers: int = 2,
) -> Path:
    """A run directory as train.py leaves it: .hydra/config.yaml, overrides, maybe summary.json."""
    run_dir = root / name
    (run_dir / ".hydra").mkdir(parents=True)
    config = {
        "seed": seed,
        "model": {"name": model, "module": {"net": net or {"hidden": 16}}},
        "data": {"name": data, "datamodule": {"batch_size": 32, "num_workers": workers}},
        "trainer": {"max_epochs": 2, "accelerator": "cpu" if workers else "gpu"},
        "paths": {"output_dir": str(run_dir)},
    }
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    overrides = [f"model={model}", f"data={data}", f"seed={seed}"]
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if summary is not None:
        full = {"model": model, "data": data, "seed": seed, "status": "finished", **summary}
        (run_dir / "summary.json").write_text(json.dumps(full))
    return run_dir


def metrics(nll: float, bpd: float, speed: float, sample_s: float, params: int = 1000) -> dict:
    return {
        "params": params,
        "epochs": 2,
        "train_seconds": 10.0,
        "train_examples_per_sec": speed,
        "test_nll": nll,
        "test_bits_per_dim": bpd,
        "sample_seconds_per_example": sample_s,
    }


# Two models x two seeds on one dataset; the seeds also differ in settings that do not matter.
RESULTS = {
    "made": [(90.0, 0.166, 400.0, 0.5), (93.0, 0.171, 420.0, 0.7)],
    "pixelcnn": [(81.5, 0.150, 100.0, 2.0), (82.5, 0.152, 120.0, 2.4)],
}


def two_by_two(root: Path) -> Path:
    for model, seeds in RESULTS.items():
        for seed, values in enumerate(seeds, start=1):
            write_run(
                root / "multiruns" / "2026-01-01_00-00-00_abc",
                f"{seed}_{model}_binarized_mnist_seed{seed}",
                model,
                "binarized_mnist",
                seed,
                metrics(*values),
                workers=seed - 1,  # num_workers and accelerator differ: still the same experiment
            )
    return root


def rendered(argv: list[str]) -> tuple[int, str]:
    console = Console(record=True, width=220, file=io.StringIO())
    code = main(argv, console=console)
    return code, console.export_text()


def test_two_models_two_seeds_give_two_rows_with_mean_and_std(tmp_path):
    records = collect_runs([two_by_two(tmp_path)])
    assert len(records) == 4 and all(r.status == FINISHED for r in records)
    tables = aggregate(records)
    assert list(tables) == ["binarized_mnist"]
    rows = tables["binarized_mnist"]
    assert [row.model for row in rows] == ["pixelcnn", "made"]  # sorted by test NLL
    for row in rows:
        nlls, bpds, speeds, sample_s = zip(*RESULTS[row.model], strict=True)
        assert len(row.runs) == 2 and row.seeds == [1, 2] and row.params == [1000]
        assert row.nll.mean == pytest.approx(statistics.fmean(nlls))
        assert row.nll.std == pytest.approx(statistics.stdev(nlls))
        assert row.bpd.mean == pytest.approx(statistics.fmean(bpds))
        assert row.bpd.std == pytest.approx(statistics.stdev(bpds))
        assert row.throughput.mean == pytest.approx(statistics.fmean(speeds))
        assert row.sample_seconds.mean == pytest.approx(statistics.fmean(sample_s))
    code, text = rendered([str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 0 and (tmp_path / "out" / "tradeoff_binarized_mnist.png").exists()
    made = next(line for line in text.splitlines() if "made" in line)
    cells = [cell.strip() for cell in made.split("│")[1:-1]]
    nll = f"{statistics.fmean([90.0, 93.0]):.2f} ± {statistics.stdev([90.0, 93.0]):.2f}"
    assert cells[:5] == ["made", "2", "1,2", "1,000", nll]
    assert cells[-2:] == ["410.0", "600"]  # examples/s, sampling ms per example


def test_metric_bpd_sorts_by_bits_per_dim(tmp_path):
    write_run(tmp_path, "a", "low_nll", "mnist", 1, metrics(80.0, 0.20, 1.0, 1.0))
    write_run(tmp_path, "b", "low_bpd", "mnist", 1, metrics(85.0, 0.10, 1.0, 1.0))
    records = collect_runs([tmp_path])
    assert [r.model for r in aggregate(records, "nll")["mnist"]] == ["low_nll", "low_bpd"]
    assert [r.model for r in aggregate(records, "bpd")["mnist"]] == ["low_bpd", "low_nll"]
    with pytest.raises(ValueError, match="metric"):
        aggregate(records, "accuracy")


def test_different_hyperparameters_are_not_averaged_as_seeds(tmp_path):
    for seed, hidden in [(1, 100), (2, 100), (3, 500)]:
        summary = metrics(90.0 - hidden / 100, 0.16, 1.0, 1.0, params=hidden)
        write_run(tmp_path, f"r{seed}", "made", "mnist", seed, summary, net={"hidden": hidden})
    records = collect_runs([tmp_path])
    rows = aggregate(records)["mnist"]
    assert sorted(row.model for row in rows) == ["made[hidden=100]", "made[hidden=500]"]
    assert sorted(len(row.runs) for row in rows) == [1, 2]
    merged = aggregate(records, split_configs=False)["mnist"]
    assert len(merged) == 1 and len(merged[0].runs) == 3 and merged[0].params == [100, 500]


def test_failed_and_incomplete_runs_are_listed_with_reasons(tmp_path):
    two_by_two(tmp_path)
    broken = write_run(tmp_path / "runs", "killed", "pixelrnn", "binarized_mnist", 7)
    (broken / "checkpoints").mkdir()
    (broken / "checkpoints" / "last.ckpt").write_bytes(b"")
    failed = write_run(
        tmp_path / "runs",
        "oom",
        "pixelrnn",
        "binarized_mnist",
        8,
        {
            "status": "failed",
            "error": "Traceback (most recent call last):\n  File x\nRuntimeError: OOM",
        },
    )
    records = collect_runs([tmp_path])
    bad = {Path(r.source).name: r for r in unfinished(records)}
    assert set(bad) == {"killed", "oom"}
    assert bad["killed"].status == INCOMPLETE and "no summary.json" in bad["killed"].reason
    assert "ckpt_path=auto" in bad["killed"].reason and bad["killed"].seed == 7
    assert bad["oom"].status == FAILED and bad["oom"].reason.endswith("RuntimeError: OOM")
    assert bad["oom"].reason.startswith("Traceback")  # the full error stays in runs.csv
    assert bad["killed"].model == "pixelrnn" and bad["oom"].data == "binarized_mnist"
    rows = aggregate(records)["binarized_mnist"]
    assert sorted(row.model for row in rows) == ["made", "pixelcnn"]
    code, text = rendered([str(tmp_path)])
    assert code == 0
    assert "Failed or incomplete" in text and "RuntimeError: OOM" in text
    assert "Traceback" not in text  # tables show the exception line
    assert "oom" in text and "killed" in text and failed.exists()
    md = markdown_report(aggregate(records), unfinished(records), "nll")
    assert "## Failed or incomplete runs" in md and "RuntimeError: OOM |" in md


def test_unreadable_summary_and_missing_values_are_not_hidden(tmp_path):
    bad = write_run(tmp_path, "bad", "made", "mnist", 1)
    (bad / "summary.json").write_text("{not json")
    write_run(tmp_path, "ok", "nade", "mnist", 1, metrics(88.0, 0.16, 1.0, 1.0))
    write_run(
        tmp_path, "nan", "nade", "mnist", 2, {**metrics(0.0, 0.16, 1.0, 1.0), "test_nll": None}
    )
    records = collect_runs([tmp_path])
    [broken] = unfinished(records)
    assert broken.status == INCOMPLETE and "unreadable summary.json" in broken.reason
    [row] = aggregate(records)["mnist"]
    assert len(row.runs) == 2 and row.nll.n == 1 and row.nll.mean == 88.0
    code, text = rendered([str(tmp_path)])
    assert code == 0 and "88.00 (1/2)" in text


def test_files_are_written(tmp_path):
    two_by_two(tmp_path / "logs")
    write_run(
        tmp_path / "logs", "x", "made", "binarized_mnist", 9, {"status": "failed", "error": "boom"}
    )
    records = collect_runs([tmp_path / "logs"])
    out = tmp_path / "report"
    written = write_outputs(records, out, metric="bpd")
    names = {p.name for p in written}
    assert names == {"comparison.md", "comparison.csv", "runs.csv", "tradeoff_binarized_mnist.png"}
    png = (out / "tradeoff_binarized_mnist.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    with (out / "comparison.csv").open() as handle:
        models = list(csv.DictReader(handle))
    assert [(m["data"], m["model"]) for m in models] == [
        ("binarized_mnist", "pixelcnn"),
        ("binarized_mnist", "made"),
    ]
    made = models[1]
    assert made["runs"] == "2" and made["seeds"] == "1 2" and made["params"] == "1000"
    assert float(made["test_nll_mean"]) == pytest.approx(91.5)
    assert float(made["test_nll_std"]) == pytest.approx(statistics.stdev([90.0, 93.0]))
    assert float(made["sample_ms_per_example_mean"]) == pytest.approx(600.0)
    with (out / "runs.csv").open() as handle:
        runs = list(csv.DictReader(handle))
    assert len(runs) == 5
    assert sorted(r["status"] for r in runs) == ["failed"] + ["finished"] * 4
    assert next(r for r in runs if r["status"] == "failed")["reason"] == "boom"
    md = (out / "comparison.md").read_text()
    assert "## binarized_mnist" in md and "tradeoff_binarized_mnist.png" in md
    assert md.index("| pixelcnn") < md.index("| made")


def test_runs_as_module(tmp_path):
    two_by_two(tmp_path / "logs")
    result = subprocess.run(
        [sys.executable, "-m", "argen.compare", str(tmp_path / "logs"), "--metric", "bpd"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.index("pixelcnn") < result.stdout.index("made")
    assert "sorted by test bpd" in result.stdout


def test_one_table_per_dataset_with_text_units(tmp_path):
    write_run(tmp_path, "a", "made", "binarized_mnist", 1, metrics(90.0, 0.17, 10.0, 0.1))
    write_run(tmp_path, "b", "pixelcnn", "cifar10", 1, metrics(7000.0, 3.2, 10.0, 2.0))
    text_summary = {**metrics(1.1, 1.587, 10.0, 0.01), "test_bpc": 1.587}
    write_run(tmp_path, "c", "char_rnn", "text8", 1, text_summary)
    tables = aggregate(collect_runs([tmp_path]))
    assert {data: [r.model for r in rows] for data, rows in tables.items()} == {
        "binarized_mnist": ["made"],
        "cifar10": ["pixelcnn"],
        "text8": ["char_rnn"],
    }
    code, text = rendered([str(tmp_path)])
    assert code == 0
    assert all(f"{data}  (sorted by" in text for data in tables)
    assert "bits/char" in text and "bits/dim" in text
    written = write_outputs(collect_runs([tmp_path]), tmp_path / "out")
    assert {p.name for p in written if p.suffix == ".png"} == {
        "tradeoff_binarized_mnist.png",
        "tradeoff_cifar10.png",
        "tradeoff_text8.png",
    }
    assert (tmp_path / "out" / "comparison.md").read_text().count("\n## ") == 3


def test_autoencoder_row_shows_na(tmp_path):
    write_run(tmp_path, "m", "made", "mnist", 1, metrics(90.0, 0.17, 10.0, 0.1))
    ae = {"params": 50, "train_examples_per_sec": 900.0, "test_recon_loss": 0.0734}
    write_run(tmp_path, "ae", "autoencoder", "mnist", 1, ae)
    records = collect_runs([tmp_path])
    rows = aggregate(records)["mnist"]
    assert [row.model for row in rows] == ["made", "autoencoder"]  # no likelihood: last
    assert rows[1].nll.mean is None and rows[1].recon.mean == pytest.approx(0.0734)
    code, text = rendered([str(tmp_path)])
    ae_line = next(line for line in text.splitlines() if "autoencoder" in line)
    assert code == 0 and "n/a" in ae_line and "0.0734" in ae_line and "test recon loss" in text
    write_outputs(records, tmp_path / "out")
    md = (tmp_path / "out" / "comparison.md").read_text()
    assert "| autoencoder | 1 | 1 | 50 | n/a | n/a | 0.0734 |" in md
    with (tmp_path / "out" / "comparison.csv").open() as handle:
        ae_row = next(r for r in csv.DictReader(handle) if r["model"] == "autoencoder")
    assert ae_row["test_nll_mean"] == "" and float(ae_row["test_recon_loss_mean"]) == 0.0734


class FakeRun:
    def __init__(self, run_id: str, state: str, model: str, seed: int, summary: dict) -> None:
        self.path = ["ent", "proj", run_id]
        self.state = state
        self.summary = summary
        self.config = {"seed": seed, "model": {"name": model}, "data": {"name": "mnist"}}


class FakeApi:
    def __init__(self, runs: list[FakeRun]) -> None:
        self._runs, self.asked = runs, []

    def runs(self, path: str) -> list[FakeRun]:
        self.asked.append(path)
        return self._runs


def test_wandb_project_through_a_fake_api(tmp_path, monkeypatch):
    import wandb

    def wandb_summary(nll: float, bpd: float) -> dict:
        return {
            "summary/test_nll": nll,
            "summary/test_bits_per_dim": bpd,
            "summary/params": 1000,
            "summary/train_examples_per_sec": 50.0,
            "summary/sample_seconds_per_example": 0.2,
            "test/nll": nll,
        }

    runs = [
        FakeRun("a1", "finished", "made", 1, wandb_summary(90.0, 0.17)),
        FakeRun("a2", "finished", "made", 2, wandb_summary(92.0, 0.18)),
        FakeRun("b1", "finished", "nade", 1, {"test/nll": 88.0}),  # crashed before summary/
        FakeRun("c1", "failed", "nade", 2, {}),
        FakeRun("d1", "running", "nade", 3, {}),
    ]
    api = FakeApi(runs)
    monkeypatch.setattr(wandb, "Api", lambda *args, **kwargs: api)
    monkeypatch.chdir(tmp_path)
    for spec in ("wandb:ent/proj", "ent/proj"):
        records = collect_runs([spec])
        assert api.asked[-1] == "ent/proj"
        made = [r for r in records if r.status == FINISHED]
        assert [(r.model, r.seed, r.test_nll) for r in made] == [
            ("made", 1, 90.0),
            ("made", 2, 92.0),
        ]
        assert made[0].source == "wandb:ent/proj/a1" and made[0].params == 1000
        status = {r.source.rsplit("/", 1)[-1]: (r.status, r.reason) for r in unfinished(records)}
        assert status["b1"][0] == INCOMPLETE and "summary/" in status["b1"][1]
        assert status["c1"] == (FAILED, "W&B state: failed")
        assert status["d1"] == (INCOMPLETE, "W&B state: running")
        [row] = aggregate(records)["mnist"]
        assert row.nll.mean == pytest.approx(91.0) and row.seeds == [1, 2]


def test_wandb_unreachable_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import wandb

    def offline(*args, **kwargs):
        raise ConnectionError("Max retries exceeded with url: api.wandb.ai")

    monkeypatch.setattr(wandb, "Api", offline)
    with pytest.raises(CompareError, match="network access and a login"):
        collect_runs(["wandb:ent/proj"])
    code, _ = rendered(["wandb:ent/proj"])
    err = capsys.readouterr().err
    assert code == 1 and "ent/proj" in err and "ConnectionError" in err


def test_no_runs_or_missing_path_exit_1(tmp_path, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    code, _ = rendered([str(tmp_path / "empty")])
    assert code == 1 and "no runs found" in capsys.readouterr().err
    code, _ = rendered([str(tmp_path / "nowhere" / "at" / "all")])
    assert code == 1 and "no such directory" in capsys.readouterr().err
    assert compare.wandb_project(str(tmp_path)) is None
