"""Malformed faults are refused before anything starts, one line per problem, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "harness.cli"]


def _refused(faults: str, engines: str = "embedded,cluster") -> list[str]:
    env = {**os.environ, "STREAMGAUGE_BOOTSTRAP": "127.0.0.1:1"}  # nothing may reach for Kafka
    proc = subprocess.run([*CLI, "run", str(ROOT / "scenarios" / "kill-instance-eos.yaml"), "--engine", engines,
                           "--out", "/nonexistent/out", "--set", f"faults={faults}"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Kafka" not in proc.stdout + proc.stderr
    return proc.stderr.strip().removeprefix("streamgauge: error: ").splitlines()


def test_a_pick_beyond_the_engines_processes_and_a_role_it_lacks_are_one_line_each():
    assert _refused("[{at: 5s, kill: {pick: 3}}, {at: 8s, pause: {role: jobmanager, for: 2s}}, "
                    "{at: 9s, terminate: {pick: 1}}]") == [
        "kill-instance-eos on embedded: faults[0]: kill pick 3 is out of range: the embedded engine runs 3 "
        "instance processes here (pick 0 to 2, or random)",
        "kill-instance-eos on embedded: faults[1]: role 'jobmanager' does not exist in the embedded engine (its "
        "roles: instance; 'worker' means instance)",
        "kill-instance-eos on cluster: faults[0]: kill pick 3 is out of range: the cluster engine runs 3 "
        "taskmanager processes here (pick 0 to 2, or random)",
        "kill-instance-eos on cluster: faults[1]: a pause of the jobmanager needs JobManager failover (high "
        "availability), which the cluster engine does not have",
    ]


def test_the_taskmanager_option_sets_how_many_can_be_picked():
    env = {**os.environ, "STREAMGAUGE_BOOTSTRAP": "127.0.0.1:1"}
    proc = subprocess.run([*CLI, "run", str(ROOT / "scenarios" / "kill-instance-eos.yaml"), "--engine", "cluster",
                           "--out", "/nonexistent/out", "--set", "faults=[{at: 5s, kill: {pick: 1}}]",
                           "--set", "engine_config.cluster.taskmanagers=1"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "streamgauge: error: kill-instance-eos on cluster: faults[0]: kill pick 1 is out of range: the cluster "
        "engine runs 1 taskmanager process here (pick 0 to 0, or random)"]
