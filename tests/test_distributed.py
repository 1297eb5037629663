"""DDP on CPU processes: exact evaluation (no padded duplicates), and unsafe multirun refused."""

from __future__ import annotations

import pytest
import torch

from argen.data.distributed import EvalShardSampler
from tests.conftest import needs_data, read_summaries, run_train


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
