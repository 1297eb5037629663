"""Fixed cost of a training step, with the model taken out: Lightning's loop against plain loops.

A one-parameter model makes the step's own arithmetic negligible, so what is left is the cost of
the loop around it. Measured per step, in one process, best of ``--repeats``:

* lightning: ``Trainer.fit`` with argen's in-memory ``DataLoader`` (no logger, checkpointing or
  progress bar), automatic optimization;
* plain + loader: a ``for`` loop over the same ``DataLoader``, zero_grad / backward / step;
* plain + slicing: a ``for`` loop slicing batches out of one tensor (throughput.py's plain loop);
* loader alone: iterating the ``DataLoader`` and nothing else;
* lightning + Rich bar / + throttled bar: the first, with Lightning's stock Rich progress bar or
  argen's default (redrawn at most every 0.2 s), both drawing as on a terminal (to /dev/null);
* argen, steps_per_call=1 / =K: argen's ``DensityModule`` and in-memory ``ImageDataModule``
  around a one-parameter density, through Lightning's automatic loop or K optimizer steps per
  Lightning step (``argen.modules.amortized``, the MADE/FVSBN default).

The difference between the first two is Lightning's own per-step cost; it bounds the argen/plain
throughput ratio of models whose step is short (MADE, FVSBN on a CPU) unless it is paid once
per K steps, as the last row does.

    python benchmarks/loop_overhead.py [--steps 3000] [--threads 1] [--steps-per-call 16]
"""

from __future__ import annotations

import argparse
import functools
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps-per-call", type=int, default=16)
    args = parser.parse_args()

    import lightning as L
    import torch
    from rich.console import Console
    from rich.table import Table

    from argen.data.image import ImageDataModule
    from argen.data.in_memory import TensorBatches, batch_loader
    from argen.modules.density import DensityModule
    from argen.training.gpu_probe import skip_gpu_probe_without_gpu
    from argen.training.speed import progress_bars

    devnull = open(os.devnull, "w")

    skip_gpu_probe_without_gpu()  # as train.py does
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.bernoulli(torch.full((50_000, 1, 28, 28), 0.3)).to(torch.uint8)
    steps, warmup, batch = args.steps, args.warmup, args.batch_size

    class OneParameter(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(()))

        def loss(self, x: torch.Tensor) -> torch.Tensor:
            return (self.p - x[:, 0, 0, 0].float().mean()) ** 2

        def training_step(self, batch, batch_idx: int) -> torch.Tensor:
            return self.loss(batch[0])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    def loader():
        return batch_loader(TensorBatches(images), batch, shuffle=True)

    def lightning_loop(bar: str = "none") -> float:
        marks: list[float] = []

        class Clock(L.Callback):
            def on_train_batch_start(self, trainer, *rest) -> None:
                if trainer.global_step == warmup:
                    marks.append(time.perf_counter())

            def on_train_end(self, *rest) -> None:
                marks.append(time.perf_counter())

        trainer = L.Trainer(
            accelerator="cpu",
            max_steps=warmup + steps,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=bar != "none",
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            callbacks=[Clock(), *progress_bars(bar, file=devnull)],
        )
        trainer.fit(OneParameter(), train_dataloaders=loader())
        return (marks[1] - marks[0]) / steps

    class OneParameterDensity(torch.nn.Module):
        """A density with one parameter: what is left of a step is the loop around it."""

        num_dims = 784

        def __init__(self) -> None:
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(()))

        def log_prob(self, x: torch.Tensor) -> torch.Tensor:
            return -((self.p - x[:, 0, 0, 0]) ** 2)

    class RandomImages(ImageDataModule):
        name, shape, num_levels = "random", (1, 28, 28), 2

        def load_splits(self, splits=("train", "val", "test")):
            return {split: (images, None) for split in splits}

    def argen_loop(steps_per_call: int) -> float:
        marks: list[tuple[float, int]] = []
        start_at = -(-warmup // steps_per_call) * steps_per_call  # a group boundary

        class Clock(L.Callback):
            def on_train_batch_start(self, trainer, *rest) -> None:
                if not marks and trainer.global_step >= start_at:
                    marks.append((time.perf_counter(), trainer.global_step))

            def on_train_end(self, trainer, *rest) -> None:
                marks.append((time.perf_counter(), trainer.global_step))

        module = DensityModule(
            OneParameterDensity(),
            optimizer=functools.partial(torch.optim.SGD, lr=0.0),
            steps_per_call=steps_per_call,
        )
        trainer = L.Trainer(
            accelerator="cpu",
            max_steps=start_at + steps,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            callbacks=[Clock()],
        )
        trainer.fit(module, datamodule=RandomImages(batch_size=batch))
        (begin, first), (end, last) = marks
        return (end - begin) / (last - first)

    def plain_loop(slicing: bool) -> float:
        model = OneParameter()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        order = torch.randperm(len(images))

        def batches():
            if slicing:
                step = 0
                while True:
                    yield images[order[(step * batch) % (len(images) - batch) :][:batch]], None
                    step += 1
            while True:
                yield from loader()

        start = None
        for step, (x, _) in enumerate(batches()):
            if step == warmup:
                start = time.perf_counter()
            if step == warmup + steps:
                break
            loss = model.loss(x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return (time.perf_counter() - start) / steps

    def loader_alone() -> float:
        count, start = 0, time.perf_counter()
        while count < steps:
            for _ in loader():
                count += 1
                if count == steps:
                    break
        return (time.perf_counter() - start) / steps

    paths = {
        "lightning": lightning_loop,
        "plain + loader": lambda: plain_loop(slicing=False),
        "plain + slicing": lambda: plain_loop(slicing=True),
        "loader alone": loader_alone,
        "lightning + Rich bar": lambda: lightning_loop("rich"),
        "lightning + throttled bar": lambda: lightning_loop("throttled"),
        "argen, steps_per_call=1": lambda: argen_loop(1),
        f"argen, steps_per_call={args.steps_per_call}": lambda: argen_loop(args.steps_per_call),
    }
    best = {name: min(measure() for _ in range(args.repeats)) for name, measure in paths.items()}
    table = Table(title=f"Per-step cost without a model (batch {batch}, {args.threads} thread(s))")
    table.add_column("loop")
    table.add_column("us per step", justify="right")
    for name, seconds in best.items():
        table.add_row(name, f"{seconds * 1e6:.0f}")
    table.add_row(
        "Lightning's own cost", f"{(best['lightning'] - best['plain + loader']) * 1e6:.0f}"
    )
    grouped = best[f"argen, steps_per_call={args.steps_per_call}"]
    table.add_row(
        f"argen's cost with steps_per_call={args.steps_per_call}",
        f"{(grouped - best['plain + loader']) * 1e6:.0f}",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
