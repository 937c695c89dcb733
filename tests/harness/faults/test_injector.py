"""The fault injector on a fake clock: every kind injected and healed at its time, what is still broken healed
at teardown, a failing injection recorded; no processes, no waiting."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.faults import KINDS, FakeClock, Fault, FaultInjector, kind_of


@dataclass
class _Proc:
    name: str
    role: str


class _Deployment:
    """Records what the injector does to it, with the time on the fake clock."""

    def __init__(self, clock: FakeClock, names=("instance-0", "instance-1", "instance-2")) -> None:
        self.clock = clock
        self.names = names
        self.calls: list[tuple[float, str, str]] = []

    def processes(self):
        return [_Proc(n, "instance") for n in self.names]

    def _record(self, what: str, target: str) -> None:
        self.calls.append((round(self.clock.time() - 100.0, 3), what, target))

    def kill(self, target): self._record("kill", target)
    def restart(self, target): self._record("restart", target)
    def pause(self, target): self._record("pause", target)
    def resume(self, target): self._record("resume", target)
    def terminate(self, target): self._record("terminate", target)
    def upgrade(self): self._record("upgrade", "job")
    def scale(self, to): self._record(f"scale to {to}", "job")


def _injector(faults, deployment=None, clock=None, seed=7):
    clock = clock or FakeClock(100.0)
    deployment = deployment or _Deployment(clock)
    injector = FaultInjector(deployment, faults, seed=seed, t0=100.0, log=lambda msg: None,
                             worker_roles=frozenset({"instance"}), clock=clock)
    return injector, deployment


def test_every_kind_is_injected_and_healed_at_its_time():
    faults = [Fault(at_s=5, kind="kill", pick=0, restart_after_s=3), Fault(at_s=10, kind="pause", pick=1, for_s=4),
              Fault(at_s=12, kind="terminate", pick=2), Fault(at_s=20, kind="restart", pick=2)]
    injector, d = _injector(faults)
    injector.run()  # on the fake clock: returns when the timeline is done
    injector.stop()
    assert d.calls == [(5.0, "kill", "instance-0"), (8.0, "restart", "instance-0"), (10.0, "pause", "instance-1"),
                       (12.0, "terminate", "instance-2"), (14.0, "resume", "instance-1"),
                       (20.0, "restart", "instance-2")]
    assert [(e.kind, e.at_s, e.healed_at_s) for e in injector.events] == [
        ("kill", 5.0, 8.0), ("pause", 10.0, 14.0), ("terminate", 12.0, None), ("restart", 20.0, None)]


def test_a_kill_without_restart_is_not_healed():
    injector, d = _injector([Fault(at_s=1, kind="kill", pick=1)])
    injector.run()
    injector.stop()
    assert d.calls == [(1.0, "kill", "instance-1")] and injector.events[0].healed_at_s is None


def test_a_pause_still_in_force_at_teardown_is_healed_once():
    clock = FakeClock(100.0)
    injector, d = _injector([Fault(at_s=2, kind="pause", pick=0, for_s=60)], clock=clock)
    injector._queue[0].run()  # inject only: the run ends before the heal is due
    injector.stop()
    assert d.calls == [(0.0, "pause", "instance-0"), (0.0, "resume", "instance-0")]
    injector._heal(KINDS["pause"], d, injector.events[0], 0, injector.faults[0])  # the scheduled heal arriving late does nothing
    assert len(d.calls) == 2


def test_random_picks_follow_the_seed():
    def targets(seed):
        injector, d = _injector([Fault(at_s=s, kind="terminate") for s in (1, 2, 3, 4)], seed=seed)
        injector.run()
        return [t for _, _, t in d.calls]

    assert targets(3) == targets(3)
    assert any(targets(3) != targets(s) for s in (4, 5, 6))


def test_a_failing_injection_or_heal_is_recorded_on_its_own_event_and_the_timeline_goes_on():
    class _RestartFails(_Deployment):
        def restart(self, target):
            raise RuntimeError("no such instance")

    clock = FakeClock(100.0)
    faults = [Fault(at_s=1, kind="kill", pick=5), Fault(at_s=2, kind="kill", pick=0, restart_after_s=5),
              Fault(at_s=3, kind="terminate", pick=1)]
    injector, d = _injector(faults, deployment=_RestartFails(clock), clock=clock)
    injector.run()
    assert d.calls == [(2.0, "kill", "instance-0"), (3.0, "terminate", "instance-1")]
    bad_pick, unhealed, fine = injector.events
    assert (bad_pick.target, bad_pick.error) == ("-", "pick 5 is out of range: there are 3 worker processes")
    assert (unhealed.error, unhealed.healed_at_s) == ("heal failed: no such instance", None)
    assert fine.error is None


def test_heal_deadlines_and_an_unknown_kind():
    assert kind_of(Fault(at_s=5, kind="kill", restart_after_s=3)).heal_deadline_s(
        Fault(at_s=5, kind="kill", restart_after_s=3)) == 8
    assert KINDS["pause"].heal_deadline_s(Fault(at_s=5, kind="pause", for_s=10)) == 15
    assert KINDS["terminate"].capability is not None and KINDS["kill"].capability is not None
    with pytest.raises(ValueError, match="unknown fault kind 'flood'"):
        _injector([Fault(at_s=1, kind="flood")])


class _Brokers(_Deployment):
    """An infrastructure role as the injector sees it: its own picks, the kinds' actions, a heal at the end."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock, names=())
        self.picks: list[object] = []

    def pick(self, pick, rng):
        self.picks.append(pick)
        return "broker-2", f"picked {pick}"

    def heal_all(self):
        self._record("heal_all", "-")


def test_a_fault_on_an_infrastructure_role_goes_to_it_not_to_the_engine():
    clock = FakeClock(100.0)
    brokers = _Brokers(clock)
    deployment = _Deployment(clock)
    faults = [Fault(at_s=5, kind="kill", role="broker", pick="leader_of_input", restart_after_s=10),
              Fault(at_s=6, kind="pause", role="broker", pick="controller", for_s=2),
              Fault(at_s=7, kind="terminate", pick=1)]
    injector = FaultInjector(deployment, faults, seed=7, t0=100.0, log=lambda msg: None,
                             worker_roles=frozenset({"instance"}), clock=clock, infrastructure={"broker": brokers})
    injector.run()
    injector.stop()
    assert brokers.picks == ["leader_of_input", "controller"]
    assert brokers.calls == [(5.0, "kill", "broker-2"), (6.0, "pause", "broker-2"), (8.0, "resume", "broker-2"),
                             (15.0, "restart", "broker-2"), (15.0, "heal_all", "-")]
    assert deployment.calls == [(7.0, "terminate", "instance-1")]
    assert [(e.target, e.why) for e in injector.events] == [
        ("broker-2", "picked leader_of_input"), ("broker-2", "picked controller"), ("instance-1", None)]
    assert injector.events[0].to_dict()["why"] == "picked leader_of_input"


class _Network:
    """The run's network as the injector sees it: faults on workers' traffic, recorded on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[tuple[float, str, str, object]] = []

    def _record(self, what: str, name: str, arg: object = None) -> None:
        self.calls.append((round(self.clock.time() - 100.0, 3), what, name, arg))

    def partition(self, name): self._record("partition", name)
    def lose(self, name, fraction): self._record("lose", name, fraction)
    def delay(self, name, ms, jitter_ms=0.0): self._record("delay", name, (ms, jitter_ms))
    def heal(self, name): self._record("heal", name)
    def heal_all(self): self._record("heal_all", "-")


def test_network_kinds_act_on_the_network_for_the_workers_they_pick():
    clock = FakeClock(100.0)
    net = _Network(clock)
    deployment = _Deployment(clock)
    faults = [Fault(at_s=5, kind="partition", pick=1, for_s=10),
              Fault(at_s=20, kind="delay", pick="all", ms=200, jitter_ms=50, for_s=5),
              Fault(at_s=30, kind="loss", pick=2, fraction=0.05, for_s=60)]
    injector = FaultInjector(deployment, faults, seed=7, t0=100.0, log=lambda msg: None,
                             worker_roles=frozenset({"instance"}), clock=clock, infrastructure={"network": net})
    injector.run()
    injector.stop()
    assert net.calls == [
        (5.0, "partition", "instance-1", None), (15.0, "heal", "instance-1", None),
        (20.0, "delay", "instance-0", (200, 50)), (20.0, "delay", "instance-1", (200, 50)),
        (20.0, "delay", "instance-2", (200, 50)),
        (25.0, "delay", "instance-0", (0.0, 0.0)), (25.0, "delay", "instance-1", (0.0, 0.0)),
        (25.0, "delay", "instance-2", (0.0, 0.0)),
        (30.0, "lose", "instance-2", 0.05), (90.0, "heal", "instance-2", None), (90.0, "heal_all", "-", None)]
    assert deployment.calls == []
    assert [e.target for e in injector.events] == ["instance-1", "instance-0,instance-1,instance-2", "instance-2"]


def test_a_network_fault_in_a_run_without_a_network_is_recorded_as_failed():
    injector, _ = _injector([Fault(at_s=1, kind="partition", pick=0, for_s=2)])
    injector.run()
    injector.stop()
    assert injector.events[0].error == "a partition fault needs the run's network, which this run does not have"


def test_life_cycle_kinds_act_on_the_whole_job():
    injector, d = _injector([Fault(at_s=20, kind="scale", to=5), Fault(at_s=40, kind="scale", to=2),
                             Fault(at_s=45, kind="upgrade")])
    injector.run()
    injector.stop()
    assert d.calls == [(20.0, "scale to 5", "job"), (40.0, "scale to 2", "job"), (45.0, "upgrade", "job")]
    assert [(e.target, e.why) for e in injector.events] == [("job", "to 5 workers"), ("job", "to 2 workers"),
                                                            ("job", None)]


class _HighlyAvailable(_Deployment):
    """Two JobManagers electing a leader: a killed leader hands over to the other."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock, names=("taskmanager-0",))
        self.leader = "jobmanager-0"

    def processes(self):
        return [_Proc("jobmanager-0", "jobmanager"), _Proc("jobmanager-1", "jobmanager"),
                _Proc("taskmanager-0", "taskmanager")]

    def leading(self, role):
        return self.leader if role == "jobmanager" else None

    def kill(self, target):
        super().kill(target)
        self.leader = "jobmanager-1" if target == "jobmanager-0" else "jobmanager-0"


def test_a_fault_on_a_role_with_a_leader_hits_the_leader_of_the_moment_unless_an_index_names_one():
    clock = FakeClock(100.0)
    d = _HighlyAvailable(clock)
    injector, _ = _injector([Fault(at_s=15, kind="kill", role="jobmanager", restart_after_s=5),
                             Fault(at_s=38, kind="kill", role="jobmanager", restart_after_s=5),
                             Fault(at_s=50, kind="pause", role="jobmanager", pick=1, for_s=2)], d, clock)
    injector.run()
    injector.stop()
    assert [(e.kind, e.target, e.why) for e in injector.events] == [
        ("kill", "jobmanager-0", "the leader"), ("kill", "jobmanager-1", "the leader"),
        ("pause", "jobmanager-1", None)]
    assert d.calls[:4] == [(15.0, "kill", "jobmanager-0"), (20.0, "restart", "jobmanager-0"),
                           (38.0, "kill", "jobmanager-1"), (43.0, "restart", "jobmanager-1")]
