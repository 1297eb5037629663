"""Train a paper's set-up on the full data through train.py within a time budget; print its NLL.

    ARGEN_DATA_DIR=../shared/data python benchmarks/likelihood.py made_binarized_mnist
    ARGEN_DATA_DIR=../shared/data python benchmarks/likelihood.py nade_binarized_mnist --threads 1

The experiment is ``conf/experiment/<name>.yaml``; training stops at ``--minutes`` (Lightning's
``max_time``) or by early stopping, then the best validation checkpoint is tested. Printed: best
validation and test NLL (nats per example, or per character for text), bits/dim (bits/char), epochs,
wall time, and the target from the paper or the issue. For MADE trained with several masks
(``--override model.module.net.num_masks=8``) the test NLL of the mask mixture is reported and the
single-mask test NLL is computed from the best checkpoint as well.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from argen.report.publish import publish
from argen.training.budget import max_time_of_minutes
from argen.training.summary import is_text, read_summary_file

ROOT = Path(__file__).resolve().parents[1]  # the checkout: its train.py and conf/experiment/

# Targets, in the metric named, from the papers and the issues that ask for these benchmarks.
TARGETS = {
    "made_binarized_mnist": ("test_nll", 88.40, "Germain et al. 2015, 1 mask"),
    "made_paper": ("test_nll", 88.40, "Germain et al. 2015, Table 6, 1 mask"),
    "fvsbn_binarized_mnist": ("test_nll", 97.5, "Larochelle & Murray 2011 report 97.45"),
    "nade_binarized_mnist": ("test_nll", 88.9, "Larochelle & Murray 2011 report 88.86"),
    "char_rnn_tinyshakespeare": ("val_nll", 1.50, "validation nats/char"),
}
EXPERIMENTS = sorted(
    p.relative_to(ROOT / "conf" / "experiment").with_suffix("").as_posix()
    for p in (ROOT / "conf" / "experiment").rglob("*.yaml")
)


def single_mask_test_nll(checkpoint: Path, data_dir: str | None) -> float:
    """Test NLL of a multi-mask MADE checkpoint with its first mask alone."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from argen.training.checkpoint import load_checkpoint
    from argen.training.resolvers import register_resolvers

    register_resolvers()
    module, cfg = load_checkpoint(checkpoint)
    data_cfg = OmegaConf.to_container(cfg.data.datamodule)
    if data_dir:
        data_cfg["data_dir"] = data_dir
    datamodule = instantiate(data_cfg)
    datamodule.setup("test")
    module.net.use_mask(0)
    total, count = 0.0, 0
    with torch.no_grad():
        for x, _ in datamodule.test_dataloader():
            total += -module.net.log_prob(x.float(), num_masks=1).sum().item()
            count += len(x)
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=EXPERIMENTS, help="conf/experiment/<name>")
    parser.add_argument("--minutes", type=float, default=29.0, help="training time budget")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--log-dir", default=str(ROOT / "logs" / "benchmarks"))
    parser.add_argument("--override", action="append", default=[], help="extra train.py override")
    parser.add_argument(
        "--publish",
        type=Path,
        default=None,
        help="copy the run's summary, config and per-epoch NLL to <dir>/<data>/<experiment>/",
    )
    args = parser.parse_args()

    log_dir = Path(args.log_dir) / args.experiment
    overrides = [
        f"experiment={args.experiment}",
        f"trainer.max_time={max_time_of_minutes(args.minutes)}",
        "logger=csv",
        "callbacks.rich_progress_bar=null",
        f"paths.log_dir={log_dir}",
        *args.override,
    ]
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides], check=True, env=env)
    wall = time.perf_counter() - start
    summary_path = max(log_dir.rglob("summary.json"), key=lambda p: p.stat().st_mtime)
    summary = read_summary_file(summary_path)  # any version, text keys renamed
    metric, target, source = TARGETS.get(args.experiment, ("test_nll", None, None))
    text = is_text(summary)
    result = {
        "benchmark": args.experiment,
        "best_val_nll": summary.get("val_nll"),
        "test_nll": summary.get("test_nll"),
        "test_recon_loss": summary.get("test_recon_loss"),
        "test_bits_per_char" if text else "test_bits_per_dim": summary.get("test_bits_per_dim"),
        "unit": "nats/char" if text else "nats/example",
        "epochs": summary["epochs"],
        "train_seconds": summary["train_seconds"],
        "wall_seconds_total": round(wall, 1),
        "train_examples_per_sec": summary.get("train_examples_per_sec"),
        "threads": args.threads or "default",
        "run_dir": summary["output_dir"],
        "target": {"metric": metric, "value": target, "source": source} if target else None,
    }
    masks = next((o.split("=", 1)[1] for o in args.override if "num_masks=" in o), "1")
    if args.experiment.startswith("made") and int(masks) > 1:
        best = next(Path(summary["output_dir"], "checkpoints").glob("best-*.ckpt"))
        result["test_nll_single_mask"] = single_mask_test_nll(
            best, os.environ.get("ARGEN_DATA_DIR")
        )
        result["test_nll_mask_mixture"] = summary["test_nll"]
    if target is not None:
        result["target_met"] = bool(
            summary.get(metric) is not None
            and summary[metric] <= target
            and wall <= args.minutes * 60 + 60
        )
    print(json.dumps(result, indent=2))
    if args.publish is not None:
        print(f"published to {publish(Path(summary['output_dir']), args.experiment, args.publish)}")


if __name__ == "__main__":
    main()
