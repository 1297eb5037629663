"""Every ``python train.py ...`` command in README.md's code blocks composes: Hydra's compose API
builds its config (every config-group choice of a sweep, from ``-m`` lists or an experiment's own
``hydra.sweeper.params``) and the checks train.py runs before loading data pass (model fits data,
everything resolves, numbers in range, the network builds). Nothing is trained."""

from __future__ import annotations

import itertools
import re
import shlex

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from argen.training.config_checks import check_config
from argen.training.resolvers import register_resolvers
from tests.conftest import ROOT, is_installed

README = ROOT / "README.md"
# Flags that change what train.py does with the config, not the config itself.
FLAGS = {"-m", "--multirun", "--help", "--cfg", "job", "hydra", "all", "--resolve", "..."}
# Overrides that need a plugin of the optional `sweep` extra.
PLUGINS = {"hparams_search=": "hydra_plugins.hydra_optuna_sweeper", "hydra/launcher=slurm": (
    "hydra_plugins.hydra_submitit_launcher"
)}  # fmt: skip


def readme_commands() -> list[str]:
    """The ``python train.py`` lines of README.md's fenced code blocks, comments removed."""
    commands, in_block = [], False
    for line in README.read_text().splitlines():
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        text = re.sub(r"\s+#.*$", "", line).strip()
        if in_block and text.startswith("python train.py"):
            commands.append(text)
    return commands


def expand(key: str, value: str) -> list[str]:
    """A sweep's values of ``key``: ``a,b,c`` -> three for a config group (each composes its own
    files), the first for any other key (a seed list composes alike); lists, ranges and quoted
    values stay whole."""
    if "," not in value or any(c in value for c in "[](){}'\""):
        return [value]
    values = value.split(",")
    return values if (ROOT / "conf" / key).is_dir() else values[:1]


def jobs(command: str) -> list[list[str]]:
    """The override lists of every job ``command`` runs (one for a single run); placeholders such
    as ``<run>`` become a plain word."""
    tokens = [re.sub(r"<[^<>]*>", "placeholder", t) for t in shlex.split(command)[2:]]
    overrides = [t for t in tokens if t not in FLAGS]
    choices = []
    for override in overrides:
        key, _, value = override.partition("=")
        choices.append([f"{key}={v}" for v in expand(key, value)])
    return [list(job) for job in itertools.product(*choices)]


def checked(overrides: list[str]) -> list[list[str]]:
    """Compose ``overrides``, run train.py's config checks, and return the jobs of the sweep the
    composed config itself declares (an experiment's ``hydra.sweeper.params``), if any."""
    cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    params = cfg.hydra.sweeper.get("params") or {}
    with open_dict(cfg):
        del cfg["hydra"]
    check_config(cfg)
    given = {o.partition("=")[0] for o in overrides}
    sweep = [[f"{k}={v}" for v in expand(k, str(vs))] for k, vs in params.items() if k not in given]
    return [overrides + list(job) for job in itertools.product(*sweep)] if sweep else []


COMMANDS = readme_commands()


def test_the_readme_has_train_commands():
    assert len(COMMANDS) >= 10
    assert "python train.py model=made" in COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_composes(command, monkeypatch, tmp_path):
    for needle, plugin in PLUGINS.items():
        if needle in command and not is_installed(plugin):
            pytest.skip(f"{plugin} missing: the 'sweep' extra is not installed")
    if "hparams_search=" in command:
        # its search space (interval(...)) composes only inside a multirun: tests/test_sweeps.py
        # runs that command's Optuna search for real
        pytest.skip("an Optuna search space composes only in a multirun (run in test_sweeps.py)")
    monkeypatch.setenv("ARGEN_LOG_DIR", str(tmp_path))
    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for overrides in jobs(command):
            for job in checked(overrides):
                assert checked(job) == []
