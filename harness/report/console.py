"""The short verdict table `streamgauge run` prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def print_run_summary(results: dict[str, Any], out_dir: Path, console: Console | None = None) -> None:
    console = console or Console(highlight=False, width=150)
    table = Table(title=f"streamgauge — {results['scenario']['name']}", show_lines=False)
    for col in ("engine", "guarantee", "verdict", "lost", "dup", "incons.", "order", "other",
                "inputs", "outputs", "late", "p50 ms", "p99 ms", "keeps up", "expect"):
        table.add_column(col, justify="right" if col not in ("engine", "guarantee", "verdict", "expect") else "left")
    for r in results["runs"]:
        a = r["anomalies"]
        other = sum(v for k, v in a.items() if k not in ("lost", "duplicate", "inconsistent", "order"))
        lat = r["metrics"]["latency_ms"]
        ku = r["metrics"]["keeps_up"]["keeps_up"]
        verdict = r["verdict"] if r["valid"] else f"{r['verdict']} (INVALID)"
        expect = "met" if r["expectations"]["met"] else "NOT MET"
        table.add_row(r["engine"], r["guarantee"], verdict, str(a.get("lost", 0)), str(a.get("duplicate", 0)),
                      str(a.get("inconsistent", 0)), str(a.get("order", 0)), str(other), str(r["inputs"]),
                      str(r["outputs"]), str(r["metrics"].get("late_dropped", "-")),
                      f"{lat['p50']:.0f}", f"{lat['p99']:.0f}",
                      {True: "yes", False: "no", None: "?"}[ku], expect)
    console.print(table)
    for r in results["runs"]:
        if not r["valid"]:
            console.print(f"[{r['engine']}] run invalid: {r['invalid_reason']}")
        for line in r["expectations"]["unmet"]:
            console.print(f"[{r['engine']}] expectation not met: {line}")
    if "comparison" in results:
        console.print(results["comparison"]["summary"])
    console.print(f"results: {out_dir / 'results.json'}")
