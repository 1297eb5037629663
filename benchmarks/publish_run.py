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
from pathlib import Path

from argen.report.publish import publish

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--experiment", required=True, help="folder name under results/<data>/")
    parser.add_argument("--to", type=Path, default=ROOT / "results")
    args = parser.parse_args()
    print(publish(args.run_dir, args.experiment, args.to))


if __name__ == "__main__":
    main()
