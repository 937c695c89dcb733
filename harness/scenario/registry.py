"""Finding engines by name: the ``streamgauge.engines`` entry-point group.

A third engine, or a peer such as real Kafka Streams, plugs in by declaring an
entry point (or, without packaging, through ``$STREAMGAUGE_ENGINES``:
``name=module:attribute[,name=module:attribute...]``); the runner never
imports an engine package directly. An engine that lacks a member of the
Engine protocol is refused when it is loaded, with one line naming what it
lacks.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from harness.api import Engine, missing_members
from harness.errors import CapabilityError, ConfigError

GROUP = "streamgauge.engines"
ENV = "STREAMGAUGE_ENGINES"


@dataclass(frozen=True)
class _Ref:
    """Where an engine object lives: ``module:attribute``."""

    value: str

    def load(self) -> Any:
        module, _, attr = self.value.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            msg = f"engine {self.value!r} could not be loaded: {e}"
            raise ConfigError(msg) from e


def _from_env() -> dict[str, _Ref]:
    out = {}
    for item in filter(None, (p.strip() for p in os.environ.get(ENV, "").split(","))):
        name, sep, ref = item.partition("=")
        if not sep or ":" not in ref or not name:
            msg = f"${ENV}: {item!r} is not name=module:attribute (like mine=my_pkg.engine:ENGINE)"
            raise ConfigError(msg)
        out[name.strip()] = _Ref(ref.strip())
    return out


def available() -> dict[str, Any]:
    """Engine name -> where it is (an entry point, or a reference from $STREAMGAUGE_ENGINES), not loaded."""
    found: dict[str, Any] = {ep.name: ep for ep in entry_points(group=GROUP)}
    found.update(_from_env())
    return found


def engine_names() -> set[str]:
    return set(available())


def parse_engine_list(text: str | None) -> list[str] | None:
    """``--engine a,b`` -> ["a", "b"] (each an installed engine); None when not given."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = engine_names()
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        what = f"unknown engine(s) {', '.join(unknown)}" if unknown else "no engine named"
        msg = f"--engine {text!r}: {what}; installed engines: {', '.join(sorted(known)) or 'none'}"
        raise ConfigError(msg)
    return list(dict.fromkeys(names))


def get_engine(name: str) -> Engine:
    """The engine called ``name``, checked against the Engine protocol."""
    eps = available()
    if name not in eps:
        msg = f"unknown engine {name!r}; installed engines: {', '.join(sorted(eps)) or 'none'}"
        raise ConfigError(msg)
    engine = eps[name].load()
    missing = missing_members(engine)
    if missing:
        where = getattr(eps[name], "value", name)
        msg = f"engine {name!r} ({where}) does not implement the Engine protocol: it lacks {', '.join(missing)}"
        raise CapabilityError(msg)
    return engine


def describe(name: str) -> dict[str, Any]:
    """What ``streamgauge engines`` shows of one engine: its declarations and whether its prerequisites are met."""
    try:
        engine = get_engine(name)
    except (ConfigError, CapabilityError) as e:
        return {"name": name, "ready": False, "error": str(e)}
    prereqs = [{"name": p.name, "met": p.met, "fix": p.fix, "detail": p.detail} for p in engine.prerequisites()]
    return {"name": name, "ready": all(p["met"] for p in prereqs),
            "jobs": None if engine.jobs is None else sorted(engine.jobs),
            "guarantees": [g.value for g in sorted(engine.guarantees, key=lambda g: list(type(g)).index(g))],
            "roles": sorted(engine.roles), "worker_roles": sorted(engine.worker_roles),
            "fault_kinds": sorted(engine.fault_kinds), "options": dict(engine.options),
            "window_time": engine.window_time, "late_side_output": engine.late_side_output,
            "conforms_to": engine.conforms_to, "prerequisites": prereqs}
