"""Copy a finished run's record into a results folder, small files only.

``publish(run_dir, experiment, results)`` writes ``results/<data>/<experiment>/``: ``summary.json``
(as train.py wrote it, read and written by ``argen.training.summary`` at the current version, with
``output_dir`` made relative), ``config.yaml`` (the run's composed
config, which ``argen.compare`` reads to label variants) and ``epochs.csv`` (the run's own, one row
per validation with its cumulative cost; for runs older than that file, validation and training
NLL per epoch from the run's CSV log). ``benchmarks/publish_run.py`` is its command line, and
``benchmarks/likelihood.py --publish`` calls it after a run.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from argen.training.summary import read_summary_file, write_summary_file

EPOCH_COLUMNS = ("val/nll", "val/bits_per_dim", "train/nll", "val/recon_loss", "train/recon_loss")


def epoch_rows(metrics_csv: Path) -> list[dict[str, str]]:
    """One row per epoch with the epoch-level metrics Lightning's CSV logger spread over lines."""
    epochs: dict[int, dict[str, str]] = {}
    with metrics_csv.open() as f:
        for line in csv.DictReader(f):
            if not line.get("epoch"):
                continue
            row = epochs.setdefault(int(line["epoch"]), {"epoch": line["epoch"]})
            for column in EPOCH_COLUMNS:
                if line.get(column):
                    row[column] = line[column]
    return [epochs[e] for e in sorted(epochs) if len(epochs[e]) > 1]  # an epoch cut short has none


def publish(run_dir: Path, experiment: str, results: Path) -> Path:
    """Copy ``run_dir``'s summary, config and per-validation NLL to ``results/<data>/<experiment>``
    and return that folder."""
    summary = dict(read_summary_file(run_dir / "summary.json"))  # any version, read as current
    target = results / summary["data"] / experiment
    target.mkdir(parents=True, exist_ok=True)
    summary["output_dir"] = f"logs/.../{run_dir.name}"  # where it ran; the files are here
    write_summary_file(target / "summary.json", summary, keep_previous=False)
    shutil.copyfile(run_dir / ".hydra" / "config.yaml", target / "config.yaml")
    own = run_dir / "epochs.csv"
    metrics = next(run_dir.glob("csv/**/metrics.csv"), None)
    if own.is_file():
        # written by the run at each validation, with the cumulative examples, steps, FLOPs and
        # CPU/wall seconds the learning curves are drawn against: copied as it is
        shutil.copyfile(own, target / "epochs.csv")
    elif metrics is not None:  # runs from before the run wrote its own epochs.csv
        rows = epoch_rows(metrics)
        columns = ["epoch", *(c for c in EPOCH_COLUMNS if any(c in r for r in rows))]
        with (target / "epochs.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
    return target
