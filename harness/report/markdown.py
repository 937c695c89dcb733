"""summary.md: the run's verdicts and side-by-side figures as Markdown, for CI job summaries."""

from __future__ import annotations

import json
from typing import Any

from harness.report.summary import examples, notes, side_by_side, verdict_rows


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table; numbers right-aligned."""
    def align(i: int) -> str:
        numeric = rows and all(r[i].replace(".", "", 1).replace("-", "", 1).isdigit() or r[i] == "-" for r in rows)
        return "---:" if numeric and i else "---"

    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "| " + " | ".join(align(i) for i in range(len(header))) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    scenario = results["scenario"]
    rows = verdict_rows(results)
    out = [f"# streamgauge — {scenario['name']}", ""]
    if scenario.get("description"):
        out += [scenario["description"].strip(), ""]
    out += [f"job `{scenario.get('job')}`, guarantee {scenario.get('guarantee')}, "
            f"parallelism {scenario.get('parallelism')}, {scenario.get('partitions')} partitions; "
            f"Kafka {results.get('kafka')}, git {results.get('git')}, started {results.get('started')}", ""]
    if rows:
        out += [table(list(rows[0]), [list(r.values()) for r in rows]), ""]
    else:
        out += ["No run finished.", ""]
    for line in notes(results):
        out += [f"- {line}"]
    if notes(results):
        out.append("")
    header, compared = side_by_side(results) if results["runs"] else ([], [])
    if compared:
        out += ["## Side by side", "", table(header, compared), ""]
    found = examples(results)
    if found:
        out += ["## Anomaly examples", ""]
        for engine, name, items in found:
            out.append(f"- **{engine}**, {name}: " + "; ".join(f"`{json.dumps(e, default=str)}`" for e in items))
        out.append("")
    return "\n".join(out)
