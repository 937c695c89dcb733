"""quixstreams as a peer engine, end to end against a real broker (short loads; the suites run long)."""

from __future__ import annotations

import pytest

SHORT = ("workload.duration=20s", "workload.rate=2000/s",
         "faults=[{at: 6s, kill: {pick: random, restart_after: 3s}}, {at: 12s, kill: {pick: random, restart_after: 3s}}]")

pytestmark = pytest.mark.kafka


def test_kill_instance_eos_is_exactly_once_on_quixstreams(run_streamgauge, tmp_path):
    proc, results = run_streamgauge(tmp_path, "kill-instance-eos.yaml", *SHORT, engine="quixstreams")
    assert results is not None, proc.stderr[-3000:]
    run = results["runs"][0]
    assert (run["verdict"], run["inputs"], run["outputs"]) == ("pass", 40_000, 40_000), proc.stderr[-3000:]
    assert [f["kind"] for f in run["faults"]] == ["kill", "kill"] and all("healed_at_s" in f for f in run["faults"])
    assert run["engine_status"]["facts"]["transactional id"] == "per_instance"
    assert run["engine_status"]["version"]["quixstreams"][:1].isdigit()


def test_at_least_once_under_kills_shows_duplicates_on_quixstreams(run_streamgauge, tmp_path):
    proc, results = run_streamgauge(tmp_path, "kill-instance-alos.yaml", *SHORT, engine="quixstreams")
    assert results is not None, proc.stderr[-3000:]
    run = results["runs"][0]
    assert run["verdict"] == "fail" and run["anomalies"]["duplicate"] > 0, proc.stderr[-3000:]
    assert run["expectations"]["met"]


def test_windows_close_per_key_and_late_records_come_from_quixstreams(run_streamgauge, tmp_path):
    proc, results = run_streamgauge(tmp_path, "late-data.yaml", "workload.duration=20s", engine="quixstreams")
    assert results is not None, proc.stderr[-3000:]
    run = results["runs"][0]
    assert run["verdict"] == "pass", proc.stderr[-3000:]
    assert "by each key's own time" in {c["name"]: c for c in run["checks"]}["window_accounting"]["detail"]
    assert run["metrics"]["late_dropped"] > 0 and run["metrics"]["late_declared_by"] == "engine"
