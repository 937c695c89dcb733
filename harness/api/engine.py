"""The Engine protocol and its optional capabilities.

The runner knows an engine only through what :class:`Engine` declares: its
name, the guarantees it offers, its process roles and which of them
``worker`` means, the fault kinds it takes, the jobs it implements, its
options and its prerequisites, and a pre-flight check (``problems``) on an
engine-neutral :class:`RunRequest`, called before any topic exists. The
fault injector asks the :class:`Deployment` for the capability a fault needs
(``isinstance`` against the runtime-checkable protocols below); a test holds
every engine's declared fault kinds against its Deployment class.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
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
class FaultRequest:
    """One fault a scenario asks for, as an engine sees it: its kind and the role it is aimed at."""

    kind: str
    role: str = "worker"
    pick: str | int = "random"


@dataclass(frozen=True)
class RunRequest:
    """What a scenario asks of an engine, engine-neutral, for the pre-flight check.

    ``job`` is the job reference (``module:function``); ``options`` the
    scenario's ``engine_config`` for this engine.
    """

    job: str
    guarantee: Guarantee
    parallelism: int
    partitions: int
    options: Mapping[str, Any] = field(default_factory=dict)
    faults: tuple[FaultRequest, ...] = ()
    bounded: bool = False  # workload.bounded


@dataclass(frozen=True)
class DeploySpec:
    """Everything an engine needs to run one job for one run.

    ``topics`` maps the pipeline's logical topic names (``input``, ``output``,
    ``late``) to real topic names; internal topics the engine creates must
    start with ``prefix`` so the runner can delete them. ``config`` holds
    engine options (for example ``commit_interval_ms``), validated by the
    engine's ``problems`` before the run.
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
    #: workload.bounded: the whole input is in the input topic; read it to its end and finish
    bounded: bool = False
    #: for a run with network faults, the run's :class:`harness.faults.network.Network`: start each worker with
    #: ``network.wrap(name, argv)`` (its own namespace) and bind what workers reach to ``network.bridge_address``
    network: Any = None


@dataclass(frozen=True)
class Prerequisite:
    """Something an engine needs on this machine (Java, a compiled classpath, a virtual environment)."""

    name: str
    met: bool
    fix: str = ""          # the command that makes it met
    detail: str = ""       # what was found


@runtime_checkable
class Deployment(Protocol):
    """A running job."""

    def processes(self) -> list[ManagedProcess]:
        """The engine's OS processes now, each with one of the engine's roles."""

    def wait_ready(self, timeout_s: float) -> None:
        """Return once the job processes input; raise ProcessError on timeout."""

    def stop(self) -> None:
        """Stop every process of the job. Safe to call twice."""

    def status(self) -> dict[str, Any]:
        """Engine-specific facts for results.json.

        ``facts`` (label -> value, in display order) are what the report puts
        in the side-by-side table of the models; ``config`` the options in force;
        ``late_records_counted`` (optional) the engine's own count of (input,
        window) pairs it dropped as late, which the checkers hold against the
        derived late set of an engine without a late side output.
        """

    def transaction_timeout_s(self) -> float:
        """The transaction timeout of its producers: how long a transaction may hang before the broker aborts it."""


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


@runtime_checkable
class NetworkPlaced(Protocol):
    """Its worker processes run in the network namespaces of ``DeploySpec.network`` when it is given, and
    everything its workers must reach listens on the network's bridge address (network faults)."""

    def network_placed(self) -> bool: ...


@runtime_checkable
class Finishing(Protocol):
    """A bounded job that finishes by itself (``DeploySpec.bounded``)."""

    def finished(self) -> bool:
        """Whether the job has read its input to the end and finished (FINISHED)."""

    def job_duration_s(self) -> float | None:
        """Seconds from the job's first deployment to its finish, None before it finished."""


@runtime_checkable
class Upgradable(Protocol):
    """The job can be stopped with its state (a savepoint, or every instance's last commit) and started again
    from it, as an upgrade does."""

    def upgrade(self) -> None: ...


@runtime_checkable
class Scalable(Protocol):
    """The job can be run on another number of workers while it runs (instances join or leave the group; or
    stop with a savepoint and redeploy at the new parallelism)."""

    def scale(self, to: int) -> None: ...


@runtime_checkable
class Leading(Protocol):
    """Some role's processes elect a leader (JobManagers with high availability): a fault on that role with
    the default pick hits the leader of the moment; a pick by index names one process."""

    def leading(self, role: str) -> str | None:
        """The name of the process that leads ``role`` now, None when the role has no leader."""


#: The process faults, which every engine's worker processes take.
PROCESS_FAULTS = frozenset({"kill", "pause", "terminate", "restart"})
#: The network faults between workers and brokers (a NetworkPlaced deployment).
NETWORK_FAULTS = frozenset({"partition", "delay", "loss"})
#: The job's life cycle: stop with state and start again, run on another number of workers.
LIFE_CYCLE_FAULTS = frozenset({"upgrade", "scale"})
#: Every fault kind an engine can take (broker faults belong to no engine).
ENGINE_FAULTS = PROCESS_FAULTS | NETWORK_FAULTS | LIFE_CYCLE_FAULTS

#: How a broker fault picks its broker besides ``random`` and a node id (scenario syntax; harness.faults.broker)
BROKER_PICKS = ("leader_of_input", "leader_of_output", "txn_coordinator", "controller")

#: The capability each fault kind needs from a Deployment.
FAULT_CAPABILITIES: dict[str, type] = {
    "kill": Killable,
    "pause": Pausable,
    "terminate": Terminable,
    "restart": Killable,
    "partition": NetworkPlaced,
    "delay": NetworkPlaced,
    "loss": NetworkPlaced,
    "upgrade": Upgradable,
    "scale": Scalable,
}


@runtime_checkable
class Engine(Protocol):
    """A stream processor the harness can deploy jobs on.

    ``jobs`` is ``None`` for an engine that runs any Python job (it
    interprets the Pipeline DSL), else the job references it implements
    natively. ``options`` maps each option of ``engine_config.<name>`` to a
    one-line description (with its default). ``late_side_output`` is True
    when it writes the records it drops as late to the late topic; when
    False the checkers derive them. ``window_time`` says what closes a
    window: ``stream_time`` (per task: the largest timestamp the task has
    seen), ``watermark`` (the minimum over the inputs' watermarks) or
    ``key_time`` (per key: the largest timestamp of the key's own records).
    ``conforms_to`` names the reference engine whose model this engine is
    the real system of (None for a reference engine): whenever both run
    the same scenario, their committed outputs are compared.

    Optional: ``bounded_jobs`` (True when it runs a job on a bounded input to its end and the job finishes
    by itself; False or absent: it refuses ``workload.bounded``, saying why in ``bounded_refusal``, by
    default that its model is unbounded).

    Optional: ``process_count(role, request)``, how many processes of
    ``role`` a deployment of ``request`` runs (None when unknown); a fault
    that picks its target by index is checked against it before the run.
    """

    name: str
    guarantees: frozenset[Guarantee]
    roles: frozenset[str]
    worker_roles: frozenset[str]
    fault_kinds: frozenset[str]
    jobs: frozenset[str] | None
    options: Mapping[str, str]
    late_side_output: bool
    window_time: str
    conforms_to: str | None

    def unsupported(self, kind: str, role: str) -> str | None:
        """Why a fault of ``kind`` cannot be aimed at ``role``, or None when it can."""

    def problems(self, request: RunRequest) -> list[str]:
        """Everything that keeps ``request`` from running on this engine (options, job, pipeline), one line each."""

    def prerequisites(self) -> list[Prerequisite]:
        """What this engine needs on the machine, met or not (checks only; builds nothing)."""

    def prepare(self, log: Callable[[str], None]) -> None:
        """Make the prerequisites met (compile, resolve, create environments); cached, so cheap when done."""

    def deploy(self, spec: DeploySpec) -> Deployment:
        """Start the job; its processes are registered with the process supervisor."""


#: The members an engine must have (the Engine protocol), in the order they are reported missing.
ENGINE_MEMBERS: tuple[str, ...] = ("name", "guarantees", "roles", "worker_roles", "fault_kinds", "jobs",
                                   "options", "late_side_output", "window_time", "conforms_to", "unsupported", "problems",
                                   "prerequisites", "prepare", "deploy")
#: What may close a window (``Engine.window_time``).
WINDOW_TIMES: tuple[str, ...] = ("stream_time", "watermark", "key_time")
DEPLOYMENT_MEMBERS: tuple[str, ...] = ("processes", "wait_ready", "stop", "status", "transaction_timeout_s")


def missing_members(engine: object) -> list[str]:
    """The members of the Engine protocol that ``engine`` lacks (empty when it implements it)."""
    return [m for m in ENGINE_MEMBERS if not hasattr(engine, m)]


def fault_kind_problems(engine: Engine, deployment_class: type) -> list[str]:
    """Declared fault kinds that ``deployment_class`` cannot take (missing the capability's methods)."""
    out = []
    for kind in sorted(engine.fault_kinds):
        capability = FAULT_CAPABILITIES.get(kind)
        if capability is None:
            out.append(f"{engine.name}: declares fault kind {kind!r}, which no capability defines "
                       f"(known: {', '.join(sorted(FAULT_CAPABILITIES))})")
            continue
        methods = [m for m in dir(capability) if not m.startswith("_")]
        lacking = [m for m in methods if not callable(getattr(deployment_class, m, None))]
        if lacking:
            out.append(f"{engine.name}: declares {kind!r} but {deployment_class.__name__} lacks "
                       f"{', '.join(lacking)} ({capability.__name__})")
    return out
