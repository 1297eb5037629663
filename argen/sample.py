"""Draw samples from a checkpoint: ``python -m argen.sample CKPT --num 64 --out samples.png``.

Image models write a PNG grid; text models write the generated text (to ``--out`` or stdout).
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torchvision.utils import save_image

from argen.callbacks.images import to_uint8_grid
from argen.checkpoint import load_checkpoint
from argen.completion import complete_top_half
from argen.resolvers import register_resolvers


def supported_kwargs(function, **kwargs) -> dict:
    """The subset of ``kwargs`` that ``function`` accepts (not every sampler has a temperature)."""
    parameters = inspect.signature(function).parameters
    return {k: v for k, v in kwargs.items() if v is not None and k in parameters}


def sample_images(module, num: int, temperature: float | None, nrow: int, out: Path) -> Path:
    net = module.net
    kwargs = supported_kwargs(net.sample, temperature=temperature)
    images = module.sample(num, **kwargs)
    grid = to_uint8_grid(images, net.num_levels, nrow)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid.permute(2, 0, 1).float() / 255, out)
    return out


def complete_images(module, cfg, num: int, out: Path, data_dir: str | None) -> Path:
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
    panels = complete_top_half(module.net, x, y)
    rows = torch.cat([panels["originals"], panels["masked"], panels["completions"]])
    grid = to_uint8_grid(rows, module.net.num_levels, nrow=len(x))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid.permute(2, 0, 1).float() / 255, out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m argen.sample", description=__doc__)
    parser.add_argument("checkpoint", help="a .ckpt written by train.py")
    parser.add_argument("--num", type=int, default=64, help="number of samples")
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nrow", type=int, default=8, help="images per row of the grid")
    parser.add_argument("--length", type=int, default=500, help="characters (text models)")
    parser.add_argument("--prime", default=None, help="priming text (text models)")
    parser.add_argument("--top-k", type=int, default=None, help="top-k sampling (text models)")
    parser.add_argument(
        "--complete",
        action="store_true",
        help="complete the bottom half of --num test images (PixelCNN models)",
    )
    parser.add_argument("--data-dir", help="data directory for --complete (default: the run's)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    register_resolvers()
    L.seed_everything(args.seed, verbose=False)
    module, cfg = load_checkpoint(args.checkpoint)
    if hasattr(module, "generate_text"):
        kwargs = supported_kwargs(
            module.generate_text,
            prime=args.prime,
            length=args.length,
            temperature=args.temperature,
            top_k=args.top_k,
            num=args.num,
        )
        texts = module.generate_text(**kwargs)
        text = "\n\n".join(texts) if isinstance(texts, list) else str(texts)
        if args.out:
            args.out.write_text(text)
            print(f"Wrote {args.out}")
        else:
            print(text)
        return
    if args.complete:
        if not hasattr(module.net, "complete"):
            raise SystemExit(
                f"{type(module.net).__name__} cannot complete images; "
                "completion needs model=pixelcnn or model=gated_pixelcnn"
            )
        out = args.out or Path(args.checkpoint).with_suffix(".completions.png")
        complete_images(module, cfg, args.num, out, args.data_dir)
        print(f"Wrote {out}")
        return
    out = args.out or Path(args.checkpoint).with_suffix(".samples.png")
    with torch.no_grad():
        sample_images(module, args.num, args.temperature, args.nrow, out)
    print(f"Wrote {out}")


if __name__ == "__main__":
    main()
