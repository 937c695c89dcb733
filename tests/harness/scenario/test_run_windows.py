"""Event time end to end on both engines: windows, disorder, definitely-late data, kills, a lagging partition.

Shorter than the shipped scenarios (two cores), same shapes.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.kafka


def _check(run: dict, name: str) -> dict:
    return next(c for c in run["checks"] if c["name"] == name)


def test_windows_under_disorder_below_grace_match_the_oracle(run_streamgauge, tmp_path, engine):
    proc, results = run_streamgauge(tmp_path, "disorder-eos.yaml", "workload.duration=20s", engine=engine)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = results["runs"][0]
    assert run["verdict"] == "pass" and run["valid"]
    assert run["outputs"] > 0
    assert _check(run, "window_accounting")["count"] == 0
    assert _check(run, "window_duplicate")["count"] == 0
    latency = run["metrics"]["window_result_latency_ms"]
    assert latency["count"] == run["outputs"] and latency["p50"] <= latency["p99"]
    assert "late_dropped" in run["metrics"]


def test_definitely_late_events_go_to_the_late_output_and_no_window(run_streamgauge, tmp_path, engine):
    proc, results = run_streamgauge(tmp_path, "late-data.yaml", "workload.duration=20s",
                                    "workload.late={fraction: 0.01, delay: 60s}", engine=engine)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = results["runs"][0]
    assert run["verdict"] == "pass"
    assert _check(run, "definitely_late")["verdict"] == "pass"
    assert run["metrics"]["late_inputs"] > 0
    assert run["metrics"]["late_dropped"] >= run["metrics"]["late_inputs"]


def test_kills_during_windows_lose_and_repeat_no_window(run_streamgauge, tmp_path, engine):
    proc, results = run_streamgauge(
        tmp_path, "kill-during-windows-eos.yaml", "workload.duration=24s",
        "faults=[{at: 7s, kill: {pick: random, restart_after: 3s}}, {at: 15s, kill: {pick: random, restart_after: 3s}}]",
        engine=engine)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = results["runs"][0]
    assert run["verdict"] == "pass"
    assert [f["kind"] for f in run["faults"]] == ["kill", "kill"]
    assert _check(run, "window_accounting")["count"] == 0
    assert _check(run, "window_duplicate")["count"] == 0


def test_a_lagging_partition_shows_the_models_dropping_different_records(run_streamgauge, tmp_path):
    proc, results = run_streamgauge(tmp_path, "lagging-partition.yaml", "workload.duration=25s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by_engine = {r["engine"]: r for r in results["runs"]}
    assert all(r["verdict"] == "pass" for r in by_engine.values())
    assert by_engine["embedded"]["metrics"]["late_inputs"] > 0  # stream-time ran ahead with the fresh partitions
    assert by_engine["cluster"]["metrics"]["late_inputs"] == 0  # the minimum watermark waited for the laggard
    comparison = results["comparison"]
    assert comparison["models_differ"] is True
    assert "difference between the models" in comparison["summary"] and "not a failure" in comparison["summary"]
    assert "difference between the models" in proc.stdout
