"""Where packing pays: a single-mask MADE's training step with dense masked layers against packed
ones (``argen.models.packed_linear``), by layer size, in one process, interleaved.

Each row builds the two forms of the same MADE (same weights), times the same plain loop
(zero_grad, ``training_loss``, backward, Adam step) alternately, and reports the fastest step of
each (the minimum resists other load better than the median). Packing adds a few calls per layer
(four bands), so small layers lose and large ones gain; ``PACK_MIN_WEIGHTS`` in
``argen/models/made.py``, the size from which ``linear_impl=auto`` packs, was set from this table.
Do not take numbers while other jobs use the machine.

    python benchmarks/made_packing.py [--threads 1] [--steps 100]
"""

from __future__ import annotations

import argparse
import time

import torch

from argen.models.made import MADE, PACK_MIN_WEIGHTS
from argen.training.cpu_memory import keep_freed_memory

# (shape, hidden units, batch): around the size where packing starts to pay, up to the paper's
SIZES = [
    ((1, 8, 8), 50, 20),
    ((1, 16, 16), 100, 100),
    ((1, 28, 28), 100, 100),
    ((1, 28, 28), 250, 100),
    ((1, 28, 28), 500, 100),
    ((1, 28, 28), 2000, 100),
]


def fastest_steps(shape, hidden: int, batch: int, steps: int) -> tuple[float, float]:
    """Seconds of the fastest training step, dense then packed."""
    torch.manual_seed(0)
    dense = MADE(shape, hidden_sizes=[hidden], linear_impl="dense")
    packed = MADE(shape, hidden_sizes=[hidden], linear_impl="packed")
    packed.load_state_dict(dense.state_dict())
    x = torch.randint(2, (batch, *shape), generator=torch.Generator().manual_seed(1)).float()
    optimizers = [torch.optim.Adam(net.parameters(), lr=1e-4) for net in (dense, packed)]
    best = [float("inf"), float("inf")]
    for step in range(steps + 5):
        for index, (net, optimizer) in enumerate(zip((dense, packed), optimizers, strict=True)):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            net.training_loss(x).mean().backward()
            optimizer.step()
            if step >= 5:  # warm-up
                best[index] = min(best[index], time.perf_counter() - start)
    return best[0], best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per form and size")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as train.py does on a CPU
    keep_freed_memory()
    print(
        f"threads {args.threads}; linear_impl=auto packs layers of >= {PACK_MIN_WEIGHTS:,} weights"
    )
    print("| data | hidden | batch | first layer's weights | dense (ms) | packed (ms) | speed-up |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for shape, hidden, batch in SIZES:
        dense, packed = fastest_steps(shape, hidden, batch, args.steps)
        dims = shape[0] * shape[1] * shape[2]
        print(
            f"| {'x'.join(map(str, shape))} | {hidden} | {batch} | {dims * hidden:,} | "
            f"{1e3 * dense:.2f} | {1e3 * packed:.2f} | {dense / packed:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
