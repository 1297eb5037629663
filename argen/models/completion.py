"""Image completion: observe the top half of an image, let the model sample the rest."""

from __future__ import annotations

import torch


def top_half_mask(shape: tuple[int, ...], device: torch.device | None = None) -> torch.Tensor:
    """Boolean [H, W] mask of the first H // 2 rows: a prefix in raster order."""
    height, width = shape[-2], shape[-1]
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    mask[: height // 2] = True
    return mask


@torch.no_grad()
def complete_top_half(
    net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, **kwargs
) -> dict[str, torch.Tensor]:
    """``originals``, ``masked`` (the hidden half shown mid-grey) and ``completions`` of ``x``."""
    mask = top_half_mask(x.shape, x.device)
    if y is not None:
        kwargs["y"] = y
    completions = net.complete(x, mask, **kwargs)
    masked = torch.where(mask, x, torch.full_like(x, (net.num_levels - 1) / 2))
    return {"originals": x, "masked": masked, "completions": completions}
