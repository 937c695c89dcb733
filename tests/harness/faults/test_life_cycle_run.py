"""Life-cycle faults end to end under exactly_once: the embedded engine scaled 3 -> 5 -> 2 instances while it
runs, the cluster engine upgraded (stop with a savepoint, deploy again from it) and rescaled 3 -> 4 -> 2 from
savepoints."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.kafka


def test_the_embedded_engine_scaled_up_and_down_under_load_is_exactly_once(run_streamgauge, tmp_path):
    proc, results = run_streamgauge(tmp_path, "scale-eos.yaml", "workload.rate=1000/s", "workload.duration=30s",
                                    "faults=[{at: 8s, scale: {to: 5}}, {at: 18s, scale: {to: 2}}]",
                                    engine="embedded")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    run = results["runs"][0]
    assert run["verdict"] == "pass" and run["outputs"] == run["inputs"] == 30000
    assert [(f["target"], f["why"]) for f in run["faults"]] == [("job", "to 5 workers"), ("job", "to 2 workers")]
    assert not any(f.get("error") for f in run["faults"])
    assert run["engine_status"]["instances"] == 2
    logs = sorted(p.name for p in (tmp_path / "embedded" / "embedded").glob("instance-*.log"))
    assert logs == [f"instance-{i}.log" for i in range(5)]


def test_the_cluster_engine_upgraded_from_a_savepoint_is_exactly_once(run_streamgauge, tmp_path):
    proc, results = run_streamgauge(tmp_path, "upgrade-eos.yaml", "workload.rate=1000/s", "workload.duration=30s",
                                    "faults=[{at: 10s, upgrade: {}}]", engine="cluster")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    run = results["runs"][0]
    assert run["verdict"] == "pass" and run["outputs"] == run["inputs"] == 30000
    assert run["faults"][0]["target"] == "job" and not run["faults"][0].get("error")
    assert run["engine_status"]["upgrades"] == 1
    log = (tmp_path / "cluster" / "cluster" / "jobmanager.log").read_text()
    assert "stop with savepoint requested" in log and "complete: stopping" in log


def test_the_cluster_engine_rescaled_from_savepoints_is_exactly_once(run_streamgauge, tmp_path):
    proc, results = run_streamgauge(tmp_path, "scale-eos.yaml", "workload.rate=1000/s", "workload.duration=30s",
                                    "faults=[{at: 8s, scale: {to: 4}}, {at: 18s, scale: {to: 2}}]",
                                    engine="cluster")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    run = results["runs"][0]
    assert run["verdict"] == "pass" and run["outputs"] == run["inputs"] == 30000
    assert not any(f.get("error") for f in run["faults"])
    status = run["engine_status"]
    assert status["parallelism"] == 2 and status["taskmanagers"] == 2 and status["rescales"] == 2
    assert [(r["from"], r["to"]) for r in status["checkpoints"]["rescaled"]] == [(4, 2)]  # the last JobManager's
    jm_log = (tmp_path / "cluster" / "cluster" / "jobmanager.log").read_text()
    assert "at parallelism 3 to 4" in jm_log and "at parallelism 4 to 2" in jm_log
    logs = "".join(p.read_text() for p in (tmp_path / "cluster" / "cluster").glob("taskmanager-*.log"))
    assert "took over the sink of subtask 2" in logs and "took over the sink of subtask 3" in logs
