"""A run prints no traceback it did not fail by: the progress bar's redraw thread keeps working while
``argen.modules.amortized`` runs a group of steps with only the step-hook callbacks in ``trainer.callbacks``.

The failure was intermittent (a redraw had to fall inside a group); here steps are slowed down
inside the group so that the redraw thread, which wakes every ``1/refresh_rate`` seconds, lands
there in every run.
"""

from __future__ import annotations

import copy
import functools
import os
import pickle
import subprocess
import sys
import threading
import time

import lightning as L
import pytest
import torch

from argen.models.made import MADE
from argen.modules.density import DensityModule
from argen.training.callbacks.progress import UNLIMITED, ThrottledRichProgressBar, TrainerSeenByBar
from tests.conftest import DATA_DIR, ROOT, needs_data
from tests.test_amortized_steps import SHAPE, RandomLevels

NOISE = ("Traceback", "Exception in thread")


class SlowSteps(L.Callback):
    """Sleeps at every optimizer step: inside a group, where the bar is out of the callback list.
    (``train.py`` takes it as ``+callbacks.slow_steps._target_=<this class>``.)"""

    def __init__(self, seconds: float = 0.015) -> None:
        self.seconds = seconds

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        time.sleep(self.seconds)


class RenderEveryStep(L.Callback):
    """Draws the bar (every column, as the redraw thread does) at every optimizer step."""

    def __init__(self, bar: ThrottledRichProgressBar) -> None:
        self.bar = bar
        self.renders_outside_list = 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.bar.progress is not None and self.bar.train_progress_bar_id is not None:
            self.bar.progress.get_renderable()
            self.renders_outside_list += self.bar not in trainer.callbacks


def fit(bar: ThrottledRichProgressBar, *callbacks: L.Callback, **options) -> L.Trainer:
    """Two epochs of a tiny MADE in groups of 4 steps (11 batches an epoch)."""
    L.seed_everything(0, verbose=False)
    module = DensityModule(
        MADE(SHAPE, hidden_sizes=[8]),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-2),
        steps_per_call=4,
    )
    trainer = L.Trainer(
        **{
            "max_epochs": 2,
            "accelerator": "cpu",
            "logger": False,
            "enable_checkpointing": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "callbacks": [bar, *callbacks],
            **options,
        }
    )
    trainer.fit(module, datamodule=RandomLevels(batch_size=10))
    return trainer


def test_bar_draws_while_a_group_of_steps_runs():
    bar = ThrottledRichProgressBar(min_interval=0)
    drawer = RenderEveryStep(bar)
    fit(bar, drawer)
    assert drawer.renders_outside_list >= 20, "the draws must happen inside groups of steps"


def test_redraw_thread_raises_nothing(monkeypatch):
    failures: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    for _ in range(3):
        fit(ThrottledRichProgressBar(min_interval=0, refresh_rate=1000), SlowSteps(0.005))
    assert failures == []


def test_the_bars_view_of_the_trainer_copies_and_pickles():
    """Lightning copies and pickles callbacks (spawned processes): the view must survive both."""
    bar = ThrottledRichProgressBar()
    view = TrainerSeenByBar(L.Trainer(max_epochs=3, logger=False), bar)
    assert view.progress_bar_callback is bar and view.max_epochs == 3
    for copied in (copy.deepcopy(view), pickle.loads(pickle.dumps(view))):
        assert copied.max_epochs == 3
        assert isinstance(copied.progress_bar_callback, ThrottledRichProgressBar)


def test_unlimited_epochs_are_shown_as_such():
    bar = ThrottledRichProgressBar()
    fit(bar, max_epochs=-1, max_steps=12)  # Lightning's "no epoch limit"; stopped by steps
    description = bar.progress.tasks[bar.train_progress_bar_id].description
    assert description.split() == ["Epoch", f"1/{UNLIMITED}"]
    bounded = ThrottledRichProgressBar()
    fit(bounded, max_epochs=2)
    assert bounded.progress.tasks[bounded.train_progress_bar_id].description.split() == [
        "Epoch",
        "1/1",
    ]


@pytest.mark.slow
@needs_data("binarized_mnist")
@pytest.mark.parametrize("model", ["made", "nade"])
def test_train_py_with_the_default_bar_prints_no_traceback(tmp_path, model):
    """``train.py`` as a user runs it (default progress bar, no HYDRA_FULL_ERROR), with steps
    slowed inside groups of 2 so that redraws (every 10 ms) fall there: a group that starts right
    after the bar's update at the end of the one before gives the failure its chance (3 groups
    an epoch). Before the fix, one run of each model printed the traceback."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(
        ARGEN_DATA_DIR=str(DATA_DIR),
        ARGEN_CACHE_DIR=str(tmp_path / "cache"),
        ARGEN_LOG_DIR=str(tmp_path / "logs"),
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
    )
    size = "hidden_sizes=[32]" if model == "made" else "hidden_size=16"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            f"model={model}",
            f"model.module.net.{size}",
            "debug=quick",
            "trainer.accelerator=cpu",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=6",
            "data.datamodule.batch_size=16",
            "model.module.steps_per_call=2",
            "callbacks.image_logger.num_images=0",
            "summary.num_samples=0",
            "+callbacks.slow_steps._target_=tests.test_no_spurious_output.SlowSteps",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert not any(word in output for word in NOISE), output[-3000:]
