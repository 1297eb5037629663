"""``summary.json``: the one record of a run, written by ``argen.run`` and read by ``argen.compare``.

A flat JSON object, one definition for both sides (:class:`RunSummary`). Besides the fixed keys
below it holds one ``val_<metric>`` (the best value of the monitored validation metric, e.g.
``val_nll``) and one ``test_<metric>`` per test metric (``test_nll``, ``test_bits_per_dim``,
``test_bpc``, ``test_recon_loss``, ...), all in the units the README documents. Non-finite numbers
are written as ``null``.

``version`` says which layout a file has. Files written before it existed have none and read as
version 0, whose keys are those of version 1: they load unchanged. A file from a newer argen is
refused with a message rather than misread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypedDict

SUMMARY_VERSION = 1
LEGACY_VERSION = 0  # summary.json files written before the version field
FINISHED, FAILED, INTERRUPTED = "finished", "failed", "interrupted"
METRIC_PREFIXES = ("val_", "test_")


class RunSummary(TypedDict, total=False):
    """The keys of ``summary.json`` (all optional when reading: a failed run has few)."""

    version: int  # SUMMARY_VERSION when written; LEGACY_VERSION for files without it
    model: str  # model.name
    data: str  # data.name
    seed: int
    params: int  # trainable and frozen parameters of the LightningModule
    epochs: int  # epochs trained (the trainer's current_epoch at the end)
    train_seconds: float  # wall time of trainer.fit
    train_examples_per_sec: float | None  # training throughput, validation excluded
    output_dir: str  # the run directory
    status: str  # FINISHED, FAILED or INTERRUPTED
    error: str  # failed or interrupted runs: the exception, on one line
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
    return RunSummary(**{**data, "version": version})  # version 0's keys are version 1's


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
