"""Save and restore the random number generators with every checkpoint.

Shuffling, dynamic binarization, order-agnostic orderings and sampling all draw from the global
generators. Restoring them with the weights makes a run that was killed and resumed from
``last.ckpt`` continue exactly as the uninterrupted run would have (on the CPU).
"""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch


class RNGState(L.Callback):
    """Checkpoints the Python, NumPy, torch (and CUDA) generator states."""

    def state_dict(self) -> dict:
        state = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state(),
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        torch.set_rng_state(state_dict["torch"])
        name, keys, pos, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        random.setstate(_as_python_state(state_dict["python"]))
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


def _numpy_state() -> tuple:
    """NumPy's legacy state with the key array as a list (weights-only loading refuses arrays)."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return name, keys.tolist(), int(pos), int(has_gauss), float(cached)


def _as_python_state(state):
    """``random.setstate`` wants nested tuples; a weights-only load may hand back lists."""
    version, internal, gauss = state
    return version, tuple(internal), gauss
