"""``python -m argen.compare RUNS --wandb``: one offline W&B run of job type ``compare``, read back
from its transaction log with ``wandb leet inspect``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from argen.report import compare_wandb
from tests.compare_fakes import ROOT, metrics, offline_env, rendered, write_epochs, write_run

SCATTER_PANEL = "wandb/scatter/v0"


def some_runs(root: Path) -> Path:
    """Two density models (one with two seeds and learning curves), an autoencoder and a failed
    run."""
    for seed, nll in [(1, 90.0), (2, 91.0)]:
        run_dir = write_run(
            root, f"made{seed}", "made", "binarized_mnist", seed, metrics(nll, 0.16, 400, 0.001)
        )
        write_epochs(run_dir, nll, 1e6, 1e-3 * seed)
    write_run(root, "pixelcnn", "pixelcnn", "binarized_mnist", 1, metrics(82.0, 0.15, 100, 0.2))
    ae = {"params": 50, "train_examples_per_sec": 900.0, "test_recon_loss": 0.07}
    write_run(root, "ae", "autoencoder", "binarized_mnist", 1, ae)
    write_run(root, "bad", "nade", "binarized_mnist", 1, {"status": "failed", "error": "boom"})
    return root


def inspect(wandb_dir: Path, *flags: str) -> str:
    """``wandb leet inspect --json [flags] <wandb dir>``: the offline run's records or summary."""
    return subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", *flags, str(wandb_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout


def records(wandb_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in inspect(wandb_dir).splitlines() if line.strip()]


def charts(log: list[dict[str, Any]]) -> dict[str, str]:
    """{chart key: panel type} of the custom charts in the run's config updates."""
    found: dict[str, str] = {}
    for record in log:
        update = record.get("config", {}).get("update", {}) if record["type"] == "config" else {}
        for key, value in update.items():
            if key.startswith("_wandb.visualize."):
                found[key.removeprefix("_wandb.visualize.")] = value["panel_config"]["panelDefId"]
    return found


def test_offline_without_login_logs_tables_image_and_scatter_charts(tmp_path):
    runs, out = some_runs(tmp_path / "logs"), tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "argen.compare", str(runs), "--out", str(out), "--wandb"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=offline_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    [run_dir] = (out / "wandb").glob("offline-run-*")
    assert f"wandb sync {run_dir}" in result.stdout  # the upload hint names this run
    summary = json.loads(inspect(out / "wandb", "--summary"))
    assert summary["state"] == "finished" and summary["exit_code"] == 0
    keys = summary["summary"]
    assert keys["tables/binarized_mnist"]["_type"] == "table-file"
    assert keys["tables/binarized_mnist"]["nrows"] == 2  # MADE and PixelCNN
    assert keys["tables/binarized_mnist_reconstruction"]["nrows"] == 1  # the autoencoder
    assert keys["tables/unfinished_runs"]["nrows"] == 1
    for name in ("tradeoff/binarized_mnist", "curves/binarized_mnist"):
        image = keys[name]
        assert image["_type"] == "image-file" and image["width"] > 500
    log = records(out / "wandb")
    [run] = [r["run"] for r in log if r["type"] == "run"]
    assert run["job_type"] == "compare" and run["project"] == "argen"
    assert charts(log) == {
        "charts/binarized_mnist_nll_vs_sampling_time": SCATTER_PANEL,
        "charts/binarized_mnist_nll_vs_train_throughput": SCATTER_PANEL,
    }
    for chart in charts(log):
        assert keys[f"{chart}_table"]["nrows"] == 2  # one point per model
    assert len([r for r in log if r["type"] == "exit"]) == 1


def test_a_failure_finishes_the_run_once_with_exit_code_1(tmp_path, monkeypatch, capsys):
    for name, value in offline_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    some_runs(tmp_path / "logs")

    def broken(*args: Any, **kwargs: Any) -> dict:
        raise RuntimeError("the payload could not be built")

    monkeypatch.setattr(compare_wandb, "comparison_payload", broken)
    code, _ = rendered(["logs", "--wandb"])
    assert code == 1
    assert "RuntimeError: the payload could not be built" in capsys.readouterr().err
    wandb_dir = tmp_path / "wandb"  # no --out: ./wandb
    [exit_record] = [r["exit"] for r in records(wandb_dir) if r["type"] == "exit"]
    assert exit_record["exit_code"] == 1
    assert json.loads(inspect(wandb_dir, "--summary"))["state"] == "failed"


@pytest.mark.parametrize(
    ("paths", "expected"),
    [(["logs"], ("argen", None)), (["wandb:team/sweeps"], ("sweeps", "team"))],
)
def test_wandb_target_defaults_to_the_project_read(paths, expected):
    from argen.report.compare import _wandb_target, parse_args

    assert _wandb_target(parse_args([*paths, "--wandb"])) == expected
    args = parse_args([*paths, "--wandb", "--wandb-project", "p", "--wandb-entity", "e"])
    assert _wandb_target(args) == ("p", "e")
