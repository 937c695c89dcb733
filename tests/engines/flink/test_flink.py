"""Apache Flink as a peer engine, end to end against a real broker (short loads; the suites run long)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from engines.flink import FlinkConfig, property_problems
from harness.proc import wait_until

ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "harness.cli"]
SHORT = ("workload.duration=24s", "workload.rate=2000/s",
         "faults=[{at: 6s, kill: {pick: random, restart_after: 3s}}, {at: 15s, kill: {pick: random, restart_after: 3s}}]")


def _ours(out: Path) -> list[psutil.Process]:
    """Live processes whose command line names the run's directory (the Flink JVMs carry --configDir there)."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(str(out) in part for part in (p.info["cmdline"] or [])) and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


def test_options_map_to_flink_keys_and_what_streamgauge_owns_is_refused():
    config = FlinkConfig(slots_per_taskmanager=2, heartbeat_timeout_ms=5000, restart_delay_ms=1000,
                         properties={"pipeline.max-parallelism": 64})
    keys = config.flink_configuration()
    assert keys["taskmanager.numberOfTaskSlots"] == "2" and keys["heartbeat.timeout"] == "5000"
    assert keys["restart-strategy.type"] == "fixed-delay" and keys["restart-strategy.fixed-delay.delay"] == "1000 ms"
    assert keys["pipeline.max-parallelism"] == "64"
    assert "heartbeat.interval" not in keys  # unset: Flink's own default
    assert property_problems(FlinkConfig(properties={"rest.port": 1})) == [
        "engine_config.flink.properties.rest.port: set by streamgauge for every run"]
    assert "transaction.max.timeout.ms" in property_problems(FlinkConfig(transaction_timeout_ms=3_600_000))[0]


def test_the_zookeeper_of_high_availability_serves_until_it_is_stopped_and_leaves_no_process(tmp_path):
    from engines.flink import ha

    proc, port = ha.start_zookeeper(tmp_path / "zk", "127.0.0.1")
    try:
        assert ha.serving("127.0.0.1", port) and proc.alive()
        assert ha.configuration(f"127.0.0.1:{port}", tmp_path / "ha", "sg.x.flink") == {
            "high-availability.type": "zookeeper", "high-availability.zookeeper.quorum": f"127.0.0.1:{port}",
            "high-availability.storageDir": (tmp_path / "ha").resolve().as_uri(),
            "high-availability.cluster-id": "/sg.x.flink"}
    finally:
        proc.stop(grace_s=10)
    assert not proc.alive() and not ha.serving("127.0.0.1", port)
    assert not _ours(tmp_path)


def test_a_jobmanager_fault_is_refused_before_anything_starts(tmp_path):
    env = {**os.environ, "STREAMGAUGE_BOOTSTRAP": "127.0.0.1:1"}  # nothing may reach for Kafka
    proc = subprocess.run([*CLI, "run", str(ROOT / "scenarios" / "kill-instance-eos.yaml"), "--engine", "flink",
                           "--out", str(tmp_path / "out"), "--set", "faults=[{at: 5s, kill: {role: jobmanager}}]"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "JobManager high availability" in proc.stderr and not (tmp_path / "out").exists()


@pytest.mark.kafka
def test_kill_instance_eos_is_exactly_once_on_flink_and_reports_flinks_facts(run_streamgauge, tmp_path):
    proc, results = run_streamgauge(tmp_path, "kill-instance-eos.yaml", *SHORT, "expect={correct: true}",
                                    engine="flink")
    assert results is not None, proc.stderr[-3000:]
    run = results["runs"][0]
    assert (run["verdict"], run["inputs"], run["outputs"]) == ("pass", 48_000, 48_000), proc.stderr[-3000:]
    assert [f["kind"] for f in run["faults"]] == ["kill", "kill"] and all("healed_at_s" in f for f in run["faults"])
    assert len(run["metrics"]["recovery_s"]) == 2
    status = run["engine_status"]
    assert status["flink"]["checkpoints"]["completed"] > 0
    assert status["flink"]["restarts"] >= 1 and status["flink"]["failures"][0]["cause"]
    assert status["version"]["flink"].startswith("2.")
    assert _ours(tmp_path) == []


@pytest.mark.kafka
def test_at_least_once_under_kills_shows_duplicates_on_flink(run_streamgauge, tmp_path):
    proc, results = run_streamgauge(tmp_path, "kill-instance-alos.yaml", *SHORT, engine="flink")
    assert results is not None, proc.stderr[-3000:]
    run = results["runs"][0]
    assert run["verdict"] == "fail" and run["anomalies"]["duplicate"] > 0, proc.stderr[-3000:]


@pytest.mark.kafka
def test_late_inputs_come_from_flinks_own_side_output(run_streamgauge, tmp_path):
    proc, results = run_streamgauge(tmp_path, "late-data.yaml", "workload.duration=20s", engine="flink")
    assert results is not None, proc.stderr[-3000:]
    run = results["runs"][0]
    assert run["verdict"] == "pass", proc.stderr[-3000:]
    assert run["metrics"]["late_declared_by"] == "engine" and run["metrics"]["late_dropped"] > 0
    assert run["anomalies"]["definitely_late"] == 0


@pytest.mark.kafka
def test_a_cluster_that_fails_to_start_leaves_no_jvm(run_streamgauge, tmp_path):
    """The JobManager starts, the TaskManagers cannot (a data port that is no port): the run fails, naming them,
    and the JobManager it had started is stopped."""
    proc, _results = run_streamgauge(tmp_path, "kill-instance-eos.yaml", "workload.duration=10s", "faults=[]",
                                    "engine_config.flink.properties={taskmanager.data.port: notaport}",
                                    engine="flink", timeout=300)
    assert proc.returncode != 0
    assert "taskmanager-" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
    assert (tmp_path / "flink" / "flink" / "jobmanager.log").exists()  # the JobManager had started
    assert _ours(tmp_path) == []


@pytest.mark.kafka
def test_ctrl_c_stops_every_flink_jvm(bootstrap, tmp_path):
    out = tmp_path / "out"
    args = [*CLI, "run", str(ROOT / "scenarios" / "kill-instance-eos.yaml"), "--engine", "flink",
            "--out", str(out), "--set", "workload.duration=60s", "--set", "workload.rate=500/s"]
    log = tmp_path / "run.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                env={**os.environ, "STREAMGAUGE_BOOTSTRAP": bootstrap})
    try:
        wait_until(lambda: "load:" in log.read_text() or proc.poll() is not None, 300,
                   lambda: f"the run never started its load:\n{log.read_text()[-2000:]}")
        assert proc.poll() is None, log.read_text()[-2000:]
        jvms = [p for p in _ours(out) if "java" in (p.info["cmdline"] or [""])[0]]
        assert len(jvms) >= 4  # the JobManager and three TaskManagers
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 130, log.read_text()[-2000:]
        wait_until(lambda: _ours(out) == [], 30, "Flink JVMs outlived Ctrl-C")
    finally:
        if proc.poll() is None:
            proc.kill()
