"""The regression gate: a results.json against a committed baseline.

Correctness fails outright: an invalid run, an `unknown` verdict, an unmet
expectation, or a (scenario, engine) of the baseline that did not run.
Performance compares medians over repetitions per (scenario, engine),
normalised by the machine's ceiling (`--calibrate`) when both results carry
one: a machine whose raw transactional copy is half as fast is allowed twice
the latency and half the events per core-second. A metric regresses when it
is worse than the baseline by more than the tolerance *and* by more than its
absolute slack (milliseconds of noise are not a regression).

The tolerance, the slacks and the speed band are set from the spread of the
unmodified smoke suite, run five times against its baseline on the two-core
machine streamgauge is developed on: medians within 25 % except a steady
20 s run's p99, once +189 ms (+84 %) from one hiccup; the ceiling itself,
measured for 3 s before each run, between 116k and 156k transactional copies
per second, so one machine measured itself up to 1.35 times faster or slower
than its baseline. A speed within that band (:data:`SPEED_NOISE`) is taken as
the same machine and the figures are compared as measured.
"""

from __future__ import annotations

import statistics
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_TOLERANCE = 0.25
#: a ceiling within this share of the baseline's (either way) is one machine's own noise: figures are not scaled
SPEED_NOISE = 0.35


@dataclass(frozen=True)
class Metric:
    name: str
    value: Callable[[dict[str, Any]], float | None]
    higher_is_better: bool
    slack: float  # an absolute difference below this is noise


def _latency(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda run: run["metrics"]["latency_ms"].get(key)


def _steady_latency(key: str) -> Callable[[dict[str, Any]], float | None]:
    """The latency of events scheduled outside every fault's recovery window; a run without faults
    recorded before the metric existed has it as its own latency."""
    def value(run: dict[str, Any]) -> float | None:
        m = run["metrics"]
        steady = m.get("steady_latency_ms") or ({} if run.get("faults") else m["latency_ms"])
        return steady.get(key)
    return value


def _worst_recovery(run: dict[str, Any]) -> float | None:
    values = run["metrics"].get("recovery_s") or []
    if not values or any(v is None for v in values):
        return None  # never recovered is judged by the scenario's expectations, not here
    return max(values)


METRICS = (
    Metric("steady latency p50 ms", _steady_latency("p50"), higher_is_better=False, slack=50.0),
    Metric("latency p99 ms", _latency("p99"), higher_is_better=False, slack=300.0),
    Metric("worst recovery s", _worst_recovery, higher_is_better=False, slack=1.0),
    Metric("events per core-second", lambda run: run["metrics"].get("events_per_core_second"),
           higher_is_better=True, slack=0.0),
)


@dataclass(frozen=True)
class Finding:
    check: str  # correctness | missing | performance
    scenario: str
    engine: str
    what: str
    ok: bool
    baseline: float | None = None
    current: float | None = None  # normalised to the baseline's machine
    change: float | None = None   # relative, + is worse


@dataclass(frozen=True)
class GateResult:
    passed: bool
    tolerance: float
    speed: float | None  # current ceiling / baseline ceiling; None: not measured on both
    findings: list[Finding]
    scaled: bool = False  # the current figures were scaled by ``speed`` (it was outside the noise band)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "tolerance": self.tolerance, "speed": self.speed, "scaled": self.scaled,
                "findings": [asdict(f) for f in self.findings]}


def _correctness(run: dict[str, Any]) -> list[Finding]:
    who = (run["scenario"], run["engine"])
    rep = f" (repetition {run.get('repetition', 1)})" if run.get("repetition", 1) > 1 else ""
    out = []
    if not run["valid"]:
        out.append(Finding("correctness", *who, f"invalid run{rep}: {run.get('invalid_reason')}", ok=False))
    if run["verdict"] == "unknown":
        out.append(Finding("correctness", *who, f"verdict unknown{rep}: inconclusive checks", ok=False))
    out += [Finding("correctness", *who, f"expectation not met{rep}: {line}", ok=False)
            for line in run["expectations"]["unmet"]]
    if not out:
        out.append(Finding("correctness", *who, f"verdict {run['verdict']}{rep}, expectations met", ok=True))
    return out


def _by_target(results: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in results["runs"]:
        out.setdefault((run["scenario"], run["engine"]), []).append(run)
    return out


def _median(runs: list[dict[str, Any]], metric: Metric) -> float | None:
    values = [v for v in (metric.value(r) for r in runs if r["valid"]) if v is not None]
    return statistics.median(values) if values else None


def speed_factor(current: dict[str, Any], baseline: dict[str, Any]) -> float | None:
    """How much faster the current machine's raw transactional copy is than the baseline's (None: unknown)."""
    cur = (current.get("ceiling") or {}).get("txn_copy_eps")
    base = (baseline.get("ceiling") or {}).get("txn_copy_eps")
    return cur / base if cur and base else None


def _performance(target: tuple[str, str], cur_runs: list[dict[str, Any]], base_runs: list[dict[str, Any]],
                 speed: float | None, tolerance: float) -> list[Finding]:
    out = []
    for metric in METRICS:
        base, cur = _median(base_runs, metric), _median(cur_runs, metric)
        if base is None or cur is None:
            continue
        if speed is not None:  # express the current figure on the baseline's machine
            cur = cur / speed if metric.higher_is_better else cur * speed
        worse_by = (base - cur) if metric.higher_is_better else (cur - base)
        change = worse_by / base if base else 0.0
        ok = not (change > tolerance and worse_by > metric.slack)
        out.append(Finding("performance", *target, metric.name, ok, round(base, 3), round(cur, 3), round(change, 4)))
    return out


def gate(current: dict[str, Any], baseline: dict[str, Any], tolerance: float = DEFAULT_TOLERANCE) -> GateResult:
    """Judge ``current`` against ``baseline``; see the module docstring for the rules."""
    findings: list[Finding] = []
    for run in current["runs"]:
        findings += _correctness(run)
    now, before = _by_target(current), _by_target(baseline)
    findings += [Finding("missing", *target, "in the baseline but not run", ok=False)
                 for target in before if target not in now]
    speed = speed_factor(current, baseline)
    scaled = speed is not None and not (1 / (1 + SPEED_NOISE) <= speed <= 1 + SPEED_NOISE)
    for target, runs in now.items():
        if target in before:
            findings += _performance(target, runs, before[target], speed if scaled else None, tolerance)
    passed = bool(current["runs"]) and all(f.ok for f in findings)
    return GateResult(passed, tolerance, round(speed, 4) if speed is not None else None, findings, scaled)


def _case_text(f: Finding) -> str:
    figures = [] if f.baseline is None else [f"baseline {f.baseline:g}, current {f.current:g}"]
    if f.change is not None:
        figures.append(f"change {f.change:+.1%}")
    return f"{f.what} ({'; '.join(figures)})" if figures else f.what


def to_junit(result: GateResult) -> str:
    """The gate as JUnit XML, for CI systems that read test reports: one test suite per check, one test case per
    finding (class ``scenario.engine``), a ``failure`` element for each finding that failed."""
    root = ET.Element("testsuites", name="streamgauge gate", tests=str(len(result.findings)),
                      failures=str(sum(not f.ok for f in result.findings)))
    suites: dict[str, ET.Element] = {}
    for f in result.findings:
        suite = suites.get(f.check)
        if suite is None:
            suite = suites[f.check] = ET.SubElement(root, "testsuite", name=f"gate.{f.check}", tests="0",
                                                    failures="0")
        suite.set("tests", str(int(suite.get("tests", "0")) + 1))
        case = ET.SubElement(suite, "testcase", classname=f"{f.scenario}.{f.engine}", name=f.what)
        if not f.ok:
            suite.set("failures", str(int(suite.get("failures", "0")) + 1))
            failure = ET.SubElement(case, "failure", message=_case_text(f), type=f.check)
            failure.text = (f"{f.check} check failed for {f.scenario} on {f.engine}: {_case_text(f)} "
                            f"(tolerance {result.tolerance:.0%})")
    if not result.findings:  # nothing judged is a failure of the gate, and a reader of the XML must see it
        suite = ET.SubElement(root, "testsuite", name="gate.runs", tests="1", failures="1")
        case = ET.SubElement(suite, "testcase", classname="gate", name="runs to judge")
        ET.SubElement(case, "failure", message="no run in the results: nothing to judge", type="runs")
        root.set("tests", "1")
        root.set("failures", "1")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
