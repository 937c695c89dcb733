"""The short verdict table `streamgauge run` prints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.report.summary import capacity_rows, ceiling_line, groups, notes, title, verdict_rows

LEFT = ("scenario", "engine", "guarantee", "verdict", "expect")


def print_run_summary(results: dict[str, Any], out_dir: Path, console: Console | None = None,
                      reports: Sequence[Path] = ()) -> None:
    console = console or Console(highlight=False, width=150)
    table = Table(title=title(results), show_lines=False)
    rows = verdict_rows(results, with_scenario=len(groups(results)) > 1)
    for col in (rows[0] if rows else ()):
        table.add_column(col, justify="left" if col in LEFT else "right")
    for row in rows:
        table.add_row(*row.values())
    if rows:
        console.print(table)
    header, capacity = capacity_rows(results)
    if capacity:
        found = Table(title="sustainable throughput")
        for col in header:
            found.add_column(col, justify="left" if col in LEFT or col == "trials" else "right")
        for cells in capacity:
            found.add_row(*cells)
        console.print(found)
        console.print(ceiling_line(results) or "no ceiling was measured", markup=False)
    for line in notes(results):
        console.print(line, markup=False)
    console.print(f"results: {out_dir / 'results.json'}")
    for path in reports:
        console.print(f"report: {path}")
