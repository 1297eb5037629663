"""Write the summary of a run whose training and testing finished but whose last step did not.

    python benchmarks/finish_summary.py logs/benchmarks/<experiment>/runs/<run> [--num-samples 4]

For a run whose ``summary.json`` says ``failed`` after testing (for example, the sampling that times
generation crashed), this rebuilds the summary from what the run left: the best checkpoint is
tested again on the whole test split (exact, so the NLL equals the one the run printed), sampling is
timed with the same number of samples, and epochs and throughput come from the run's CSV log
(``train_examples_per_sec``: the mean of the per-epoch values; ``train_seconds``: the
``trainer.max_time`` the run was given, which is when a budgeted run stops). The failed summary is kept as ``summary.N.json`` and the new one says
``completed_by`` this script.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def time_to_seconds(max_time: str | None) -> float | None:
    """Lightning's ``"DD:HH:MM:SS"`` as seconds."""
    if not max_time:
        return None
    days, hours, minutes, seconds = (int(v) for v in str(max_time).split(":"))
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def csv_facts(run_dir: Path) -> dict:
    rows = list(csv.DictReader(next(run_dir.glob("csv/**/metrics.csv")).open()))
    rates = [float(r["train/examples_per_sec"]) for r in rows if r.get("train/examples_per_sec")]
    vals = [float(r["val/nll"]) for r in rows if r.get("val/nll")]
    return {
        "epochs": len(vals),  # completed epochs (each ends with a validation)
        "train_examples_per_sec": sum(rates) / len(rates) if rates else None,
        "val_nll": min(vals) if vals else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--num-samples", type=int, default=4)
    args = parser.parse_args()

    import torch
    from omegaconf import OmegaConf

    from argen.checkpoint import load_checkpoint
    from argen.evaluate import evaluate
    from argen.resolvers import register_resolvers
    from argen.run import count_parameters, keep_previous_summary

    register_resolvers()
    run_dir = args.run_dir
    old = json.loads((run_dir / "summary.json").read_text())
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
        "train_seconds": time_to_seconds(OmegaConf.select(cfg, "trainer.max_time")),
        "output_dir": str(run_dir),
        "status": "finished",
        **{k.replace("/", "_"): v for k, v in metrics.items()},
        "sample_seconds_per_example": seconds,
        "completed_by": "benchmarks/finish_summary.py",
        "original_error": old.get("error"),
    }
    keep_previous_summary(run_dir / "summary.json")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
