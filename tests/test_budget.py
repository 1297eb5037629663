"""Budgets a busy machine cannot bend (argen.training.budget, argen.training.flops, argen.training.callbacks.budget), what a
run measures (argen.training.callbacks.throughput, epochs.csv) and where it came from (argen.training.provenance)."""

from __future__ import annotations

import csv
import json
import re
import shlex

import lightning as L
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import argen.training.callbacks.throughput as throughput_module
import argen.training.provenance
from argen.core.errors import ConfigError
from argen.training.budget import (
    Budget,
    budget_steps,
    run_budget,
    steps_for_examples,
    validation_interval,
)
from argen.training.callbacks.budget import CPUSecondsBudget
from argen.training.callbacks.epoch_history import EpochHistory
from argen.training.callbacks.throughput import Throughput
from argen.training.config_checks import check_budget
from argen.training.flops import count_training_flops, flops_per_example
from argen.training.loggers import curve_name, with_curve_copies
from argen.training.provenance import provenance
from tests.conftest import needs_data, run_train

IN, HIDDEN, OUT, BATCH = 6, 5, 4, 7


class TwoLinear(L.LightningModule):
    """x -> Linear(IN, HIDDEN) -> Linear(HIDDEN, OUT) -> mean square; validation adds ``clock``."""

    def __init__(self, clock: list[float] | None = None) -> None:
        super().__init__()
        self.first = nn.Linear(IN, HIDDEN)
        self.second = nn.Linear(HIDDEN, OUT)
        self.clock = clock

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        if self.clock is not None:
            self.clock[0] += 1.0  # one CPU second per step
        (x,) = batch
        loss = self.second(self.first(x)).pow(2).mean()
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        if self.clock is not None:
            self.clock[0] += 100.0  # validation: must not count
        self.log("val/nll", self.second(self.first(batch[0])).pow(2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Data(L.LightningDataModule):
    def __init__(self, size: int = 103, batch_size: int = 10) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.data = TensorDataset(torch.randn(size, IN, generator=generator))
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=50)


# ---------------------------------------------------------------------------------------- FLOPs
def test_flops_of_two_linear_layers_forward_and_backward():
    """A multiply-add is 2 FLOPs. Forward: 2*B*(IN*HIDDEN + HIDDEN*OUT). Backward: the weight
    gradients of both layers (the same again) and the input gradient of the second layer only
    (the data needs none): 2*B*HIDDEN*OUT. So the second layer costs the usual 3x its forward,
    the first 2x. The optimizer step is not counted."""
    module = TwoLinear()
    before = [p.detach().clone() for p in module.parameters()]
    batch = (torch.randn(BATCH, IN),)
    rng = torch.get_rng_state()
    flops = count_training_flops(module, batch)
    assert flops == 2 * BATCH * IN * HIDDEN * 2 + 2 * BATCH * HIDDEN * OUT * 3
    # counted on a copy: the run's weights, gradients and random state are untouched
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))
    assert all(p.grad is None for p in module.parameters())
    assert torch.equal(rng, torch.get_rng_state())


def test_flops_per_example_divides_a_real_batch_and_counts_cpu_lstms():
    per_example = flops_per_example(TwoLinear(), Data())
    assert per_example == 2 * IN * HIDDEN * 2 + 2 * HIDDEN * OUT * 3

    class Recurrent(TwoLinear):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(IN, HIDDEN, batch_first=True)

        def training_step(self, batch, batch_idx: int) -> torch.Tensor:
            return self.lstm(batch[0].unsqueeze(1))[0].sum()

    # one step of an LSTM: x @ W_ih (4 gates) and h @ W_hh (h is 0 but multiplied all the same)
    forward = 2 * (IN + HIDDEN) * 4 * HIDDEN
    assert flops_per_example(Recurrent(), Data()) >= 2 * forward  # oneDNN's fused LSTM: 0


# ---------------------------------------------------------------------------------- conversion
def test_examples_become_the_fewest_steps_that_see_them():
    # epochs of 103 examples in 11 steps of 10 (the last one 3)
    assert steps_for_examples(10, 103, 11, 10) == 1
    assert steps_for_examples(11, 103, 11, 10) == 2
    assert steps_for_examples(103, 103, 11, 10) == 11
    assert steps_for_examples(104, 103, 11, 10) == 12
    assert steps_for_examples(250, 103, 11, 10) == 22 + 5  # 206 in two epochs, then 44


def test_budget_steps_from_examples_and_flops():
    trainer = L.Trainer(limit_train_batches=None, logger=False, enable_checkpointing=False)
    data = Data()
    assert budget_steps(Budget("examples", 250), trainer, data, None) == 27
    assert budget_steps(Budget("steps", 13), trainer, data, None) == 13
    assert budget_steps(Budget("flops", 250 * 8.0), trainer, data, 8.0) == 27
    assert budget_steps(Budget("cpu_seconds", 5), trainer, data, None) is None
    with pytest.raises(ConfigError, match="budget.flops"):
        budget_steps(Budget("flops", 1e9), trainer, data, None)
    limited = L.Trainer(limit_train_batches=4, logger=False, enable_checkpointing=False)
    assert budget_steps(Budget("examples", 41), limited, data, None) == 4 + 1  # 40 an epoch


def test_config_refuses_two_budgets_in_one_line():
    def cfg(**entries):
        budget = {"examples": None, "steps": None, "flops": None, "cpu_seconds": None}
        trainer = entries.pop("trainer", {"max_epochs": 3})
        return OmegaConf.create({"budget": {**budget, **entries}, "trainer": trainer})

    check_budget(cfg(examples=1000))
    check_budget(cfg())
    with pytest.raises(ConfigError, match=r"budget.examples=1000 and budget.flops=5.*at most one"):
        check_budget(cfg(examples=1000, flops=5))
    with pytest.raises(ConfigError, match="budget.steps=-3 is invalid"):
        check_budget(cfg(steps=-3))
    with pytest.raises(ConfigError, match="trainer.max_time.*two budgets"):
        check_budget(cfg(cpu_seconds=60, trainer={"max_time": "00:00:01:00"}))
    assert run_budget(cfg(cpu_seconds=60)) == Budget("cpu_seconds", 60)
    assert run_budget(cfg()) == Budget("epochs", 3)
    assert run_budget(cfg(trainer={"max_time": "00:01:00:30", "max_epochs": 3})) == Budget(
        "wall_seconds", 3630.0
    )


def test_curve_copies_of_val_nll_for_each_axis_logged_beside_it():
    row = {"val/nll": 2.0, "trainer/examples_seen": 10.0, "trainer/cpu_seconds": 1.5}
    copies = with_curve_copies(row)
    assert copies == {
        **row,
        "curves/val_nll_by_examples_seen": 2.0,
        "curves/val_nll_by_cpu_seconds": 2.0,
    }
    assert curve_name("trainer/train_flops") == "curves/val_nll_by_train_flops"
    assert with_curve_copies({"train/loss": 1.0}) == {"train/loss": 1.0}


# ------------------------------------------------------------------- CPU seconds, epochs.csv
def test_cpu_seconds_budget_stops_training_and_excludes_validation(tmp_path, monkeypatch):
    """A fake process clock: one second per training step, 100 per validation. With 3.5 s the
    run stops after the 4th step (the first batch boundary past the budget), validates once more,
    and has measured 4 CPU seconds; epochs.csv has a row per validation with cumulative counts."""
    clock = [0.0]
    monkeypatch.setattr(throughput_module.time, "process_time", lambda: clock[0])
    meter = Throughput(flops_per_example=10.0)
    csv_path = tmp_path / "epochs.csv"
    trainer = L.Trainer(
        max_epochs=-1,
        limit_train_batches=3,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[meter, EpochHistory(csv_path, meter), CPUSecondsBudget(meter, 3.5)],
    )
    trainer.fit(TwoLinear(clock), datamodule=Data())
    assert trainer.global_step == 4
    assert meter.cpu_seconds == 4.0  # two validations (200 s) excluded
    assert meter.examples == 40 and meter.train_flops == 400.0
    rows = list(csv.DictReader(csv_path.open()))
    assert list(rows[0])[:6] == [
        "epoch",
        "optimizer_steps",
        "examples_seen",
        "train_flops",
        "cpu_seconds",
        "wall_seconds",
    ]
    assert "val/nll" in rows[0]
    assert [(r["epoch"], r["optimizer_steps"], r["examples_seen"]) for r in rows] == [
        ("0", "3", "30"),
        ("1", "4", "40"),  # the validation after the stop
    ]
    assert [float(r["cpu_seconds"]) for r in rows] == [3.0, 4.0]
    assert [float(r["train_flops"]) for r in rows] == [300.0, 400.0]
    walls = [float(r["wall_seconds"]) for r in rows]
    assert 0 < walls[0] <= walls[1]


# ---------------------------------------------------------------------------------- provenance
def test_provenance_records_commit_versions_and_command(monkeypatch, tmp_path):
    record = provenance()
    assert re.fullmatch(r"[0-9a-f]{40}", record["git_commit"])
    assert isinstance(record["git_dirty"], bool)
    assert record["torch_version"] == torch.__version__
    assert record["lightning_version"] == L.__version__
    assert record["argen_version"]
    # not composed by a Hydra app (an earlier test may have left Hydra's global config set)
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: False))
    assert "command" not in provenance()
    # outside a git checkout (or without git) the git keys are absent, not guessed
    monkeypatch.setattr(argen.training.provenance, "SOURCE_ROOT", tmp_path)
    assert not {"git_commit", "git_dirty"} & set(provenance())
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "git_commit" not in provenance()


def test_the_command_repeats_the_jobs_overrides(monkeypatch):
    overrides = ["model=made", "budget.examples=1000", "tags=[a b]"]
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(argen.training.provenance, "job_overrides", lambda: overrides)
    command = argen.training.provenance.run_command()
    assert shlex.split(command) == ["python", "train.py", *overrides]


# ------------------------------------------------------------------------------- end to end
@pytest.mark.slow
@needs_data("binarized_mnist")
def test_an_examples_budget_is_met_exactly_with_grouped_steps(tmp_path):
    """PixelCNN groups 4 optimizer steps per Lightning batch; 430 examples of a 300-example
    training set in batches of 20 are one epoch (15 steps) and 7 steps more: 22 steps, 440
    examples, a group cut where the budget ends, and a last validation there."""
    run_train(
        tmp_path,
        "model=pixelcnn",
        "model.module.net.hidden_channels=4",
        "model.module.net.num_layers=2",
        "data.datamodule.max_examples=300",
        "data.datamodule.batch_size=20",
        "trainer.accelerator=cpu",
        "trainer.num_sanity_val_steps=0",
        "trainer.limit_val_batches=1",
        "callbacks.rich_progress_bar=null",
        "callbacks.image_logger=null",
        "logger=none",
        "summary.num_samples=0",
        "budget.examples=430",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["budget_kind"] == "examples" and summary["budget_value"] == 430
    assert summary["optimizer_steps"] == 22 and summary["examples_seen"] == 440
    assert summary["train_flops"] == pytest.approx(440 * summary["flops_per_example"])
    assert summary["cpu_seconds"] > 0 and summary["wall_seconds"] > 0 and summary["threads"] >= 1
    assert summary["device"].startswith("cpu")
    assert "budget.examples=430" in shlex.split(summary["command"])
    # measured examples over measured seconds; wall_seconds is written rounded to the millisecond
    wall, rate = summary["wall_seconds"], summary["train_examples_per_sec"]
    examples = summary["examples_seen"]
    assert examples / (wall + 5e-4) <= rate <= examples / max(wall - 5e-4, 1e-9)
    rows = list(csv.DictReader((tmp_path / "run" / "epochs.csv").open()))
    assert [(r["optimizer_steps"], r["examples_seen"]) for r in rows] == [
        ("15", "300"),
        ("22", "440"),
    ]
    assert summary["val_nll"] == pytest.approx(min(float(r["val/nll"]) for r in rows))


def test_finish_summary_copies_only_what_the_run_measured(tmp_path):
    """benchmarks/finish_summary.py takes the training cost from last.ckpt's Throughput state
    (argen.training.callbacks.throughput.measured_training), examples/s as examples over measured
    seconds; no train_seconds from trainer.max_time."""
    from argen.training.callbacks import throughput as finish

    (tmp_path / "checkpoints").mkdir()
    state = {"examples": 600, "characters": 0, "seconds": 12.0, "cpu_seconds": 11.5}
    torch.save(
        {"global_step": 30, "callbacks": {"Throughput": state}},
        tmp_path / "checkpoints" / "last.ckpt",
    )
    assert finish.measured_training(tmp_path) == {
        "optimizer_steps": 30,
        "examples_seen": 600,
        "cpu_seconds": 11.5,
        "wall_seconds": 12.0,
        "train_examples_per_sec": 50.0,
    }
    assert "train_seconds" not in finish.measured_training(tmp_path)
    assert finish.measured_training(tmp_path / "none") == {}


def test_train_refuses_two_budgets_from_the_composed_config():
    from argen.training.config_checks import check_config
    from tests.test_first_hour import compose

    check_config(compose("budget.cpu_seconds=60"))
    with pytest.raises(ConfigError, match="budget.steps=10 and budget.cpu_seconds=60") as info:
        check_config(compose("budget.steps=10", "budget.cpu_seconds=60"))
    assert "\n" not in str(info.value)


def test_validations_split_the_budget_into_even_intervals():
    assert validation_interval(100, 4) == 25
    assert validation_interval(101, 4) == 26  # ceil: never a fifth validation before the end
    assert validation_interval(3, 8) == 1


def test_config_refuses_validations_without_a_step_budget():
    def cfg(validations, **entries):
        budget = {"examples": None, "steps": None, "flops": None, "cpu_seconds": None}
        return OmegaConf.create(
            {"budget": {**budget, **entries, "validations": validations}, "trainer": {}}
        )

    check_budget(cfg(4, flops=1e9))
    with pytest.raises(ConfigError, match="budget.validations=0 is invalid"):
        check_budget(cfg(0, flops=1e9))
    with pytest.raises(ConfigError, match="budget.validations=4 needs budget.examples"):
        check_budget(cfg(4, cpu_seconds=60))
    with pytest.raises(ConfigError, match="budget.validations=4 needs budget.examples"):
        check_budget(cfg(4))


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_a_flops_budget_with_validations_and_a_cosine_ending_at_its_last_step(tmp_path):
    """experiment=fair/common's recipe on a tiny MADE: budget.flops becomes 12 steps, validated
    every 3 steps across epoch boundaries, and warmup_cosine with total_steps: null reaches its
    floor (a tenth of the learning rate) exactly at the budget's last step."""
    run_train(
        tmp_path,
        "experiment=fair/common",
        "model=made",
        "model.module.net.hidden_sizes=[8]",
        "model.module.scheduler.warmup_steps=2",
        "data.datamodule.max_examples=100",
        "data.datamodule.batch_size=20",
        "trainer.num_sanity_val_steps=0",
        "callbacks.rich_progress_bar=null",
        "callbacks.image_logger=null",
        "logger=none",
        "test=false",
        "summary.num_samples=0",
        "budget.steps=12",
        "budget.flops=null",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    rows = list(csv.DictReader((tmp_path / "run" / "epochs.csv").open()))
    assert [int(r["optimizer_steps"]) for r in rows] == [3, 6, 9, 12]  # 5 steps an epoch
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["lr_schedulers"][0]["last_epoch"] == 12  # stepped once per optimizer step
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-4)
