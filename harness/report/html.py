"""index.html: one self-contained page (tables from pandas, plots inlined as PNG)."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

import pandas as pd

from harness.report import figures
from harness.report.summary import examples, notes, side_by_side, verdict_rows

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


def _verdict_table(results: dict[str, Any]) -> str:
    rows = verdict_rows(results)
    if not rows:
        return "<p>No run finished.</p>"
    frame = pd.DataFrame(rows)
    classes = pd.DataFrame("", index=frame.index, columns=frame.columns)
    classes["verdict"] = frame["verdict"].map(_verdict_class)
    styled = frame.style.hide(axis="index").set_td_classes(classes)
    return styled.to_html()


def render(results: dict[str, Any]) -> str:
    scenario = results["scenario"]
    name = html.escape(scenario["name"])
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>streamgauge — {name}</title>"
             f"<style>{STYLE}</style></head><body>", f"<h1>streamgauge — {name}</h1>"]
    if scenario.get("description"):
        parts.append(f"<p>{html.escape(scenario['description'])}</p>")
    parts.append(f"<p>job <code>{html.escape(str(scenario.get('job')))}</code>, guarantee "
                 f"{html.escape(str(scenario.get('guarantee')))}, parallelism {scenario.get('parallelism')}, "
                 f"{scenario.get('partitions')} partitions; Kafka {html.escape(str(results.get('kafka')))}, "
                 f"git {html.escape(str(results.get('git')))}, started {html.escape(str(results.get('started')))}</p>")
    parts.append(_verdict_table(results))
    parts += [f"<p class='note'>{html.escape(line)}</p>" for line in notes(results)]
    if results["runs"]:
        header, compared = side_by_side(results)
        parts += ["<h2>Side by side</h2>",
                  pd.DataFrame(compared, columns=header).to_html(index=False, escape=True)]
        parts += ["<h2>Timelines</h2>", _img(figures.timelines(results), "throughput and latency timelines"),
                  "<h2>Latency and recovery</h2>", _img(figures.latency_spectrum(results), "latency percentiles"),
                  _img(figures.recovery_bars(results), "recovery per fault")]
    found = examples(results)
    if found:
        parts.append("<h2>Anomaly examples</h2><ul>")
        parts += [f"<li><b>{html.escape(engine)}</b>, {html.escape(name)}: "
                  + "; ".join(f"<code>{html.escape(json.dumps(e, default=str))}</code>" for e in items) + "</li>"
                  for engine, name, items in found]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)
