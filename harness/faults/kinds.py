"""The fault kinds, one registry entry each: the capability of a Deployment it needs, how it is injected into a
target, when and how it heals, what must be healed at teardown if it has not been yet, how long the run waits
for its heal, and how the plots draw it.

A new kind is one more :func:`register` call here (and its scenario syntax in
:mod:`harness.scenario.model`); the injector knows no kind by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.api import FAULT_CAPABILITIES


@dataclass(frozen=True)
class Fault:
    """One fault of a scenario, engine-neutral."""

    at_s: float
    kind: str                       # a key of KINDS
    role: str = "worker"            # worker (the engine's worker roles), or one of the engine's roles
    pick: str | int = "random"
    restart_after_s: float | None = None   # kill
    for_s: float | None = None             # pause, partition, delay, loss
    ms: float = 0.0                        # delay
    jitter_ms: float = 0.0                 # delay
    fraction: float = 0.0                  # loss
    to: int = 0                            # scale


@dataclass(frozen=True)
class PlotStyle:
    """How the timelines draw a fault: a line at its time, and a shaded span until its heal when ``span``."""

    colour: str = "tab:red"
    span: bool = True


Action = Callable[[Any, str, Fault], None]  # (what it acts on: the deployment or an infrastructure, target, fault)


@dataclass(frozen=True)
class FaultKind:
    name: str
    inject: Action
    #: seconds after the injection at which ``heal`` runs, None for a fault that does not heal by itself
    heal_after_s: Callable[[Fault], float | None] = lambda fault: None
    heal: Action | None = None
    #: run at teardown on a target whose heal has not run yet (a paused process must not stay stopped)
    final_heal: Action | None = None
    plot: PlotStyle = PlotStyle()
    #: the scenario key of this kind that sets when it heals (``restart_after``, ``for``): it must fall within
    #: the load
    heal_key: str | None = None
    #: the infrastructure it acts on, by name (``network``), when not the deployment; its targets are still
    #: the deployment's processes
    subject: str | None = None
    #: it acts on the whole job, not on processes picked from it (upgrade, scale)
    whole_job: bool = False

    @property
    def capability(self) -> type | None:
        """The Deployment capability an engine must offer to take this kind (harness.api)."""
        return FAULT_CAPABILITIES.get(self.name)

    def heal_deadline_s(self, fault: Fault) -> float:
        """Seconds into the load by which this fault has healed (when it heals at all)."""
        return fault.at_s + (self.heal_after_s(fault) or 0.0)


KINDS: dict[str, FaultKind] = {}


def register(kind: FaultKind) -> FaultKind:
    if kind.name in KINDS:
        msg = f"fault kind {kind.name!r} is registered twice"
        raise ValueError(msg)
    KINDS[kind.name] = kind
    return kind


def kind_of(fault: Fault) -> FaultKind:
    try:
        return KINDS[fault.kind]
    except KeyError:
        msg = f"unknown fault kind {fault.kind!r}; known: {', '.join(sorted(KINDS))}"
        raise ValueError(msg) from None


# -- process faults -------------------------------------------------------------------------------

register(FaultKind("kill", inject=lambda d, target, f: d.kill(target),
                   heal_after_s=lambda f: f.restart_after_s, heal=lambda d, target, f: d.restart(target),
                   heal_key="restart_after"))
register(FaultKind("pause", inject=lambda d, target, f: d.pause(target),
                   heal_after_s=lambda f: f.for_s or 0.0, heal=lambda d, target, f: d.resume(target),
                   final_heal=lambda d, target, f: d.resume(target), heal_key="for"))
register(FaultKind("terminate", inject=lambda d, target, f: d.terminate(target), plot=PlotStyle(span=False)))
register(FaultKind("restart", inject=lambda d, target, f: d.restart(target), plot=PlotStyle(span=False)))


# -- network faults (harness.faults.network): the target is one worker or several, comma-separated ------------

def _each(action: Callable[[Any, str, Fault], None]) -> Action:
    def run(network: Any, target: str, fault: Fault) -> None:
        for name in target.split(","):
            action(network, name, fault)
    return run


_network_heal = _each(lambda n, name, f: n.heal(name))
register(FaultKind("partition", inject=_each(lambda n, name, f: n.partition(name)),
                   heal_after_s=lambda f: f.for_s or 0.0, heal=_network_heal, final_heal=_network_heal,
                   heal_key="for", subject="network", plot=PlotStyle(colour="tab:purple")))
register(FaultKind("loss", inject=_each(lambda n, name, f: n.lose(name, f.fraction)),
                   heal_after_s=lambda f: f.for_s or 0.0, heal=_network_heal, final_heal=_network_heal,
                   heal_key="for", subject="network", plot=PlotStyle(colour="tab:brown")))
_undelay = _each(lambda n, name, f: n.delay(name, 0.0))
register(FaultKind("delay", inject=_each(lambda n, name, f: n.delay(name, f.ms, f.jitter_ms)),
                   heal_after_s=lambda f: f.for_s or 0.0, heal=_undelay, final_heal=_undelay,
                   heal_key="for", subject="network", plot=PlotStyle(colour="tab:olive")))


# -- life cycle: the whole job ----------------------------------------------------------------------------

register(FaultKind("upgrade", inject=lambda d, target, f: d.upgrade(), whole_job=True,
                   plot=PlotStyle(colour="tab:green", span=False)))
register(FaultKind("scale", inject=lambda d, target, f: d.scale(f.to), whole_job=True,
                   plot=PlotStyle(colour="tab:cyan", span=False)))

#: the kinds that act on the network between workers and brokers
NETWORK_KINDS = frozenset(k.name for k in KINDS.values() if k.subject == "network")
