"""DDP on CPU processes (gloo): the same model as one process, exact evaluation, resume after
SIGKILL, the run-directory guard that lets a run's own processes in, and unsafe multirun refused."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from argen.core.errors import ConfigError
from argen.data.distributed import EvalShardSampler, GlobalBatchSampler
from argen.data.image import SPLITS, ImageDataModule
from argen.data.text import TextDataModule
from argen.training.checkpoint import read_checkpoint
from argen.training.run_dir_guard import TOKEN_ENV, TOKEN_FILE, guard_run_dir
from tests.conftest import needs_data, read_summaries, run_train

TWO_PROCESSES = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


# ----------------------------------------------------------------------------- the data order
def test_n_processes_see_the_global_batches_of_one_process():
    dataset = list(range(230))  # 11 full global batches of 20 and one partial batch of 10
    one = GlobalBatchSampler(dataset, 20, seed=7)
    one.set_epoch(3)
    single = [b.tolist() for b in one.global_batches()]
    assert sorted(i for b in single for i in b) == dataset
    for world in (2, 5):
        samplers = [GlobalBatchSampler(dataset, 20, world, rank, seed=7) for rank in range(world)]
        streams = []
        for sampler in samplers:
            sampler.set_epoch(3)
            stream = list(sampler)
            assert len(stream) == len(sampler)
            # the per-process DataLoader cuts the stream into batches of 20 / world
            streams.append(
                [stream[i : i + 20 // world] for i in range(0, len(stream), 20 // world)]
            )
        assert len({len(s) for s in streams}) == 1, "every process takes as many steps"
        steps = [sum((s[k] for s in streams), []) for k in range(len(streams[0]))]
        assert steps == single, f"{world} processes: each step's examples are one process's"


def test_the_order_depends_on_seed_and_epoch_only():
    sampler = GlobalBatchSampler(range(50), 10, seed=1)
    torch.manual_seed(0)
    first = list(sampler)
    torch.rand(1000)  # sampling images on rank 0 moves the global generator
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(GlobalBatchSampler(range(50), 10, seed=2)) != first


def test_a_partial_batch_smaller_than_the_processes_is_left_to_every_process():
    samplers = [GlobalBatchSampler(range(41), 20, 4, rank) for rank in range(4)]
    assert [len(s) for s in samplers] == [10, 10, 10, 10]  # the lone 41st example is skipped
    assert sorted(i for s in samplers for i in s) == sorted(samplers[0].order()[:40].tolist())


class CountingImages(ImageDataModule):
    """46 one-channel 2x2 images whose first pixel is their index."""

    shape, num_levels = (1, 2, 2), 256

    def load_splits(self, splits=SPLITS):
        images = torch.zeros(46, 1, 2, 2, dtype=torch.uint8)
        images[:, 0, 0, 0] = torch.arange(46, dtype=torch.uint8)
        return {split: (images, None) for split in splits}


def steps_of(make_loader, world: int) -> list[list[int]]:
    """Each optimizer step's examples over ``world`` processes, from their training loaders."""
    per_rank = [
        [x.flatten(1)[:, 0].tolist() for x, *_ in make_loader(rank)] for rank in range(world)
    ]
    assert len({len(batches) for batches in per_rank}) == 1, "every process takes as many steps"
    return [sum((batches[k] for batches in per_rank), []) for k in range(len(per_rank[0]))]


def test_the_datamodules_give_two_processes_the_batches_of_one(tmp_path):
    """batch_size is the global batch for images and text alike."""

    def images(rank: int, world: int):
        dm = CountingImages(batch_size=10)
        dm.setup("fit")
        dm.trainer = SimpleNamespace(world_size=world, global_rank=rank) if world > 1 else None
        loader = dm.train_dataloader()
        assert loader.batch_size == 10 // world
        return loader

    single = steps_of(lambda rank: images(rank, 1), 1)
    assert [len(step) for step in single] == [10, 10, 10, 10, 6]
    assert steps_of(lambda rank: images(rank, 2), 2) == single

    text = tmp_path / "corpus.txt"
    text.write_text("".join(chr(ord("a") + i % 26) for i in range(400)))

    def windows(rank: int, world: int):
        dm = TextDataModule(str(tmp_path), path=str(text), seq_len=1, batch_size=8)
        dm.setup()
        dm.trainer = SimpleNamespace(world_size=world, global_rank=rank) if world > 1 else None
        return [(x,) for x in dm.train_dataloader()]

    single = steps_of(lambda rank: windows(rank, 1), 1)
    assert len(single[0]) == 8
    assert steps_of(lambda rank: windows(rank, 2), 2) == single


def test_a_global_batch_that_does_not_split_evenly_is_refused():
    with pytest.raises(ConfigError, match="batch_size=10 is the global batch.*multiple of 4"):
        GlobalBatchSampler(range(50), 10, 4, 0)


# ---------------------------------------------------------------------- the run-directory guard
def test_the_processes_lightning_starts_pass_the_guard_and_other_commands_do_not(
    tmp_path, monkeypatch
):
    run = tmp_path / "run"
    for name in (TOKEN_ENV, "LOCAL_RANK", "RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    guard_run_dir(run, "made", "binarized_mnist", None)  # rank 0: a new directory, claimed
    token = (run / TOKEN_FILE).read_text().strip()
    assert token and token == os.environ[TOKEN_ENV]
    (run / "checkpoints").mkdir()  # what rank 0 writes before Lightning starts rank 1

    monkeypatch.setenv("LOCAL_RANK", "1")  # rank 1, relaunched with rank 0's environment
    guard_run_dir(run, "made", "binarized_mnist", None)
    monkeypatch.setenv(TOKEN_ENV, "another-run")  # a process of another run
    with pytest.raises(ConfigError, match="already holds a run"):
        guard_run_dir(run, "made", "binarized_mnist", None)
    monkeypatch.setenv(TOKEN_ENV, token)
    monkeypatch.setenv("LOCAL_RANK", "0")  # the same command typed again in rank 0's shell
    with pytest.raises(ConfigError, match="already holds a run"):
        guard_run_dir(run, "made", "binarized_mnist", None)
    guard_run_dir(run, "made", "binarized_mnist", "auto")  # resuming claims it anew
    assert (run / TOKEN_FILE).read_text().strip() != token

    monkeypatch.delenv(TOKEN_ENV)
    monkeypatch.setenv("RANK", "3")  # torchrun's rank 3: rank 0 alone checks
    guard_run_dir(run, "made", "binarized_mnist", None)


# ------------------------------------------------------------ one process or two, end to end
def last_parameters(folder: Path) -> dict[str, torch.Tensor]:
    (path,) = (folder / "logs").rglob("last.ckpt")
    return read_checkpoint(path)["state_dict"]


def assert_same_model(one: Path, two: Path) -> None:
    a, b = last_parameters(one), last_parameters(two)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
    (x,), (y,) = read_summaries(one), read_summaries(two)
    assert x["epochs"] == y["epochs"]
    assert y["test_nll"] == pytest.approx(x["test_nll"], rel=1e-5)
    assert y["val_nll"] == pytest.approx(x["val_nll"], rel=1e-5)


# 200 examples in global batches of 20: 10 steps an epoch, 20 in all. The image logger samples on
# rank 0 only, which moves rank 0's global generator: the order must not depend on it.
SHORT = [
    "data.datamodule.max_examples=200",
    "data.datamodule.batch_size=20",
    "data.datamodule.eval_batch_size=100",
    "trainer.max_epochs=2",
    "trainer.num_sanity_val_steps=0",
    "logger=csv",
    "callbacks.rich_progress_bar=null",
    "callbacks.image_logger.num_images=2",
    "summary.num_samples=0",
]
MADE = [
    "model=made",
    "model.module.net.hidden_sizes=[32]",
    "model.module.net.ordering=random",
    "model.module.net.num_masks=2",  # masks cycle per step: the same on one process or two
    *SHORT,
]
PIXELCNN = [
    "model=pixelcnn",
    "model.module.net.hidden_channels=8",
    "model.module.net.num_layers=1",
    *SHORT,
]


@pytest.fixture(scope="module")
def made_runs(tmp_path_factory) -> dict[str, Path]:
    """MADE trained 20 steps on one process (global batch 20, in groups of steps_per_call=16
    steps) and on two (10 examples each, one step per call): the README's DDP command."""
    runs = {}
    for name, trainer in (("one", ["trainer=cpu"]), ("two", TWO_PROCESSES)):
        runs[name] = tmp_path_factory.mktemp(f"made_{name}")
        result = run_train(runs[name], *MADE, *trainer)
        if name == "two":
            assert "MEMBER: 2/2" in result.stdout + result.stderr, "two processes must have run"
    return runs


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_made_on_two_processes_is_made_on_one(made_runs):
    assert_same_model(made_runs["one"], made_runs["two"])


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_pixelcnn_on_two_processes_is_pixelcnn_on_one(tmp_path):
    """PixelCNN groups 4 steps per call on one process; DDP takes one step per call
    (argen.data.groups.fallback_reason): the updates must be the same."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    run_train(one, *PIXELCNN, "trainer=cpu")
    result = run_train(two, *PIXELCNN, *TWO_PROCESSES)
    assert "one step per batch in this run (strategy DDPStrategy" in result.stdout + result.stderr
    assert_same_model(one, two)


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_a_ddp_run_killed_by_sigkill_resumes_to_the_uninterrupted_test_nll(made_runs, tmp_path):
    run_dir = tmp_path / "logs" / "runs" / "the_run"
    kill = ["+callbacks.killer._target_=tests.helpers.KillAtStep", "+callbacks.killer.step=14"]
    # every process kills itself at step 14, in the second epoch (as a job's end kills them all)
    result = run_train(
        tmp_path, *MADE, *TWO_PROCESSES, f"hydra.run.dir={run_dir}", *kill, check=False
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert (run_dir / "checkpoints" / "last.ckpt").exists() and not read_summaries(tmp_path)
    run_train(tmp_path, *MADE, *TWO_PROCESSES, f"hydra.run.dir={run_dir}", "ckpt_path=auto")
    (resumed,), (whole,) = read_summaries(tmp_path), read_summaries(made_runs["two"])
    assert resumed["test_nll"] == pytest.approx(whole["test_nll"], rel=1e-6)
    torch.testing.assert_close(
        last_parameters(tmp_path), last_parameters(made_runs["two"]), rtol=1e-5, atol=1e-6
    )


def test_eval_shards_cover_every_example_exactly_once():
    dataset = list(range(301))
    shards = [list(EvalShardSampler(dataset, 4, rank)) for rank in range(4)]
    assert sorted(i for shard in shards for i in shard) == dataset
    assert [len(s) for s in shards] == [76, 75, 75, 75]


EVAL_ONLY = [
    "model=made",
    "model.module.net.hidden_sizes=[32]",
    "data.datamodule.max_examples=301",  # odd: a padded sampler would count one example twice
    "data.datamodule.eval_batch_size=40",
    "train=false",
    "logger=csv",
    "callbacks=none",
    "summary.num_samples=0",
]


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_ddp_on_two_cpu_processes_gives_the_same_test_nll_as_one(tmp_path):
    single, double = tmp_path / "single", tmp_path / "double"
    single.mkdir(), double.mkdir()
    run_train(single, *EVAL_ONLY, "trainer=cpu")
    result = run_train(
        double, *EVAL_ONLY, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"
    )
    assert "MEMBER: 2/2" in result.stdout + result.stderr, "two processes must have run"
    (one,), (two,) = read_summaries(single), read_summaries(double)
    assert torch.isclose(torch.tensor(one["test_nll"]), torch.tensor(two["test_nll"]), rtol=1e-6)
    assert len(read_summaries(double)) == 1, "only rank 0 writes the summary"


@pytest.mark.slow
def test_multirun_with_a_relaunching_strategy_is_refused(tmp_path):
    result = run_train(
        tmp_path,
        "--multirun",
        "seed=1,2",
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "logger=none",
        check=False,
    )
    assert result.returncode != 0
    assert "--multirun with trainer.strategy=ddp" in result.stderr
    assert "ddp_spawn" in result.stderr
    assert not list((tmp_path / "logs").rglob("*.ckpt"))
