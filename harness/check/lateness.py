"""Which inputs were late, for engines that drop late records without saying which (no late side output).

Such an engine (real Kafka Streams) decides lateness under stream-time per
task: a task's stream-time is the largest record timestamp it has seen,
advanced by each record *before* the record's own lateness is decided; a
record is late for a window ``[ws, we)`` when ``we + grace <= stream-time``.
Where the window aggregate reads the input partitions directly (the job does
not re-key before its window), a task is one input partition and its
records arrive in offset order, so the late set follows from the input topic
as written: :func:`derive_stream_time_late`.

Where the job re-keys first, a task reads a repartition partition into which
every input partition writes, in an interleaving the run decided and the
input does not record; stream-time at a record is then bounded only from
below (by the records of its own input partition that went to the same
repartition partition before it). What can be checked there is in
:func:`surely_late_rekeyed`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from harness.check.oracle import Oracle, WindowId
from harness.kafka.partitioner import partition_for

LateSet = dict[WindowId, set[Any]]


def _pairs_by_partition(oracle: Oracle) -> dict[int, list[tuple[int, int, Any, WindowId]]]:
    """Per input partition, (offset, ts, id, window) for every (input, window) pair, in offset order."""
    out: dict[int, list[tuple[int, int, Any, WindowId]]] = defaultdict(list)
    for window, contributions in oracle.windows.items():
        for c in contributions:
            assert c.ts is not None  # a windowed job's contributions carry their event time
            out[c.partition].append((c.offset, c.ts, c.id, window))
    for pairs in out.values():
        pairs.sort(key=lambda p: (p[0], p[3][1]))
    return out


def derive_stream_time_late(oracle: Oracle) -> LateSet:
    """The (input, window) pairs late under stream-time per input partition (a job that does not re-key)."""
    late: LateSet = defaultdict(set)
    grace = oracle.grace_ms
    for pairs in _pairs_by_partition(oracle).values():
        stream_time: int | None = None
        for _offset, ts, input_id, window in pairs:
            stream_time = ts if stream_time is None else max(stream_time, ts)
            if window[2] + grace <= stream_time:
                late[window].add(input_id)
    return dict(late)


def surely_late_rekeyed(oracle: Oracle, partitions: int) -> LateSet:
    """The (input, window) pairs late under any interleaving, for a job that re-keys before its window.

    A record reaches the repartition partition of its new key after every
    earlier record of its own input partition with a key of that partition:
    stream-time there is at least the largest timestamp among those (and its own).
    """
    late: LateSet = defaultdict(set)
    grace = oracle.grace_ms
    for pairs in _pairs_by_partition(oracle).values():
        floor: dict[int, int] = {}
        for _offset, ts, input_id, window in pairs:
            target = partition_for(str(window[0]), partitions)
            floor[target] = max(floor.get(target, ts), ts)
            if window[2] + grace <= floor[target]:
                late[window].add(input_id)
    return dict(late)


def pair_count(late: LateSet) -> int:
    """How many (input, window) pairs ``late`` holds."""
    return sum(len(ids) for ids in late.values())


def key_times(oracle: Oracle) -> dict[Any, int]:
    """Per window key, the largest timestamp of its inputs: how far that key's own time got."""
    out: dict[Any, int] = {}
    for (key, _start, _end), contributions in oracle.windows.items():
        for c in contributions:
            if c.ts is not None and c.ts > out.get(key, c.ts - 1):
                out[key] = c.ts
    return out
