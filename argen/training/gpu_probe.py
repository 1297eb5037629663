"""Keep PyTorch from probing for GPUs at every optimizer step on a machine that has none."""

from __future__ import annotations

import os

import torch


def skip_gpu_probe_without_gpu() -> bool:
    """Set ``CUDA_VISIBLE_DEVICES=""`` when no GPU is available; return whether it was set.

    Adam and AdamW ask ``torch.cuda.is_available()`` at every step, and importing Lightning sets
    ``PYTORCH_NVML_BASED_CUDA_CHECK=1``, which answers it through NVML: with CUDA never initialized
    (no GPU) nothing is cached and each step loads the NVIDIA management library again, ~50 us,
    1 % of a MADE step on a CPU. An empty ``CUDA_VISIBLE_DEVICES`` answers at once. Nothing is
    hidden: there is no GPU to see, and a value the user set is kept.
    """
    if "CUDA_VISIBLE_DEVICES" in os.environ or torch.cuda.is_available():
        return False
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    return True
