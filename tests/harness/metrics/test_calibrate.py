"""`streamgauge calibrate` against a real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.kafka.client import list_topics

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[3]


def test_calibrate_measures_three_ceilings_and_cleans_up(bootstrap):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "calibrate", "--seconds", "1", "--json"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "STREAMGAUGE_BOOTSTRAP": bootstrap})
    assert proc.returncode == 0, proc.stderr
    ceiling = json.loads(proc.stdout)
    assert ceiling["records"] > 0
    assert all(ceiling[k] > 0 for k in ("produce_eps", "consume_eps", "txn_copy_eps"))
    assert "transactional copy" in proc.stderr
    assert list_topics(bootstrap, "sg.calibrate") == []


def test_calibrate_refuses_a_bad_duration():
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "calibrate", "--seconds", "0"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and "--seconds 0" in proc.stderr
