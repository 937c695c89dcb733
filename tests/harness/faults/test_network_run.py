"""Runs with network faults, end to end on the embedded engine: a partition, a delay and a loss under
exactly_once pass, and the namespaces, bridge, rules and proxies are gone after the run and after Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.faults import network
from harness.proc import wait_until
from tests.harness.faults.leftovers import network_leftovers

pytestmark = [pytest.mark.kafka,
              pytest.mark.skipif(bool(network.problems()), reason="; ".join(network.problems()) or "-")]

ROOT = Path(__file__).resolve().parents[3]
FAULTS = ("faults=[{at: 4s, partition: {pick: 0, for: 8s}}, {at: 14s, delay: {pick: all, ms: 100, jitter_ms: 20, "
          "for: 6s}}, {at: 22s, loss: {pick: 2, fraction: 0.05, for: 4s}}]")


def _args(out: Path, *sets: str) -> list[str]:
    args = [sys.executable, "-m", "harness.cli", "run", str(ROOT / "scenarios" / "network-partition-eos.yaml"),
            "--engine", "embedded", "--out", str(out)]
    return args + [arg for s in sets for arg in ("--set", s)]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "STREAMGAUGE_BOOTSTRAP"}
    env["STREAMGAUGE_HOME"] = str(tmp_path / "home")
    return env


def test_partition_delay_and_loss_under_exactly_once_leave_nothing_behind(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(_args(out, FAULTS, "workload.rate=1000/s", "workload.duration=30s",
                                  "drain={timeout: 180s, quiet: 10s}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env(tmp_path))
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stdout + stderr[-5000:]
    run = json.loads((out / "results.json").read_text())["runs"][0]
    assert run["verdict"] == "pass" and run["outputs"] == run["inputs"] == 30000
    assert [(f["kind"], f["target"]) for f in run["faults"]] == [
        ("partition", "instance-0"), ("delay", "instance-0,instance-1,instance-2"), ("loss", "instance-2")]
    assert all(f.get("healed_at_s") and not f.get("error") for f in run["faults"])
    assert "network: workers in namespaces on bridge" in stderr
    assert network_leftovers(proc.pid) == []


def test_ctrl_c_during_a_partition_removes_the_namespaces(tmp_path):
    out = tmp_path / "out"
    log = tmp_path / "run.log"
    with open(log, "w") as sink:  # a file, not a pipe: a full pipe would block the run
        proc = subprocess.Popen(_args(out, "faults=[{at: 3s, partition: {pick: 1, for: 20s}}]",
                                      "workload.rate=500/s", "workload.duration=40s"),
                                stdout=sink, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=_env(tmp_path))
    try:
        wait_until(lambda: "fault: partition" in log.read_text() or proc.poll() is not None, 300,
                   lambda: f"the partition never came:\n{log.read_text()[-2000:]}")
        assert proc.poll() is None, log.read_text()[-2000:]
        assert len(network_leftovers(proc.pid)) >= 4  # the bridge, three namespaces and their veth ends
        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 130, log.read_text()[-2000:]
        assert network_leftovers(proc.pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        network.clean_stale()
