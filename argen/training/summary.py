"""``summary.json``: the one record of a run. This module is its only reader and writer:
:func:`read_summary_file` reads any version (``argen.compare``, ``benchmarks/``),
:func:`write_summary_file` writes the current one atomically (``argen.training.run``,
``benchmarks/finish_summary.py``), and ``python -m argen.training.summary migrate results/``
rewrites older files at the current version (:func:`migrate`).

A flat JSON object, one definition for both sides (:class:`RunSummary`). Besides the fixed keys
below it holds one ``val_<metric>`` (the best value of the monitored validation metric, e.g.
``val_nll``) and one ``test_<metric>`` per test metric (``test_nll``, ``test_bits_per_dim``,
``test_recon_loss``, ``test_unknown_chars``, ...), all in the units the README documents.
``data_kind`` says what those units count: ``"text"`` means nats per character and bits per
character (a character is both the example and the dimension). Non-finite numbers are written
as ``null``.

``version`` says which layout a file has. Files written before it existed have none and read as
version 0, whose keys are those of version 1. Version 2 renamed text runs' ``test_bpc`` to
``test_bits_per_dim`` and added ``data_kind``: older text summaries are read with their
``*_bpc`` keys renamed and ``data_kind: "text"``, every other file loads unchanged. Version 3 added what a run was given
and what it measured (``budget_kind``, ``budget_value``, ``examples_seen``, ``optimizer_steps``,
``train_flops``, ``cpu_seconds``, ...) and where it came from (``git_commit``, ``command``,
versions); earlier files load unchanged, without them. A file from a newer argen is refused with a
message rather than misread.

Every number is measured by the run, none is copied from a setting (``budget_value`` is the
setting, labelled as such): a key the run could not measure is absent. ``train_flops`` counts
the matrix-product and convolution FLOPs of forward and backward passes as
``torch.utils.flop_counter`` counts them, per example once (``argen.training.flops``) times examples seen;
the optimizer is not counted. ``cpu_seconds`` and ``wall_seconds`` are the process's CPU time and
the wall time spent training, validation excluded (``argen.training.callbacks.throughput``);
``train_seconds`` is the wall time of the whole ``trainer.fit``, validation included.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from argen.core.atomic import atomic_write

SUMMARY_FILE = "summary.json"
SUMMARY_VERSION = 3
LEGACY_VERSION = 0  # summary.json files written before the version field
TEXT = "text"  # data_kind of character models: nats and bits per character
OLD_BITS_SUFFIX = "_bpc"  # text runs' bits per character before version 2
FINISHED, FAILED, INTERRUPTED = "finished", "failed", "interrupted"
METRIC_PREFIXES = ("val_", "test_")


class RunSummary(TypedDict, total=False):
    """The keys of ``summary.json`` (all optional when reading: a failed run has few)."""

    version: int  # SUMMARY_VERSION when written; LEGACY_VERSION for files without it
    model: str  # model.name
    data: str  # data.name
    data_kind: str  # "image" or TEXT: the LightningModule's data_kind (version 2 on)
    seed: int
    params: int  # trainable and frozen parameters of the LightningModule
    epochs: int  # epochs trained (the trainer's current_epoch at the end)
    train_seconds: float  # wall time of trainer.fit
    train_examples_per_sec: float | None  # examples_seen / wall_seconds (validation excluded)
    # version 3 on: the budget given (budget_kind: examples, steps, flops, cpu_seconds, or what
    # bounded a run without one: epochs, wall_seconds for trainer.max_time) and its value
    budget_kind: str
    budget_value: float
    # version 3 on, measured over training (validation excluded), cumulative over resumes
    examples_seen: int  # training examples (text: windows of characters)
    characters_seen: int  # text runs: characters in those windows
    optimizer_steps: int  # the trainer's global step
    train_flops: float  # examples_seen * flops_per_example (absent where none are countable)
    flops_per_example: float  # argen.training.flops: matmul/conv FLOPs of forward+backward
    cpu_seconds: float  # process CPU time (time.process_time) spent training
    wall_seconds: float  # wall time spent training
    threads: int  # torch's intra-op threads
    device: str  # "cpu: <model>" or "cuda: <GPU name>"
    # version 3 on, provenance (argen.training.provenance; absent when unknown)
    git_commit: str
    git_dirty: bool  # tracked files differed from git_commit
    command: str  # python train.py <overrides>, quoted for a POSIX shell
    argen_version: str
    torch_version: str
    lightning_version: str
    output_dir: str  # the run directory
    status: str  # FINISHED, FAILED or INTERRUPTED
    error: str  # failed or interrupted runs: the exception, on one line
    resume: str  # interrupted runs: the command that resumes them (argen.training.resume_command)
    sample_seconds_per_example: float | None  # sampling time (summary.num_samples examples)
    wandb_run: str  # entity/project/run id, when logged to W&B
    wandb_dir: str  # the W&B run files
    # plus "val_<metric>" and "test_<metric>" numbers (see the module docstring)


def finite_or_none(value: Any) -> Any:
    """``value``, with a non-finite float replaced by ``None`` (JSON has no NaN or infinity)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def to_json(summary: Mapping[str, Any]) -> RunSummary:
    """The object to write as ``summary.json``: ``version`` first, the keys of ``summary`` in
    their order, non-finite numbers as ``None``."""
    record: dict[str, Any] = {"version": SUMMARY_VERSION}
    record.update((k, finite_or_none(v)) for k, v in summary.items() if k != "version")
    return RunSummary(**record)


def from_json(data: Any) -> RunSummary:
    """A ``summary.json`` object as a :class:`RunSummary`; ``ValueError`` (with the reason) for
    anything else, or for a version this argen does not know."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    version = data.get("version", LEGACY_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"version must be a non-negative integer, got {version!r}")
    if version > SUMMARY_VERSION:
        raise ValueError(
            f"summary.json version {version} is newer than this argen reads "
            f"(up to {SUMMARY_VERSION}); update argen"
        )
    record = {**data, "version": version}  # version 0's keys are version 1's
    if version < 2:
        record = _renamed_bpc(record)
    return RunSummary(**record)


def _renamed_bpc(record: dict[str, Any]) -> dict[str, Any]:
    """A version 0 or 1 record with text's ``<split>_bpc`` keys read as ``<split>_bits_per_dim``
    (the same numbers: bits per character) and ``data_kind: "text"``; others unchanged."""
    old = [k for k in record if k.startswith(METRIC_PREFIXES) and k.endswith(OLD_BITS_SUFFIX)]
    if not old:
        return record
    renamed: dict[str, Any] = {}
    for key, value in record.items():
        if key in old:
            key = key[: -len(OLD_BITS_SUFFIX)] + "_bits_per_dim"
            if key in record:
                continue  # the file has the new key too: it wins
        renamed[key] = value
    renamed.setdefault("data_kind", TEXT)
    return renamed


def is_text(summary: Mapping[str, Any]) -> bool:
    """Whether the summary's NLL and bits are per character (a character model's run)."""
    return summary.get("data_kind") == TEXT


def metrics(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The ``val_<metric>`` and ``test_<metric>`` entries of a summary."""
    return {k: v for k, v in summary.items() if k.startswith(METRIC_PREFIXES)}


def status_of(summary: Mapping[str, Any]) -> tuple[str, str]:
    """(status, reason) of a summary: its own ``status`` (``failed`` when it only has an
    ``error``) and, for a run that did not finish, its error message."""
    error = summary.get("error")
    status = str(summary.get("status") or (FAILED if error else FINISHED))
    if status == FINISHED:
        return status, ""
    return status, str(error) if error else f"{status} (no error message in summary.json)"


# ------------------------------------------------------------------------------ reading, writing


def read_summary_file(path: str | Path) -> RunSummary:
    """The ``summary.json`` at ``path``, of any version (:func:`from_json`); ``ValueError`` (with
    the reason) when it cannot be read or is no summary."""
    try:
        return from_json(json.loads(Path(path).read_text()))
    except OSError as exc:
        raise ValueError(str(exc)) from exc


def keep_previous_summary(path: Path) -> None:
    """Move an existing ``summary.json`` aside (``summary.1.json``, ...) so no record is lost when a
    run directory is resumed. A rename: it needs no free space."""
    if not path.exists():
        return
    number = 1
    while path.with_name(f"summary.{number}.json").exists():
        number += 1
    path.rename(path.with_name(f"summary.{number}.json"))


def write_summary_file(
    path: str | Path, summary: Mapping[str, Any], keep_previous: bool = True
) -> RunSummary:
    """Write ``summary`` to ``path`` at the current version and return what was written. The file
    is written whole before it takes the name (``argen.core.atomic``): on a full disk the earlier
    file stays as it was (``DiskFullError``). ``keep_previous`` moves an earlier file aside
    (:func:`keep_previous_summary`) instead of replacing it."""
    path = Path(path)
    record = to_json(summary)
    keep = (lambda: keep_previous_summary(path)) if keep_previous else None
    atomic_write(path, json.dumps(record, indent=2) + "\n", before_replace=keep)
    return record


# ------------------------------------------------------------------------------------ migration


def _current_name(key: str) -> str:
    """``key`` as the current version names it (text's ``<split>_bpc`` became ``_bits_per_dim``)."""
    if key.startswith(METRIC_PREFIXES) and key.endswith(OLD_BITS_SUFFIX):
        return key[: -len(OLD_BITS_SUFFIX)] + "_bits_per_dim"
    return key


def migrated(data: Any) -> RunSummary:
    """A ``summary.json`` object of any version in the current layout: keys renamed as
    :func:`from_json` reads them, ``version`` set, nothing else. ``ValueError`` when that would
    change or drop a value, or add one other than ``version`` and a text run's ``data_kind``
    (a migration never fills in what the run did not record)."""
    record = to_json(from_json(data))
    for key, value in data.items():
        if key != "version" and record.get(_current_name(key), ...) != finite_or_none(value):
            raise ValueError(f"migrating would change {key!r} ({value!r}); fix the file by hand")
    added = set(record) - {_current_name(k) for k in data} - {"version"}
    if added - {"data_kind"} or (added and record["data_kind"] != TEXT):
        raise ValueError(f"migrating would add {sorted(added)}; fix the file by hand")
    return record


def summary_files(paths: Iterable[str | Path]) -> list[Path]:
    """The ``summary.json`` files among ``paths`` and under the directories among them (kept
    earlier records, ``summary.<n>.json``, are not included); ``ValueError`` for a path that is
    neither."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(path.rglob(SUMMARY_FILE))
        elif path.is_file() and path.name == SUMMARY_FILE:
            found.append(path)
        else:
            raise ValueError(f"{path}: no such directory or {SUMMARY_FILE} file")
    return found


def migrate(paths: Iterable[str | Path]) -> list[Path]:
    """Rewrite every ``summary.json`` in or under ``paths`` older than :data:`SUMMARY_VERSION` at the
    current version (:func:`migrated`, written atomically in place); return the files rewritten.
    Every file is read and checked before any is written: one that cannot be read or migrated
    raises ``ValueError`` naming it and leaves all of them as they were. Files already at the
    current version are left untouched, so running it twice changes nothing the second time."""
    pending: list[tuple[Path, RunSummary]] = []
    for path in summary_files(paths):
        try:
            data = json.loads(path.read_text())
            record = migrated(data)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc
        if data.get("version") != SUMMARY_VERSION:
            pending.append((path, record))
    for path, record in pending:
        write_summary_file(path, record, keep_previous=False)
    return [path for path, _ in pending]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m argen.training.summary migrate PATH...``: bring committed summaries to the
    current version. A bad path or an unreadable file is one line on stderr and exit code 2,
    with nothing written."""
    parser = argparse.ArgumentParser(
        prog="python -m argen.training.summary",
        description=f"Rewrite older summary.json files at the current version ({SUMMARY_VERSION}): "
        "keys renamed and version set, no value added or changed.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("migrate", help="migrate every summary.json under the paths")
    command.add_argument("paths", nargs="+", type=Path, help="run or results directories, or files")
    args = parser.parse_args(argv)
    try:
        rewritten = migrate(args.paths)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in rewritten:
        print(f"migrated {path}")
    print(f"{len(rewritten)} summary.json file(s) rewritten at version {SUMMARY_VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
