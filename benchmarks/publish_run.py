"""Copy a finished run's record into the repository's results folder, small files only.

    python benchmarks/publish_run.py logs/benchmarks/<experiment>/runs/<run> --experiment NAME

writes ``results/<data>/<NAME>/``: ``summary.json`` (as train.py wrote it, with ``output_dir`` made
relative), ``config.yaml`` (the run's composed config, which ``argen.compare`` reads to label
variants) and ``epochs.csv`` (the run's own, one row per validation with its cumulative cost; for
runs older than that file, validation and training NLL per epoch from the run's CSV log).
``python -m argen.compare results/ --out results/`` then regenerates ``results/README.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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
    summary = json.loads((run_dir / "summary.json").read_text())
    target = results / summary["data"] / experiment
    target.mkdir(parents=True, exist_ok=True)
    summary["output_dir"] = f"logs/.../{run_dir.name}"  # where it ran; the files are here
    (target / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--experiment", required=True, help="folder name under results/<data>/")
    parser.add_argument("--to", type=Path, default=ROOT / "results")
    args = parser.parse_args()
    print(publish(args.run_dir, args.experiment, args.to))


if __name__ == "__main__":
    main()
