"""JobManager failover end to end under exactly_once on the cluster engine with high availability: the leader
killed (the standby takes the lease and redeploys from the latest completed checkpoint), then the new leader
paused past its lease (the other takes over; the paused one, resumed, finds the lease gone and steps down)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.kafka


def test_the_cluster_engine_fails_over_to_its_standby_jobmanager_and_is_exactly_once(run_streamgauge, tmp_path):
    proc, results = run_streamgauge(tmp_path, "kill-jobmanager-eos.yaml", "workload.rate=1000/s",
                                    "workload.duration=30s",
                                    "faults=[{at: 6s, kill: {role: jobmanager, restart_after: 3s}}, "
                                    "{at: 16s, pause: {role: jobmanager, for: 8s}}]", engine="cluster")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    run = results["runs"][0]
    assert run["verdict"] == "pass" and run["outputs"] == run["inputs"] == 30000
    kill, pause = run["faults"]
    assert (kill["kind"], kill["target"], kill["why"]) == ("kill", "jobmanager-0", "the leader")
    # the standby, or the killed one started again: whichever took the lease when it ran out
    assert pause["kind"] == "pause" and pause["why"] == "the leader" and pause["target"].startswith("jobmanager-")
    assert not any(f.get("error") for f in run["faults"])
    ha = run["engine_status"]["high_availability"]
    assert ha["takeovers"] == 2 and ha["holder"] != pause["target"]
    logs = tmp_path / "cluster" / "cluster"
    assert "lost leadership" in (logs / f"{pause['target']}.log").read_text()  # resumed, it stepped down
    assert "deploying attempt 2 from checkpoint" in (logs / f"{ha['holder']}.log").read_text()
