"""Write the summary of a run whose training and testing finished but whose last step did not.

    python benchmarks/finish_summary.py logs/benchmarks/<experiment>/runs/<run> [--num-samples 4]

For a run whose ``summary.json`` says ``failed`` after testing (for example, the sampling that times
generation crashed), this rebuilds the summary from what the run left: the best checkpoint is
tested again on the whole test split (exact, so the NLL equals the one the run printed), and
sampling is timed with the same number of samples. Only measured values are written: the epochs
validated and the best validation NLL from the run's CSV log, and the training cost argen's
``Throughput`` callback had measured when ``last.ckpt`` was written (``examples_seen``,
``optimizer_steps``, ``cpu_seconds``, ``wall_seconds`` and ``train_examples_per_sec`` = examples
over those wall seconds). Nothing is filled in from a setting: ``train_seconds`` (the wall time
of the whole fit, which only train.py measures) is absent, and so is anything an older
checkpoint did not record. The failed summary is kept as ``summary.N.json`` and the new one says
``completed_by`` this script.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def csv_facts(run_dir: Path) -> dict:
    rows = list(csv.DictReader(next(run_dir.glob("csv/**/metrics.csv")).open()))
    vals = [float(r["val/nll"]) for r in rows if r.get("val/nll")]
    return {
        "epochs": len(vals),  # completed epochs (each ends with a validation)
        "val_nll": min(vals) if vals else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--num-samples", type=int, default=4)
    args = parser.parse_args()

    import torch

    from argen.evaluate import evaluate
    from argen.models.base import count_parameters
    from argen.training.callbacks.throughput import measured_training
    from argen.training.checkpoint import load_checkpoint
    from argen.training.resolvers import register_resolvers
    from argen.training.summary import read_summary_file, write_summary_file

    register_resolvers()
    run_dir = args.run_dir
    old = read_summary_file(run_dir / "summary.json")
    best = next((run_dir / "checkpoints").glob("best-*.ckpt"))
    metrics = evaluate(best, "test", accelerator="cpu")
    module, cfg = load_checkpoint(best)
    torch.manual_seed(int(cfg.seed))
    _, seconds = module.timed_sample(args.num_samples)
    summary = {
        "model": cfg.model.name,
        "data": cfg.data.name,
        "seed": int(cfg.seed),
        "params": count_parameters(module),
        **csv_facts(run_dir),
        **measured_training(run_dir),
        "output_dir": str(run_dir),
        "status": "finished",
        **{k.replace("/", "_"): v for k, v in metrics.items()},
        "sample_seconds_per_example": seconds,
        "completed_by": "benchmarks/finish_summary.py",
        "original_error": old.get("error"),
    }
    written = write_summary_file(run_dir / "summary.json", summary)  # the earlier one kept
    print(json.dumps(written, indent=2))


if __name__ == "__main__":
    main()
