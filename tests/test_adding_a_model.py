"""A model is two files (README, "Adding a model"): FVSBN's module and config copied under a new
name, with only the names changed, are picked up by the registry, train.py's config checks, the
comparison sweep, ``train.py --help``, ``tests/test_registered_models.py -k <name>`` and
``train.py model=<name> debug=quick``, with no other edit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from argen.core.errors import ConfigError
from argen.training.config_checks import check_config
from argen.training.registry import registered_models
from argen.training.resolvers import register_resolvers
from tests.conftest import DATA_DIR, ROOT

NAME, CLASS = "toy_fvsbn", "ToyFVSBN"


def copy_fvsbn(package: Path, conf: Path, module_path: str) -> None:
    """``<package>/<NAME>.py`` and ``<conf>/model/<NAME>.yaml``: FVSBN's two files, renamed."""
    source = (ROOT / "argen" / "models" / "fvsbn.py").read_text()
    (package / f"{NAME}.py").write_text(source.replace("FVSBN", CLASS))
    config = (ROOT / "conf" / "model" / "fvsbn.yaml").read_text()
    config = config.replace("name: fvsbn", f"name: {NAME}")
    config = config.replace("argen.models.fvsbn.FVSBN", f"{module_path}.{CLASS}")
    (conf / "model" / f"{NAME}.yaml").write_text(config)


@pytest.fixture
def toy_conf(tmp_path, monkeypatch) -> Path:
    """A copy of conf/ with the toy model's config; its module in a folder on ``sys.path``."""
    conf, package = tmp_path / "conf", tmp_path / "models"
    shutil.copytree(ROOT / "conf", conf)
    package.mkdir()
    copy_fvsbn(package, conf, module_path=NAME)
    monkeypatch.syspath_prepend(str(package))
    return conf


def compose_toy(conf: Path, *overrides: str):
    register_resolvers()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_the_registry_the_config_checks_and_the_sweep_pick_up_a_copied_model(toy_conf):
    toy = registered_models(toy_conf)[NAME]
    assert toy.net_target == f"{NAME}.{CLASS}"
    assert toy.capabilities == registered_models(ROOT / "conf")["fvsbn"].capabilities
    assert toy.capabilities.binary_only

    cfg = compose_toy(toy_conf, f"model={NAME}", "debug=quick")
    assert NAME in cfg.hydra.runtime.choices.model
    with open_dict(cfg):
        del cfg["hydra"]
    check_config(cfg)  # builds the network for binarized MNIST

    with pytest.raises(ConfigError, match=f"model={NAME} cannot model data=mnist: {CLASS} models"):
        check_config(compose_toy(toy_conf, f"model={NAME}", "data=mnist"))
    with pytest.raises(ConfigError, match=f"model={NAME} models images"):
        check_config(compose_toy(toy_conf, f"model={NAME}", "data=tinyshakespeare"))

    sweep = compose_toy(toy_conf, "experiment=compare_binarized_mnist").hydra.sweeper.params.model
    assert NAME in sweep.split(",") and "fvsbn" in sweep.split(",")


@pytest.fixture
def toy_checkout(tmp_path) -> Path:
    """A copy of the checkout (package, configs, tests, train.py) with the toy model's two files
    added in their places: ``argen/models/<NAME>.py`` and ``conf/model/<NAME>.yaml``."""
    checkout = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("argen", "conf", "tests"):
        shutil.copytree(ROOT / part, checkout / part, ignore=ignore)
    for part in ("train.py", "pyproject.toml"):
        shutil.copy(ROOT / part, checkout / part)
    copy_fvsbn(checkout / "argen" / "models", checkout / "conf", module_path=f"argen.models.{NAME}")
    return checkout


def run_in(checkout: Path, *argv: str) -> subprocess.CompletedProcess:
    """``python argv`` in the copied checkout, whose ``argen`` shadows the installed one."""
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout),
        "ARGEN_DATA_DIR": str(DATA_DIR),
        "ARGEN_LOG_DIR": str(checkout / "logs"),
        "ARGEN_CACHE_DIR": str(checkout / "cache"),
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, *argv], cwd=checkout, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_a_copied_model_is_registered_tested_and_trained_with_no_other_edit(toy_checkout):
    imported = run_in(toy_checkout, "-c", "import argen; print(argen.__file__)")
    assert imported.stdout.strip() == str(toy_checkout / "argen" / "__init__.py")

    help_text = run_in(toy_checkout, "train.py", "--help")
    assert help_text.returncode == 0 and NAME in help_text.stdout

    tests = run_in(
        toy_checkout, "-m", "pytest", "tests/test_registered_models.py", "-k", NAME, "-rA",
        "-p", "no:cacheprovider",
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:]
    passed = [line for line in tests.stdout.splitlines() if "PASSED" in line]
    # The three shared checks on binary images only (it is binary-only), and its declaration.
    assert sum(f"[{NAME}-binary]" in line for line in passed) == 3, tests.stdout[-3000:]
    assert sum(f"[{NAME}]" in line for line in passed) == 1 and len(passed) == 4

    if not (DATA_DIR / "binarized_mnist").exists():
        pytest.skip(f"{DATA_DIR / 'binarized_mnist'} not present")
    trained = run_in(toy_checkout, "train.py", f"model={NAME}", "debug=quick")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert list((toy_checkout / "logs").rglob("summary.json"))
