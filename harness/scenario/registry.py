"""Finding engines by name: the ``streamgauge.engines`` entry-point group (DESIGN §1).

A third engine, or a peer such as real Kafka Streams, plugs in by declaring an
entry point; the runner never imports an engine package directly.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from harness.errors import ConfigError

GROUP = "streamgauge.engines"


def available() -> dict[str, Any]:
    """Engine name -> entry point (not loaded)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def engine_names() -> set[str]:
    return set(available())


def get_engine(name: str) -> Any:
    eps = available()
    if name not in eps:
        msg = f"unknown engine {name!r}; installed engines: {', '.join(sorted(eps)) or 'none'}"
        raise ConfigError(msg)
    return eps[name].load()
