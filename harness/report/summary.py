"""What every report shows, computed once from results.json's content.

The console table, summary.md and index.html all render these rows, so the
three never disagree about a verdict or a figure.
"""

from __future__ import annotations

from typing import Any

MAIN_ANOMALIES = ("lost", "duplicate", "inconsistent", "order")


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _fmt_s(values: list[float | None]) -> str:
    return ", ".join("never" if v is None else f"{v:g}" for v in values) or "-"


def verdict_cell(run: dict[str, Any]) -> str:
    return run["verdict"] if run["valid"] else f"{run['verdict']} (INVALID)"


def verdict_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """One row per run: what ran, the verdict, anomaly counts, volumes, latency, expectations."""
    rows = []
    for r in results["runs"]:
        a = r["anomalies"]
        m = r["metrics"]
        ku = (m.get("keeps_up") or {}).get("keeps_up")
        rows.append({
            "engine": r["engine"], "guarantee": r["guarantee"], "verdict": verdict_cell(r),
            "lost": str(a.get("lost", 0)), "dup": str(a.get("duplicate", 0)),
            "incons.": str(a.get("inconsistent", 0)), "order": str(a.get("order", 0)),
            "other": str(sum(v for k, v in a.items() if k not in MAIN_ANOMALIES)),
            "inputs": str(r["inputs"]), "outputs": str(r["outputs"]), "late": str(m.get("late_dropped", "-")),
            "p50 ms": _fmt_ms(m["latency_ms"].get("p50")), "p99 ms": _fmt_ms(m["latency_ms"].get("p99")),
            "keeps up": {True: "yes", False: "no", None: "?"}[ku],
            "expect": "met" if r["expectations"]["met"] else "NOT MET",
        })
    return rows


def notes(results: dict[str, Any]) -> list[str]:
    """Lines a reader must not miss: invalid runs, unmet expectations, differences between the models."""
    out = []
    for r in results["runs"]:
        if not r["valid"]:
            out.append(f"[{r['engine']}] run invalid: {r['invalid_reason']}")
        out.extend(f"[{r['engine']}] expectation not met: {line}" for line in r["expectations"]["unmet"])
    if "comparison" in results:
        out.append(results["comparison"]["summary"])
    return out


def _config(run: dict[str, Any], key: str) -> Any:
    return (run.get("engine_status") or {}).get("config", {}).get(key)


def side_by_side(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """DESIGN §6 observables as rows (what) by columns (one per run), for the comparison table."""
    runs = results["runs"]
    header = ["", *(f"{r['engine']} ({r['guarantee']})" for r in runs)]

    def row(label: str, cell) -> list[str]:
        values = []
        for r in runs:
            try:
                v = cell(r)
            except (KeyError, TypeError):
                v = None
            values.append("-" if v is None or v == "" else str(v))
        return [label, *values]

    def lat(key: str):
        return lambda r: _fmt_ms(r["metrics"]["latency_ms"].get(key))

    def ck(key: str):
        return lambda r: r["engine_status"]["checkpoints"][key]

    def counter(key: str):
        return lambda r: r["engine_status"].get(key)

    def visibility(r: dict[str, Any]) -> str | None:
        if _config(r, "checkpoint_interval_ms") is not None:
            return f"checkpoint interval {_config(r, 'checkpoint_interval_ms')} ms"
        if _config(r, "commit_interval_ms") is not None:
            return f"commit interval {_config(r, 'commit_interval_ms')} ms"
        return None

    def wrl(key: str):
        return lambda r: _fmt_ms(r["metrics"]["window_result_latency_ms"][key])

    rows = [
        row("verdict", verdict_cell),
        row("output visibility", visibility),
        row("latency p50 ms", lat("p50")),
        row("latency p99 ms", lat("p99")),
        row("latency p99.9 ms", lat("p999")),
        row("latency max ms", lat("max")),
        row("recovery per fault, s", lambda r: _fmt_s(r["metrics"]["recovery_s"]) if r["faults"] else None),
        row("faults", lambda r: "; ".join(f"{f['at_s']:g}s {f['kind']} {f['target']}" for f in r["faults"])),
        row("input events/s", lambda r: r["metrics"]["throughput_eps"]),
        row("output events/s", lambda r: r["metrics"]["output_eps"]),
        row("CPU s", lambda r: r["metrics"]["cpu_s"]),
        row("peak RSS MB", lambda r: r["metrics"]["rss_mb"]),
        row("events per core-second", lambda r: r["metrics"]["events_per_core_second"]),
        row("late-dropped records", lambda r: r["metrics"]["late_dropped"]),
        row("window result latency p50 ms", wrl("p50")),
        row("window result latency p99 ms", wrl("p99")),
        row("commits refused by fencing", counter("fenced")),
        row("rejoins", counter("rejoins")),
        row("checkpoints completed", ck("completed")),
        row("checkpoint duration p50 / p99 ms", lambda r: "{} / {}".format(
            _fmt_ms(r["engine_status"]["checkpoints"]["duration_ms_p50"]),
            _fmt_ms(r["engine_status"]["checkpoints"]["duration_ms_p99"]))),
        row("alignment p50 / p99 ms", lambda r: "{} / {}".format(
            _fmt_ms(r["engine_status"]["checkpoints"]["alignment_ms_p50"]),
            _fmt_ms(r["engine_status"]["checkpoints"]["alignment_ms_p99"]))),
        row("global rollbacks", ck("restores")),
    ]
    # a row no run has a value for says nothing
    return header, [r for r in rows if any(v != "-" for v in r[1:])]


def examples(results: dict[str, Any], limit: int = 3) -> list[tuple[str, str, list[Any]]]:
    """(engine, checker, first examples) for every checker that found something."""
    out = []
    for r in results["runs"]:
        for name, count in r["anomalies"].items():
            found = (r.get("examples") or {}).get(name) or []
            if count and found:
                out.append((r["engine"], name, found[:limit]))
    return out
