"""Shared fixtures: where the real data is, and how to run train.py in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("ARGEN_DATA_DIR", ROOT.parent / "shared" / "data"))

# Small, fast runs: tiny slices, no progress bar, one epoch.
QUICK = [
    "data.datamodule.max_examples=300",
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "callbacks.rich_progress_bar=null",
    "callbacks.image_logger.num_images=4",
    "summary.num_samples=2",
]


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported. ``importlib.util.find_spec("a.b")`` raises instead of
    returning None when package ``a`` itself is absent (``hydra_plugins`` without the sweep extra)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def needs_sweep_extra(module: str):
    """Skip (with the install command as the reason) unless the ``sweep`` extra provides ``module``;
    marked ``sweep`` so CI can run these tests again after installing the extra."""
    skip = pytest.mark.skipif(
        not is_installed(module),
        reason=f"{module} missing: the 'sweep' extra is not installed (pip install -e \".[sweep]\")",
    )

    def mark(test):
        return pytest.mark.sweep(skip(test))

    return mark


def needs_data(*parts: str):
    return pytest.mark.skipif(
        not DATA_DIR.joinpath(*parts).exists(), reason=f"{DATA_DIR.joinpath(*parts)} not present"
    )


def run_train(
    tmp_path: Path,
    *overrides: str,
    check: bool = True,
    cwd: Path | None = None,
    full_error: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``python train.py`` with outputs under ``tmp_path``; W&B offline, no network. With
    ``full_error=False`` it runs as a user does (no ``HYDRA_FULL_ERROR``: errors in one line)."""
    env = {
        **os.environ,
        "ARGEN_DATA_DIR": str(DATA_DIR),
        "ARGEN_CACHE_DIR": str(tmp_path / "cache"),
        "ARGEN_LOG_DIR": str(tmp_path / "logs"),
        "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
        "WANDB_SILENT": "true",
        "HYDRA_FULL_ERROR": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    if not full_error:
        del env["HYDRA_FULL_ERROR"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *overrides],
        cwd=cwd or tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"train.py failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def read_summaries(tmp_path: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "logs").rglob("summary.json"))]


@pytest.fixture(autouse=True)
def no_shared_wandb_service():
    """W&B stores its service's address in ``WANDB_SERVICE`` once a test starts a run in this
    process; every subprocess started afterwards would then join that one long-lived service, which
    keeps a SIGKILLed job's run id registered ("run ID ... is in use" for the resumed job). Each
    ``train.py`` a test starts gets a service of its own, as a job of a user's does."""
    os.environ.pop("WANDB_SERVICE", None)
    yield
    os.environ.pop("WANDB_SERVICE", None)


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny tensors run far faster on one thread, above all on a shared 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_in_process(tmp_path: Path, *overrides: str) -> dict:
    """Compose conf/train.yaml with ``overrides`` and run ``argen.training.run.train`` in this process."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from argen.training.resolvers import register_resolvers
    from argen.training.run import train

    register_resolvers()
    os.environ.setdefault("WANDB_MODE", "offline")
    output_dir = tmp_path / "run"
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"paths.data_dir={DATA_DIR}",
                f"paths.cache_dir={tmp_path / 'cache'}",
                f"paths.output_dir={output_dir}",
                *overrides,
            ],
            return_hydra_config=True,
        )
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return train(cfg)
