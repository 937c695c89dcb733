"""aborted_read and hanging_txn."""

from __future__ import annotations

from harness.check import check_aborted_read, check_hanging_txn
from harness.kafka.client import Record


class FakeClock:
    """Time that passes only when the code under test sleeps: no waiting in tests."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _measurements(*answers):
    """A fake offsets_later: each call returns the next answer, the last one forever after."""
    calls: list[int] = []

    def measure():
        calls.append(len(calls))
        return answers[min(len(calls) - 1, len(answers) - 1)]

    measure.calls = calls  # type: ignore[attr-defined]
    return measure


def _outputs(make, count: int = 6) -> list[Record]:
    return make.output_topic([{"id": i, "k": "a", "n": i, "s": i} for i in range(1, count + 1)])


# -- aborted read -----------------------------------------------------------------------------

def test_aborted_read_passes_when_the_probe_saw_only_committed_data(make):
    committed = _outputs(make)
    aborted = [Record("output", committed[0].partition, 100, b"a", b"{}", 0)]
    observed = make.observe([], committed, uncommitted=committed + aborted)

    result = check_aborted_read(observed)

    assert (result.verdict, result.count) == ("pass", 0)
    assert result.detail.startswith("1 output records")


def test_aborted_read_fails_when_the_probe_saw_uncommitted_data(make):
    committed = _outputs(make)
    aborted = Record("output", committed[0].partition, 100, b"a", b"{}", 0)
    probe = [(r.partition, r.offset) for r in committed] + [(aborted.partition, 100)]
    observed = make.observe([], committed, uncommitted=[*committed, aborted], probe=probe)

    result = check_aborted_read(observed)

    assert (result.verdict, result.count) == ("fail", 1)
    assert (result.examples[0]["partition"], result.examples[0]["offset"]) == (aborted.partition, 100)


def test_aborted_read_fails_when_read_committed_returns_what_read_uncommitted_lacks(make):
    committed = _outputs(make)

    result = check_aborted_read(make.observe([], committed, uncommitted=committed[1:]))

    assert (result.verdict, result.count) == ("fail", 1)


# -- hanging transaction ------------------------------------------------------------------------

def test_hanging_txn_passes_when_no_partition_is_behind(make):
    observed = make.observe([], [], offsets={"output": {0: (5, 5), 1: (7, 7)}})

    assert check_hanging_txn(observed).verdict == "pass"


def test_hanging_txn_fails_when_the_stable_offset_never_catches_up(make):
    clock = FakeClock()
    behind = {"output": {0: (5, 5), 1: (3, 7)}}
    observed = make.observe([], [], offsets=behind, offsets_later=_measurements(behind), txn_timeout_s=2.0)

    result = check_hanging_txn(observed, clock=clock, sleep=clock.sleep)

    assert (result.verdict, result.count) == ("fail", 1)
    assert result.examples == [{"topic": "output", "partition": 1, "lso": 3, "hwm": 7, "lso_later": 3}]
    assert clock.now == 7.0  # the transaction timeout + 5 s grace
    assert set(clock.sleeps) == {0.5}


def test_hanging_txn_passes_when_the_transaction_resolves_within_the_timeout(make):
    clock = FakeClock()
    behind = {"output": {1: (3, 7)}}
    measure = _measurements(behind, behind, {"output": {1: (8, 9)}})  # aborted at 7; more data since
    observed = make.observe([], [], offsets=behind, offsets_later=measure)

    result = check_hanging_txn(observed, clock=clock, sleep=clock.sleep)

    assert result.verdict == "pass"
    assert len(measure.calls) == 3
    assert clock.now == 1.0


def test_hanging_txn_wait_is_injectable(make):
    behind = {"output": {1: (3, 7)}}
    observed = make.observe([], [], offsets=behind, offsets_later=_measurements(behind))

    assert check_hanging_txn(observed, timeout_s=0).verdict == "fail"


def test_hanging_txn_fails_when_nothing_can_measure_again(make):
    observed = make.observe([], [], offsets={"output": {0: (3, 7)}}, offsets_later=None)

    result = check_hanging_txn(observed)

    assert (result.verdict, result.count) == ("fail", 1)
    assert result.examples[0]["lso_later"] is None
