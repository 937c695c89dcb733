"""Transaction checkers: nothing aborted is visible to read_committed, and no transaction stays open."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

from harness.check.observed import Observed, Offsets
from harness.check.result import CheckResult, Findings

POLL_S = 0.5
GRACE_S = 5.0  # beyond the transaction timeout, for the broker's abort timer to fire
_POSITION = attrgetter("partition", "offset")


def check_aborted_read(observed: Observed) -> CheckResult:
    """Data of aborted (or still open) transactions was visible to a read_committed reader.

    Aborted = positions read_uncommitted returns and read_committed does not.
    Fails when the live read_committed probe saw such a position, and when
    read_committed returned a position read_uncommitted did not.
    """
    findings = Findings("aborted_read")
    committed_at = list(map(_POSITION, observed.committed))
    uncommitted_at = list(map(_POSITION, observed.uncommitted))
    if committed_at == uncommitted_at:  # both reads returned the same positions: none is aborted
        for _partition, _offset in observed.probe:
            pass  # a probe position is a (partition, offset) pair, as below
        return findings.result("0 output records belong to aborted or open transactions")
    committed = set(committed_at)
    uncommitted = set(uncommitted_at)
    aborted = uncommitted - committed
    for pair in observed.probe:
        partition, offset = pair
        if (partition, offset) in aborted:
            findings.add({"partition": partition, "offset": offset,
                          "why": "the read_committed probe saw a record that was never committed"})
    for partition, offset in sorted(committed - uncommitted):
        findings.add({"partition": partition, "offset": offset,
                      "why": "read_committed returned a record that read_uncommitted did not"})
    return findings.result(f"{len(aborted)} output records belong to aborted or open transactions")


@dataclass
class _Lag:
    topic: str
    partition: int
    lso: int
    hwm: int
    lso_later: int | None = None

    def example(self) -> dict[str, object]:
        return {"topic": self.topic, "partition": self.partition, "lso": self.lso, "hwm": self.hwm,
                "lso_later": self.lso_later}


def _lagging(offsets: Offsets) -> dict[tuple[str, int], _Lag]:
    """Partitions whose last stable offset is behind their high watermark."""
    return {(topic, partition): _Lag(topic, partition, lso, hwm)
            for topic, partitions in offsets.items()
            for partition, (lso, hwm) in partitions.items() if lso < hwm}


def _still_lagging(lagging: dict[tuple[str, int], _Lag], later: Offsets) -> dict[tuple[str, int], _Lag]:
    """Those partitions whose stable offset has not reached the high watermark first measured."""
    behind = {}
    for where, lag in lagging.items():
        measured = later.get(lag.topic, {}).get(lag.partition)
        if measured is not None:
            lag.lso_later = measured[0]
        if lag.lso_later is None or lag.lso_later < lag.hwm:
            behind[where] = lag
    return behind


def check_hanging_txn(observed: Observed, *, timeout_s: float | None = None, poll_s: float = POLL_S,
                      clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep) -> CheckResult:
    """A transaction stays open: read_committed's end (LSO) stays behind the log end past the transaction timeout.

    Partitions behind after draining are measured again with
    ``observed.offsets_later`` until their LSO reaches the high watermark
    first measured, for at most ``timeout_s`` (default: the transaction
    timeout + 5 s), every ``poll_s``. Still behind, or nothing to measure
    again with, is a fail. ``clock`` and ``sleep`` are injectable for tests.
    """
    findings = Findings("hanging_txn")
    lagging = _lagging(observed.offsets)
    if lagging and observed.offsets_later is not None:
        wait_s = observed.txn_timeout_s + GRACE_S if timeout_s is None else timeout_s
        lagging = _wait_for_stable_end(lagging, observed.offsets_later, wait_s, poll_s, clock, sleep)
    for where in sorted(lagging):
        findings.add(lagging[where].example())
    if findings.count and observed.offsets_later is None:
        return findings.result("behind after draining, and no way to measure again")
    return findings.result()


def _wait_for_stable_end(lagging: dict[tuple[str, int], _Lag], measure: Callable[[], Offsets], wait_s: float,
                         poll_s: float, clock: Callable[[], float],
                         sleep: Callable[[float], None]) -> dict[tuple[str, int], _Lag]:
    deadline = clock() + wait_s
    while True:
        lagging = _still_lagging(lagging, measure())
        if not lagging or clock() >= deadline:
            return lagging
        sleep(min(poll_s, max(0.0, deadline - clock())))

