"""index.html: one self-contained page (tables from pandas, plots inlined as PNG)."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

import pandas as pd

from harness.report import figures
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

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.pass { background: #e6f4ea; } .fail { background: #fce8e6; } .unknown { background: #fef7e0; }
.note { border-left: 4px solid #c5221f; padding-left: 0.6em; }
code { font-size: 0.85em; }
"""


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _verdict_class(cell: str) -> str:
    return next((v for v in ("pass", "fail", "unknown") if cell.startswith(v)), "")


def _verdict_table(results: dict[str, Any], with_scenario: bool = False) -> str:
    rows = verdict_rows(results, with_scenario)
    if not rows:
        return "<p>No run finished.</p>"
    frame = pd.DataFrame(rows)
    classes = pd.DataFrame("", index=frame.index, columns=frame.columns)
    classes["verdict"] = frame["verdict"].map(_verdict_class)
    return frame.style.hide(axis="index").set_td_classes(classes).to_html()


def _notes(results: dict[str, Any]) -> list[str]:
    return [f"<p class='note'>{html.escape(line)}</p>" for line in notes(results)]


def _group(group: dict[str, Any], heading: str, level: int, full: bool, meta: str = "") -> list[str]:
    """One scenario's section: tables, then its plots; ``full`` adds its verdict table and notes."""
    scenario = group["scenario"]
    h, sub = f"h{level}", f"h{level + 1}"
    out = [f"<{h}>{html.escape(heading)}</{h}>"]
    if scenario.get("description"):
        out.append(f"<p>{html.escape(scenario['description'])}</p>")
    out.append(f"<p>{html.escape(what_ran(scenario) + (f'; {meta}' if meta else ''))}</p>")
    if full and shows_verdicts(group):
        out += [_verdict_table(group), *_notes(group)]
    if group["runs"]:
        header, compared = side_by_side(group)
        out += [f"<{sub}>Side by side</{sub}>", pd.DataFrame(compared, columns=header).to_html(index=False),
                f"<{sub}>Timelines</{sub}>", _img(figures.timelines(group), "throughput and latency timelines"),
                f"<{sub}>Latency and recovery</{sub}>", _img(figures.latency_spectrum(group), "latency percentiles"),
                _img(figures.recovery_bars(group), "recovery per fault")]
    return out


def render(results: dict[str, Any]) -> str:
    parts = groups(results)
    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title(results))}</title>"
            f"<style>{STYLE}</style></head><body>"]
    if len(parts) == 1 and "suite" not in results:
        page += _group(parts[0], title(results), 1, full=True, meta=about(results))
    else:
        page.append(f"<h1>{html.escape(title(results))}</h1>")
        suite = results.get("suite") or {}
        if suite.get("description"):
            page.append(f"<p>{html.escape(suite['description'])}</p>")
        page += [f"<p>{html.escape(about(results))}</p>", _verdict_table(results, with_scenario=True),
                 *_notes(results)]
        for group in parts:
            page += _group(group, group["scenario"]["name"], 2, full=False)
    header, capacity = capacity_rows(results)
    if capacity:
        page += ["<h2>Sustainable throughput</h2>",
                 f"<p>{html.escape(ceiling_line(results) or 'No ceiling was measured.')}</p>",
                 pd.DataFrame(capacity, columns=header).to_html(index=False),
                 _img(figures.capacity_bars(results), "sustainable throughput per engine against the ceiling"),
                 _img(figures.capacity_trials(results), "latency and lag slope against the rate, per trial")]
        for entry in results["capacity"]:
            trial_header, trials = trial_rows(entry)
            page += [f"<h3>Trials: {html.escape(entry['scenario'])} on {html.escape(entry['engine'])}</h3>",
                     pd.DataFrame(trials, columns=trial_header).to_html(index=False)]
    header, recovery = recovery_by_kind(results)
    if recovery:
        page += ["<h2>Recovery per fault kind</h2>", "<p>Seconds from each fault until the latency is back within "
                 "bounds (never: not before the load ended).</p>", pd.DataFrame(recovery, columns=header).to_html(index=False)]
    header, conformance = conformance_rows(results)
    if conformance:
        page += ["<h2>Reference against real</h2>", pd.DataFrame(conformance, columns=header).to_html(index=False)]
    found = examples(results)
    if found:
        page.append("<h2>Anomaly examples</h2><ul>")
        page += [f"<li><b>{html.escape(engine)}</b>, {html.escape(name)}: "
                 + "; ".join(f"<code>{html.escape(json.dumps(e, default=str))}</code>" for e in items) + "</li>"
                 for engine, name, items in found]
        page.append("</ul>")
    page.append("</body></html>")
    return "\n".join(p for p in page if p)
