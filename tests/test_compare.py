"""argen.compare on fake run directories (no training): reading, aggregation, terminal, CLI."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from argen.report import compare
from argen.report.compare import (
    FAILED,
    FINISHED,
    INCOMPLETE,
    INTERRUPTED,
    CompareError,
    aggregate,
    collect_runs,
    unfinished,
)
from argen.report.compare_rows import UNSET, label_keys, show_value
from tests.compare_fakes import ROOT, metrics, offline_env, rendered, table_row, write_run

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


def test_two_models_two_seeds_give_two_rows_with_mean_and_std(tmp_path):
    records = collect_runs([two_by_two(tmp_path)])
    assert len(records) == 4 and all(r.status == FINISHED for r in records)
    tables = aggregate(records)
    assert list(tables) == ["binarized_mnist"]
    rows = tables["binarized_mnist"]
    assert [row.label for row in rows] == ["pixelcnn", "made"]  # sorted by test NLL
    for row in rows:
        nlls, bpds, speeds, sample_s = zip(*RESULTS[row.model], strict=True)
        assert len(row.runs) == 2 and row.seeds == [1, 2] and row.params == [1000]
        assert row.variant == "" and row.epochs == [2]
        assert row.nll.mean == pytest.approx(statistics.fmean(nlls))
        assert row.nll.std == pytest.approx(statistics.stdev(nlls))
        assert row.bpd.mean == pytest.approx(statistics.fmean(bpds))
        assert row.bpd.std == pytest.approx(statistics.stdev(bpds))
        assert row.throughput.mean == pytest.approx(statistics.fmean(speeds))
        assert row.sample_seconds.mean == pytest.approx(statistics.fmean(sample_s))
    code, text = rendered([str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 0 and (tmp_path / "out" / "tradeoff_binarized_mnist.png").exists()
    cells = table_row(text, "MADE")
    nll = f"{statistics.fmean([90.0, 93.0]):.2f} ± {statistics.stdev([90.0, 93.0]):.2f}"
    assert cells[:7] == ["MADE", "2", "1,2", "1,000", "2", nll, "90.00–93.00"]  # seed range
    assert cells[8] == "88.40 (1 mask), 86.64 (32 masks) — Germain et al. 2015, Table 6"
    assert cells[-3:] == ["10 s", "410.0", "600"]  # train time, examples/s, sampling ms


def test_metric_bpd_sorts_by_bits_per_dim(tmp_path):
    write_run(tmp_path, "a", "low_nll", "mnist", 1, metrics(80.0, 0.20, 1.0, 1.0))
    write_run(tmp_path, "b", "low_bpd", "mnist", 1, metrics(85.0, 0.10, 1.0, 1.0))
    records = collect_runs([tmp_path])
    assert [r.model for r in aggregate(records, "nll")["mnist"]] == ["low_nll", "low_bpd"]
    assert [r.model for r in aggregate(records, "bpd")["mnist"]] == ["low_bpd", "low_nll"]
    with pytest.raises(ValueError, match="metric"):
        aggregate(records, "accuracy")


# ------------------------------------------------------------------------- variants (task A)


def test_different_hyperparameters_are_not_averaged_as_seeds(tmp_path):
    for seed, hidden in [(1, 100), (2, 100), (3, 500)]:
        summary = metrics(90.0 - hidden / 100, 0.16, 1.0, 1.0, params=hidden)
        write_run(tmp_path, f"r{seed}", "made", "mnist", seed, summary, net={"hidden": hidden})
    records = collect_runs([tmp_path])
    rows = aggregate(records)["mnist"]
    assert [row.label for row in rows] == ["made (hidden=500)", "made (hidden=100)"]
    assert [len(row.runs) for row in rows] == [1, 2]
    merged = aggregate(records, split_configs=False)["mnist"]
    assert len(merged) == 1 and len(merged[0].runs) == 3 and merged[0].params == [100, 500]


def test_variant_label_names_only_the_settings_needed_to_tell_rows_apart(tmp_path):
    """Two MADE variants that differ in num_masks and in trainer.max_epochs: the model setting
    alone tells them apart, so it alone labels them."""
    for seed, masks in [(1, 1), (2, 1), (3, 8)]:
        net = {"hidden_sizes": [500], "num_masks": masks}
        write_run(
            tmp_path, f"m{seed}", "made", "binarized_mnist", seed, metrics(90, 0.1, 1, 1), net
        )
    config = tmp_path / "m3" / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("max_epochs: 2", "max_epochs: 9"))
    code, text = rendered([str(tmp_path)])
    assert code == 0
    labels = [row.label for row in aggregate(collect_runs([tmp_path]))["binarized_mnist"]]
    assert sorted(labels) == ["made (num_masks=1)", "made (num_masks=8)"]
    assert table_row(text, "MADE (num_masks=8)")[1] == "1"
    assert table_row(text, "MADE (num_masks=1)")[1:3] == ["2", "1,2"]


def test_label_keys_greedy_choice():
    keys = ["model.module.net.num_masks", "model.module.optimizer.lr", "trainer.max_epochs"]
    two = [("1", "0.001", "5"), ("8", "0.001", "9")]
    assert label_keys(two, keys) == [0]  # num_masks and max_epochs both split: model first
    three = [("1", "0.001", "5"), ("8", "0.001", "5"), ("8", "0.0001", "5")]
    assert label_keys(three, keys) == [0, 1]
    assert show_value('"random"') == "random" and show_value("[500, 500]") == "[500,500]"
    # A run setting that alone splits all three loses to model settings that together do
    three = [("1", "0.001", "5"), ("8", "0.001", "7"), ("8", "0.0001", "9")]
    assert label_keys(three, keys) == [0, 1]
    only_time = [("1", "0.001", "5"), ("1", "0.001", "7")]
    assert label_keys(only_time, keys) == [2]  # where the model's settings cannot, the rest can


def test_a_setting_older_configs_lack_does_not_label_variants():
    """A key added to the configs later (cuda_graph) splits old runs from new ones as well as
    their real difference does, but "unset" says nothing: the real difference labels them."""
    keys = ["model.module.cuda_graph", "model.module.net.hidden_sizes"]
    runs = [(UNSET, "[500]"), ("false", "[8000]")]
    assert label_keys(runs, keys) == [1]


def test_config_yaml_beside_summary_labels_variants(tmp_path):
    """results/ keeps each run's config as config.yaml beside summary.json (no .hydra)."""
    for masks in (1, 32):
        write_run(
            tmp_path / "binarized_mnist",
            f"made_{masks}",
            "made",
            "binarized_mnist",
            1,
            metrics(88.0 - masks / 10, 0.16, 1.0, 1.0),
            net={"num_masks": masks},
            hydra=False,
        )
    records = collect_runs([tmp_path])
    assert [r.name for r in records] == ["binarized_mnist/made_1", "binarized_mnist/made_32"]
    labels = [row.label for row in aggregate(records)["binarized_mnist"]]
    assert labels == ["made (num_masks=32)", "made (num_masks=1)"]


# --------------------------------------------------------------------- unfinished runs (task A)


def test_failed_interrupted_and_incomplete_runs_show_their_status_and_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the terminal names runs relative to the working directory
    two_by_two(tmp_path)
    runs = tmp_path / "runs"
    killed = write_run(runs, "killed", "row_lstm", "binarized_mnist", 7)
    (killed / "checkpoints").mkdir()
    (killed / "checkpoints" / "last.ckpt").write_bytes(b"")
    write_run(runs, "running", "row_lstm", "binarized_mnist", 6)
    traceback = "Traceback (most recent call last):\n  File x\nRuntimeError: OOM"
    write_run(runs, "oom", "row_lstm", "binarized_mnist", 8, {"status": FAILED, "error": traceback})
    config_error = "ValueError: model=made cannot model data=cifar10 (MADE is binary-only)"
    write_run(runs, "config", "made", "cifar10", 1, {"status": FAILED, "error": config_error})
    write_run(runs, "no_status", "nade", "cifar10", 1, {"status": None, "error": "KeyError: 'x'"})
    stopped = {"status": INTERRUPTED, "error": "KeyboardInterrupt"}
    write_run(runs, "stopped", "nade", "binarized_mnist", 2, stopped)
    records = collect_runs([tmp_path])
    bad = {Path(r.source).name: r for r in unfinished(records)}
    status = {name: (r.status, r.reason) for name, r in bad.items()}
    assert status["running"] == (INCOMPLETE, "killed, crashed or still running (no summary.json)")
    assert status["killed"][0] == INCOMPLETE and "ckpt_path=auto" in status["killed"][1]
    assert status["config"] == (FAILED, config_error)
    assert status["no_status"] == (FAILED, "KeyError: 'x'")
    assert status["stopped"] == (INTERRUPTED, "KeyboardInterrupt")
    assert status["oom"] == (FAILED, traceback)  # the full error stays in runs.csv
    assert bad["killed"].seed == 7 and bad["killed"].model == "row_lstm"
    assert sorted(row.model for row in aggregate(records)["binarized_mnist"]) == [
        "made",
        "pixelcnn",
    ]
    code, text = rendered([str(tmp_path)])
    assert code == 0 and "Failed, interrupted or incomplete runs" in text
    assert table_row(text, "runs/config")[1:] == ["made", "cifar10", "1", FAILED, config_error]
    assert table_row(text, "runs/stopped")[4:] == [INTERRUPTED, "KeyboardInterrupt"]
    assert table_row(text, "runs/oom")[4:] == [FAILED, "RuntimeError: OOM"]  # exception line
    assert table_row(text, "runs/running")[4] == INCOMPLETE
    assert "Traceback" not in text and "killed, crashed or still running" in text


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
    assert code == 0 and table_row(text, "NADE")[5] == "88.00 (1/2)"


# ---------------------------------------------------------------------- terminal width (task A)


def test_tables_are_whole_on_a_narrow_terminal_or_a_pipe(tmp_path):
    two_by_two(tmp_path / "logs")
    write_run(
        tmp_path / "logs",
        "x",
        "made",
        "binarized_mnist",
        9,
        {"status": FAILED, "error": "boom " * 20},
    )
    result = subprocess.run(
        [sys.executable, "-m", "argen.compare", str(tmp_path / "logs")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=offline_env(tmp_path, COLUMNS="40"),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "┃ model " in line)
    for column in [
        "model",
        "params",
        "epochs",
        "test NLL (nats)",
        "test bits/dim",
        "paper (nats)",
        "train time",
        "train examples/s",
        "sampling ms/image",
    ]:
        assert f" {column} " in header
    assert table_row(result.stdout, "MADE")[5] == "91.50 ± 2.12"
    assert "…" not in result.stdout and ("boom " * 20).strip() in result.stdout
    assert max(len(line) for line in lines) > 150  # wider than the 40 columns it was given


def test_runs_as_module(tmp_path):
    two_by_two(tmp_path / "logs")
    result = subprocess.run(
        [sys.executable, "-m", "argen.compare", str(tmp_path / "logs"), "--metric", "bpd"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=offline_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.index("PixelCNN") < result.stdout.index("MADE")
    assert "sorted by test bits/dim" in result.stdout


def test_one_table_per_dataset_with_text_units(tmp_path):
    write_run(tmp_path, "a", "made", "binarized_mnist", 1, metrics(90.0, 0.17, 10.0, 0.1))
    write_run(tmp_path, "b", "pixelcnn", "cifar10", 1, metrics(7000.0, 3.2, 10.0, 2.0))
    text_summary = {**metrics(1.1, 1.587, 10.0, 0.01), "data_kind": "text"}
    write_run(tmp_path, "c", "char_rnn", "tinyshakespeare", 1, text_summary)
    tables = aggregate(collect_runs([tmp_path]))
    assert {data: [r.model for r in rows] for data, rows in tables.items()} == {
        "binarized_mnist": ["made"],
        "cifar10": ["pixelcnn"],
        "tinyshakespeare": ["char_rnn"],
    }
    code, text = rendered([str(tmp_path)])
    assert code == 0
    assert all(f"({data}): sorted by" in text for data in tables)
    assert "bits/char" in text and "bits/dim" in text and "nats/char" in text
    assert table_row(text, "PixelCNN")[8] == "3.14 — van den Oord et al. 2016a, Table 5"
    assert table_row(text, "Char-RNN")[8] == "none (no paper reports this dataset)"


def test_autoencoder_gets_its_own_table(tmp_path):
    write_run(tmp_path, "m", "made", "mnist", 1, metrics(90.0, 0.17, 10.0, 0.1))
    ae = {"params": 50, "train_examples_per_sec": 900.0, "test_recon_loss": 0.0734}
    write_run(tmp_path, "ae", "autoencoder", "mnist", 1, ae)
    rows = aggregate(collect_runs([tmp_path]))["mnist"]
    assert [(row.model, row.is_likelihood) for row in rows] == [
        ("made", True),
        ("autoencoder", False),
    ]
    code, text = rendered([str(tmp_path)])
    assert code == 0
    nll_table, recon_table = text.split("models without a likelihood")
    assert "Autoencoder" not in nll_table and "MADE" in nll_table
    assert table_row(recon_table, "Autoencoder")[5] == "0.0734"


# ------------------------------------------------------------------------------------- W&B read


class FakeRun:
    def __init__(
        self, run_id: str, state: str, model: str, seed: int, summary: dict, job_type: str = "train"
    ) -> None:
        self.path = ["ent", "proj", run_id]
        self.state = state
        self.job_type = job_type
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
        FakeRun("e1", "finished", "made", 1, {"test/nll": 1.0}, job_type="eval"),
        FakeRun("f1", "finished", "made", 1, {}, job_type="compare"),
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
        assert not {"e1", "f1"} & {r.source.rsplit("/", 1)[-1] for r in records}, "eval/compare"
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
    assert code == 2 and "ent/proj" in err and "ConnectionError" in err
    assert err.count("\n") == 1 and err.startswith("error: "), err  # one line


def test_no_runs_or_missing_path_exit_2(tmp_path, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    code, _ = rendered([str(tmp_path / "empty")])
    assert code == 2 and "no runs found" in capsys.readouterr().err
    code, _ = rendered([str(tmp_path / "nowhere" / "at" / "all")])
    assert code == 2 and "no such directory" in capsys.readouterr().err
    assert compare.wandb_project(str(tmp_path)) is None
