"""What a harness's network faults leave in the kernel: its namespaces and links (their names carry its PID)."""

from __future__ import annotations

import subprocess


def network_leftovers(pid: int) -> list[str]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [w for w in (names + links).split() if w.startswith(f"sg{pid}")]
