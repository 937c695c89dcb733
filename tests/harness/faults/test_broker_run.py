"""A run with broker faults, end to end on the embedded engine: the run starts its own 3-node cluster, kills the
leader of an output partition and restarts it, pauses the coordinator of the engine's transactions, and the
output is still exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[3]


def test_broker_kill_and_pause_under_exactly_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "STREAMGAUGE_BOOTSTRAP"}
    env["STREAMGAUGE_HOME"] = str(tmp_path / "home")  # no `kafka up` cluster: the run starts its own
    faults = ("faults=[{at: 6s, kill: {role: broker, pick: leader_of_output, restart_after: 6s}}, "
              "{at: 16s, pause: {role: broker, pick: txn_coordinator, for: 4s}}]")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(ROOT / "scenarios" / "broker-kill-eos.yaml"),
         "--engine", "embedded", "--out", str(out), "--set", faults, "--set", "workload.rate=1000/s",
         "--set", "workload.duration=26s", "--set", "drain={timeout: 180s, quiet: 10s}"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-5000:]
    run = json.loads((out / "results.json").read_text())["runs"][0]
    assert run["verdict"] == "pass" and run["outputs"] == run["inputs"] == 26000
    kill, pause = run["faults"]
    assert kill["target"].startswith("broker-") and kill["why"].startswith("leader of output partition ")
    assert pause["target"].startswith("broker-") and pause["why"].startswith("coordinator of ")
    assert kill.get("healed_at_s") and pause.get("healed_at_s") and not kill.get("error") and not pause.get("error")
    assert "fault: kill broker-" in proc.stderr and "fault: pause broker-" in proc.stderr
