"""The regression gate: each rule fed a bad case fails, and a slower machine alone does not."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.gate import gate
from harness.report import SCHEMA

CLI = [sys.executable, "-m", "harness.cli"]
ROOT = Path(__file__).resolve().parents[2]


def _run(engine: str, rep: int = 1, p99: float = 1000.0, epcs: float = 20000.0, steady_p50: float = 120.0,
         **extra) -> dict:
    run = {"scenario": "kill", "engine": engine, "repetition": rep, "valid": True, "invalid_reason": "",
           "verdict": "pass", "expectations": {"met": True, "unmet": []},
           "faults": [{"at_s": 5.0, "kind": "kill"}, {"at_s": 12.0, "kind": "kill"}],
           "metrics": {"latency_ms": {"p50": 150.0, "p99": p99}, "recovery_s": [2.0, 3.0],
                       "steady_latency_ms": {"p50": steady_p50, "p99": 300.0},
                       "events_per_core_second": epcs}}
    run.update(extra)
    return run


def _results(*runs: dict, ceiling: float | None = None) -> dict:
    out: dict[str, Any] = {"schema": SCHEMA, "runs": list(runs)}
    if ceiling is not None:
        out["ceiling"] = {"txn_copy_eps": ceiling}
    return out


BASE = _results(_run("embedded"), _run("embedded", rep=2), _run("cluster"), ceiling=100_000)


def _failed(result) -> list[str]:
    return [f"{f.check}:{f.engine}:{f.what}" for f in result.findings if not f.ok]


def test_the_same_results_pass():
    result = gate(copy.deepcopy(BASE), BASE)
    assert result.passed and _failed(result) == [] and result.speed == 1.0


def test_an_unmet_expectation_fails_outright():
    cur = copy.deepcopy(BASE)
    cur["runs"][2]["verdict"] = "fail"
    cur["runs"][2]["expectations"] = {"met": False, "unmet": ["correct: expected pass, got fail"]}
    result = gate(cur, BASE)
    assert not result.passed
    assert _failed(result) == ["correctness:cluster:expectation not met: correct: expected pass, got fail"]


def test_an_expected_failure_is_not_a_correctness_failure():
    cur = copy.deepcopy(BASE)
    cur["runs"][0]["verdict"] = "fail"  # the negative control: the scenario expects it
    assert gate(cur, BASE).passed


def test_unknown_and_invalid_fail_whatever_the_expectations_say():
    cur = copy.deepcopy(BASE)
    cur["runs"][0]["verdict"] = "unknown"
    cur["runs"][2]["valid"] = False
    cur["runs"][2]["invalid_reason"] = "the generator fell 3.00 s behind its schedule"
    failed = _failed(gate(cur, BASE))
    assert "correctness:embedded:verdict unknown: inconclusive checks" in failed
    assert "correctness:cluster:invalid run: the generator fell 3.00 s behind its schedule" in failed


def test_a_target_of_the_baseline_that_did_not_run_fails():
    cur = _results(_run("embedded"), ceiling=100_000)
    assert _failed(gate(cur, BASE)) == ["missing:cluster:in the baseline but not run"]


def test_no_run_at_all_fails():
    assert not gate(_results(ceiling=100_000), _results()).passed


def test_a_latency_regression_fails_and_noise_does_not():
    slower = _results(_run("embedded", p99=2600.0), _run("embedded", rep=2, p99=2400.0), _run("cluster"),
                      ceiling=100_000)
    assert _failed(gate(slower, BASE)) == ["performance:embedded:latency p99 ms"]
    finding = next(f for f in gate(slower, BASE).findings if f.what == "latency p99 ms" and f.engine == "embedded")
    assert (finding.baseline, finding.current, finding.change) == (1000.0, 2500.0, 1.5)  # medians
    noisy = _results(_run("embedded", p99=1200.0), _run("embedded", rep=2, p99=1200.0), _run("cluster"),
                     ceiling=100_000)
    assert gate(noisy, BASE).passed  # 20 % < 25 %


def test_the_median_latency_is_judged_outside_the_recovery_windows():
    # a slower recovery moves the whole run's p50 (more events wait out the fault); the steady p50 judges the
    # engine's speed where no fault is being recovered from, and the recovery itself is judged as recovery
    slow_recovery = copy.deepcopy(BASE)
    for r in slow_recovery["runs"]:
        r["metrics"]["latency_ms"]["p50"] = 600.0
    assert gate(slow_recovery, BASE).passed
    slower = _results(_run("embedded", steady_p50=200.0), _run("embedded", rep=2, steady_p50=200.0),
                      _run("cluster"), ceiling=100_000)
    assert _failed(gate(slower, BASE)) == ["performance:embedded:steady latency p50 ms"]


def test_a_run_without_faults_has_its_own_latency_as_steady_latency():
    def steady(p50: float) -> dict:
        run = _run("embedded", faults=[])
        run["metrics"].pop("steady_latency_ms")  # recorded before the metric existed
        run["metrics"]["latency_ms"]["p50"] = p50
        return run
    assert _failed(gate(_results(steady(400.0)), _results(steady(150.0)))) == [
        "performance:embedded:steady latency p50 ms"]
    # with faults and no such record there is nothing to judge it by: it is left out, not guessed
    old = _run("embedded")
    old["metrics"].pop("steady_latency_ms")
    assert all(f.what != "steady latency p50 ms" for f in gate(_results(old), _results(old)).findings)


def test_small_absolute_changes_are_noise():
    base = _results(_run("embedded", p99=40.0), ceiling=100_000)
    cur = _results(_run("embedded", p99=80.0), ceiling=100_000)  # +100 %, but 40 ms
    assert gate(cur, base).passed


def test_a_throughput_regression_fails():
    cur = _results(_run("embedded", epcs=9000.0), _run("embedded", rep=2, epcs=9000.0), _run("cluster"),
                   ceiling=100_000)
    assert _failed(gate(cur, BASE)) == ["performance:embedded:events per core-second"]


def test_a_slower_machine_alone_does_not_fail_but_a_regression_on_it_does():
    # half the ceiling: twice the latency and half the efficiency are what the machine explains
    half = _results(_run("embedded", p99=2000.0, epcs=10000.0), _run("embedded", rep=2, p99=2000.0, epcs=10000.0),
                    _run("cluster", p99=2000.0, epcs=10000.0), ceiling=50_000)
    result = gate(half, BASE)
    assert result.passed and result.speed == 0.5 and result.scaled
    worse = copy.deepcopy(half)
    for r in worse["runs"][:2]:
        r["metrics"]["latency_ms"]["p99"] = 4000.0
    assert _failed(gate(worse, BASE)) == ["performance:embedded:latency p99 ms"]
    # the same slower figures without ceilings are compared as measured, and fail
    assert not gate(_results(*half["runs"]), _results(*BASE["runs"])).passed


def test_a_ceiling_within_one_machines_noise_is_not_scaled_by():
    # the same engine figures on a run whose 3 s ceiling came out 15 % low: the machine did not change, so a
    # 15 % speed is not taken to excuse (nor to condemn) anything
    noisy = _results(_run("embedded"), _run("embedded", rep=2), _run("cluster"), ceiling=85_000)
    result = gate(noisy, BASE)
    assert result.passed and result.speed == 0.85 and not result.scaled
    assert all(f.current == f.baseline for f in result.findings if f.check == "performance")
    # and a real regression on it is judged as measured: a p99 twice the baseline's fails
    worse = copy.deepcopy(noisy)
    for r in worse["runs"][:2]:
        r["metrics"]["latency_ms"]["p99"] *= 2
    assert _failed(gate(worse, BASE)) == ["performance:embedded:latency p99 ms"]


def _gate_cli(tmp_path: Path, current: dict, baseline: dict, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "cur.json").write_text(json.dumps(current))
    (tmp_path / "base.json").write_text(json.dumps(baseline))
    return subprocess.run([*CLI, "gate", str(tmp_path / "cur.json"), "--baseline", str(tmp_path / "base.json"),
                           *extra], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_gate_command_exit_codes(tmp_path):
    ok = _gate_cli(tmp_path, BASE, BASE)
    assert ok.returncode == 0, ok.stderr
    assert "gate: pass" in ok.stdout and "speed 1" in ok.stdout
    bad = copy.deepcopy(BASE)
    bad["runs"][0]["expectations"] = {"met": False, "unmet": ["lost: expected 0, got 3"]}
    r = _gate_cli(tmp_path, bad, BASE, "--json")
    assert r.returncode == 1
    verdict = json.loads(r.stdout)
    assert verdict["passed"] is False and any(not f["ok"] for f in verdict["findings"])
    missing = subprocess.run([*CLI, "gate", str(tmp_path / "cur.json"), "--baseline", str(tmp_path / "none.json")],
                             capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert missing.returncode == 2 and "none.json" in missing.stderr and "not found" in missing.stderr
    r = _gate_cli(tmp_path, BASE, BASE, "--tolerance", "-1")
    assert r.returncode == 2 and "--tolerance" in r.stderr


def _junit_cases(text: str) -> list[tuple[str, str, str | None]]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    cases = []
    for suite in root.iter("testsuite"):
        assert int(suite.get("tests", "")) == len(suite.findall("testcase"))
        assert int(suite.get("failures", "")) == len(suite.findall("testcase/failure"))
        for case in suite.findall("testcase"):
            failure = case.find("failure")
            cases.append((case.get("classname", ""), case.get("name", ""),
                          None if failure is None else failure.get("message", "")))
    assert int(root.get("tests", "")) == len(cases)
    assert int(root.get("failures", "")) == sum(c[2] is not None for c in cases)
    return cases


def test_gate_writes_junit_xml_that_names_each_failure(tmp_path):
    slower = _results(_run("embedded", p99=2600.0), _run("embedded", rep=2, p99=2400.0), ceiling=100_000)
    r = _gate_cli(tmp_path, slower, BASE, "--junit", str(tmp_path / "gate.xml"))
    assert r.returncode == 1
    cases = _junit_cases((tmp_path / "gate.xml").read_text())
    failed = {(c, n): m for c, n, m in cases if m is not None}
    assert set(failed) == {("kill.embedded", "latency p99 ms"), ("kill.cluster", "in the baseline but not run")}
    assert "baseline 1000, current 2500; change +150.0%" in failed[("kill.embedded", "latency p99 ms")]
    assert ("kill.embedded", "steady latency p50 ms", None) in cases
    ok = _gate_cli(tmp_path, BASE, BASE, "--junit", str(tmp_path / "ok.xml"))
    assert ok.returncode == 0 and all(m is None for _, _, m in _junit_cases((tmp_path / "ok.xml").read_text()))
    empty = _gate_cli(tmp_path, _results(), _results(), "--junit", str(tmp_path / "empty.xml"))
    assert empty.returncode == 1
    assert [m for _, _, m in _junit_cases((tmp_path / "empty.xml").read_text())] == [
        "no run in the results: nothing to judge"]
    nowhere = _gate_cli(tmp_path, BASE, BASE, "--junit", str(tmp_path / "no" / "such" / "gate.xml"))
    assert nowhere.returncode == 2 and "does not exist" in nowhere.stderr
