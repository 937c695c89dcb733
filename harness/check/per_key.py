"""Per-key checkers: a key's outputs, walked in output-topic order, must replay its state and keep source order.

A key's outputs all land in one output partition, so output-topic order is
the order the engine produced them in. Outputs are grouped under the key the
oracle assigns to their id (not the key they state: ``unexpected`` judges
that), and outputs with ids the oracle does not know are left to ``unexpected``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from harness.api.pipeline import State
from harness.check.observed import Observed, Output, as_written
from harness.check.oracle import Oracle
from harness.check.result import NOT_WINDOWED, CheckResult, Findings

_MISSING = object()


def _key_of(oracle: Oracle, out: Output) -> tuple[bool, str | None]:
    """(known, key): the oracle's key for the output's id; the stated key decides when an id has several."""
    expected = oracle.expected.get(out.id)
    if not expected:
        return False, None
    if len(expected) == 1:
        return True, expected[0].key
    keys = {e.key for e in expected}
    if out.stated_key in keys:
        return True, out.stated_key
    return False, None


def outputs_by_key(oracle: Oracle, outputs: list[Output]) -> dict[str | None, list[Output]]:
    """The outputs with ids the oracle knows, grouped by key, each group in output-topic order."""
    groups: dict[str | None, list[Output]] = defaultdict(list)
    for out in outputs:
        known, key = _key_of(oracle, out)
        if known:
            groups[key].append(out)
    return groups


# -- inconsistent state ---------------------------------------------------------------------

def check_inconsistent(oracle: Oracle, observed: Observed) -> CheckResult:
    """The n-th output of a key disagrees with the aggregate of the inputs its first n outputs name.

    Per key, a replay state starts at ``aggregate.init()``; each first
    occurrence of an id steps it with that input's event, and
    ``aggregate.emit`` must agree with the output on every field it produces.
    After a mismatch the replay goes on, so a double count after a bad restore
    flags every output after it. This holds under any interleaving of a key's
    source partitions (counts 1..N, the key's ids, s(n) - s(n-1) = v).
    """
    findings = Findings("inconsistent")
    if oracle.windowed:
        return findings.result(NOT_WINDOWED)
    if not oracle.stateful:
        return findings.result("stateless pipeline: output content is judged by 'unexpected'")
    for key, outputs in outputs_by_key(oracle, observed.committed_outputs).items():
        _replay_key(oracle, key, outputs, findings)
    return findings.result()


def _replay_key(oracle: Oracle, key: str | None, outputs: list[Output], findings: Findings) -> None:
    state: State = oracle.initial_state()
    occurrences: Counter[Any] = Counter()
    for out in outputs:
        contributions = oracle.contributions_of(key, out.id)
        occurrence = occurrences[out.id]
        occurrences[out.id] += 1
        if occurrence >= len(contributions):
            continue  # a repeat of an id already replayed: 'duplicate' reports it
        event = contributions[occurrence].event
        state = oracle.step(state, event)
        expected = [as_written(e) for e in oracle.emit(key, state, event)]
        if not any(agrees(e, out.event) for e in expected):
            findings.add({"key": key, "id": out.id, **out.where(),
                          "expected": expected[0] if len(expected) == 1 else expected, "found": out.event})


def agrees(expected: Any, found: Any) -> bool:
    """``found`` has every field of ``expected`` with the same value (other fields are not judged)."""
    if not isinstance(expected, dict) or not isinstance(found, dict):
        return expected == found
    return all(found.get(name, _MISSING) == value for name, value in expected.items())


# -- order ------------------------------------------------------------------------------------

def check_order(oracle: Oracle, observed: Observed) -> CheckResult:
    """A key's outputs reflect the inputs of one source partition out of that partition's offset order.

    Only the first occurrence of each id counts. Every step backwards in a
    source partition's offsets is one violation (an output moved early is one,
    not one per output it overtook).
    """
    findings = Findings("order")
    if oracle.windowed:
        return findings.result(NOT_WINDOWED)
    for key, outputs in outputs_by_key(oracle, observed.committed_outputs).items():
        for group in _order_groups(key, outputs):
            _check_group_order(oracle, key, group, findings)
    return findings.result()


def _order_groups(key: str | None, outputs: list[Output]) -> list[list[Output]]:
    """A keyed stream is one group; outputs under no key are ordered per output partition only."""
    if key is not None:
        return [outputs]
    by_partition: dict[int, list[Output]] = defaultdict(list)
    for out in outputs:
        by_partition[out.partition].append(out)
    return list(by_partition.values())


def _check_group_order(oracle: Oracle, key: str | None, outputs: list[Output], findings: Findings) -> None:
    latest: dict[int, tuple[int, Any]] = {}  # source partition -> (offset, id) of the latest input seen
    seen: set[Any] = set()
    for out in outputs:
        if out.id in seen:
            continue
        seen.add(out.id)
        origin = oracle.origin_of(out.id)
        if origin is None:
            continue
        partition, offset = origin
        previous = latest.get(partition)
        if previous is not None and offset < previous[0]:
            findings.add({"key": key, "id": out.id, **out.where(), "source_partition": partition,
                          "source_offset": offset, "after_id": previous[1], "after_source_offset": previous[0]})
        latest[partition] = (offset, out.id)
