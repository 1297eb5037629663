"""Amortized steps (argen.modules.amortized): groups of batches per training_step change speed, never
results. The same seed gives bit-identical parameters, the same logged rows and the same
global_step as Lightning's ordinary loop, with gradient clipping and schedulers on; a run killed
inside a group and resumed ends with the same test NLL."""

from __future__ import annotations

import csv
import functools
import os
import signal
from collections.abc import Collection
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import BatchSampler, RandomSampler

import argen.modules.amortized
from argen.data.groups import GroupSampler, fallback_reason, group_layout
from argen.data.image import ImageDataModule
from argen.data.in_memory import TensorBatches
from argen.models.gated_pixelcnn import GatedPixelCNN
from argen.models.made import MADE
from argen.models.nade import NADE
from argen.models.pixelcnn import PixelCNN
from argen.modules.density import DensityModule
from argen.training.callbacks.rng_state import RNGState
from argen.training.callbacks.throughput import Throughput
from tests.conftest import needs_data, run_train, train_in_process

SHAPE = (1, 4, 4)


class RandomLevels(ImageDataModule):
    """103/20/20 random images: training ones stored as 0..255 and binarized afresh in every
    batch (so the random numbers drawn between steps must match too), evaluation ones 0/1."""

    name = "random_levels"
    shape = SHAPE
    num_levels = 2

    def load_splits(self, splits: Collection[str] = ("train", "val", "test")):
        generator = torch.Generator().manual_seed(0)
        sizes = {"train": 103, "val": 20, "test": 20}
        out = {}
        for split in splits:
            images = torch.randint(0, 256, (sizes[split], *SHAPE), generator=generator)
            if split != "train":
                images = torch.bernoulli(images / 255, generator=generator)
            out[split] = (images.to(torch.uint8), None)
        return out

    def transform_train_images(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bernoulli(x.float() / 255)


class StepHooks(L.Callback):
    """Counts the hooks Lightning calls at every optimizer step."""

    def __init__(self) -> None:
        self.calls = {"zero_grad": 0, "backward": 0, "optimizer_step": 0}

    def on_before_zero_grad(self, trainer, pl_module, optimizer) -> None:
        self.calls["zero_grad"] += 1

    def on_after_backward(self, trainer, pl_module) -> None:
        self.calls["backward"] += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.calls["optimizer_step"] += 1


NETS = {
    "made": lambda: MADE(SHAPE, hidden_sizes=[8], num_masks=2, ordering="random"),  # cycled
    "made_one_mask": lambda: MADE(SHAPE, hidden_sizes=[8], ordering="random"),
    "nade": lambda: NADE(SHAPE, hidden_size=8, order_agnostic=True),  # random orderings
    "pixelcnn": lambda: PixelCNN(SHAPE, hidden_channels=8, num_layers=2),
    "gated_pixelcnn": lambda: GatedPixelCNN(SHAPE, hidden_channels=8, num_layers=2),
}


def fit(
    tmp_path: Path,
    steps_per_call: int,
    net: str = "made",
    ckpt_path: str | None = None,
    cuda_graph: bool = False,
    step_hooks: bool = True,
    **options,
) -> tuple[DensityModule, L.Trainer, list[dict], Throughput]:
    """Fit a tiny model on ``RandomLevels`` (11 batches an epoch, the last one partial). With
    ``step_hooks`` a callback counts the per-step hooks (the group loop then goes through
    Lightning's hook dispatch; without, it calls backward and the step directly)."""
    L.seed_everything(0, verbose=False)
    module = DensityModule(
        NETS[net](),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-2, fused=options.pop("fused", True)),
        scheduler=options.pop("scheduler", None),
        scheduler_interval=options.pop("interval", "epoch"),
        steps_per_call=steps_per_call,
        cuda_graph=cuda_graph,
    )
    throughput = Throughput()
    logger = CSVLogger(tmp_path, name="logs", version=0)
    trainer = L.Trainer(
        **{
            "max_epochs": 3,
            "accelerator": "cpu",
            "logger": logger,
            "log_every_n_steps": 3,
            "num_sanity_val_steps": 0,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": tmp_path,
            "callbacks": [
                *options.pop("callbacks", []),
                throughput,
                *([StepHooks()] if step_hooks else []),
                RNGState(),  # as train.py: a resumed run draws the same random numbers
                ModelCheckpoint(tmp_path / "ckpt", save_last=True),
            ],
            **options,
        }
    )
    trainer.fit(module, datamodule=RandomLevels(batch_size=10), ckpt_path=ckpt_path)
    with open(Path(logger.log_dir) / "metrics.csv") as rows:
        # measured times: the columns that may differ
        timing = ("train/examples_per_sec", "trainer/cpu_seconds", "trainer/wall_seconds")
        logged = [{k: v for k, v in row.items() if k not in timing} for row in csv.DictReader(rows)]
    return module, trainer, logged, throughput


def assert_same_training(ordinary, grouped) -> None:
    (a, trainer_a, rows_a, seen_a), (b, trainer_b, rows_b, seen_b) = ordinary, grouped
    assert a.automatic_optimization and not b.automatic_optimization, "the group loop must run"
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), f"{name} differs"
    assert trainer_a.global_step == trainer_b.global_step
    assert trainer_a.current_epoch == trainer_b.current_epoch
    assert rows_b == rows_a, "the logger must get the same rows at the same steps"
    assert seen_b.examples == seen_a.examples, "every example counted once"
    hooks_a, hooks_b = (
        [c.calls for c in t.callbacks if isinstance(c, StepHooks)] for t in (trainer_a, trainer_b)
    )
    assert hooks_b == hooks_a, "per-step hooks run at every step"
    assert trainer_b.num_training_batches < trainer_a.num_training_batches  # groups did run


STEP_LR = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=4, gamma=0.7)
PLATEAU = functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, patience=0, factor=0.5)


@pytest.mark.parametrize(
    "options",
    [
        # groups of 4, 4 and 3 batches; clipping by norm; an LR step every 4 optimizer steps
        {"gradient_clip_val": 0.05, "scheduler": STEP_LR, "interval": "step"},
        # the same without per-step hooks: backward and the step called directly
        {"gradient_clip_val": 0.05, "scheduler": STEP_LR, "interval": "step", "step_hooks": False},
        # bf16 autocast, clipping by value, plateau schedule on val/nll, order-agnostic NADE
        {
            "net": "nade",
            "precision": "bf16-mixed",
            "fused": False,  # Lightning clips no fused optimizer under mixed precision
            "gradient_clip_val": 0.01,
            "gradient_clip_algorithm": "value",
            "scheduler": PLATEAU,
        },
        # max_steps inside an epoch (a group is cut there, no extra validation) and 7 batches
        {"max_steps": 19, "limit_train_batches": 7, "scheduler": STEP_LR},
        # the convolutional models, which group 4 steps by default
        {"net": "pixelcnn", "gradient_clip_val": 0.05, "scheduler": STEP_LR, "interval": "step"},
        {"net": "gated_pixelcnn", "scheduler": PLATEAU},
    ],
    ids=[
        "clip-step-lr",
        "clip-step-lr-direct",
        "nade-bf16-plateau",
        "max-steps-limit",
        "pixelcnn-clip-step-lr",
        "gated-plateau",
    ],
)
def test_groups_give_bit_identical_parameters_logs_and_counts(tmp_path, options):
    ordinary = fit(tmp_path / "ordinary", 1, **dict(options))
    grouped = fit(tmp_path / "grouped", 4, **dict(options))
    assert grouped[0]._stepper.direct == (not options.get("step_hooks", True))
    assert_same_training(ordinary, grouped)


def test_cuda_graph_is_a_no_op_off_the_gpu_and_its_recorded_step_matches(tmp_path, monkeypatch):
    """Off the GPU ``cuda_graph=true`` changes nothing. The recorded step (static input tensors;
    backward, clipping and optimizer step inside; input and non-finite checks once a group; a
    changed learning rate recorded again; the partial last batch eager), run eagerly on the CPU,
    gives the ordinary loop's parameters and logs: only the capture is left to the GPU."""
    options = {"net": "made_one_mask", "gradient_clip_val": 0.05, "scheduler": STEP_LR}
    ordinary = fit(tmp_path / "ordinary", 1, **dict(options, interval="step"))
    unused = fit(tmp_path / "unused", 4, cuda_graph=True, **dict(options, interval="step"))
    assert unused[0]._stepper.graph is None
    assert_same_training(ordinary, unused)

    monkeypatch.setattr(argen.modules.amortized, "graph_blocker", lambda *args: None)
    graphed = fit(tmp_path / "graphed", 4, cuda_graph=True, **dict(options, interval="step"))
    graph = graphed[0]._stepper.graph
    assert graph is not None and graph.recorded and graph.eager_steps == 3 + 3  # + partial
    for p, q in zip(ordinary[0].parameters(), graphed[0].parameters(), strict=True):
        assert torch.equal(p, q)
    assert graphed[2] == ordinary[2] and graphed[1].global_step == ordinary[1].global_step


class PoisonBeforeStep(L.Callback):
    """Set a weight to NaN as optimizer step ``step - 1`` is applied: step ``step``'s loss is NaN."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == self.step - 1:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("nan")


@pytest.mark.parametrize("steps_per_call", [1, 4])
def test_a_non_finite_loss_inside_a_group_names_its_step(tmp_path, steps_per_call):
    """The group checks its losses once, at its end (steps 4..7 here), naming the first bad one."""
    with pytest.raises(FloatingPointError, match="global step 6, epoch 0, batch 6"):
        fit(tmp_path, steps_per_call, callbacks=[PoisonBeforeStep(6)])


def test_a_checkpoint_resumes_in_the_other_loop_with_its_step_count(tmp_path):
    """Resuming an ordinary run's checkpoint in the group loop (a config changed, a default
    changed) keeps global_step and ends where the uninterrupted run ends."""
    straight = fit(tmp_path / "straight", 1, gradient_clip_val=0.05)
    fit(tmp_path / "first", 1, gradient_clip_val=0.05, max_epochs=1)
    last = str(tmp_path / "first" / "ckpt" / "last.ckpt")
    module, trainer, _, _ = fit(tmp_path / "resumed", 4, gradient_clip_val=0.05, ckpt_path=last)
    assert not module.automatic_optimization
    assert trainer.global_step == straight[1].global_step == 33
    for p, q in zip(straight[0].parameters(), module.parameters(), strict=True):
        assert torch.equal(p, q)


def test_groups_hold_the_ordinary_batches_in_order():
    """The group sampler cuts the ordinary loader's shuffled batches, partial last one kept;
    max_steps and limit_train_batches cut groups where the ordinary loop would stop."""
    assert group_layout(11, 4) == [4, 4, 3]
    assert group_layout(11, 4, cut_at=6) == [4, 2, 2, 3]  # max_steps ends 6 batches in
    assert group_layout(3, 16) == [3]
    dataset = TensorBatches(torch.arange(23, dtype=torch.uint8)[:, None, None, None])
    torch.manual_seed(1)
    ordinary = list(BatchSampler(RandomSampler(dataset), 5, drop_last=False))
    torch.manual_seed(1)
    sampler = GroupSampler(BatchSampler(RandomSampler(dataset), 5, drop_last=False), [2, 2, 1])
    groups = list(sampler)
    assert [g.first_batch for g in groups] == [0, 2, 4]
    assert [i for g in groups for i in g] == [i for b in ordinary for i in b]
    assert [len(g) for g in groups] == [10, 10, 3]


@pytest.mark.parametrize(
    "setting",
    [
        {"accumulate_grad_batches": 2},
        {"val_check_interval": 0.5},
        {"val_check_interval": "00:00:01:00"},  # on a clock: Lightning leaves the float unset
        {"limit_train_batches": 0.5},
        {"strategy": "ddp_spawn", "devices": 2},
    ],
    ids=["accumulation", "val-in-epoch", "val-on-a-clock", "fraction-of-epoch", "ddp"],
)
def test_settings_groups_cannot_honour_use_the_ordinary_loop(setting):
    trainer = L.Trainer(accelerator="cpu", logger=False, **setting)
    assert fallback_reason(trainer) is not None
    assert fallback_reason(L.Trainer(accelerator="cpu", logger=False, max_steps=5)) is None


class KillAtOptimizerStep(L.Callback):
    """SIGKILL this process before optimizer step ``step`` (inside a group: batch hooks only run
    between groups, the optimizer hooks at every step)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


TINY = [
    "model=made",
    "model.module.net.hidden_sizes=[16]",
    "model.module.net.num_masks=2",
    "model.module.net.ordering=random",
    "model.module.steps_per_call=4",  # 6 batches an epoch: groups of 4 and 2
    "data.datamodule.max_examples=300",
    "data.datamodule.batch_size=50",
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "trainer.gradient_clip_val=0.5",
    "logger=csv",
    "callbacks.rich_progress_bar=null",
    "callbacks.image_logger.num_images=2",
    "summary.num_samples=0",
]


@needs_data("binarized_mnist")
def test_killed_inside_a_group_and_resumed_ends_with_the_ordinary_test_nll(tmp_path):
    grouped = train_in_process(tmp_path / "grouped", *TINY)
    ordinary = train_in_process(tmp_path / "ordinary", *TINY, "model.module.steps_per_call=1")
    assert grouped["test_nll"] == ordinary["test_nll"]

    # step 9: the third step of epoch 1's first group (steps 6..9)
    run_dir = tmp_path / "killed" / "run"
    run_dir.mkdir(parents=True)
    killer = "+callbacks.killer._target_=tests.test_amortized_steps.KillAtOptimizerStep"
    result = run_train(
        tmp_path / "killed",
        *TINY,
        f"hydra.run.dir={run_dir}",
        killer,
        "+callbacks.killer.step=9",
        check=False,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    resumed = train_in_process(tmp_path / "killed", *TINY, "ckpt_path=auto")
    assert resumed["test_nll"] == grouped["test_nll"]
