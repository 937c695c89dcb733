"""A run that fails is recorded and the runs after it go on; an oracle that fails after the load gives an
unknown verdict, not a crash (against a real broker, with the protocol-only test engines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "harness.cli"]
ENGINES = ",".join(f"{name}=tests.harness.api.minimal_engine:{attr}" for name, attr in
                   (("minimal", "ENGINE"), ("failing", "FAILING"), ("uninterpreted", "UNINTERPRETED")))

pytestmark = pytest.mark.kafka


def _scenario(tmp_path: Path, job: str, engines: str) -> Path:
    path = tmp_path / "copy.yaml"
    path.write_text(f"name: copy\njob: {job}\nengines: [{engines}]\nguarantee: at_least_once\nparallelism: 1\n"
                    "partitions: 2\nworkload: {rate: 200/s, duration: 4s, keys: 20, seed: 3}\n"
                    "drain: {timeout: 30s, quiet: 2s}\nexpect: {correct: true}\n")
    return path


def _run(bootstrap: str, tmp_path: Path, scenario: Path) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "STREAMGAUGE_BOOTSTRAP": bootstrap, "STREAMGAUGE_ENGINES": ENGINES}
    proc = subprocess.run([*CLI, "run", str(scenario), "--out", str(tmp_path / "out")], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
    return proc, json.loads((tmp_path / "out" / "results.json").read_text())


def test_a_run_that_raises_is_recorded_as_unknown_and_the_next_run_goes_on(bootstrap, tmp_path):
    proc, results = _run(bootstrap, tmp_path, _scenario(tmp_path, "scenarios.jobs:echo", "failing, minimal"))
    assert proc.returncode == 1, proc.stderr[-3000:]
    failed, passed = results["runs"]
    assert (failed["engine"], failed["verdict"], failed["valid"]) == ("failing", "unknown", False)
    assert "RuntimeError: the failing engine never deploys" in failed["invalid_reason"]
    assert failed["expectations"]["met"] is False
    assert (passed["engine"], passed["verdict"], passed["inputs"], passed["outputs"]) == ("minimal", "pass", 800, 800)
    assert (tmp_path / "out" / "summary.md").exists() and (tmp_path / "out" / "index.html").exists()


def test_an_oracle_that_fails_after_the_load_gives_unknown_not_a_crash(bootstrap, tmp_path):
    scenario = _scenario(tmp_path, "tests.harness.api.minimal_engine:two_aggregates", "uninterpreted")
    proc, results = _run(bootstrap, tmp_path, scenario)
    assert proc.returncode == 1, proc.stderr[-3000:]
    run = results["runs"][0]
    assert (run["verdict"], run["inputs"], run["outputs"]) == ("unknown", 800, 800), proc.stderr[-3000:]
    assert "the oracle failed" in proc.stdout
    assert any("at most one aggregate" in c["detail"] for c in run["checks"] if c["verdict"] == "unknown")
