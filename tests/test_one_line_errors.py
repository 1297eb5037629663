"""Every error the user can fix is one ``error: ...`` line with exit code 2 (Hydra's composition
errors included), and README's Troubleshooting table quotes each message as it is printed: each
case below makes the error through the code that reports it and checks that its line starts as the
README row it names, a row the table must hold. Changing a message without the table, or the table
without the message, fails here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from argen.core.errors import ConfigError, find_user_error
from argen.data.download import DataError
from argen.training.callbacks.config_in_checkpoint import CONFIG_KEY
from argen.training.checkpoint import CheckpointError, read_checkpoint
from argen.training.compose_errors import composition_errors_in_one_line, describe_composition_error
from argen.training.config_checks import check_config
from argen.training.resolvers import register_resolvers
from tests.conftest import ROOT, run_train

README = ROOT / "README.md"
PLACEHOLDER = re.compile(r"(\.\.\.|<[^>]+>|\b[A-Z]\b)")


def troubleshooting_quotes() -> list[str]:
    """The quoted messages in the first column of README's Troubleshooting table."""
    section = README.read_text().split("\n## Troubleshooting\n", 1)[1].split("\n## ", 1)[0]
    quotes: list[str] = []
    for row in section.splitlines():
        if row.startswith("| `"):
            first_cell = row[2:].split(" | ", 1)[0]
            quotes += re.findall(r"`([^`]+)`", first_cell)
    return quotes


def quote_pattern(quote: str) -> re.Pattern[str]:
    """A README quote as a regex for the start of a message: ``...`` is any text, ``<name>`` and a
    single capital (``model=X``, ``step N``) any value."""
    regex = ""
    for part in PLACEHOLDER.split(quote):
        if part == "...":
            regex += ".*?"
        elif part.startswith("<") and part.endswith(">"):
            regex += ".+?"
        elif re.fullmatch(r"[A-Z]", part):
            regex += r"[^\s=]+?"
        else:
            regex += re.escape(part)
    return re.compile(regex)


def assert_in_readme(quote: str, message: str) -> None:
    """``message`` (as printed, ``error: `` optional) is one line that starts as README's
    ``quote``, and the Troubleshooting table quotes it."""
    line = message.removeprefix("error: ")
    assert "\n" not in line.strip(), f"not one line: {message!r}"
    assert quote in troubleshooting_quotes(), f"README's Troubleshooting table has no `{quote}`"
    assert quote_pattern(quote).match(line), f"{line!r} does not start as README's `{quote}`"


def test_quote_patterns_can_fail():
    pattern = quote_pattern("model=X cannot model data=Y: ... models binary data")
    assert pattern.match("model=made cannot model data=cifar10: MADE models binary data (..)")
    assert not pattern.match("model=made models text, but data=cifar10 is images")
    assert "`Could not override 'model'`" not in README.read_text(), "the old, wrong quote"


# ---------------------------------------------------------------------------- config errors
def composed(*overrides: str) -> DictConfig:
    """The job config of ``overrides``, with Hydra's run-time config set (as train.py sees it)."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def composition_error(*overrides: str) -> str:
    with pytest.raises(Exception) as info:
        composed(*overrides)
    return describe_composition_error(info.value)


def config_error(*overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        check_config(composed(*overrides))
    return str(info.value)


def test_misspelt_group_choice_lists_the_choices():
    line = composition_error("model=madee")
    assert_in_readme("model=X is not a model", line)
    assert "(did you mean made?)" in line and "pixelcnn, pixelsnail, row_lstm" in line
    assert_in_readme("data=X is not a dataset", composition_error("data=cifar"))
    assert_in_readme("experiment=X is not an experiment", composition_error("experiment=nope"))
    line = composition_error("debug=slow")
    assert_in_readme("G=X is not a G choice", line)
    assert line == "debug=slow is not a debug choice; choose one of: quick"


def test_unknown_key_and_unparsable_override():
    line = composition_error("model.module.lrr=1")
    assert_in_readme("Could not override 'K': Key 'K' is not in struct", line)
    assert "+model.module.lrr=1" in line
    line = composition_error("seed=[")
    assert_in_readme("cannot parse the override ...", line)
    assert "'seed=['" in line


@pytest.mark.parametrize(
    ("overrides", "quote"),
    [
        (["seed=-5"], "<key>=<value> is invalid: it must be ..."),
        (["seed=4294967296"], "<key>=<value> is invalid: it must be ..."),
        (["data.datamodule.batch_size=0"], "<key>=<value> is invalid: it must be ..."),
        (["model=char_rnn", "data=binarized_mnist"], "model=X models text, but data=Y is images"),
        (["model.module.optimizer.lr=???"], "<key> must be set"),
        (["model=made", "data=mnist"], "model=X cannot model data=Y: ... models binary data"),
    ],
)
def test_config_checks(overrides, quote):
    assert_in_readme(quote, config_error(*overrides))


def test_multirun_with_a_relaunching_strategy():
    from argen.training.run import refuse_unsafe_multirun

    cfg = composed("hydra.mode=MULTIRUN", "trainer=ddp", "trainer.devices=2")
    with pytest.raises(ConfigError) as info:
        refuse_unsafe_multirun(cfg)
    assert_in_readme("--multirun with trainer.strategy=ddp ... is refused", str(info.value))


def test_text_data_without_a_file():
    from hydra.utils import instantiate

    cfg = composed("model=char_rnn", "data=text")
    check_config(cfg)
    with pytest.raises(Exception) as info:
        instantiate(cfg.data.datamodule)
    error = find_user_error(info.value)  # Hydra wraps it, train.py unwraps it
    assert isinstance(error, DataError)
    assert_in_readme("data=text needs a text file", str(error))


def test_a_valid_seed_passes():
    check_config(composed("seed=0"))
    check_config(composed("seed=4294967295"))


# ---------------------------------------------------------------------------- checkpoints
def checkpoint_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    return str(info.value)


def test_checkpoint_messages(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil, truncated, text = tmp_path / "evil.ckpt", tmp_path / "cut.ckpt", tmp_path / "notes.txt"
    torch.save({"x": Payload()}, evil)
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    text.write_text("not a checkpoint\n")
    assert_in_readme("Checkpoint ... holds Python objects beyond tensors", checkpoint_error(evil))
    assert_in_readme("Checkpoint ... cannot be read", checkpoint_error(truncated))
    for path in (text, Path(sys.executable).resolve()):
        assert_in_readme("Checkpoint ... is not a checkpoint", checkpoint_error(path))


def test_resume_checkpoint_messages(tmp_path):
    from argen.training.run import check_resume_checkpoint, resolve_ckpt_path

    missing = tmp_path / "gone.ckpt"
    cfg = composed("model=made", f"ckpt_path={missing}", f"paths.output_dir={tmp_path}")
    with pytest.raises(ConfigError) as info:
        resolve_ckpt_path(cfg)
    assert_in_readme("ckpt_path=... does not exist", str(info.value))
    nade = tmp_path / "nade.ckpt"
    config = {"model": {"name": "nade"}, "data": {"name": "binarized_mnist"}}
    torch.save({"state_dict": {}, CONFIG_KEY: config}, nade)
    with pytest.raises(ConfigError) as info:
        check_resume_checkpoint(cfg, str(nade))
    assert_in_readme(
        "ckpt_path=... holds a model=A data=B run, but this command asks for ...", str(info.value)
    )


def test_run_directory_messages(tmp_path):
    from argen.training.run_dir_guard import check_run_dir

    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("model:\n  name: made\ndata:\n  name: mnist\n")
    (run_dir / "summary.json").write_text('{"model": "made", "data": "mnist"}')
    for args, quote in (
        (("made", "mnist", None), "<run dir> already holds a run"),
        (("nade", "mnist", "auto"), "<run dir> holds a model=A data=B run, but ..."),
    ):
        with pytest.raises(ConfigError) as info:
            check_run_dir(run_dir, *args)
        assert_in_readme(quote, str(info.value))


# ---------------------------------------------------------------------------- data
def data_error(make: Callable[[], object]) -> str:
    with pytest.raises(DataError) as info:
        make()
    return str(info.value)


def test_data_messages(tmp_path):
    from argen.data.image_npz import check_consistent, read_npz_splits
    from argen.data.text import TINY_SHAKESPEARE_RELPATH, ensure_tiny_shakespeare, read_text

    line = data_error(lambda: ensure_tiny_shakespeare(tmp_path, download=False))
    assert_in_readme("Data file ... is missing and could not be downloaded from ...", line)
    line = data_error(lambda: read_text(tmp_path / "missing.txt"))
    assert_in_readme("Data file ... does not exist", line)
    corrupt = tmp_path / TINY_SHAKESPEARE_RELPATH
    corrupt.parent.mkdir(parents=True)
    corrupt.write_text("To be, or not to be\n")
    line = data_error(lambda: ensure_tiny_shakespeare(tmp_path))
    assert_in_readme("Checksum mismatch for ... sha256 ...", line)
    assert corrupt.exists(), "a corrupt file is never deleted"
    no_test = tmp_path / "train_only.npz"
    np.savez(no_test, train_images=np.zeros((2, 4, 4), np.uint8))
    line = data_error(lambda: read_npz_splits(no_test))
    assert_in_readme("... must contain 'train_images' and 'test_images'", line)
    raw = {"train": (np.zeros((2, 4, 4)), None), "test": (np.zeros((2, 5, 5)), None)}
    nchw = {"train": (np.zeros((2, 1, 4, 4)), None), "test": (np.zeros((2, 1, 5, 5)), None)}
    line = data_error(lambda: check_consistent(tmp_path / "x.npz", raw, nchw))
    assert_in_readme("... test_images ... train_images ...", line)


# ---------------------------------------------------------------------------- the other CLIs
def cli_error(capsys, main: Callable[[list[str]], object], argv: list[str]) -> str:
    """Run a CLI's ``main`` in this process; its exit code must be 2 and stderr one line."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_compare_misuse_is_one_line_exit_2(tmp_path, capsys):
    from argen.report import compare

    (tmp_path / "empty").mkdir()
    line = cli_error(capsys, compare.main, [str(tmp_path / "empty")])
    assert_in_readme("no runs found under ...", line)
    line = cli_error(capsys, compare.main, [str(tmp_path / "nowhere")])
    assert_in_readme("...: no such directory", line)


def test_evaluate_on_a_file_that_is_no_checkpoint(tmp_path, capsys):
    from argen import evaluate

    line = cli_error(capsys, evaluate.main, [str(Path(sys.executable).resolve())])
    assert_in_readme("Checkpoint ... is not a checkpoint", line)
    assert "Python objects" not in line


def test_sample_option_the_model_cannot_use(tmp_path, capsys):
    from argen import sample
    from tests.test_sample_cli import MODELS, write_checkpoint

    ckpt = write_checkpoint(tmp_path / "fvsbn.ckpt", "fvsbn", MODELS["fvsbn"])
    line = cli_error(capsys, sample.main, [str(ckpt), "--prime", "ab"])
    assert_in_readme("--prime does not apply to ...", line)


def test_evaluate_table_keeps_a_long_checkpoint_path_whole_when_piped(monkeypatch, capsys):
    """Not a terminal (captured stdout): Rich lays out for 80 columns; the path must still be one
    unbroken line."""
    from argen import evaluate

    path = "/runs/" + "long_run_directory_name_" * 5 + "/checkpoints/best-epoch007.ckpt"
    assert len(path) > 80
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(
        evaluate, "evaluate", lambda *a, **k: {"test/nll": 80.5, "test/bits_per_dim": 0.148}
    )
    evaluate.main([path])
    out = capsys.readouterr().out
    assert f"{path} (test split)" in out.splitlines(), out
    assert "test/bits_per_dim" in out and "80.5000" in out
    assert max(len(line) for line in out.splitlines()[1:]) <= 80


# ---------------------------------------------------------------------------- train.py itself
def test_composition_errors_exit_2_in_one_line(monkeypatch, capsys):
    """train.py's wrapper in this process: Hydra raises, the wrapper prints one line, exits 2, and
    puts the user's HYDRA_FULL_ERROR back."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as info, composition_errors_in_one_line():
        assert os.environ["HYDRA_FULL_ERROR"] == "1"  # Hydra raises instead of printing
        composed("model=madee")  # what train.py's Hydra raises
    assert info.value.code == 2 and "HYDRA_FULL_ERROR" not in os.environ
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: model=madee is not a model")


def test_full_error_keeps_the_traceback(monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(Exception, match="Could not find 'model/madee'"):
        with composition_errors_in_one_line():
            composed("model=madee")
    assert os.environ["HYDRA_FULL_ERROR"] == "1"


def test_a_bug_keeps_its_traceback(monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(ZeroDivisionError), composition_errors_in_one_line():
        _ = 1 / 0
    assert "HYDRA_FULL_ERROR" not in os.environ


def train_cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """``python train.py`` as a user runs it (one-line errors: no HYDRA_FULL_ERROR)."""
    return run_train(tmp_path, *overrides, check=False, full_error=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "quote"),
    [
        (["model=madee"], "model=X is not a model"),
        (["seed=-5"], "<key>=<value> is invalid: it must be ..."),
        (["foo=1"], "Could not override 'K': Key 'K' is not in struct"),
    ],
)
def test_train_py_prints_one_line_and_exits_2(tmp_path, overrides, quote):
    result = train_cli(tmp_path, *overrides)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("error: ")
    assert_in_readme(quote, line)
    assert not (tmp_path / "logs").exists() or overrides == ["seed=-5"]
