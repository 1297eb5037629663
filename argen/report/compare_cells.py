"""Table columns and cells for ``argen.compare``, shared by the terminal and the Markdown page.

Every number has a fixed format so that a page regenerated from the same summaries is identical
byte for byte.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from argen.report.compare_rows import ModelRow, Stat
from argen.report.compare_runs import WANDB_PREFIX, RunRecord, one_line
from argen.report.paper_results import model_name, paper_cell, paper_column

RECON_COLUMN = "test recon loss"
UNFINISHED_COLUMNS = ["run", "model", "data", "seed", "status", "reason"]


def right_aligned(columns: Sequence[str], numeric: bool = True) -> list[bool]:
    """Which columns to right-align: in a table of numbers, all but the model and paper columns."""
    return [numeric and i > 0 and not c.startswith("paper") for i, c in enumerate(columns)]


def fmt(value: float | None, digits: int) -> str:
    """``value`` with thousands separators and ``digits`` decimals; ``n/a`` when missing."""
    return "n/a" if value is None else f"{value:,.{digits}f}"


def fmt_ms(ms: float | None) -> str:
    """Milliseconds with about three significant digits (0.012, 4.80, 360)."""
    if ms is None:
        return "n/a"
    return fmt(ms, 0 if ms >= 100 else 2 if ms >= 1 else 3)


def fmt_duration(seconds: float | None) -> str:
    """Wall time in the unit that keeps it short: ``45 s``, ``12.5 min``, ``3.20 h``."""
    if seconds is None:
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def fmt_stat(stat: Stat, digits: int, runs: int | None = None) -> str:
    """``mean ± std``; ``n/a`` when no run has the value; ``(k/n)`` when only k of n runs do."""
    if stat.mean is None:
        return "n/a"
    text = fmt(stat.mean, digits)
    if stat.std is not None:
        text += f" ± {fmt(stat.std, digits)}"
    if runs is not None and stat.n < runs:
        text += f" ({stat.n}/{runs})"
    return text


def fmt_spread(stat: Stat, digits: int) -> str:
    """The seed spread ``min–max``; ``1 seed`` when only one run has the value, ``n/a`` none."""
    if stat.low is None or stat.high is None:
        return "n/a"
    if stat.n < 2:
        return "1 seed"
    return f"{fmt(stat.low, digits)}–{fmt(stat.high, digits)}"


def fmt_range(values: Sequence[int]) -> str:
    """``7``, ``5–9`` (several values) or ``n/a``."""
    if not values:
        return "n/a"
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def display_label(row: ModelRow) -> str:
    """The row's model as its paper names it, with its variant: ``MADE (num_masks=8)``."""
    name = model_name(row.model)
    return f"{name} ({row.variant})" if row.variant else name


def units(rows: Sequence[ModelRow]) -> tuple[str, str, str]:
    """(NLL unit, bits unit, what one sample is) for a dataset's rows: text or images."""
    if any(row.is_text for row in rows):
        return "nats/char", "bits/char", "sample"
    return "nats", "bits/dim", "image"


def speed_unit(rows: Sequence[ModelRow]) -> str:
    """What training throughput counts: characters for text (never windows), else examples."""
    return "characters/s" if any(row.is_text for row in rows) else "examples/s"


def digits_of(row: ModelRow) -> int:
    """Decimals of a row's NLL: nats/char need more than nats per image."""
    return 4 if row.is_text else 2


def _common_cells(row: ModelRow) -> list[str]:
    params = row.params
    return [
        display_label(row),
        str(len(row.runs)),
        ",".join(str(s) for s in row.seeds) or "?",
        "/".join(f"{p:,}" for p in params) if params else "n/a",
        fmt_range(row.epochs),
    ]


COMMON_COLUMNS = ["model", "runs", "seeds", "params", "epochs"]


def likelihood_columns(data: str, rows: Sequence[ModelRow]) -> list[str]:
    """Columns of a dataset's likelihood table."""
    nats, bits, item = units(rows)
    return COMMON_COLUMNS + [
        f"test NLL ({nats})",
        "NLL min–max over seeds",
        f"test {bits}",
        paper_column(data),
        "train time",
        f"train {speed_unit(rows)}",
        f"sampling ms/{item}",
    ]


def likelihood_cells(row: ModelRow) -> list[str]:
    """One row of the likelihood table."""
    n = len(row.runs)
    seconds = row.sample_seconds.mean
    return _common_cells(row) + [
        fmt_stat(row.nll, digits_of(row), n),
        fmt_spread(row.nll, digits_of(row)),
        fmt_stat(row.bpd, 4, n),
        paper_cell(row.data, row.model),
        fmt_duration(row.train_seconds.mean),
        fmt(row.speed.mean, 1),
        fmt_ms(None if seconds is None else seconds * 1e3),
    ]


RECON_COLUMNS = COMMON_COLUMNS + [RECON_COLUMN, "train time", "train examples/s"]


def recon_cells(row: ModelRow) -> list[str]:
    """One row of the table of models without a likelihood (reconstruction loss only)."""
    return _common_cells(row) + [
        fmt_stat(row.recon, 4, len(row.runs)),
        fmt_duration(row.train_seconds.mean),
        fmt(row.throughput.mean, 1),
    ]


def split_rows(rows: Sequence[ModelRow]) -> tuple[list[ModelRow], list[ModelRow]]:
    """(likelihood rows, reconstruction-only rows) of one dataset."""
    return [r for r in rows if r.is_likelihood], [r for r in rows if not r.is_likelihood]


def short_reason(reason: str, limit: int | None = 160) -> str:
    """One line for a table: the exception line of a traceback, else the whole text."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Traceback"):
        lines = lines[-1:]
    return one_line(" ".join(lines), limit)


def terminal_source(record: RunRecord) -> str:
    """Where a run is, for the terminal: relative to the working directory when on disk."""
    if record.source.startswith(WANDB_PREFIX):
        return record.source
    try:
        return os.path.relpath(record.source)
    except ValueError:  # another drive on Windows
        return record.source


def unfinished_cells(record: RunRecord, where: str, limit: int | None = 160) -> list[str]:
    """One row of the table of runs that did not finish; ``where`` names the run."""
    return [
        where,
        record.model,
        record.data,
        "?" if record.seed is None else str(record.seed),
        record.status,
        short_reason(record.reason, limit),
    ]


# --------------------------------------------------------------------------------- seed spread


def _seeds(stat: Stat) -> str:
    return f"{stat.n} seed{'s' if stat.n != 1 else ''}"


def spread_lines(rows: Sequence[ModelRow], metric: str = "nll") -> list[str]:
    """Which differences between neighbouring rows (in table order) exceed the seed spread: a
    difference does when the two rows' min-max ranges over seeds do not overlap; a row of one
    seed measures no spread, so its differences are not judged."""
    ranked = [row for row in split_rows(rows)[0] if row.metric(metric).mean is not None]
    if len(ranked) < 2:
        return []
    if all(row.metric(metric).n < 2 for row in ranked):
        return [
            "Every row is a single run: no seed spread was measured, so no difference between "
            "rows can be told from seed noise."
        ]
    lines = [
        "Differences between neighbouring rows against the seed spread (a difference exceeds it "
        "when the two rows' min–max ranges over seeds do not overlap):",
        "",
    ]
    for better, worse in zip(ranked, ranked[1:], strict=False):
        a, b = better.metric(metric), worse.metric(metric)
        digits = 4 if metric == "bpd" else digits_of(better)
        names = f"{display_label(better)} vs {display_label(worse)}"
        separated = a.separated_below(b)
        if separated is None:
            lines.append(f"* {names}: not judged ({_seeds(a)} and {_seeds(b)})")
        elif separated:
            lines.append(
                f"* {names}: exceeds the seed spread ({fmt_spread(a, digits)} below "
                f"{fmt_spread(b, digits)})"
            )
        else:
            lines.append(
                f"* {names}: within the seed spread ({fmt_spread(a, digits)} and "
                f"{fmt_spread(b, digits)} overlap)"
            )
    return lines
