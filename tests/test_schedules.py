"""Per-step learning-rate schedules for every family, and weight decay on matrices only
(``argen.modules.optim``): what the Transformer set-ups of conf/experiment/step_schedule/ rely on."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn

from argen.models.char_transformer import CharTransformer
from argen.models.made import MADE
from argen.modules.density import DensityModule
from argen.modules.optim import WarmupCosine, decay_matrices, matrix_groups, warmup_cosine
from argen.modules.text import TextModule
from tests.compare_fakes import ROOT
from tests.test_amortized_steps import RandomLevels
from tests.test_text_module import corpus, make_dm

LR, WARMUP, TOTAL, MIN_RATIO = 0.01, 3, 10, 0.1


def expected_lr(step: int) -> float:
    """nanoGPT-style warm-up then cosine, written out independently of ``WarmupCosine``."""
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    progress = min(1.0, (step - WARMUP) / (TOTAL - WARMUP))
    return LR * (MIN_RATIO + (1 - MIN_RATIO) * 0.5 * (1 + math.cos(math.pi * progress)))


class LearningRates(L.Callback):
    """(optimizer steps taken, learning rate the next step will use) after every batch."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.seen.append((trainer.global_step, trainer.optimizers[0].param_groups[0]["lr"]))


def fit(tmp_path: Path, module: L.LightningModule, datamodule, max_steps: int) -> LearningRates:
    rates = LearningRates()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[rates],
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=datamodule)
    return rates


SCHEDULE = partial(warmup_cosine, warmup_steps=WARMUP, total_steps=TOTAL, min_ratio=MIN_RATIO)


def test_warmup_cosine_factor_shape():
    factor = WarmupCosine(WARMUP, TOTAL, MIN_RATIO)
    values = [factor(step) for step in range(TOTAL + 3)]
    assert values[:WARMUP] == pytest.approx([1 / 3, 2 / 3, 1.0])  # linear warm-up to the peak
    assert values[WARMUP] == pytest.approx(1.0)
    decay = values[WARMUP : TOTAL + 1]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))  # cosine: always falling
    assert values[TOTAL:] == pytest.approx([MIN_RATIO] * 3)  # held at the floor afterwards
    for bad in [(5, 5), (-1, 10)]:
        with pytest.raises(ValueError, match="warmup_steps < total_steps"):
            WarmupCosine(*bad)


def test_text_module_steps_the_schedule_after_every_optimizer_step(tmp_path):
    dm = make_dm(tmp_path, corpus(n_words=200), seq_len=8, batch_size=4)  # ~28 batches an epoch
    torch.manual_seed(0)
    net = CharTransformer(dm.vocab_size, context_size=8, dim=16, num_layers=1, num_heads=2)
    module = TextModule(
        net,
        optimizer=partial(torch.optim.AdamW, lr=LR),
        scheduler=SCHEDULE,
        scheduler_interval="step",
        sample_length=0,
    )
    rates = fit(tmp_path, module, dm, max_steps=TOTAL + 2)
    assert len(rates.seen) == TOTAL + 2  # all inside the first epoch: per-epoch stepping fails
    for steps, lr in rates.seen:
        assert lr == pytest.approx(expected_lr(steps)), steps


@pytest.mark.parametrize("steps_per_call", [1, 4])
def test_density_module_steps_the_schedule_after_every_optimizer_step(tmp_path, steps_per_call):
    """Lightning's loop, and groups of 4 optimizer steps per Lightning batch (argen.modules.amortized)."""
    torch.manual_seed(0)
    module = DensityModule(
        MADE((1, 4, 4), hidden_sizes=[8]),
        optimizer=partial(torch.optim.Adam, lr=LR),
        scheduler=SCHEDULE,
        scheduler_interval="step",
        steps_per_call=steps_per_call,
    )
    rates = fit(tmp_path, module, RandomLevels(batch_size=10), max_steps=TOTAL + 2)
    assert rates.seen[-1][0] == TOTAL + 2  # 11 batches an epoch: still in the first two epochs
    for steps, lr in rates.seen:
        assert lr == pytest.approx(expected_lr(steps)), steps


def test_a_wrong_interval_is_refused_when_the_module_is_built():
    with pytest.raises(ValueError, match="scheduler_interval must be one of"):
        TextModule(
            CharTransformer(5, context_size=4, dim=8, num_layers=1, num_heads=1),
            scheduler_interval="batch",
        )


# --------------------------------------------------------------------------- weight decay


def test_only_matrices_are_decayed():
    torch.manual_seed(0)
    net = CharTransformer(11, context_size=8, dim=16, num_layers=2, num_heads=2)
    groups = matrix_groups(net.parameters(), 0.1)
    decayed, kept = ({id(p) for p in group["params"]} for group in groups)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    for name, parameter in net.named_parameters():
        is_vector = name.endswith("bias") or parameter.dim() < 2
        assert (id(parameter) in kept) == is_vector, name
        assert (id(parameter) in decayed) != is_vector, name
    norms = [m for m in net.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and all(id(m.weight) in kept for m in norms)  # LayerNorm gains never decay
    embeddings = [m for m in net.modules() if isinstance(m, nn.Embedding)]
    assert embeddings and all(id(m.weight) in decayed for m in embeddings)  # as nanoGPT

    optimizer = decay_matrices(net.parameters(), "torch.optim.AdamW", 0.1, lr=1e-3)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    assert all(g["lr"] == 1e-3 for g in optimizer.param_groups)
    with pytest.raises(ValueError, match="not an optimizer class"):
        decay_matrices(net.parameters(), "torch.nn.Linear")


def test_decay_only_moves_matrices():
    """One AdamW step with a zero gradient: only weight decay acts, and only on matrices."""
    layer = nn.Linear(3, 2)
    nn.init.ones_(layer.bias)
    optimizer = decay_matrices(layer.parameters(), torch.optim.AdamW, 0.5, lr=0.1)
    before = layer.weight.detach().clone()
    for parameter in layer.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    assert torch.allclose(layer.weight, before * (1 - 0.1 * 0.5))
    assert torch.equal(layer.bias, torch.ones(2))


# ------------------------------------------------------------------------------- configs


@pytest.mark.parametrize("experiment", ["step_schedule/char_transformer", "step_schedule/char_rnn"])
def test_text_experiments_build_a_per_step_schedule(experiment):
    """The experiment files compose, and their optimizer and scheduler build and step per step."""
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}"])
    module_cfg = cfg.model.module
    assert module_cfg.scheduler_interval == "step"
    assert module_cfg.scheduler.total_steps == cfg.trainer.max_steps
    params = [nn.Parameter(torch.zeros(4, 4)), nn.Parameter(torch.zeros(4))]
    optimizer = instantiate(module_cfg.optimizer)(params)
    scheduler = instantiate(module_cfg.scheduler)(optimizer)
    peak = module_cfg.optimizer.lr
    assert optimizer.param_groups[0]["lr"] < peak  # warming up
    for _ in range(cfg.trainer.max_steps):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(peak * module_cfg.scheduler.min_ratio)
    if experiment.endswith("char_transformer"):
        assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
