"""The cluster engine's leader election by a lease, on a fake clock (no processes): who may take the lease and
when, what renewing and releasing do, and that a deposed leader can neither renew nor move the job's checkpoint
pointer."""

from __future__ import annotations

import pytest

from engines.cluster.ha import LeaseLost, LeaseStore, read_lease


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stores(tmp_path):
    clock = Clock()
    a = LeaseStore(tmp_path, "jobmanager-0", 5.0, clock)
    b = LeaseStore(tmp_path, "jobmanager-1", 5.0, clock)
    return clock, a, b


def test_the_first_takes_the_lease_and_the_standby_waits_while_it_is_renewed(stores, tmp_path):
    clock, a, b = stores
    assert a.try_acquire("127.0.0.1", 7001) and a.epoch == 1
    assert not b.try_acquire("127.0.0.1", 7002) and b.epoch is None
    for _ in range(10):  # renewed every second: it never runs out
        clock.now += 1
        a.renew()
        assert not b.try_acquire("127.0.0.1", 7002)
    lease = read_lease(tmp_path)
    assert (lease["holder"], lease["port"], lease["epoch"], lease["takeovers"]) == ("jobmanager-0", 7001, 1, 0)
    assert a.try_acquire("127.0.0.1", 7001) and a.epoch == 1  # asking again changes nothing


def test_a_leader_that_stops_renewing_is_replaced_after_the_lease_and_cannot_renew_or_write_again(stores, tmp_path):
    clock, a, b = stores
    a.try_acquire("127.0.0.1", 7001)
    a.update_job(checkpoint=4, attempt=0)
    clock.now += 5.0
    assert not b.try_acquire("127.0.0.1", 7002)  # not yet: the lease runs to its end
    clock.now += 0.01
    assert b.try_acquire("127.0.0.1", 7002) and b.epoch == 2
    lease = read_lease(tmp_path)
    assert (lease["holder"], lease["takeovers"], lease["previous"]) == ("jobmanager-1", 1, "jobmanager-0")
    with pytest.raises(LeaseLost, match="held by jobmanager-1"):
        a.renew()
    with pytest.raises(LeaseLost):
        a.update_job(checkpoint=5)  # the zombie's checkpoint is not the job's
    assert a.job() == {"checkpoint": 4, "attempt": 0, "epoch": 1}
    b.update_job(checkpoint=6, attempt=1)
    assert b.job() == {"checkpoint": 6, "attempt": 1, "epoch": 2}


def test_a_released_lease_is_taken_at_once_and_is_not_a_takeover(stores, tmp_path):
    _clock, a, b = stores
    a.try_acquire("127.0.0.1", 7001)
    a.release()
    assert read_lease(tmp_path)["released"]
    assert b.try_acquire("127.0.0.1", 7002)
    assert read_lease(tmp_path)["takeovers"] == 0
    with pytest.raises(LeaseLost):
        a.update_job(state="FINISHED")
    b.release()
    assert a.try_acquire("127.0.0.1", 7003) and a.epoch == 3


def test_a_jobmanager_started_again_under_the_same_name_waits_for_its_predecessors_lease(stores, tmp_path):
    clock, a, _ = stores
    a.try_acquire("127.0.0.1", 7001)
    again = LeaseStore(tmp_path, "jobmanager-0", 5.0, clock)  # the killed leader's successor process
    assert not again.try_acquire("127.0.0.1", 7009)
    clock.now += 5.5
    assert again.try_acquire("127.0.0.1", 7009) and again.epoch == 2
    assert read_lease(tmp_path)["takeovers"] == 1
