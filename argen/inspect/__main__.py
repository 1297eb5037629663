"""Draw what trained models condition on and where they are surprised:
``python -m argen.inspect CKPT [CKPT ...] --out DIR``.

Each checkpoint's views are written as ``<view>.png`` with an ``inspect.json`` (the numbers behind
them, the run that trained the model, the command) to DIR, or to ``DIR/<model>_<data>/`` when
several checkpoints are given; then ``DIR/dependency_comparison.png`` also shows every image
model's dependency map of the centre pixel side by side. Without ``--view`` every view that
applies to a model is drawn. Errors are one line on stderr (exit status 2), before any data is
read or any file written.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from argen.core.errors import OneLineParser, exit_with_error, find_user_error
from argen.inspect.conditionals import InspectError
from argen.inspect.dependency import check_target
from argen.inspect.plots import comparison_figure, save_png
from argen.inspect.text import char_probabilities, first_line
from argen.inspect.views import (
    VIEWS,
    Drawn,
    applicable_views,
    centre_panel,
    char_table,
    check_views,
    draw_views,
    pick_images,
)
from argen.training.checkpoint import load_checkpoint
from argen.training.quiet import quiet_libraries
from argen.training.resolvers import register_resolvers

MANIFEST = "inspect.json"
COMPARISON = "dependency_comparison.png"


def parse_target(text: str) -> tuple[int, int, int]:
    """``"ROW,COL"`` or ``"ROW,COL,COLOUR"`` -> (colour, row, column)."""
    parts = text.split(",")
    if len(parts) not in (2, 3) or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise argparse.ArgumentTypeError(
            f"--target takes ROW,COL or ROW,COL,COLOUR (integers), got {text!r}"
        )
    row, col, *colour = (int(p) for p in parts)
    return (colour[0] if colour else 0, row, col)


def build_parser() -> OneLineParser:
    views = "\n".join(f"  {name:<11} {help_}" for name, help_ in VIEWS.items())
    parser = OneLineParser(
        prog="python -m argen.inspect",
        description=__doc__,
        epilog=f"views:\n{views}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT", help="a .ckpt from train.py")
    parser.add_argument("--out", required=True, help="directory the pictures are written to")
    parser.add_argument(
        "--view",
        action="append",
        choices=list(VIEWS),
        dest="views",
        help="a view to draw (repeatable; default: every view that applies; see below)",
    )
    parser.add_argument(
        "--target",
        action="append",
        type=parse_target,
        dest="targets",
        metavar="ROW,COL[,COLOUR]",
        help="a target pixel of the dependency maps (repeatable; default: three spread out)",
    )
    parser.add_argument(
        "--images", type=int, default=4, help="test images shown and averaged over (default 4)"
    )
    parser.add_argument(
        "--text", help="string the text view scores (default: the test split's first line)"
    )
    parser.add_argument("--data-dir", help="override the data directory stored in the checkpoint")
    parser.add_argument("--split", choices=["test", "val"], default="test")
    return parser


# ------------------------------------------------------------------------------------- data
def datamodule_of(cfg: DictConfig, data_dir: str | None) -> Any:
    """The checkpoint's DataModule, reading from ``data_dir`` when given."""
    data_cfg = OmegaConf.to_container(cfg.data.datamodule)
    if data_dir is not None and "data_dir" in data_cfg:
        data_cfg["data_dir"] = data_dir
    return instantiate(data_cfg)


def load_images(cfg: DictConfig, data_dir: str | None, split: str, count: int) -> torch.Tensor:
    """``count`` images (levels [N, C, H, W]) spread evenly over ``split`` (the first images of
    a split can all be one digit)."""
    datamodule = datamodule_of(cfg, data_dir)
    datamodule.prepare_data()
    datamodule.setup("test" if split == "test" else "validate")
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    return pick_images(loader.dataset, count)


def default_text(cfg: DictConfig, data_dir: str | None, split: str, vocab) -> str:
    """The first full line of ``split`` with a few characters (a "hello"-like prompt)."""
    datamodule = datamodule_of(cfg, data_dir)
    datamodule.prepare_data()
    datamodule.setup("test")
    return first_line(vocab.decode(datamodule.tokens[split][:4000]))


# ------------------------------------------------------------------------------------- runs
def run_overrides(checkpoint: Path) -> list[str] | None:
    """The command-line overrides of the run that wrote ``checkpoint`` (its .hydra record)."""
    record = checkpoint.resolve().parent.parent / ".hydra" / "overrides.yaml"
    if not record.is_file():
        return None
    return [str(o) for o in OmegaConf.load(record)]


def write_manifest(
    folder: Path, cfg: DictConfig, checkpoint: Path, drawn: list[Drawn], command: str
) -> Path:
    overrides = run_overrides(checkpoint)
    manifest: dict[str, Any] = {
        "model": str(cfg.model.name),
        "data": str(cfg.data.name),
        "net": str(cfg.model.module.net._target_).rsplit(".", 1)[-1],
        "run": checkpoint.resolve().parent.parent.name,
        "checkpoint": checkpoint.name,
        "train_command": None if overrides is None else "python train.py " + shlex.join(overrides),
        "inspect_command": command,
        "views": [
            {"view": d.view, "file": f"{d.key}.png", "caption": d.caption, "numbers": d.numbers}
            for d in drawn
        ],
    }
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return path


Plan = tuple[Any, DictConfig, list[str]]  # (LightningModule, its config, the views to draw)


def plan(args: argparse.Namespace, checkpoint: Path) -> Plan:
    """Load ``checkpoint`` and check that the requested views and targets apply to its model:
    (module, cfg, views). Nothing is read or written yet."""
    module, cfg = load_checkpoint(checkpoint)
    net = module.net
    views = check_views(net, args.views or applicable_views(net))
    if not views:
        raise InspectError(f"nothing to draw for {type(net).__name__}")
    shape = getattr(net, "shape", None)
    for target in args.targets or []:
        if shape is None:
            raise InspectError("--target is for image models")
        check_target(shape, target)
    return module, cfg, views


def inspect_checkpoint(
    args: argparse.Namespace, checkpoint: Path, planned: Plan, folder: Path, command: str
) -> torch.Tensor | None:
    """Draw one checkpoint's views into ``folder``; returns the images it used (or None)."""
    module, cfg, views = planned
    net = module.net
    label = f"{cfg.model.name} ({cfg.data.name})"
    images = vocab = text = None
    if any(v in ("dependency", "growth", "surprise") for v in views):
        images = load_images(cfg, args.data_dir, args.split, args.images)
    if "text" in views:
        vocab = module.vocab
        text = args.text or default_text(cfg, args.data_dir, args.split, vocab)
    drawn = draw_views(net, views, label, images, args.targets, vocab, text)
    folder.mkdir(parents=True, exist_ok=True)
    for d in drawn:
        save_png(d.figure, folder / f"{d.key}.png")
        print(f"wrote {folder / f'{d.key}.png'}")
        if d.view == "text":
            steps, total = char_probabilities(net, vocab, text)
            Console().print(char_table(steps, total, d.caption))
    write_manifest(folder, cfg, checkpoint, drawn, command)
    return images


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error(f"--images must be at least 1, got {args.images}")
    quiet_libraries()
    register_resolvers()
    out = Path(args.out)
    several = len(args.checkpoints) > 1
    command = "python -m argen.inspect " + shlex.join(sys.argv[1:] if argv is None else argv)
    panels = []
    try:
        plans = [(Path(p), plan(args, Path(p))) for p in args.checkpoints]
        for checkpoint, planned in plans:
            module, cfg, _ = planned
            folder = out / f"{cfg.model.name}_{cfg.data.name}" if several else out
            images = inspect_checkpoint(args, checkpoint, planned, folder, command)
            if several and images is not None and "dependency" in planned[2]:
                panels.append(centre_panel(module.net, images, str(cfg.model.name)))
    except Exception as exc:
        user_error = exc if isinstance(exc, InspectError) else find_user_error(exc)
        if user_error is None:
            raise
        exit_with_error(user_error)
    if len(panels) > 1:
        title = "What each model's conditional of the centre pixel depends on"
        print(f"wrote {save_png(comparison_figure(panels, title), out / COMPARISON)}")


if __name__ == "__main__":
    main()
