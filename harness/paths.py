"""Where streamgauge keeps things outside the working tree."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Downloaded and derived data that can be rebuilt (the Kafka classpath)."""
    base = os.environ.get("STREAMGAUGE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "streamgauge")
    return Path(base)


def state_dir() -> Path:
    """Live state: the background Kafka cluster started by ``streamgauge kafka up``."""
    base = os.environ.get("STREAMGAUGE_HOME") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "streamgauge")
    return Path(base)
