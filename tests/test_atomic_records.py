"""Records are written whole or not at all: a failed write (a crash, a full disk) leaves the old file
under its name and no temporary file; a full disk ends train.py with one line and exit code 2."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from argen.core.atomic import atomic_file, atomic_write
from argen.core.errors import DiskFullError, find_user_error
from argen.training.checkpoint import AtomicCheckpointIO, read_checkpoint
from argen.training.run import write_summary
from tests.conftest import needs_data, run_train


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def full_disk() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ----------------------------------------------------------------------------- the writer
def test_writes_new_and_replaces_old_file(tmp_path):
    path = tmp_path / "sub" / "record.json"
    atomic_write(path, "first\n")
    assert path.read_text() == "first\n"
    atomic_write(path, b"second")
    assert path.read_bytes() == b"second"
    assert leftovers(path.parent) == []


def test_file_gets_the_mode_open_would_give(tmp_path):
    atomic_write(tmp_path / "a", "x")
    (tmp_path / "b").write_text("x")
    assert (tmp_path / "a").stat().st_mode == (tmp_path / "b").stat().st_mode


def test_failure_mid_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("old")
    moved_aside = []
    with pytest.raises(KeyboardInterrupt), atomic_file(path, "w", moved_aside.append) as handle:
        handle.write("half of the new")
        handle.flush()
        assert leftovers(tmp_path), "the new content goes to a temporary file beside the record"
        raise KeyboardInterrupt  # a crash in the middle of the write
    assert path.read_text() == "old"
    assert leftovers(tmp_path) == []
    assert moved_aside == [], "nothing is moved aside before the new file is complete"


def test_full_disk_is_reported_with_the_path_and_old_file_stays(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("old")
    with pytest.raises(DiskFullError) as caught, atomic_file(path, "w") as handle:
        handle.write("partial")
        raise full_disk()
    assert str(caught.value).startswith(f"no space left on device while writing {path}")
    assert path.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_full_disk_reported_by_torch_save_as_another_error(tmp_path, monkeypatch):
    """torch.save turns a failed write into a RuntimeError raised while handling the OSError."""
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"weights": torch.arange(4.0)}, path)
    before = path.read_bytes()

    def failing_save(obj, handle):
        handle.write(b"PK\x03\x04 truncated")
        try:
            raise full_disk()
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(DiskFullError, match="last.ckpt"):
        io.save_checkpoint({"weights": torch.zeros(4)}, path)
    assert path.read_bytes() == before
    assert torch.equal(read_checkpoint(path)["weights"], torch.arange(4.0))
    assert leftovers(tmp_path) == []


def test_find_user_error_sees_a_full_disk_behind_other_errors():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/images/a.png")
        except OSError:
            raise ValueError("while saving an image") from None
    except ValueError as exc:
        found = find_user_error(exc)
    assert isinstance(found, DiskFullError)
    assert "while writing /runs/x/images/a.png" in str(found)
    assert find_user_error(ValueError("unrelated")) is None


def test_summary_keeps_previous_and_survives_a_failed_write(tmp_path, monkeypatch):
    write_summary({"model": "made", "status": "finished"}, tmp_path, None)
    write_summary({"model": "made", "status": "finished", "epochs": 2}, tmp_path, None)
    assert json.loads((tmp_path / "summary.1.json").read_text())["status"] == "finished"
    current = (tmp_path / "summary.json").read_text()

    real_write = os.fdopen

    def filling(fd, mode, **kwargs):  # every write to a new temporary file hits a full disk
        handle = real_write(fd, mode, **kwargs)
        handle.write = lambda data: (_ for _ in ()).throw(full_disk())
        return handle

    monkeypatch.setattr(os, "fdopen", filling)
    with pytest.raises(DiskFullError, match="summary.json"):
        write_summary({"model": "made", "status": "failed"}, tmp_path, None)
    assert (tmp_path / "summary.json").read_text() == current, "the old record stays whole"
    assert not (tmp_path / "summary.2.json").exists(), "nothing moved aside for a failed write"
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------- a full disk, end to end
TINY = [
    "model=made",
    "model.module.net.hidden_sizes=[64]",
    "debug=quick",
    "trainer.accelerator=cpu",
    "callbacks.rich_progress_bar=null",
    "summary.num_samples=0",
]


def train_cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """``python train.py`` as a user runs it (one-line errors: no HYDRA_FULL_ERROR)."""
    return run_train(tmp_path, *overrides, check=False, full_error=False)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs mounted for the test (root only); skipped where mounting is not permitted."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a size-limited file system")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@needs_data("binarized_mnist")
def test_full_disk_ends_run_in_one_line_and_keeps_earlier_checkpoints(tmp_path, small_disk):
    run_dir = small_disk / "run"
    first = train_cli(tmp_path, *TINY, f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoints = run_dir / "checkpoints"
    kept = {p.name: digest(p) for p in checkpoints.glob("*.ckpt")}
    assert set(kept) == {"best-epoch000.ckpt", "last.ckpt"}
    size = (checkpoints / "last.ckpt").stat().st_size

    # Fill the disk until half a checkpoint fits: the next epoch's checkpoint cannot be written.
    free = shutil.disk_usage(small_disk).free
    with open(small_disk / "filler", "wb") as filler:
        filler.write(b"\0" * (free - size // 2))
    second = train_cli(
        tmp_path, *TINY, f"hydra.run.dir={run_dir}", "ckpt_path=auto", "trainer.max_epochs=2"
    )
    output = second.stdout + second.stderr
    assert second.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    last_line = second.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"error: no space left on device while writing {checkpoints}/"), (
        last_line
    )
    assert {p.name: digest(p) for p in checkpoints.glob("*.ckpt")} == kept, "earlier intact"
    assert read_checkpoint(checkpoints / "last.ckpt")["epoch"] == 0
    assert leftovers(checkpoints) == [] and leftovers(run_dir) == []
    failed = json.loads((run_dir / "summary.json").read_text())
    assert failed["status"] == "failed" and "no space left on device" in failed["error"]
    assert json.loads((run_dir / "summary.1.json").read_text())["status"] == "finished"


def test_hydra_config_files_are_written_atomically(tmp_path, monkeypatch):
    """Hydra writes .hydra/config.yaml itself; after train.py's set-up a failed write leaves the old
    file whole and no temporary file behind."""
    import hydra.core.utils as hydra_utils
    from omegaconf import OmegaConf

    from argen.training.hydra_files import write_hydra_files_atomically

    monkeypatch.setattr(hydra_utils, "_save_config", hydra_utils._save_config)
    write_hydra_files_atomically()
    hydra_dir = tmp_path / ".hydra"
    hydra_utils._save_config(
        OmegaConf.create({"model": {"name": "made"}}), "config.yaml", hydra_dir
    )
    before = (hydra_dir / "config.yaml").read_text()
    assert OmegaConf.load(hydra_dir / "config.yaml").model.name == "made"

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)  # the write fails before the rename
    with pytest.raises(DiskFullError):
        hydra_utils._save_config(
            OmegaConf.create({"model": {"name": "x" * 10_000}}), "config.yaml", hydra_dir
        )
    assert (hydra_dir / "config.yaml").read_text() == before
    assert [p.name for p in hydra_dir.iterdir()] == ["config.yaml"]
