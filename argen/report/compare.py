"""Compare runs: ``python -m argen.compare RUNS... [--out DIR] [--metric nll|bpd] [--wandb]``.

Reads every run directory under the given paths (or a W&B project), groups runs of the same model
and configuration on the same dataset (several seeds), and reports test NLL and bits/dim as
mean ± std over seeds beside the paper's figure, training time and throughput, and sampling time:
the likelihood-vs-speed trade-off of the PixelRNN paper (PixelCNN fast, PixelRNN better but slow).
Failed, interrupted and incomplete runs are listed with their status, never silently dropped.

``--out DIR`` writes the results page (``README.md``), CSVs and trade-off figures
(``python -m argen.compare results/ --out results/`` regenerates ``results/README.md``);
``--wandb`` logs the comparison as one W&B run (see ``argen.report.compare_wandb``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from argen.report.compare_cells import (
    RECON_COLUMNS,
    UNFINISHED_COLUMNS,
    likelihood_cells,
    likelihood_columns,
    recon_cells,
    right_aligned,
    split_rows,
    terminal_source,
    unfinished_cells,
)
from argen.report.compare_rows import METRICS, ModelRow, Stat, aggregate, unfinished
from argen.report.compare_runs import (
    FAILED,
    FINISHED,
    INCOMPLETE,
    INTERRUPTED,
    CompareError,
    RunRecord,
    collect_runs,
    wandb_project,
)
from argen.report.paper_results import data_name
from argen.report.results_page import markdown_page, write_outputs

__all__ = [
    "FAILED",
    "FINISHED",
    "INCOMPLETE",
    "INTERRUPTED",
    "CompareError",
    "ModelRow",
    "RunRecord",
    "Stat",
    "aggregate",
    "collect_runs",
    "main",
    "markdown_page",
    "rich_tables",
    "unfinished",
    "wandb_project",
    "write_outputs",
]

DEFAULT_PROJECT = "argen"
SORTED_BY = {"nll": "test NLL", "bpd": "test bits/dim"}
# Wide enough for any table: Rich never measures a table wider than the console it measures with.
MEASURE_WIDTH = 10_000
USAGE_ERROR = 2  # the exit code of a mistake the user can fix, as train.py's


# ----------------------------------------------------------------------------------- terminal


def _table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], numeric: bool = True
) -> Table:
    """A Rich table whose cells never wrap (the console is widened to fit it instead)."""
    table = Table(title=title)
    for name, right in zip(columns, right_aligned(columns, numeric), strict=True):
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def dataset_tables(data: str, rows: Sequence[ModelRow], metric: str) -> list[Table]:
    """A dataset's likelihood table and, if any, its table of reconstruction-only models."""
    likelihood, recon = split_rows(rows)
    name = data_name(data)
    out: list[Table] = []
    if likelihood:
        title = f"{name} ({data}): sorted by {SORTED_BY[metric]}, mean ± std over seeds"
        cells = [likelihood_cells(row) for row in likelihood]
        out.append(_table(title, likelihood_columns(data, likelihood), cells))
    if recon:
        title = f"{name} ({data}): models without a likelihood (reconstruction loss only)"
        out.append(_table(title, RECON_COLUMNS, [recon_cells(row) for row in recon]))
    return out


def rich_tables(
    tables: dict[str, list[ModelRow]], failed: Sequence[RunRecord], metric: str
) -> list[Table]:
    """Rich tables for the terminal: per dataset, then one of failed/interrupted/incomplete runs."""
    out = [table for data, rows in tables.items() for table in dataset_tables(data, rows, metric)]
    if failed:
        title = "Failed, interrupted or incomplete runs (not in the tables above)"
        cells = [unfinished_cells(r, terminal_source(r)) for r in failed]
        out.append(_table(title, UNFINISHED_COLUMNS, cells, numeric=False))
    return out


def natural_width(table: Table) -> int:
    """The width a table takes when nothing in it is wrapped or cut."""
    console = Console(width=MEASURE_WIDTH)
    return Measurement.get(console, console.options, table).maximum


def print_tables(console: Console, tables: Sequence[Table]) -> None:
    """Print the tables whole: the console is widened to the widest one, so that a narrow
    terminal or a pipe (80 columns) never truncates or folds a header or a cell."""
    needed = max((natural_width(table) for table in tables), default=0)
    if needed > console.width:
        console.width = needed
    for table in tables:
        console.print(table)


# ---------------------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m argen.compare",
        description="Compare runs: test NLL / bits per dim (mean ± std over seeds) beside the "
        "papers' figures, training time and throughput, and sampling time; one table per dataset.",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="runs directory (e.g. logs/ or results/, searched recursively) or W&B project "
        "(wandb:<entity>/<project>)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="write README.md (results page), comparison.csv, runs.csv and tradeoff_<data>.png",
    )
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default="nll",
        help="sort by and plot test NLL (nats) or bits per dim (default: nll)",
    )
    parser.add_argument(
        "--merge-configs",
        action="store_true",
        help="average all runs of a model on a dataset even when their hyper-parameters differ",
    )
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="log the comparison as one W&B run (job type compare); offline without a login",
    )
    parser.add_argument("--wandb-project", help="W&B project (default: the one read, or argen)")
    parser.add_argument("--wandb-entity", help="W&B entity (default: the one read, or yours)")
    return parser.parse_args(argv)


def _wandb_target(args: argparse.Namespace) -> tuple[str, str | None]:
    """(project, entity) for --wandb: as given, else those of a W&B project that was read."""
    read = next((p for p in map(wandb_project, args.paths) if p), None)
    entity, _, project = read.rpartition("/") if read else ("", "", DEFAULT_PROJECT)
    return args.wandb_project or project, args.wandb_entity or entity or None


def log_to_wandb(
    args: argparse.Namespace,
    tables: dict[str, list[ModelRow]],
    failed: Sequence[RunRecord],
    console: Console,
) -> int:
    """Log the comparison to W&B (--wandb); 0 on success, 1 (run finished as failed) otherwise."""
    from argen.report.compare_wandb import log_comparison, sync_hint

    project, entity = _wandb_target(args)
    config = {"paths": list(args.paths), "metric": args.metric, "merge_configs": args.merge_configs}
    try:
        logged = log_comparison(
            tables, failed, args.metric, args.out or Path("."), project, entity, config
        )
    except Exception as exc:  # wandb raises many kinds; the run is already finished as failed
        print(
            f"error: logging the comparison to W&B failed: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    console.print(
        f"Logged the comparison to W&B run {logged.path} ({logged.directory})", highlight=False
    )
    hint = sync_hint(logged)
    if hint:
        console.print(hint, highlight=False)
    return 0


def write_files(args: argparse.Namespace, records: Sequence[RunRecord], console: Console) -> int:
    """Write the page, CSVs and figures (--out); 0 on success, 2 without matplotlib."""
    try:
        written = write_outputs(records, args.out, args.metric, not args.merge_configs)
    except ImportError as exc:
        print(f"error: --out needs matplotlib ({exc}); pip install matplotlib", file=sys.stderr)
        return USAGE_ERROR
    console.print("Wrote " + ", ".join(str(p) for p in written), highlight=False)
    return 0


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Print the comparison (and write files with --out, log to W&B with --wandb); 0 when runs
    were found and every requested output was written, 2 (one ``error:`` line) for what the user
    can fix (no such path, no runs, W&B unreadable, matplotlib missing), 1 when logging fails."""
    args = parse_args(argv)
    console = console or Console()
    try:
        records = collect_runs(args.paths)
    except CompareError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return USAGE_ERROR
    if not records:
        print(
            f"error: no runs found under {', '.join(args.paths)} (a run directory has "
            ".hydra/config.yaml or summary.json; train one with `python train.py`)",
            file=sys.stderr,
        )
        return USAGE_ERROR
    tables = aggregate(records, args.metric, not args.merge_configs)
    failed = unfinished(records)
    print_tables(console, rich_tables(tables, failed, args.metric))
    if not tables:
        console.print("No finished runs: nothing to compare yet.")
    code = 0
    if args.out is not None:
        code = write_files(args, records, console)
    if args.wandb:
        code = max(code, log_to_wandb(args, tables, failed, console))
    return code


if __name__ == "__main__":
    sys.exit(main())
