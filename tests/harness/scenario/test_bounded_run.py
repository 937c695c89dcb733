"""A bounded job on the cluster engine: the input written first, the job reads it to the end, takes a final
checkpoint and finishes by itself; its duration and throughput are measured, not its latency."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.kafka


def test_a_bounded_job_finishes_by_itself_with_every_input_exactly_once(run_streamgauge, tmp_path):
    proc, results = run_streamgauge(tmp_path, "bounded-eos.yaml", "workload.rate=2000/s", "workload.duration=15s",
                                    engine="cluster")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    run = results["runs"][0]
    assert run["verdict"] == "pass" and run["outputs"] == run["inputs"] == 30000
    bounded = run["metrics"]["bounded"]
    assert bounded["duration_s"] > 0 and bounded["throughput_eps"] == pytest.approx(30000 / bounded["duration_s"], 0.01)
    assert run["metrics"]["latency_ms"]["p99"] is None and run["metrics"]["keeps_up"]["keeps_up"] is None
    assert run["engine_status"]["state"] == "FINISHED"
    assert "the job finished by itself" in proc.stderr
    log = (tmp_path / "cluster" / "cluster" / "jobmanager.log").read_text()
    assert "every source is at its end of input: the final checkpoint" in log and ": FINISHED" in log
