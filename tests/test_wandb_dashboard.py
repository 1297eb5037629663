"""A W&B project that reads as a comparison: summaries that sort right, plain columns, job types,
image and text samples stepped by epoch. Every run is offline and read back with ``wandb leet``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict

from tests.conftest import DATA_DIR, ROOT, train_in_process

TINY_GATED = [
    "model=gated_pixelcnn",
    "model.module.net.hidden_channels=8",
    "model.module.net.num_layers=2",
    "data.datamodule.max_examples=30",
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "trainer.num_sanity_val_steps=0",
    "callbacks.rich_progress_bar=null",
    "callbacks.image_logger.num_images=4",
    "summary.num_samples=1",
]


def leet(path: Path, *flags: str) -> str:
    """``wandb leet inspect [flags] --json path``'s output."""
    return subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", *flags, "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


def only_run(wandb_dir: Path) -> Path:
    (run,) = wandb_dir.glob("offline-run-*")
    return run


def read_back(wandb_dir: Path) -> tuple[dict, list[dict]]:
    """(the run's ``--summary`` record, every record of its log) of the one run in ``wandb_dir``."""
    summary = json.loads(leet(wandb_dir, "--summary"))
    records = [json.loads(line) for line in leet(only_run(wandb_dir)).splitlines() if line]
    return summary, records


def of_type(records: list[dict], kind: str) -> list[dict]:
    return [r[kind] for r in records if r["type"] == kind]


def history(records: list[dict]) -> list[dict]:
    return [h["item"] for h in of_type(records, "history")]


def step_metrics(records: list[dict]) -> dict[str, str]:
    """Defined metric (name or glob) -> its step metric."""
    return {
        m.get("name") or m["glob_name"]: m.get("step_metric", "")
        for m in of_type(records, "metric")
    }


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory) -> tuple[dict, Path]:
    """A two-epoch Gated PixelCNN run (completions) logged offline: (summary.json, run dir)."""
    if not (DATA_DIR / "binarized_mnist").exists():
        pytest.skip("no binarized MNIST")
    tmp_path = tmp_path_factory.mktemp("dashboard")
    summary = train_in_process(tmp_path, *TINY_GATED)
    return summary, tmp_path / "run"


@pytest.fixture(scope="module")
def gated_wandb(gated_run) -> tuple[dict, list[dict]]:
    """The W&B run of ``gated_run``, read back once."""
    return read_back(gated_run[1] / "wandb")


@pytest.mark.slow
def test_train_run_summary_config_and_job_type(gated_run, gated_wandb):
    summary, _ = gated_run
    record, records = gated_wandb
    keys = record["summary"]
    rows = history(records)
    val = [row["val/nll"] for row in rows if "val/nll" in row]
    speeds = [row["train/examples_per_sec"] for row in rows if "train/examples_per_sec" in row]
    assert len(val) == 2 and len(speeds) == 2
    # best epoch, not the last; throughput averaged
    assert keys["val/nll"] == {"min": pytest.approx(min(val))}
    assert keys["val/bits_per_dim"]["min"] == pytest.approx(min(val) / (784 * 0.6931471805599453))
    assert keys["train/examples_per_sec"] == {"mean": pytest.approx(sum(speeds) / 2)}
    # the headline numbers as plain summary keys, beside the summary/ copies compare reads
    assert keys["params"] == summary["params"] > 0
    assert keys["test/nll"] == pytest.approx(summary["test_nll"])
    assert keys["test/bits_per_dim"] == pytest.approx(summary["test_bits_per_dim"])
    assert keys["train_examples_per_sec"] == pytest.approx(summary["train_examples_per_sec"])
    assert keys["sample_seconds_per_example"] == pytest.approx(
        summary["sample_seconds_per_example"]
    )
    assert keys["summary/test_nll"] == pytest.approx(summary["test_nll"])
    # plain config columns next to the nested config
    config = record["config"]
    assert config["params"] == summary["params"] and config["seed"] == summary["seed"]
    assert config["model"]["name"] == "gated_pixelcnn"
    assert config["data"]["name"] == "binarized_mnist"
    (run,) = of_type(records, "run")
    assert run["job_type"] == "train"
    assert record["exit_code"] == 0 and len(of_type(records, "exit")) == 1


@pytest.mark.slow
def test_sample_and_completion_grids_are_stepped_by_epoch(gated_run, gated_wandb):
    _, run_dir = gated_run
    _, records = gated_wandb
    steps = step_metrics(records)
    assert steps["images/*"] == "epoch" and steps["images/completion"] == "epoch"
    assert steps["val/nll"] == "trainer/global_step"
    image_rows = [row for row in history(records) if any(k.startswith("images/") for k in row)]
    # one row per validation, carrying its epoch; completions are one panel, not three keys
    assert [row["epoch"] for row in image_rows] == [0, 1]
    for row in image_rows:
        keys = {key.split(".")[0] for key in row if key.startswith("images/")}
        assert keys == {"images/samples", "images/completion"}
    # the panel holds originals | masked | completions side by side: three 4-image grids, 2 gaps
    grid_width = 4 * 28 + 5 * 2
    panel = image_rows[-1]
    assert panel["images/completion.width"] == 3 * grid_width + 2 * 8
    assert panel["images/completion.height"] == 28 + 2 * 2
    # the run directory keeps one PNG per visual
    images = run_dir / "images"
    for name in ("samples", "originals", "masked", "completions"):
        assert len(list(images.glob(f"{name}_epoch_*.png"))) == 2, name


@pytest.mark.slow
def test_val_nll_is_drawn_against_examples_flops_and_cpu_seconds(gated_run, gated_wandb):
    """Each validation row carries the cumulative training cost, and a copy of val/nll per
    axis whose step metric is that axis; the summary has the budget and what was measured."""
    summary, _ = gated_run
    record, records = gated_wandb
    steps = step_metrics(records)
    rows = [row for row in history(records) if "val/nll" in row]
    assert len(rows) == 2
    for axis in ("examples_seen", "train_flops", "cpu_seconds"):
        copy = f"curves/val_nll_by_{axis}"
        assert steps[copy] == f"trainer/{axis}"
        assert [row[copy] for row in rows] == [row["val/nll"] for row in rows]
        values = [row[f"trainer/{axis}"] for row in rows]
        assert 0 < values[0] < values[1]
    assert rows[-1]["trainer/examples_seen"] == summary["examples_seen"] == 60  # 2 epochs of 30
    keys = record["summary"]
    assert keys["summary/budget_kind"] == "epochs" and keys["budget_value"] == 2
    assert keys["examples_seen"] == 60 and keys["summary/device"].startswith("cpu")
    assert keys["summary/git_commit"] == summary["git_commit"]


@pytest.mark.slow
def test_evaluate_logs_one_eval_run(gated_run, tmp_path, monkeypatch, capsys):
    from argen.evaluate import main

    summary, run_dir = gated_run
    (best,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    monkeypatch.setenv("WANDB_MODE", "offline")
    main([str(best), "--json", "--wandb", "--wandb-dir", str(tmp_path)])
    out = capsys.readouterr()
    metrics = json.loads(out.out.strip().splitlines()[-1])
    assert metrics["test/nll"] == pytest.approx(summary["test_nll"], rel=1e-6)
    record, records = read_back(tmp_path / "wandb")
    assert f"wandb sync {only_run(tmp_path / 'wandb')}" in out.err
    (run,) = of_type(records, "run")
    assert run["job_type"] == "eval"
    assert record["summary"]["test/nll"] == pytest.approx(metrics["test/nll"])
    assert record["summary"]["params"] == summary["params"]
    config = record["config"]
    assert config["split"] == "test" and config["checkpoint"] == str(best.resolve())
    assert config["train_wandb_run_id"] == (run_dir / "wandb_run_id").read_text().strip()
    assert record["exit_code"] == 0 and len(of_type(records, "exit")) == 1


@pytest.mark.slow
def test_a_failed_evaluation_fails_its_run_once(gated_run, tmp_path, monkeypatch):
    import argen.evaluate

    _, run_dir = gated_run
    (best,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    monkeypatch.setenv("WANDB_MODE", "offline")
    # a checkpoint that cannot be read: one line, exit code 2, and no W&B run at all
    with pytest.raises(SystemExit) as stop:
        argen.evaluate.main([str(tmp_path / "gone.ckpt"), "--wandb", "--wandb-dir", str(tmp_path)])
    assert stop.value.code == 2 and not (tmp_path / "wandb").exists()

    def broken(*args, **kwargs):
        raise RuntimeError("evaluation broke")

    monkeypatch.setattr(argen.evaluate, "evaluate_module", broken)
    with pytest.raises(RuntimeError, match="evaluation broke"):
        argen.evaluate.main([str(best), "--wandb", "--wandb-dir", str(tmp_path)])
    record, records = read_back(tmp_path / "wandb")
    assert record["exit_code"] == 1 and record["state"] != "finished"
    assert len(of_type(records, "exit")) == 1


@pytest.mark.parametrize(
    ("mode", "job_type", "expected"),
    [
        (RunMode.RUN, None, "train"),
        (RunMode.MULTIRUN, None, "sweep"),
        (RunMode.MULTIRUN, "ablation", "ablation"),
    ],
)
def test_job_type_tells_sweep_members_from_single_runs(tmp_path, mode, job_type, expected):
    from argen.training.resolvers import register_resolvers
    from argen.training.run import group_sweep_runs

    register_resolvers()
    overrides = [f"paths.output_dir={tmp_path}", f"hydra.sweep.dir={tmp_path / 'sweep_x'}"]
    if job_type:
        overrides.append(f"logger.wandb.job_type={job_type}")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
        cfg.hydra.mode = mode
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        group_sweep_runs(cfg)
    assert cfg.logger.wandb.job_type == expected
    assert cfg.logger.wandb.group == ("sweep_x" if mode == RunMode.MULTIRUN else None)


@pytest.mark.slow
def test_text_samples_are_one_table_row_per_validation(tmp_path, monkeypatch):
    from functools import partial

    import torch
    from lightning.pytorch import Trainer

    from argen.data.text import TextDataModule
    from argen.models.char_rnn import CharRNN
    from argen.modules.text import TextModule
    from argen.training.callbacks.text_samples import TextSamples
    from argen.training.loggers import QuietWandbLogger
    from argen.training.wandb_mode import finish_wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the king shall speak and we hear him now, good lord. " * 40)
    data = TextDataModule(str(tmp_path), path=str(corpus), seq_len=16, batch_size=8)
    data.setup()
    torch.manual_seed(0)
    module = TextModule(
        CharRNN(data.vocab_size, hidden_size=8, num_layers=1),
        optimizer=partial(torch.optim.Adam, lr=1e-2),
        sample_length=12,
        sample_prime="the ",
        temperature=0.8,
    )
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=QuietWandbLogger(project="argen", save_dir=str(tmp_path)),
        callbacks=[TextSamples()],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(tmp_path),
    )
    try:
        trainer.fit(module, data)
    finally:
        finish_wandb()
    record, records = read_back(tmp_path / "wandb")
    assert record["summary"]["val/bits_per_dim"].keys() == {"min"}  # text's bits/char: best epoch
    table = record["summary"]["samples/text"]
    assert table["_type"] == "table-file" and table["nrows"] == 2
    assert step_metrics(records)["samples/text"] == "epoch"
    logged = json.loads((only_run(tmp_path / "wandb") / "files" / table["path"]).read_text())
    assert logged["columns"] == ["epoch", "step", "temperature", "text"]
    assert [row[0] for row in logged["data"]] == [0, 1]
    assert [row[2] for row in logged["data"]] == [0.8, 0.8]
    assert logged["data"][-1][3] == module.last_sample and module.last_sample.startswith("the ")
