"""summary.md: the run's verdicts and side-by-side figures as Markdown, for CI job summaries."""

from __future__ import annotations

import json
from typing import Any

from harness.report.summary import (
    about,
    capacity_rows,
    ceiling_line,
    conformance_rows,
    examples,
    groups,
    notes,
    recovery_by_kind,
    shows_verdicts,
    side_by_side,
    title,
    trial_rows,
    verdict_rows,
    what_ran,
)


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


def _verdicts(results: dict[str, Any], with_scenario: bool = False) -> list[str]:
    rows = verdict_rows(results, with_scenario)
    if not rows:
        return ["No run finished.", ""]
    return [table(list(rows[0]), [list(r.values()) for r in rows]), ""]


def _notes(results: dict[str, Any]) -> list[str]:
    lines = [f"- {line}" for line in notes(results)]
    return [*lines, ""] if lines else []


def _group(group: dict[str, Any], heading: str, level: int, full: bool, meta: str = "") -> list[str]:
    """One scenario's section; ``full`` adds its verdict table and notes (a suite lists those once, on top)."""
    scenario = group["scenario"]
    out = [f"{'#' * level} {heading}", ""]
    if scenario.get("description"):
        out += [scenario["description"].strip(), ""]
    out += [what_ran(scenario) + (f"; {meta}" if meta else ""), ""]
    if full and shows_verdicts(group):
        out += _verdicts(group) + _notes(group)
    header, compared = side_by_side(group) if group["runs"] else ([], [])
    if compared:
        out += [f"{'#' * (level + 1)} Side by side", "", table(header, compared), ""]
    return out


def render(results: dict[str, Any]) -> str:
    parts = groups(results)
    if len(parts) == 1 and "suite" not in results:
        out = _group(parts[0], title(results), 1, full=True, meta=about(results))
    else:
        out = [f"# {title(results)}", ""]
        suite = results.get("suite") or {}
        if suite.get("description"):
            out += [suite["description"].strip(), ""]
        out += [about(results), ""]
        out += _verdicts(results, with_scenario=True) + _notes(results)
        for group in parts:
            out += _group(group, group["scenario"]["name"], 2, full=False)
    header, capacity = capacity_rows(results)
    if capacity:
        out += ["## Sustainable throughput", "", ceiling_line(results) or "No ceiling was measured.", "",
                table(header, capacity), ""]
        for entry in results["capacity"]:
            trial_header, trials = trial_rows(entry)
            out += [f"### Trials: {entry['scenario']} on {entry['engine']}", "", table(trial_header, trials), ""]
    header, recovery = recovery_by_kind(results)
    if recovery:
        out += ["## Recovery per fault kind", "", "Seconds from each fault until the latency is back within "
                "bounds (never: not before the load ended).", "", table(header, recovery), ""]
    header, conformance = conformance_rows(results)
    if conformance:
        out += ["## Reference against real", "", table(header, conformance), ""]
    found = examples(results)
    if found:
        out += ["## Anomaly examples", ""]
        for engine, name, items in found:
            out.append(f"- **{engine}**, {name}: " + "; ".join(f"`{json.dumps(e, default=str)}`" for e in items))
        out.append("")
    return "\n".join(out)
