"""`streamgauge run` end to end against a real broker, each conformance test on every engine.

Shorter than the shipped scenarios (the CI machine has two cores), with the
same shape: three workers, six partitions, two kills; at_least_once as the
negative control; a paused zombie that must be fenced.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness.kafka.client import list_topics
from harness.proc import wait_until

pytestmark = pytest.mark.kafka

CLI = [sys.executable, "-m", "harness.cli"]
ROOT = Path(__file__).resolve().parents[3]
TWO_KILLS = "faults=[{at: 6s, kill: {pick: random, restart_after: 3s}}, {at: 15s, kill: {pick: random, restart_after: 3s}}]"




def _no_leftovers(bootstrap: str, out: Path, log: str) -> None:
    """No process of the run is alive and none of its topics (named in its log) remain."""
    alive = [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
             if any(str(out) in part for part in (p.info["cmdline"] or []))]
    assert alive == [], f"processes of the run still alive: {alive}"
    prefix = next(line.split()[1].rstrip("*") for line in log.splitlines() if line.startswith("topics: "))
    assert prefix.startswith("sg.")
    assert list_topics(bootstrap, prefix) == []


@pytest.mark.parametrize("job", ["running_sum", "running_sum_rekeyed"])
def test_kill_instance_eos_is_exactly_once(run_streamgauge, tmp_path, job, engine):
    proc, results = run_streamgauge(tmp_path, "kill-instance-eos.yaml",
                            f"job=scenarios.jobs:{job}", "workload.rate=1500/s", "workload.duration=24s",
                            TWO_KILLS, "expect={correct: true}", engine=engine)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = results["runs"][0]
    assert run["verdict"] == "pass" and run["valid"]
    assert run["anomalies"]["lost"] == run["anomalies"]["duplicate"] == run["anomalies"]["inconsistent"] == 0
    assert run["outputs"] == run["inputs"] == 36000
    assert [f["kind"] for f in run["faults"]] == ["kill", "kill"]
    assert all(f.get("healed_at_s") for f in run["faults"])
    assert run["engine_status"]["restarts"] == 2
    assert set(run["engine_status"]["version"]) == {"streamgauge", "confluent-kafka", "librdkafka"}
    assert "pass" in proc.stdout and "results:" in proc.stdout
    assert f"report: {tmp_path / 'index.html'}" in proc.stdout
    assert "| pass |" in (tmp_path / "summary.md").read_text()
    if engine == "embedded":  # eager rebalancing: each kill stops every instance, the untouched ones too
        assert all(c["revocations"] >= 1 for c in _untouched_counters(run).values())
    if engine == "cluster":
        ck = run["engine_status"]["checkpoints"]
        assert ck["completed"] > 0 and ck["restores"] >= 2
        assert ck["duration_ms_p50"] is not None and ck["duration_ms_p99"] is not None
        assert ck["alignment_ms_p50"] is not None


def _untouched_counters(run: dict) -> dict[str, dict]:
    """The counters of the embedded instances no fault was aimed at (two kills leave at least one of three)."""
    hit = {f["target"] for f in run["faults"]}
    untouched = {name: c for name, c in run["engine_status"]["instance_counters"].items() if name not in hit}
    assert untouched, f"every instance was hit by a fault: {sorted(hit)}"
    return untouched


def test_static_membership_restarts_without_stopping_the_others(run_streamgauge, tmp_path):
    """KIP-345: a killed instance restarted within its session timeout takes its partitions back, no rebalance."""
    proc, results = run_streamgauge(tmp_path, "kill-instance-eos-static.yaml",
                                    "workload.rate=1500/s", "workload.duration=24s", TWO_KILLS,
                                    "expect={correct: true}", engine="embedded")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = results["runs"][0]
    assert run["verdict"] == "pass" and run["outputs"] == run["inputs"] == 36000
    assert run["engine_status"]["config"]["static_membership"] is True
    assert run["engine_status"]["restarts"] == 2
    assert all(c["revocations"] == 0 for c in _untouched_counters(run).values()), run["engine_status"]


def test_at_least_once_under_kills_shows_duplicates(run_streamgauge, tmp_path, engine):
    proc, results = run_streamgauge(tmp_path, "kill-instance-alos.yaml",
                            "workload.rate=1500/s", "workload.duration=24s", TWO_KILLS, engine=engine)
    run = results["runs"][0]
    assert run["verdict"] == "fail"
    assert run["anomalies"]["duplicate"] > 0
    assert run["outputs"] > run["inputs"]
    assert run["examples"]["duplicate"], "results must show examples of the duplicates"
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the scenario expects exactly this failure


def test_a_guarantee_the_engine_lacks_is_refused_before_anything_starts(tmp_path):
    proc = subprocess.run([*CLI, "run", str(ROOT / "scenarios" / "kill-instance-eos.yaml"), "--engine", "cluster",
                           "--out", str(tmp_path / "out"), "--set", "guarantee=at_most_once"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k != "STREAMGAUGE_BOOTSTRAP"})
    assert proc.returncode == 2, proc.stderr
    assert "guarantee: the cluster engine does not offer at_most_once" in proc.stderr
    assert "starting" not in proc.stderr  # no Kafka was provisioned, nothing was deployed
    assert not (tmp_path / "out").exists()


def test_zombie_is_fenced_under_exactly_once(run_streamgauge, tmp_path, engine):
    proc, results = run_streamgauge(tmp_path, "zombie-eos.yaml", "workload.duration=36s",
                            "faults=[{at: 6s, pause: {pick: 1, for: 18s}}]", engine=engine)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = results["runs"][0]
    assert run["verdict"] == "pass"
    assert run["anomalies"]["duplicate"] == 0 and run["anomalies"]["lost"] == 0
    paused = run["faults"][0]["target"]
    status = run["engine_status"]
    if engine == "embedded":  # generation fencing: its commit is refused and it rejoins
        assert status["fenced"] >= 1, status
        assert status["instance_counters"][paused]["fenced"] >= 1
    else:  # the JobManager declares it lost by heartbeat; its tasks are redeployed elsewhere
        assert any("no heartbeat" in f["why"] and paused in f["why"] for f in status["checkpoints"]["failures"])
        assert status["taskmanager_counters"][paused]["disconnected"] >= 1


def test_ctrl_c_tears_the_run_down(bootstrap, tmp_path):
    out = tmp_path / "out"
    args = [*CLI, "run", str(ROOT / "scenarios" / "kill-instance-eos.yaml"), "--engine", "embedded",
            "--out", str(out), "--set", "workload.duration=60s", "--set", "workload.rate=500/s"]
    log = tmp_path / "run.log"
    with open(log, "w") as sink:  # a file, not a pipe: a full pipe would block the run
        proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                env={**os.environ, "STREAMGAUGE_BOOTSTRAP": bootstrap})
    try:
        wait_until(lambda: "load:" in log.read_text() or proc.poll() is not None, 180,
                   lambda: f"the run never started its load:\n{log.read_text()[-2000:]}")
        assert proc.poll() is None, log.read_text()[-2000:]
        instances = [p for p in psutil.process_iter(["pid", "cmdline"])
                     if any(str(out) in part for part in (p.info["cmdline"] or []))]
        assert len(instances) >= 4  # three instances and the generator
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 130, log.read_text()[-2000:]
        wait_until(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in instances),
                   30, "run processes outlived Ctrl-C")
        _no_leftovers(bootstrap, out, log.read_text())
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_jobmanager_kill_is_refused_before_anything_starts(tmp_path):
    proc = subprocess.run([*CLI, "run", str(ROOT / "scenarios" / "kill-instance-eos.yaml"), "--engine", "cluster",
                           "--out", str(tmp_path / "out"), "--set", "faults=[{at: 5s, kill: {role: jobmanager}}]"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k != "STREAMGAUGE_BOOTSTRAP"})
    assert proc.returncode == 2
    assert "faults[0]" in proc.stderr and "JobManager failover" in proc.stderr
    assert "starting" not in proc.stderr  # no Kafka was provisioned, nothing was deployed
    assert not (tmp_path / "out").exists()


def test_malformed_scenario_is_refused_with_one_line_per_problem(bootstrap, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nguarantee: exactly_once\nengines: [embedded]\nparallelism: 2\npartitions: 2\n"
                   "colour: blue\nworkload: {rate: -5/s, duration: soon}\n")
    before = set(list_topics(bootstrap))
    proc = subprocess.run([*CLI, "run", str(bad), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, "STREAMGAUGE_BOOTSTRAP": bootstrap})
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert any("colour" in ln for ln in lines)
    assert any("workload.rate" in ln and "-5/s" in ln for ln in lines)
    assert any("workload.duration" in ln and "soon" in ln for ln in lines)
    assert any(ln.strip().startswith(f"{bad}: job") or ": job:" in ln for ln in lines)
    assert all(str(bad) in ln for ln in lines[1:]), proc.stderr
    assert "Traceback" not in proc.stderr
    assert set(list_topics(bootstrap)) == before
    assert not (tmp_path / "out").exists()


def test_an_exception_in_a_checker_is_unknown_and_fails_the_run(bootstrap, tmp_path, monkeypatch):
    from harness import check
    from harness.cli import main

    def broken(_oracle, _observed):
        raise RuntimeError("a bug inside the lost checker")

    monkeypatch.setattr(check, "CHECKERS", [check.Checker("lost", broken), *check.CHECKERS[1:]])
    monkeypatch.setenv("STREAMGAUGE_BOOTSTRAP", bootstrap)
    code = main(["run", str(ROOT / "scenarios" / "kill-instance-eos.yaml"), "--engine", "embedded",
                 "--out", str(tmp_path), "--set", "job=scenarios.jobs:echo", "--set", "workload.duration=5s",
                 "--set", "workload.rate=500/s", "--set", "faults=[]", "--set", "expect={}"])
    run = json.loads((tmp_path / "results.json").read_text())["runs"][0]
    lost = next(c for c in run["checks"] if c["name"] == "lost")
    assert lost["verdict"] == "unknown" and "a bug inside the lost checker" in lost["detail"]
    assert run["verdict"] == "unknown"
    assert code == 1
