"""Suites: loading and validation, and `streamgauge suite` end to end on a real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.scenario.model import ScenarioError
from harness.scenario.registry import engine_names
from harness.scenario.runner import check_plan
from harness.scenario.suite import load_suite

CLI = [sys.executable, "-m", "harness.cli"]
ROOT = Path(__file__).resolve().parents[3]
SUITES = ROOT / "scenarios" / "suites"
KNOWN = {"embedded", "cluster"}


@pytest.mark.parametrize("name", sorted(p.stem for p in SUITES.glob("*.yaml")))
def test_shipped_suites_load_cleanly(name):
    header, plan = load_suite(SUITES / f"{name}.yaml", engines_known=engine_names())
    assert header["suite"]["name"] == name and header["suite"]["description"]
    assert plan and all(item.engines and item.repetitions >= 1 for item in plan)
    check_plan(plan)  # every scenario of it runs on every engine it names: options, faults, jobs, guarantees


def test_main_suite_is_the_kill_scenario_on_every_engine_and_its_negative_control_on_the_references():
    _, plan = load_suite(SUITES / "main.yaml", engines_known=engine_names())
    assert [(i.scenario.name, i.engines) for i in plan] == [
        ("kill-instance-eos", ["embedded", "kafka-streams", "quixstreams", "cluster", "flink"]),
        ("kill-instance-alos", ["embedded", "cluster"])]


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "suites").mkdir(exist_ok=True)
    for scenario in ("kill-instance-eos", "kill-instance-alos"):
        (tmp_path / f"{scenario}.yaml").write_text((ROOT / "scenarios" / f"{scenario}.yaml").read_text())
    path = tmp_path / "suites" / "s.yaml"
    path.write_text(text)
    return path


def test_overrides_repetitions_and_engine_choice(tmp_path):
    path = _write(tmp_path, "name: s\nrepetitions: 2\nruns:\n"
                  "  - {scenario: ../kill-instance-eos.yaml, engines: [cluster], set: {workload.duration: 9s, "
                  "faults: []}}\n"
                  "  - {scenario: ../kill-instance-alos.yaml, repetitions: 1}\n")
    header, plan = load_suite(path, overrides=["workload.rate=100/s"], engines_known=KNOWN)
    eos, alos = plan
    assert (eos.engines, eos.repetitions, eos.scenario.workload.duration, eos.scenario.faults) == (["cluster"], 2, 9, [])
    assert (alos.engines, alos.repetitions) == (["embedded", "cluster"], 1)
    assert eos.scenario.workload.rate == alos.scenario.workload.rate == 100  # --set reaches every scenario
    assert header["suite"]["runs"][0] == {"scenario": "kill-instance-eos", "engines": ["cluster"], "repetitions": 2,
                                          "capacity": False}
    _, plan = load_suite(path, engines_known=KNOWN, engine=["embedded"])
    assert [i.engines for i in plan] == [["embedded"], ["embedded"]]


def test_every_problem_is_reported_at_once(tmp_path):
    path = _write(tmp_path, "name: s\ncolour: blue\nrepetitions: 0\nruns:\n"
                  "  - {scenario: ../missing.yaml}\n"
                  "  - {scenario: ../kill-instance-eos.yaml, engines: [flink], set: {workload.rate: -5/s}}\n"
                  "  - {scenario: ../kill-instance-alos.yaml, repetitions: two}\n"
                  "  - 7\n")
    with pytest.raises(ScenarioError) as info:
        load_suite(path, engines_known=KNOWN)
    lines = [str(p) for p in info.value.problems]
    assert f'{path}: colour: expected a known key (one of name, description, repetitions, runs), found unknown key "colour"' in lines
    assert f"{path}: repetitions: expected an integer >= 1, found 0" in lines
    assert f"{tmp_path / 'missing.yaml'}: expected a scenario file, found no such file" in lines
    assert f'{path}: runs[1].engines[0]: expected a known engine (cluster, embedded), found "flink"' in lines
    assert any(ln.startswith(f"{tmp_path / 'kill-instance-eos.yaml'}: workload.rate") and "-5/s" in ln for ln in lines)
    assert f'{path}: runs[2].repetitions: expected an integer >= 1, found "two"' in lines
    assert any(ln.startswith(f"{path}: runs[3]: expected a mapping") for ln in lines)


def test_a_scenario_listed_twice_is_refused(tmp_path):
    path = _write(tmp_path, "name: s\nruns:\n  - {scenario: ../kill-instance-eos.yaml}\n"
                  "  - {scenario: ../kill-instance-eos.yaml}\n")
    with pytest.raises(ScenarioError, match="each scenario once"):
        load_suite(path, engines_known=KNOWN)


def test_a_malformed_suite_starts_nothing(tmp_path):
    path = _write(tmp_path, "name: s\nruns: []\n")
    proc = subprocess.run([*CLI, "suite", str(path), "--out", str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=60, cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k != "STREAMGAUGE_BOOTSTRAP"})
    assert proc.returncode == 2
    assert f"{path}: runs: expected a non-empty list" in proc.stderr
    assert "starting" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.kafka
def test_a_suite_runs_every_scenario_engine_and_repetition_into_one_report(bootstrap, tmp_path):
    quick = "workload.duration: 8s, workload.rate: 500/s, faults: [], expect: {correct: true}"
    path = _write(tmp_path, "name: quick\ndescription: two scenarios, one repeated\nruns:\n"
                  f"  - {{scenario: ../kill-instance-eos.yaml, engines: [embedded], repetitions: 2, set: {{{quick}}}}}\n"
                  f"  - {{scenario: ../kill-instance-alos.yaml, engines: [cluster], set: {{{quick}}}}}\n")
    out = tmp_path / "out"
    proc = subprocess.run([*CLI, "suite", str(path), "--out", str(out), "--calibrate"], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env={**os.environ, "STREAMGAUGE_BOOTSTRAP": bootstrap})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["suite"]["name"] == "quick"
    assert set(results["scenarios"]) == {"kill-instance-eos", "kill-instance-alos"}
    assert [(r["scenario"], r["engine"], r["repetition"]) for r in results["runs"]] == [
        ("kill-instance-eos", "embedded", 1), ("kill-instance-eos", "embedded", 2),
        ("kill-instance-alos", "cluster", 1)]
    assert all(r["verdict"] == "pass" and r["outputs"] == r["inputs"] == 4000 for r in results["runs"])
    assert results["ceiling"]["txn_copy_eps"] > 0  # --calibrate measured the machine first
    assert all(0 < r["metrics"]["ceiling_fraction"] < 1 for r in results["runs"])
    for where in ("kill-instance-eos/rep-1/embedded", "kill-instance-eos/rep-2/embedded",
                  "kill-instance-alos/rep-1/cluster"):
        assert (out / where / "generator.log").exists(), where
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# streamgauge — suite quick")
    assert "| scenario | engine | rep |" in summary
    assert "## kill-instance-eos" in summary and "## kill-instance-alos" in summary
    assert "embedded (exactly_once) #2" in summary
    assert (out / "index.html").exists() and "streamgauge — suite quick" in proc.stdout


def test_an_entry_may_ask_for_capacity_and_a_bad_value_is_named(tmp_path):
    path = _write(tmp_path, "name: s\nruns:\n  - {scenario: ../kill-instance-eos.yaml, capacity: true}\n")
    header, (item,) = load_suite(path, engines_known=KNOWN)
    assert item.capacity and header["suite"]["runs"][0]["capacity"] is True
    path = _write(tmp_path, "name: s\nruns:\n  - {scenario: ../kill-instance-eos.yaml, capacity: yes please}\n")
    with pytest.raises(ScenarioError, match=r"runs\[0\]\.capacity: expected true or false"):
        load_suite(path, engines_known=KNOWN)
