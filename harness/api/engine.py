"""The Engine protocol and its optional capabilities (DESIGN §2).

The runner deploys a job through :class:`Engine`; the fault injector asks the
:class:`Deployment` for the capability a fault needs (``isinstance`` against
the runtime-checkable protocols below) and refuses the scenario before it
starts when the engine lacks it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.proc import ManagedProcess


class Guarantee(str, enum.Enum):
    """Processing guarantee, with the same meaning in every engine."""

    at_most_once = "at_most_once"
    at_least_once = "at_least_once"
    exactly_once = "exactly_once"


@dataclass(frozen=True)
class DeploySpec:
    """Everything an engine needs to run one job for one run.

    ``topics`` maps the pipeline's logical topic names (``input``, ``output``)
    to real topic names; internal topics the engine creates must start with
    ``prefix`` so the runner can delete them. ``config`` holds engine options
    (for example ``commit_interval_ms``), validated by the engine.
    """

    job: str
    parallelism: int
    guarantee: Guarantee
    bootstrap: str
    topics: dict[str, str]
    prefix: str
    partitions: int
    run_dir: Path
    replication: int = 1
    config: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Deployment(Protocol):
    """A running job."""

    def processes(self) -> list[ManagedProcess]:
        """The engine's OS processes now, each with its role (instance, jobmanager, taskmanager)."""

    def wait_ready(self, timeout_s: float) -> None:
        """Return once the job processes input; raise ProcessError on timeout."""

    def stop(self) -> None:
        """Stop every process of the job. Safe to call twice."""

    def status(self) -> dict[str, Any]:
        """Engine-specific facts for results.json (config in force, counters)."""


@runtime_checkable
class Killable(Protocol):
    """Its worker processes may be SIGKILLed, and started again under the same identity."""

    def kill(self, name: str) -> None: ...

    def restart(self, name: str) -> None: ...


@runtime_checkable
class Pausable(Protocol):
    """Its worker processes may be SIGSTOPped and SIGCONTed."""

    def pause(self, name: str) -> None: ...

    def resume(self, name: str) -> None: ...


@runtime_checkable
class Terminable(Protocol):
    """Its worker processes may be asked to stop (SIGTERM) and shut down cleanly."""

    def terminate(self, name: str) -> None: ...


@runtime_checkable
class Lagging(Protocol):
    """It can tell how many records it has yet to process (for draining)."""

    def lag(self) -> int | None: ...


class Engine(Protocol):
    """A stream processor the harness can deploy jobs on."""

    name: str
    # optional: ``guarantees`` (frozenset[Guarantee]) it offers, all of them when absent;
    # ``capabilities`` and ``roles`` for the fault injector; ``unsupported(kind, role)``.

    def deploy(self, spec: DeploySpec) -> Deployment: ...
