"""Apache Kafka Streams as a peer engine, end to end against a real broker (short loads; the suites run long)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from engines.kafka_streams import KafkaStreamsConfig, property_problems

ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "harness.cli"]
SHORT = ("workload.duration=20s", "workload.rate=2000/s",
         "faults=[{at: 6s, kill: {pick: random, restart_after: 3s}}, {at: 12s, kill: {pick: random, restart_after: 3s}}]")


def test_a_job_outside_the_catalogue_is_refused_before_anything_starts(tmp_path):
    env = {**os.environ, "STREAMGAUGE_BOOTSTRAP": "127.0.0.1:1"}  # nothing may reach for Kafka
    proc = subprocess.run([*CLI, "run", str(ROOT / "scenarios" / "kill-instance-eos.yaml"), "--engine",
                           "kafka-streams", "--out", str(tmp_path / "out"), "--set",
                           "job=tests.harness.api.minimal_engine:custom"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "streamgauge: error: kill-instance-eos on kafka-streams: job: the kafka-streams engine does not implement "
        "tests.harness.api.minimal_engine:custom; its jobs: scenarios.jobs:echo, scenarios.jobs:running_sum, "
        "scenarios.jobs:running_sum_rekeyed, scenarios.jobs:sliding_sum, scenarios.jobs:windowed_count, "
        "scenarios.jobs:windowed_count_rekeyed"]


def test_pass_through_properties_are_checked_against_kafka_streams_names():
    known = frozenset({"commit.interval.ms", "main.consumer.session.timeout.ms"})
    assert property_problems({"commit.interval.ms": 5, "main.consumer.session.timeout.ms": 6000}, known) == []
    assert property_problems({"comit.interval.ms": 5}, known) == [
        "engine_config.kafka-streams.properties.comit.interval.ms: not a Kafka Streams configuration name"]
    assert "set by streamgauge" in property_problems({"processing.guarantee": "at_least_once"}, known)[0]
    config = KafkaStreamsConfig(session_timeout_ms=6000, properties={"num.stream.threads": 2})
    assert config.streams_properties(1)["num.stream.threads"] == "2"  # the pass-through wins
    assert config.streams_properties(1)["session.timeout.ms"] == "6000"



@pytest.mark.kafka
def test_kill_instance_eos_is_exactly_once_on_kafka_streams(run_streamgauge, tmp_path):
    system_tmp = Path(tempfile.gettempdir())
    native_before = set(system_tmp.glob("librocksdbjni*"))
    proc, results = run_streamgauge(tmp_path, "kill-instance-eos.yaml", *SHORT, engine="kafka-streams")
    # killed JVMs leave no RocksDB library behind, in the system's temporary directory or the run's
    assert set(system_tmp.glob("librocksdbjni*")) - native_before == set()
    assert list(tmp_path.rglob("native")) == []
    assert results is not None, proc.stderr[-3000:]
    run = results["runs"][0]
    assert (run["verdict"], run["inputs"], run["outputs"]) == ("pass", 40_000, 40_000), proc.stderr[-3000:]
    assert [f["kind"] for f in run["faults"]] == ["kill", "kill"] and all("healed_at_s" in f for f in run["faults"])
    assert len(run["metrics"]["recovery_s"]) == 2
    assert run["engine_status"]["facts"]["rebalances"] > 0
    assert run["engine_status"]["version"]["kafka-streams"][:1].isdigit()


@pytest.mark.kafka
def test_at_least_once_under_kills_shows_duplicates_on_kafka_streams(run_streamgauge, tmp_path):
    proc, results = run_streamgauge(tmp_path, "kill-instance-alos.yaml", *SHORT, engine="kafka-streams")
    assert results is not None, proc.stderr[-3000:]
    run = results["runs"][0]
    assert run["verdict"] == "fail" and run["anomalies"]["duplicate"] > 0, proc.stderr[-3000:]
    assert run["expectations"]["met"]


@pytest.mark.kafka
def test_late_inputs_are_derived_and_match_kafka_streams_own_count(run_streamgauge, tmp_path):
    proc, results = run_streamgauge(tmp_path, "late-data.yaml", "workload.duration=20s", engine="kafka-streams")
    assert results is not None, proc.stderr[-3000:]
    run = results["runs"][0]
    assert run["verdict"] == "pass", proc.stderr[-3000:]
    checks = {c["name"]: c for c in run["checks"]}
    assert "derived from the input" in checks["window_accounting"]["detail"]
    assert run["metrics"]["late_dropped"] > 0
    assert checks["late_metric"]["detail"] == (f"engine counted {run['metrics']['late_dropped']} late pairs; "
                                               f"derived {run['metrics']['late_dropped']}")


@pytest.mark.kafka
def test_the_streams_group_protocol_on_a_broker_without_it_fails_the_start_with_kafka_streams_reason(
        run_streamgauge, tmp_path):
    """The local broker lists streams among its group protocols but does not serve the streams group API
    (KIP-1071 is early access in Kafka 4.1): Kafka Streams says so at start, and the run shows its words. The
    run is recorded as failed (invalid, unknown) like any run that raises, so a suite goes on after it."""
    proc, results = run_streamgauge(tmp_path, "kill-instance-eos.yaml", "faults=[]",
                                    "engine_config.kafka-streams.group_protocol=streams", engine="kafka-streams")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "does not support the STREAMS group protocol" in proc.stderr
    assert "while waiting for the kafka-streams job to become ready" in proc.stderr
    assert results is not None
    run = results["runs"][0]
    assert (run["verdict"], run["valid"], run["expectations"]["met"]) == ("unknown", False, False)
    assert "does not support the STREAMS group protocol" in run["invalid_reason"]
