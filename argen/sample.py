"""Draw samples from a checkpoint: ``python -m argen.sample CKPT --num 64 --out samples.png``.

Image models write a PNG grid; text models write the generated text (to ``--out`` or stdout).
Options a model cannot use are refused, and every error is one line on stderr (exit status 2).
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import save_image

from argen.core.errors import OneLineParser
from argen.data.download import DataError
from argen.models.autoencoder import NotADensityError
from argen.models.base import DensityModel
from argen.models.completion import complete_top_half
from argen.training.callbacks.images import to_uint8_grid
from argen.training.checkpoint import CheckpointError, load_checkpoint
from argen.training.resolvers import register_resolvers

# The options that map to a keyword of a model's sampler, by argparse ``dest`` (= keyword name).
SAMPLER_OPTIONS = ("num", "temperature", "length", "prime", "top_k")
# Options every model takes.
COMMON_OPTIONS = ("checkpoint", "seed", "out")
# Defaults chosen per kind of output, so that a text model prints one sample, not 64.
DEFAULT_NUM = {"text": 1, "images": 64, "completions": 8}
DEFAULT_LENGTH = 500
DEFAULT_NROW = 8


class UsageError(Exception):
    """A command line the model cannot honour; ``main`` prints it as one line and exits with 2."""


def flag(dest: str) -> str:
    """The command-line spelling of an argparse ``dest`` (``top_k`` -> ``--top-k``)."""
    return "--" + dest.replace("_", "-")


def keywords(function: Callable[..., Any]) -> set[str]:
    """Names of the keyword arguments ``function`` declares (``**kwargs`` does not count)."""
    return {
        name
        for name, p in inspect.signature(function).parameters.items()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def supported_kwargs(function: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """The subset of ``kwargs`` that ``function`` accepts (not every sampler has a temperature)."""
    accepted = keywords(function)
    return {k: v for k, v in kwargs.items() if v is not None and k in accepted}


@dataclass(frozen=True)
class Mode:
    """What the CLI will do with one checkpoint, and the options that make sense for it.

    ``kind`` is ``"text"``, ``"images"`` or ``"completions"``; ``sampler`` is the model function
    the options are passed to; ``options`` are the argparse dests this model can use; ``what``
    names the model and the kind in error messages.
    """

    kind: str
    sampler: Callable[..., Any]
    options: frozenset[str]
    what: str


def choose_mode(module: L.LightningModule, complete: bool) -> Mode:
    """Decide from the model's own capabilities (its sampler's keywords, whether it can complete
    images, whether it defines a distribution at all) what it can do; ``UsageError`` if nothing."""
    name = type(getattr(module, "net", module)).__name__
    if hasattr(module, "generate_text"):
        if complete:
            raise UsageError(
                f"--complete is for image models; {name} is a text model "
                "(continue a text with --prime instead)"
            )
        sampler = module.generate_text
        options = {*COMMON_OPTIONS, *(keywords(sampler) & set(SAMPLER_OPTIONS))}
        return Mode("text", sampler, frozenset(options), f"{name} (a text model)")
    net = getattr(module, "net", None)
    if not isinstance(net, DensityModel):
        raise UsageError(
            f"{name} defines no distribution over x, so there is nothing to sample; "
            "sample from a density model (fvsbn, nade, made, pixelcnn, ...) instead"
        )
    if complete:
        if not hasattr(net, "complete"):
            raise UsageError(
                f"{name} cannot complete images; completion needs a model with a completion "
                "sampler (any raster image model: pixelcnn, gated_pixelcnn, row_lstm, diagonal_bilstm, pixelsnail, image_transformer)"
            )
        options = {*COMMON_OPTIONS, "num", "complete", "data_dir"}
        options |= keywords(net.complete) & {"temperature"}
        return Mode("completions", net.complete, frozenset(options), f"{name} --complete")
    options = {*COMMON_OPTIONS, "num", "nrow", *(keywords(net.sample) & {"temperature"})}
    if hasattr(net, "complete"):
        options.add("complete")
    return Mode("images", net.sample, frozenset(options), f"{name} (an image model)")


def refuse_unusable_options(args: argparse.Namespace, mode: Mode) -> None:
    """``UsageError`` naming the first option given on the command line that ``mode`` cannot use.

    Every optional option defaults to None (or False), so "given" means "not None/False".
    """
    for dest, value in vars(args).items():
        if value is None or value is False or dest in mode.options:
            continue
        if dest == "data_dir" and "complete" in mode.options:
            raise UsageError("--data-dir is only used with --complete (it reads the test images)")
        usable = ", ".join(flag(d) for d in sorted(mode.options - {"checkpoint"}))
        raise UsageError(f"{flag(dest)} does not apply to {mode.what}; it takes {usable}")


def check_values(args: argparse.Namespace) -> None:
    """``UsageError`` for values no model accepts (checked before the checkpoint is loaded)."""
    positive = {"num": args.num, "length": args.length, "top_k": args.top_k, "nrow": args.nrow}
    for dest, value in positive.items():
        if value is not None and value < 1:
            raise UsageError(f"{flag(dest)} must be at least 1, got {value}")
    t = args.temperature
    if t is not None and not (t > 0 and math.isfinite(t)):
        raise UsageError(f"--temperature must be a positive finite number, got {t}")


def sample_images(
    module: L.LightningModule, num: int, temperature: float | None, nrow: int, out: Path
) -> Path:
    """Write a grid of ``num`` samples to ``out`` (temperature only if the model takes one)."""
    net = module.net
    kwargs = supported_kwargs(net.sample, temperature=temperature)
    images = module.sample(num, **kwargs)
    grid = to_uint8_grid(images, net.num_levels, nrow)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid.permute(2, 0, 1).float() / 255, out)
    return out


def complete_images(
    module: L.LightningModule,
    cfg: DictConfig,
    num: int,
    out: Path,
    data_dir: str | None,
    temperature: float | None = None,
) -> Path:
    """Complete the bottom half of the first ``num`` test images; rows of the PNG: originals,
    observed top halves, completions."""
    data_cfg = OmegaConf.to_container(cfg.data.datamodule)
    if data_dir is not None:
        data_cfg["data_dir"] = data_dir
    datamodule = instantiate(data_cfg)
    datamodule.setup("test")
    test = datamodule.splits["test"]
    x = test.images[:num].float()
    y = None if test.labels is None or not module.conditional else test.labels[:num]
    kwargs = supported_kwargs(module.net.complete, temperature=temperature)
    panels = complete_top_half(module.net, x, y, **kwargs)
    rows = torch.cat([panels["originals"], panels["masked"], panels["completions"]])
    grid = to_uint8_grid(rows, module.net.num_levels, nrow=len(x))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid.permute(2, 0, 1).float() / 255, out)
    return out


def unknown_prime_note(module: L.LightningModule, prime: str | None) -> str | None:
    """One line naming the characters of ``prime`` outside the model's vocabulary (they all
    become its unknown symbol, which the model conditions on but never samples); else None."""
    vocab = getattr(module, "vocab", None)
    unknown = vocab.unknown_chars(prime) if prime and vocab is not None else {}
    if not unknown:
        return None
    chars = ", ".join(repr(c) for c in unknown)
    return (
        f"warning: --prime characters {chars} are not in the model's vocabulary (its training "
        "text has none): each maps to the unknown symbol"
    )


def write_text(module: L.LightningModule, mode: Mode, args: argparse.Namespace) -> None:
    """Generate text with the options the model takes; print it or write it to ``--out``."""
    top_k, vocab_size = args.top_k, getattr(module.net, "vocab_size", None)
    if top_k is not None and vocab_size is not None and top_k > vocab_size:
        raise UsageError(f"--top-k must be at most the vocabulary size {vocab_size}, got {top_k}")
    note = unknown_prime_note(module, args.prime)
    if note:
        print(note, file=sys.stderr)  # stdout stays the generated text alone
    kwargs = supported_kwargs(
        mode.sampler,
        prime=args.prime,
        length=DEFAULT_LENGTH if args.length is None else args.length,
        temperature=args.temperature,
        top_k=top_k,
        num=args.num,
    )
    texts = mode.sampler(**kwargs)
    text = "\n\n".join(texts) if isinstance(texts, list) else str(texts)
    if args.out:
        args.out.write_text(text)
        print(f"Wrote {args.out}")
    else:
        print(text)


def run(args: argparse.Namespace) -> None:
    """Check the options, load the checkpoint, refuse what the model cannot use, then sample."""
    check_values(args)
    register_resolvers()
    # Seeded before loading, as before this CLI refused options: a seed gives the same samples.
    L.seed_everything(args.seed, verbose=False)
    module, cfg = load_checkpoint(args.checkpoint)
    mode = choose_mode(module, args.complete)
    refuse_unusable_options(args, mode)
    if args.num is None:
        args.num = DEFAULT_NUM[mode.kind]
    if mode.kind == "text":
        write_text(module, mode, args)
        return
    if mode.kind == "completions":
        out = args.out or Path(args.checkpoint).with_suffix(".completions.png")
        with torch.no_grad():
            complete_images(module, cfg, args.num, out, args.data_dir, args.temperature)
    else:
        out = args.out or Path(args.checkpoint).with_suffix(".samples.png")
        nrow = DEFAULT_NROW if args.nrow is None else args.nrow
        with torch.no_grad():
            sample_images(module, args.num, args.temperature, nrow, out)
    print(f"Wrote {out}")


def build_parser() -> OneLineParser:
    """The command line; optional options default to None so that "given" can be detected."""
    parser = OneLineParser(prog="python -m argen.sample", description=__doc__)
    parser.add_argument("checkpoint", help="a .ckpt written by train.py")
    parser.add_argument(
        "--num",
        type=int,
        default=None,
        help=f"number of samples (default: {DEFAULT_NUM['text']} for text models, "
        f"{DEFAULT_NUM['images']} images, {DEFAULT_NUM['completions']} completions)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="divide the logits by T > 0 (T < 1 sharper, T > 1 flatter; default 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--nrow",
        type=int,
        default=None,
        help=f"images per row of the grid (default {DEFAULT_NROW})",
    )
    parser.add_argument(
        "--length",
        type=int,
        default=None,
        help=f"characters to generate (text models; default {DEFAULT_LENGTH})",
    )
    parser.add_argument("--prime", default=None, help="priming text (text models)")
    parser.add_argument("--top-k", type=int, default=None, help="top-k sampling (text models)")
    parser.add_argument(
        "--complete",
        action="store_true",
        help="complete the bottom half of --num test images (models that can complete)",
    )
    parser.add_argument("--data-dir", help="data directory for --complete (default: the run's)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output file (default: a PNG next to the checkpoint; text goes to stdout)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point; user errors (bad options, unusable checkpoints or data) exit 2 with one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run(args)
    except (UsageError, CheckpointError, NotADensityError, DataError, ValueError, OSError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message holds
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
