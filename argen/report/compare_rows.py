"""Aggregation for ``argen.compare``: runs of one model (and configuration) on one dataset -> a row.

Runs that differ only in their seed are averaged (mean ± sample std); runs whose configs differ in
anything that changes the experiment are kept apart as variants, each labelled by the fewest
config values that tell it from the others, e.g. ``made (num_masks=8)``.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from argen.report.compare_runs import FINISHED, RunRecord

METRICS = ("nll", "bpd")
UNKNOWN_CONFIG = "config unknown"
UNSET = "unset"


@dataclass
class Stat:
    """Mean and sample standard deviation (None with fewer than two values) over ``n`` runs, and
    the smallest and largest value (the seed spread)."""

    mean: float | None
    std: float | None
    n: int
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat:
        present = [v for v in values if v is not None]
        if not present:
            return cls(None, None, 0)
        std = statistics.stdev(present) if len(present) > 1 else None
        return cls(statistics.fmean(present), std, len(present), min(present), max(present))

    def separated_below(self, other: Stat) -> bool | None:
        """Whether every value here is below every value of ``other`` (non-overlapping min-max
        ranges); None when either has fewer than two values (no spread was measured)."""
        if self.n < 2 or other.n < 2 or self.high is None or other.low is None:
            return None
        return self.high < other.low


@dataclass
class ModelRow:
    """One model (or one ``variant`` of its configuration) on one dataset, over its runs."""

    data: str
    model: str
    variant: str
    runs: list[RunRecord]
    nll: Stat
    bpd: Stat
    recon: Stat
    throughput: Stat
    sample_seconds: Stat
    train_seconds: Stat
    chars_per_sec: Stat  # text: training characters per second (never windows)

    @classmethod
    def of(cls, data: str, model: str, variant: str, runs: list[RunRecord]) -> ModelRow:
        return cls(
            data=data,
            model=model,
            variant=variant,
            runs=runs,
            nll=Stat.of(r.test_nll for r in runs),
            bpd=Stat.of(r.test_bpd for r in runs),
            recon=Stat.of(r.test_recon_loss for r in runs),
            throughput=Stat.of(r.train_examples_per_sec for r in runs),
            sample_seconds=Stat.of(r.sample_seconds_per_example for r in runs),
            train_seconds=Stat.of(r.train_seconds for r in runs),
            chars_per_sec=Stat.of(r.train_chars_per_sec for r in runs),
        )

    @property
    def label(self) -> str:
        """``model`` or ``model (variant)``."""
        return f"{self.model} ({self.variant})" if self.variant else self.model

    @property
    def seeds(self) -> list[int]:
        return sorted({r.seed for r in self.runs if r.seed is not None})

    @property
    def params(self) -> list[int]:
        return sorted({r.params for r in self.runs if r.params is not None})

    @property
    def epochs(self) -> list[int]:
        return sorted({r.epochs for r in self.runs if r.epochs is not None})

    @property
    def is_text(self) -> bool:
        return any(r.is_text for r in self.runs)

    @property
    def is_likelihood(self) -> bool:
        """False for models that report only a reconstruction loss (the autoencoder)."""
        return self.nll.n > 0 or self.bpd.n > 0 or self.recon.n == 0

    def metric(self, name: str) -> Stat:
        return self.nll if name == "nll" else self.bpd

    @property
    def speed(self) -> Stat:
        """Training throughput in the dataset's unit: characters/s for text, examples/s else."""
        return self.chars_per_sec if self.is_text else self.throughput


# ----------------------------------------------------------------------------------- variants


def differing_keys(runs: Sequence[RunRecord]) -> list[str]:
    """The config keys (sorted) whose value is not the same in every run that has a config."""
    known = [r for r in runs if r.config]
    keys = sorted({k for r in known for k in r.config})
    return [k for k in keys if len({r.config.get(k, UNSET) for r in known}) > 1]


def _key_rank(key: str) -> tuple[int, str]:
    """Labels prefer model settings, then data settings, then the rest; ties alphabetically."""
    order = 0 if key.startswith("model.") else 1 if key.startswith("data.") else 2
    return order, key


def label_keys(variants: Sequence[tuple[str, ...]], keys: Sequence[str]) -> list[int]:
    """Indices into ``keys`` of a small set of keys whose values still tell every variant apart:
    greedily the key that separates the most variants; on ties a key every variant sets before
    one that older configs lack (``unset`` says nothing about the run), then model settings.
    Where the model's own settings can tell every variant apart, only they are used: a label
    says how the models differ (``hidden_sizes=[8000], ordering=random``), not which run had
    which time limit."""
    chosen: list[int] = []

    def distinct(indices: list[int]) -> int:
        return len({tuple(v[i] for i in indices) for v in variants})

    def unset_somewhere(i: int) -> bool:
        return any(v[i] == UNSET for v in variants)

    model_keys = [i for i, key in enumerate(keys) if key.startswith("model.")]
    whole = len(set(variants))
    pool = model_keys if distinct(model_keys) == whole else list(range(len(keys)))
    while distinct(chosen) < whole:
        rest = [i for i in pool if i not in chosen]
        best = min(
            rest,
            key=lambda i: (-distinct(chosen + [i]), unset_somewhere(i), _key_rank(keys[i])),
        )
        chosen.append(best)
    return sorted(chosen, key=lambda i: _key_rank(keys[i]))


def short_keys(keys: Sequence[str]) -> list[str]:
    """The last part of each dotted key, or the whole key where two last parts coincide."""
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    return [leaf if leaves.count(leaf) == 1 else k for k, leaf in zip(keys, leaves, strict=True)]


def show_value(value: str) -> str:
    """A config value (stored as JSON) compactly: strings bare, lists without spaces."""
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return str(value)
    return parsed if isinstance(parsed, str) else json.dumps(parsed, separators=(",", ":"))


def split_variants(runs: list[RunRecord]) -> dict[str, list[RunRecord]]:
    """Runs of one model on one dataset split by config (so that a sweep is not averaged as if it
    were seeds): {variant label ("" when all agree): runs}."""
    keys = differing_keys(runs)
    if not keys:
        return {"": runs}
    groups: dict[tuple[str, ...] | None, list[RunRecord]] = {}
    for run in runs:
        values = tuple(run.config.get(k, UNSET) for k in keys) if run.config else None
        groups.setdefault(values, []).append(run)
    known = [values for values in groups if values is not None]
    chosen = label_keys(known, keys)
    names = short_keys([keys[i] for i in chosen])
    parts: dict[str, list[RunRecord]] = {}
    for values, part in groups.items():
        label = UNKNOWN_CONFIG
        if values is not None:
            label = ", ".join(
                f"{n}={show_value(values[i])}" for n, i in zip(names, chosen, strict=True)
            )
        parts.setdefault(label, []).extend(part)
    return parts


# --------------------------------------------------------------------------------- aggregation


def aggregate(
    records: Iterable[RunRecord], metric: str = "nll", split_configs: bool = True
) -> dict[str, list[ModelRow]]:
    """{dataset (sorted): rows sorted by the metric's mean (best first, rows without it last,
    ties by label)} over the finished runs."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        if record.status == FINISHED:
            groups.setdefault((record.data, record.model), []).append(record)
    tables: dict[str, list[ModelRow]] = {}
    for (data, model), runs in sorted(groups.items()):
        parts = split_variants(runs) if split_configs else {"": runs}
        for variant, part in parts.items():
            tables.setdefault(data, []).append(ModelRow.of(data, model, variant, part))
    for rows in tables.values():
        rows.sort(key=lambda row: _sort_key(row, metric))
    return dict(sorted(tables.items()))


def _sort_key(row: ModelRow, metric: str) -> tuple[bool, float, str]:
    mean = row.metric(metric).mean
    return mean is None, mean or 0.0, row.label


def unfinished(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The runs that are not in the aggregated tables: failed, interrupted, incomplete, unknown."""
    return [r for r in records if r.status != FINISHED]
