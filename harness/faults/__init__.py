"""The fault catalogue: kill, pause, terminate and restart worker processes on a timeline.

Each fault is a package: what it needs from the engine (the engine declares
the fault kinds it takes; each kind needs a capability of its Deployment),
how it is injected, how it heals (restart after a kill, SIGCONT after a
pause, also at teardown), and how it is recorded for the results and the
plots.
"""

from __future__ import annotations

import functools
import heapq
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.api import FAULT_CAPABILITIES, Engine
from harness.errors import CapabilityError, ConfigError


@dataclass(frozen=True)
class Fault:
    """One fault of a scenario, engine-neutral."""

    at_s: float
    kind: str                       # kill | pause | terminate | restart
    role: str = "worker"            # worker (the engine's worker roles), or one of the engine's roles
    pick: str | int = "random"
    restart_after_s: float | None = None   # kill
    for_s: float | None = None             # pause


@dataclass
class FaultEvent:
    """What happened, for results.json and the plots."""

    at_s: float
    kind: str
    target: str
    planned_at_s: float
    healed_at_s: float | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def fault_problems(faults: list[Fault], engine: Engine) -> list[str]:
    """Faults the engine cannot take, one line each: kinds it does not declare, roles it does not have,
    and what its ``unsupported(kind, role)`` refuses (for instance a JobManager kill without failover)."""
    problems = []
    for i, f in enumerate(faults):
        if f.kind not in engine.fault_kinds:
            capability = FAULT_CAPABILITIES.get(f.kind)
            needs = f" (it needs the {capability.__name__} capability)" if capability else ""
            problems.append(f"faults[{i}]: the {engine.name} engine does not take {f.kind} faults{needs}; "
                            f"it takes: {', '.join(sorted(engine.fault_kinds)) or 'none'}")
        if f.role != "worker" and f.role not in engine.roles:
            problems.append(f"faults[{i}]: role {f.role!r} does not exist in the {engine.name} engine "
                            f"(its roles: {', '.join(sorted(engine.roles))}; 'worker' means "
                            f"{' or '.join(sorted(engine.worker_roles))})")
        elif why := engine.unsupported(f.kind, f.role):
            problems.append(f"faults[{i}]: {why}")
    return problems


def check_supported(faults: list[Fault], engine: Engine) -> None:
    """Refuse, before anything starts, faults the engine cannot take."""
    problems = fault_problems(faults, engine)
    if problems:
        raise CapabilityError("\n".join(problems))


@dataclass(order=True)
class _Action:
    due: float
    seq: int
    run: Callable[[], None] = field(compare=False)


class FaultInjector(threading.Thread):
    """Applies faults at their times (seconds after ``t0``, wall clock) to a deployment."""

    def __init__(self, deployment, faults: list[Fault], seed: int, t0: float,
                 log: Callable[[str], None] = print, worker_roles: frozenset[str] = frozenset()) -> None:
        super().__init__(name="faults", daemon=True)
        self.deployment = deployment
        self.faults = sorted(faults, key=lambda f: f.at_s)
        self.seed = seed
        self.t0 = t0
        self.log = log
        self.worker_roles = worker_roles
        self.events: list[FaultEvent] = []
        self._queue: list[_Action] = []
        self._seq = 0
        self._halt = threading.Event()
        self._paused: set[str] = set()
        self._lock = threading.Lock()
        for i, f in enumerate(self.faults):
            self._schedule(f.at_s, functools.partial(self._inject, f, i))

    def _schedule(self, at_s: float, run: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Action(self.t0 + at_s, self._seq, run))

    def _now_s(self) -> float:
        return round(time.time() - self.t0, 3)

    def run(self) -> None:
        while self._queue and not self._halt.is_set():
            action = self._queue[0]
            if self._halt.wait(max(0.0, action.due - time.time())):
                break
            heapq.heappop(self._queue)
            try:
                action.run()
            except Exception as e:  # noqa: BLE001 - recorded; the run goes on
                self.log(f"fault failed: {e}")
                if self.events:
                    self.events[-1].error = str(e)

    def stop(self) -> None:
        """Stop injecting and heal what is still broken (resume paused processes)."""
        self._halt.set()
        self.join(timeout=30)
        with self._lock:
            for name in list(self._paused):
                self.deployment.resume(name)
                self._paused.discard(name)

    def _targets(self, role: str) -> list[str]:
        roles = self.worker_roles if role == "worker" else {role}
        return sorted(p.name for p in self.deployment.processes() if p.role in roles)

    def _pick(self, fault: Fault, index: int) -> str:
        names = self._targets(fault.role)
        if not names:
            msg = f"no process with role {fault.role} to {fault.kind}"
            raise ConfigError(msg)
        if fault.pick == "random":
            return random.Random(self.seed * 1000 + index).choice(names)
        if not 0 <= int(fault.pick) < len(names):
            msg = f"pick {fault.pick} is out of range: there are {len(names)} {fault.role} processes"
            raise ConfigError(msg)
        return names[int(fault.pick)]

    def _inject(self, fault: Fault, index: int) -> None:
        target = self._pick(fault, index)
        event = FaultEvent(self._now_s(), fault.kind, target, fault.at_s)
        self.events.append(event)
        self.log(f"t={event.at_s:.1f}s fault: {fault.kind} {target}")
        d = self.deployment
        if fault.kind == "kill":
            d.kill(target)
            if fault.restart_after_s is not None:
                self._schedule(fault.at_s + fault.restart_after_s, lambda: self._heal_restart(event))
        elif fault.kind == "pause":
            with self._lock:
                d.pause(target)
                self._paused.add(target)
            self._schedule(fault.at_s + (fault.for_s or 0), lambda: self._heal_resume(event))
        elif fault.kind == "terminate":
            d.terminate(target)
        elif fault.kind == "restart":
            d.restart(target)

    def _heal_restart(self, event: FaultEvent) -> None:
        self.deployment.restart(event.target)
        event.healed_at_s = self._now_s()
        self.log(f"t={event.healed_at_s:.1f}s heal: restarted {event.target}")

    def _heal_resume(self, event: FaultEvent) -> None:
        with self._lock:
            self.deployment.resume(event.target)
            self._paused.discard(event.target)
        event.healed_at_s = self._now_s()
        self.log(f"t={event.healed_at_s:.1f}s heal: resumed {event.target}")
