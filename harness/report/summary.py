"""What every report shows, computed once from results.json's content.

The console table, summary.md and index.html all render these rows, so the
three never disagree about a verdict or a figure.
"""

from __future__ import annotations

from typing import Any

from harness.metrics.compute import Timeline, longest_stall_s

MAIN_ANOMALIES = ("lost", "duplicate", "inconsistent", "order")


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _fmt_s(values: list[float | None]) -> str:
    return ", ".join("never" if v is None else f"{v:g}" for v in values) or "-"


def verdict_cell(run: dict[str, Any]) -> str:
    return run["verdict"] if run["valid"] else f"{run['verdict']} (INVALID)"


def comparisons_of(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The model comparisons of results.json (``comparisons``; older files have one ``comparison``)."""
    return list(results.get("comparisons") or ([results["comparison"]] if "comparison" in results else []))


def groups(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs per scenario, each group shaped like a one-scenario results.json.

    A group has ``scenario`` (its definition), ``runs`` and ``comparisons``;
    results.json of one scenario gives one group, a suite's one per scenario.
    """
    scenarios = dict(results.get("scenarios") or {})
    if not scenarios and "scenario" in results:
        scenarios = {results["scenario"]["name"]: results["scenario"]}
    for r in results["runs"]:
        scenarios.setdefault(r["scenario"], {"name": r["scenario"]})
    comparisons = comparisons_of(results)
    out = []
    for name, definition in scenarios.items():
        out.append({"scenario": definition, "runs": [r for r in results["runs"] if r["scenario"] == name],
                    "comparisons": [c for c in comparisons if c.get("scenario", name) == name],
                    "capacity": [c for c in results.get("capacity") or [] if c["scenario"] == name]})
    return out


def shows_verdicts(group: dict[str, Any]) -> bool:
    """A group's verdict table is shown unless it only searched capacities (its trials are in that table)."""
    return bool(group["runs"]) or not group.get("capacity")


def _eps(v: float | None) -> str:
    return "none" if v is None else f"{v:,.0f}"


def ceiling_line(results: dict[str, Any]) -> str | None:
    """The raw client ceiling the run measured, in one line (None: not measured)."""
    c = results.get("ceiling")
    if not c:
        return None
    return (f"Ceiling on this Kafka (one client process): produce {_eps(c.get('produce_eps'))}/s, consume "
            f"{_eps(c.get('consume_eps'))}/s, transactional copy {_eps(c.get('txn_copy_eps'))}/s.")


def capacity_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per capacity search: the sustainable rate, its spread over repetitions, its fraction of the
    transactional-copy ceiling, the load's CPU share beside it, and the trials it took."""
    entries = results.get("capacity") or []
    rows = []
    for c in entries:
        trials = c.get("trials") or []
        note = "; limited by the load (a trial's generator fell behind)" if c.get("limited_by_load") else ""
        share = c.get("load_cpu_share")
        fraction = c.get("ceiling_fraction")
        rows.append([c["scenario"], c["engine"], c["guarantee"], _eps(c["sustainable_eps"]),
                     "-" if c.get("spread_eps") is None else _eps(c["spread_eps"]),
                     ", ".join(_eps(v) for v in c.get("per_repetition_eps") or []),
                     "-" if fraction is None else f"{fraction:.2f}",
                     "-" if share is None else f"{share:.0%}",
                     f"{sum(t['sustainable'] for t in trials)} of {len(trials)} sustained{note}"])
    header = ["scenario", "engine", "guarantee", "sustainable events/s", "spread", "per repetition",
              "x txn-copy ceiling", "load CPU share", "trials"]
    return (header, rows) if rows else ([], [])


def trial_rows(entry: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Every trial of one capacity search, in the order run."""
    rows = [[str(t["repetition"]), _eps(t["rate_eps"]), "yes" if t["sustainable"] else "no",
             "-" if t.get("p99_ms") is None else f"{t['p99_ms']:,.0f}",
             "-" if t.get("lag_slope") is None else f"{t['lag_slope']:+,.0f}",
             "-" if t.get("cpu_s") is None else f"{t['cpu_s']:g}", t["why"]] for t in entry.get("trials") or []]
    return ["rep", "events/s", "sustainable", "p99 ms", "lag slope /s", "engine CPU s", "why"], rows


def repeated(runs: list[dict[str, Any]]) -> bool:
    return any(r.get("repetition", 1) > 1 for r in runs)


def run_label(run: dict[str, Any], with_rep: bool) -> str:
    label = f"{run['engine']} ({run['guarantee']})"
    return f"{label} #{run.get('repetition', 1)}" if with_rep else label


def verdict_rows(results: dict[str, Any], with_scenario: bool = False) -> list[dict[str, str]]:
    """One row per run: what ran, the verdict, anomaly counts, volumes, latency, expectations."""
    rows = []
    with_rep = repeated(results["runs"])
    for r in results["runs"]:
        a = r["anomalies"]
        m = r["metrics"]
        ku = (m.get("keeps_up") or {}).get("keeps_up")
        row = {"scenario": r["scenario"]} if with_scenario else {}
        row["engine"] = r["engine"]
        if with_rep:
            row["rep"] = str(r.get("repetition", 1))
        row.update({
            "guarantee": r["guarantee"], "verdict": verdict_cell(r),
            "lost": str(a.get("lost", 0)), "dup": str(a.get("duplicate", 0)),
            "incons.": str(a.get("inconsistent", 0)), "order": str(a.get("order", 0)),
            "other": str(sum(v for k, v in a.items() if k not in MAIN_ANOMALIES)),
            "inputs": str(r["inputs"]), "outputs": str(r["outputs"]), "late": str(m.get("late_dropped", "-")),
            "p50 ms": _fmt_ms(m["latency_ms"].get("p50")), "p99 ms": _fmt_ms(m["latency_ms"].get("p99")),
            "keeps up": {True: "yes", False: "no", None: "?"}[ku],
            "expect": "met" if r["expectations"]["met"] else "NOT MET",
        })
        rows.append(row)
    return rows


def about(results: dict[str, Any]) -> str:
    """Where and when: Kafka version, git revision, start time."""
    return f"Kafka {results.get('kafka')}, git {results.get('git')}, started {results.get('started')}"


def what_ran(scenario: dict[str, Any]) -> str:
    return (f"job {scenario.get('job')}, guarantee {scenario.get('guarantee')}, "
            f"parallelism {scenario.get('parallelism')}, {scenario.get('partitions')} partitions")


def title(results: dict[str, Any]) -> str:
    """The report's title: the suite's name, else the one scenario's."""
    if "suite" in results:
        return f"streamgauge — suite {results['suite']['name']}"
    names = [g["scenario"]["name"] for g in groups(results)]
    return f"streamgauge — {', '.join(names)}"


def notes(results: dict[str, Any]) -> list[str]:
    """Lines a reader must not miss: invalid runs, unmet expectations, differences between the models."""
    out = []
    many = len(groups(results)) > 1
    for r in results["runs"]:
        who = f"{r['scenario']}, {r['engine']}" if many else r["engine"]
        if repeated(results["runs"]):
            who += f" #{r.get('repetition', 1)}"
        if not r["valid"]:
            out.append(f"[{who}] run invalid: {r['invalid_reason']}")
        out.extend(f"[{who}] expectation not met: {line}" for line in r["expectations"]["unmet"])
        explanations = (r.get("engine_status") or {}).get("explanations") or {}
        out.extend(f"[{who}] {name} ({count}): {explanations[name]}"
                   for name, count in r["anomalies"].items() if count and name in explanations)
        out.extend(f"[{who}] {line}" for line in (r.get("engine_status") or {}).get("notes") or [])
        if (spurious := spurious_failovers(r)) is not None:
            out.append(f"[{who}] {spurious}")
    for c in comparisons_of(results):
        prefix = f"[{c['scenario']}] " if many and c.get("scenario") else ""
        if c.get("summary"):
            out.append(prefix + c["summary"])
        out.extend(prefix + "reference against real: " + p["summary"] for p in c.get("conformance") or [])
    return out


def conformance_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Reference against real, a row per compared pair: scenario, the pair, equal, and the counts."""
    header = ["scenario", "reference", "real", "equal", "compared", "only reference", "only real", "differing",
              "model difference", "what is compared"]
    rows = []
    for c in comparisons_of(results):
        for p in c.get("conformance") or []:
            equal = "not comparable" if not p.get("comparable") else ("yes" if p.get("equal") else "NO")
            rows.append([str(c.get("scenario", "")), p["reference"], p["real"], equal,
                         *(str(p.get(k, "-")) for k in ("compared", "only_reference", "only_real", "differing",
                                                        "model_difference")),
                         str(p.get("basis") or p.get("summary", ""))])
    return header, rows


def side_by_side(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The models side by side: rows (what) by columns (one per run).

    The measured rows are the same for every engine; then come the facts each
    engine's status reports (``engine_status.facts``), in the order the
    engines give them, a row per label any run has.
    """
    runs = results["runs"]
    header = ["", *(run_label(r, repeated(runs)) for r in runs)]

    def row(label: str, cell: Any) -> list[str]:
        values = []
        for r in runs:
            try:
                v = cell(r)
            except (KeyError, TypeError):
                v = None
            values.append("-" if v is None or v == "" else str(v))
        return [label, *values]

    def lat(key: str) -> Any:
        return lambda r: _fmt_ms(r["metrics"]["latency_ms"].get(key))

    def steady(key: str) -> Any:
        """Only for runs with faults: without any it is the run's own latency."""
        return lambda r: _fmt_ms(r["metrics"]["steady_latency_ms"].get(key)) if r["faults"] else None

    def wrl(key: str) -> Any:
        return lambda r: _fmt_ms(r["metrics"]["window_result_latency_ms"][key])

    def stall(r: dict[str, Any]) -> int | None:
        """Recorded with the run, or (older results) computed from its timeline of outputs."""
        if "longest_stall_s" in r["metrics"]:
            return int(r["metrics"]["longest_stall_s"])
        outputs = r["metrics"]["timeline"]["outputs"]
        return longest_stall_s(Timeline(inputs=[], outputs=outputs, p99_ms=[])) if outputs else None

    def fact(label: str) -> Any:
        return lambda r: (r.get("engine_status") or {}).get("facts", {}).get(label)

    def version(r: dict[str, Any]) -> str | None:
        found = (r.get("engine_status") or {}).get("version") or {}
        return ", ".join(f"{name} {v}" for name, v in found.items()) or None

    rows = [
        row("verdict", verdict_cell),
        row("version", version),
        row("latency p50 ms", lat("p50")),
        row("latency p99 ms", lat("p99")),
        row("latency p99.9 ms", lat("p999")),
        row("latency max ms", lat("max")),
        row("recovery per fault, s", lambda r: _fmt_s(r["metrics"]["recovery_s"]) if r["faults"] else None),
        row("latency p50 ms outside recovery", steady("p50")),
        row("latency p99 ms outside recovery", steady("p99")),
        row("faults", lambda r: "; ".join(f"{f['at_s']:g}s {f['kind']} {f['target']}" for f in r["faults"])),
        *([row("bounded job: duration, s", lambda r: r["metrics"]["bounded"]["duration_s"]),
           row("bounded job: events/s", lambda r: r["metrics"]["bounded"]["throughput_eps"])]
          if any("bounded" in r["metrics"] for r in runs) else []),
        row("input events/s", lambda r: r["metrics"]["throughput_eps"]),
        row("output events/s", lambda r: r["metrics"]["output_eps"]),
        row("longest stall (no output), s", stall),
        row("CPU s", lambda r: r["metrics"]["cpu_s"]),
        row("CPU s per 100k events", lambda r: round(r["metrics"]["cpu_s"] * 100_000 / r["inputs"], 1)
            if r["inputs"] else None),
        row("peak RSS MB", lambda r: r["metrics"]["rss_mb"]),
        row("events per core-second", lambda r: r["metrics"]["events_per_core_second"]),
        row("late-dropped records", lambda r: r["metrics"]["late_dropped"]),
        row("window result latency p50 ms", wrl("p50")),
        row("window result latency p99 ms", wrl("p99")),
    ]
    labels = dict.fromkeys(label for r in runs for label in (r.get("engine_status") or {}).get("facts", {}))
    rows += [row(label, fact(label)) for label in labels]
    # a row no run has a value for says nothing
    return header, [r for r in rows if any(v != "-" for v in r[1:])]


def spurious_failovers(run: dict[str, Any]) -> str | None:
    """A highly available run with more JobManager failovers than JobManager faults: what the machine did,
    not what a fault did, said so that it is not taken for a result (None when they match)."""
    ha = (run.get("engine_status") or {}).get("high_availability")
    if not ha:
        return None
    changes = ha["takeovers"] if "takeovers" in ha else max(0, int(ha.get("grants") or 1) - 1)
    faults = sum(1 for f in run["faults"] if fault_target_kind(f["target"]) == "jobmanager" and not f.get("error"))
    if changes <= faults:
        return None
    return (f"{changes} JobManager failovers for {faults} JobManager faults: {changes - faults} without a fault "
            f"(a JobManager stalled past its lease or ZooKeeper session here), so recovery figures are not "
            f"the faults' alone")


def fault_target_kind(target: str) -> str:
    """What a fault hit, the same on every engine: a broker, the JobManager, the whole job (upgrade, scale),
    or a worker (an instance, a TaskManager, several of them)."""
    if target.startswith("broker-"):
        return "broker"
    if target == "job":
        return "job"
    return "jobmanager" if target == "jobmanager" or target.startswith("jobmanager-") else "worker"


def recovery_by_kind(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Seconds back to the engine's latency after each fault, per fault kind (and what it hit) and engine, side
    by side over every run with faults ("never": not recovered before the load ended)."""
    cells: dict[str, dict[str, list[float | None]]] = {}
    engines: list[str] = []
    for run in results["runs"]:
        recoveries = run["metrics"].get("recovery_s") or []
        for fault, seconds in zip(run["faults"], recoveries):
            label = f"{fault['kind']} {fault_target_kind(fault['target'])} ({run['guarantee']})"
            cells.setdefault(label, {}).setdefault(run["engine"], []).append(seconds)
            if run["engine"] not in engines:
                engines.append(run["engine"])
    rows = [[label, *(_fmt_s(by_engine[e]) if e in by_engine else "-" for e in engines)]
            for label, by_engine in cells.items()]
    return (["fault", *engines], rows) if rows else ([], [])


def examples(results: dict[str, Any], limit: int = 3) -> list[tuple[str, str, list[Any]]]:
    """(engine, checker, first examples) for every checker that found something."""
    out = []
    for r in results["runs"]:
        for name, count in r["anomalies"].items():
            found = (r.get("examples") or {}).get(name) or []
            if count and found:
                out.append((r["engine"], name, found[:limit]))
    return out
