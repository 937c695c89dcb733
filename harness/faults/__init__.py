"""The fault injector: faults applied to a deployment on a timeline, each kind a registry entry
(:mod:`harness.faults.kinds`: what it needs, how it is injected and healed, the final heal at teardown, its heal
deadline, how it is drawn), on an injectable clock (:mod:`harness.faults.clock`) so that the injector is
unit-tested without processes.
"""

from __future__ import annotations

import functools
import heapq
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.api import Engine, Leading, RunRequest
from harness.errors import CapabilityError, ConfigError
from harness.faults import broker
from harness.faults.clock import Clock, FakeClock, WallClock
from harness.faults.kinds import KINDS, NETWORK_KINDS, Fault, FaultKind, PlotStyle, kind_of, register


@dataclass
class FaultEvent:
    """What happened, for results.json and the plots."""

    at_s: float
    kind: str
    target: str
    planned_at_s: float
    healed_at_s: float | None = None
    error: str | None = None
    why: str | None = None  # how an infrastructure target was picked ("leader of input partition 2")

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def fault_problems(faults: list[Fault], engine: Engine, request: RunRequest | None = None) -> list[str]:
    """Faults the engine cannot take, one line each: kinds it does not declare, roles it does not have,
    and what its ``unsupported(kind, role)`` refuses (for instance a JobManager kill without failover)."""
    problems = []
    for i, f in enumerate(faults):
        if f.role == broker.ROLE:
            guarantee = request.guarantee.value if request is not None else None
            problems += [f"faults[{i}]: {p}" for p in broker.problems(f.kind, f.pick, guarantee)]
            continue
        if isinstance(f.pick, str) and f.pick in broker.PICKS:
            problems.append(f"faults[{i}]: pick {f.pick} picks a broker: it needs role: broker "
                            f"(a {f.role} is picked by index or at random)")
            continue
        if f.pick == "all" and f.kind not in NETWORK_KINDS:
            problems.append(f"faults[{i}]: pick all is for network faults ({', '.join(sorted(NETWORK_KINDS))}); "
                            f"a {f.kind} picks one process: an index or random")
            continue
        if f.kind not in engine.fault_kinds:
            capability = KINDS[f.kind].capability if f.kind in KINDS else None
            needs = f" (it needs the {capability.__name__} capability)" if capability else ""
            problems.append(f"faults[{i}]: the {engine.name} engine does not take {f.kind} faults{needs}; "
                            f"it takes: {', '.join(sorted(engine.fault_kinds)) or 'none'}")
        if f.role != "worker" and f.role not in engine.roles:
            problems.append(f"faults[{i}]: role {f.role!r} does not exist in the {engine.name} engine "
                            f"(its roles: {', '.join(sorted(engine.roles))}; 'worker' means "
                            f"{' or '.join(sorted(engine.worker_roles))})")
        elif (why := engine.unsupported(f.kind, f.role)) or (why := _pick_problem(f, engine, request)):
            problems.append(f"faults[{i}]: {why}")
    return problems


def _pick_problem(fault: Fault, engine: Engine, request: RunRequest | None) -> str | None:
    """A pick by index beyond the processes the engine will run for the fault's role."""
    count_of = getattr(engine, "process_count", None)
    if request is None or count_of is None or isinstance(fault.pick, str):
        return None
    roles = sorted(engine.worker_roles) if fault.role == "worker" else [fault.role]
    counts = [count_of(role, request) for role in roles]
    if any(c is None for c in counts):
        return None
    count = sum(c for c in counts if c is not None)
    if 0 <= fault.pick < count:
        return None
    what = " or ".join(roles)
    return (f"{fault.kind} pick {fault.pick} is out of range: the {engine.name} engine runs {count} {what} "
            f"process{'es' if count != 1 else ''} here (pick 0 to {count - 1}, or random)")


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
    """Applies faults at their times (seconds after ``t0`` on ``clock``) to a deployment, heals them when
    their kind says, and at :meth:`stop` heals what is still broken.

    ``infrastructure``: the targets of faults on roles no engine has, by role (``broker``:
    :class:`harness.faults.broker.Brokers`); each picks its own targets (``pick(pick, rng)`` -> target, why),
    offers the kinds' actions like a Deployment, and ``heal_all`` at the end.
    """

    def __init__(self, deployment, faults: list[Fault], seed: int, t0: float,
                 log: Callable[[str], None] = print, worker_roles: frozenset[str] = frozenset(),
                 clock: Clock | None = None, infrastructure: dict[str, Any] | None = None) -> None:
        super().__init__(name="faults", daemon=True)
        self.deployment = deployment
        self.faults = sorted(faults, key=lambda f: f.at_s)
        self.seed = seed
        self.t0 = t0
        self.log = log
        self.worker_roles = worker_roles
        self.infrastructure = dict(infrastructure or {})
        self.clock: Clock = clock or WallClock()
        self.events: list[FaultEvent] = []
        self._queue: list[_Action] = []
        self._seq = 0
        self._halt = threading.Event()
        self._broken: dict[int, tuple[FaultKind, Any, str, Fault]] = {}  # event -> what a final heal must undo, on what
        self._lock = threading.Lock()
        for i, f in enumerate(self.faults):
            kind_of(f)  # an unknown kind fails here, before the run
            self._schedule(f.at_s, functools.partial(self._inject, f, i))

    def _schedule(self, at_s: float, run: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Action(self.t0 + at_s, self._seq, run))

    def _now_s(self) -> float:
        return round(self.clock.time() - self.t0, 3)

    def run(self) -> None:
        while self._queue and not self._halt.is_set():
            action = self._queue[0]
            if self.clock.wait(action.due - self.clock.time(), self._halt):
                break
            heapq.heappop(self._queue)
            action.run()  # each action records its own failure on its own event

    def stop(self) -> None:
        """Stop injecting and heal what is still broken (resume paused processes)."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout=30)
        with self._lock:
            broken, self._broken = self._broken, {}
        for kind, subject, target, fault in broken.values():
            assert kind.final_heal is not None
            kind.final_heal(subject, target, fault)
        for infrastructure in self.infrastructure.values():
            infrastructure.heal_all()

    def _subject(self, fault: Fault) -> Any:
        """What a fault acts on: the infrastructure its kind names (the network), the infrastructure that owns
        its role (the brokers), or the deployment."""
        kind = kind_of(fault)
        if kind.subject is not None:
            if kind.subject not in self.infrastructure:
                msg = f"a {fault.kind} fault needs the run's {kind.subject}, which this run does not have"
                raise ConfigError(msg)
            return self.infrastructure[kind.subject]
        return self.infrastructure.get(fault.role, self.deployment)

    def _targets(self, role: str) -> list[str]:
        roles = self.worker_roles if role == "worker" else {role}
        return sorted(p.name for p in self.deployment.processes() if p.role in roles)

    def _pick(self, fault: Fault, index: int) -> tuple[str, str | None]:
        rng = random.Random(self.seed * 1000 + index)
        if kind_of(fault).whole_job:
            return "job", f"to {fault.to} workers" if fault.kind == "scale" else None
        if fault.role in self.infrastructure:
            return self.infrastructure[fault.role].pick(fault.pick, rng)
        if (fault.pick == "random" and isinstance(self.deployment, Leading)
                and (leader := self.deployment.leading(fault.role)) is not None):
            return leader, "the leader"
        names = self._targets(fault.role)
        if not names:
            msg = f"no process with role {fault.role} to {fault.kind}"
            raise ConfigError(msg)
        if fault.pick == "random":
            return rng.choice(names), None
        if fault.pick == "all":
            return ",".join(names), None
        if not 0 <= int(fault.pick) < len(names):
            msg = f"pick {fault.pick} is out of range: there are {len(names)} {fault.role} processes"
            raise ConfigError(msg)
        return names[int(fault.pick)], None

    def _inject(self, fault: Fault, index: int) -> None:
        kind = kind_of(fault)
        event = FaultEvent(self._now_s(), fault.kind, "-", fault.at_s)
        self.events.append(event)
        number = len(self.events) - 1
        try:
            subject = self._subject(fault)
            event.target, event.why = self._pick(fault, index)
            why = f" ({event.why})" if event.why else ""
            self.log(f"t={event.at_s:.1f}s fault: {fault.kind} {event.target}{why}")
            with self._lock:
                kind.inject(subject, event.target, fault)
                if kind.final_heal is not None:
                    self._broken[number] = (kind, subject, event.target, fault)
        except Exception as e:  # noqa: BLE001 - recorded on the event; the timeline goes on
            event.error = str(e)
            self.log(f"t={event.at_s:.1f}s fault failed: {fault.kind}: {e}")
            return
        after = kind.heal_after_s(fault)
        if after is not None and kind.heal is not None:
            self._schedule(fault.at_s + after, functools.partial(self._heal, kind, subject, event, number, fault))

    def _heal(self, kind: FaultKind, subject: Any, event: FaultEvent, number: int, fault: Fault) -> None:
        assert kind.heal is not None
        with self._lock:
            if number not in self._broken and kind.final_heal is not None:
                return  # healed at teardown already
            try:
                kind.heal(subject, event.target, fault)
            except Exception as e:  # noqa: BLE001 - recorded on the event it belongs to
                event.error = f"heal failed: {e}"
                self.log(f"t={self._now_s():.1f}s heal failed: {kind.name} {event.target}: {e}")
                return
            self._broken.pop(number, None)
        event.healed_at_s = self._now_s()
        self.log(f"t={event.healed_at_s:.1f}s heal: {kind.name} {event.target}")


__all__ = ["KINDS", "Clock", "FakeClock", "Fault", "FaultEvent", "FaultInjector", "FaultKind",
           "PlotStyle", "WallClock", "check_supported", "fault_problems", "kind_of", "register"]
