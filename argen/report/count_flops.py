"""Training FLOPs at each validation of a run recorded before runs counted them.

    python -m argen.report.count_flops results/binarized_mnist/made_paper [RUN_DIR ...]

A run directory (a published run under ``results/``: ``config.yaml`` and ``epochs.csv``) whose
``epochs.csv`` has one row per completed epoch and no ``train_flops`` column gets two columns:
``examples_seen`` (the training examples of the completed epochs: epochs x the training split
that the run's config loads) and ``train_flops`` (that times the FLOPs per example that
``argen.training.flops`` counts on the network the config builds; the count depends only on the
network's shapes, so it is the count the run would have recorded; a MADE config from before
``linear_impl`` is counted with the dense layers it built then). So converged runs made before
FLOP counting (FVSBN, NADE, MADE) join the learning curves against FLOPs. Process CPU seconds
cannot be recovered after the fact and stay absent. A network whose work is all element-wise
(NADE) has no countable FLOPs and is left as it is, with a line saying so.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from pathlib import Path

import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

from argen.core.atomic import atomic_write
from argen.training.flops import flops_per_example
from argen.training.legacy import dense_made_layers, upgrade_targets
from argen.training.resolvers import register_resolvers

EPOCHS_CSV = "epochs.csv"


def count_run(run_dir: Path, data_dir: str) -> str:
    """Add ``examples_seen`` and ``train_flops`` to ``run_dir``'s epochs.csv; a line saying what
    was done."""
    table = run_dir / EPOCHS_CSV
    rows = list(csv.DictReader(table.open()))
    if not rows:
        return f"{run_dir}: {EPOCHS_CSV} has no rows; nothing to count"
    if "train_flops" in rows[0]:
        return f"{run_dir}: already has train_flops; left as it is"
    if "optimizer_steps" in rows[0] or len({r["epoch"] for r in rows}) != len(rows):
        return f"{run_dir}: validates within epochs; only end-of-epoch rows can be counted"
    register_resolvers()
    config = upgrade_targets(yaml.safe_load((run_dir / "config.yaml").read_text()))
    if dense_made_layers(config):
        config["model"]["module"]["net"]["linear_impl"] = "dense"
    config.setdefault("paths", {})["data_dir"] = data_dir
    cfg = OmegaConf.create(config)
    datamodule = instantiate(cfg.data.datamodule)
    datamodule.setup("fit")
    per_example = flops_per_example(instantiate(cfg.model.module), datamodule)
    if per_example is None:
        return f"{run_dir}: no matmul/conv FLOPs countable in its training step; left as it is"
    epoch_examples = len(datamodule.train_dataloader().dataset)
    out = io.StringIO()
    columns = ["epoch", "examples_seen", "train_flops", *[c for c in rows[0] if c != "epoch"]]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        examples = (int(row["epoch"]) + 1) * epoch_examples
        writer.writerow({**row, "examples_seen": examples, "train_flops": examples * per_example})
    atomic_write(table, out.getvalue())
    return (
        f"{run_dir}: {per_example:.4g} FLOPs per example x {epoch_examples} examples an epoch, "
        f"{len(rows)} epochs"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m argen.report.count_flops", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="published run directories")
    args = parser.parse_args(argv)
    data_dir = os.environ.get("ARGEN_DATA_DIR", "data")
    for run_dir in args.runs:
        print(count_run(run_dir, data_dir))


if __name__ == "__main__":
    main()
