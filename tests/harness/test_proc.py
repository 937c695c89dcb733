"""The process supervisor: attached children die with the harness, not with the thread that started them."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import psutil

from harness.proc import SUPERVISOR, wait_until


def test_a_child_started_from_a_short_lived_thread_outlives_that_thread(tmp_path: Path):
    started = []

    def start() -> None:
        started.append(SUPERVISOR.start([sys.executable, "-c", "import time; time.sleep(120)"],
                                        name="sleeper", role="test", log_path=tmp_path / "sleeper.log"))

    t = threading.Thread(target=start)
    t.start()
    t.join()
    proc = started[0]
    try:
        # PR_SET_PDEATHSIG would have fired at the thread's exit had the thread forked the child
        other = threading.Thread(target=lambda: None)
        other.start()
        other.join()
        assert proc.alive()
        assert not proc.wait(1.0), "the child died when the thread that asked for it ended"
    finally:
        proc.kill()
        SUPERVISOR.forget(proc)
    wait_until(lambda: not proc.alive(), 10, "child still alive after kill")


def test_a_step_of_the_system_clock_does_not_make_a_running_child_look_gone(tmp_path: Path, monkeypatch):
    # a virtual machine resumed or a clock stepped moves the boot time that wall-clock start times add up from
    proc = SUPERVISOR.start([sys.executable, "-c", "import time; time.sleep(120)"], name="sleeper", role="test",
                            log_path=tmp_path / "sleeper.log")
    try:
        assert proc.alive()
        stepped = psutil.boot_time() + 30.0  # what psutil's wall-clock start times are counted from, moved
        monkeypatch.setattr(psutil, "boot_time", lambda: stepped)
        if sys.platform == "linux":
            monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: stepped)
        assert proc.alive(), "the child looked like another process once the clock moved"
        assert proc.send(0)
    finally:
        monkeypatch.undo()
        proc.kill()
        SUPERVISOR.forget(proc)
    wait_until(lambda: not proc.alive(), 10, "child still alive after kill")
