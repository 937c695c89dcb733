"""Per-key checkers: a key's outputs, walked in output-topic order, must replay its state and keep source order.

A key's outputs all land in one output partition, so output-topic order is
the order the engine produced them in. Outputs are grouped under the key the
oracle assigns to their id (not the key they state: ``unexpected`` judges
that), and outputs with ids the oracle does not know are left to ``unexpected``.

Both checkers read the committed output as decoded once and share its grouping
by key (:func:`rows_by_key`). Where a key's outputs are the oracle's own, in
the oracle's order, the verdict follows without replaying them one by one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import orjson

from harness.api.pipeline import State
from harness.check.alignment import alignment
from harness.check.observed import Decoded, Observed, Output, as_written
from harness.check.oracle import Oracle
from harness.check.result import NOT_WINDOWED, CheckResult, Findings

_MISSING = object()


def _key_of(oracle: Oracle, out: Output) -> tuple[bool, str | None]:
    """(known, key): the oracle's key for the output's id; the stated key decides when an id has several."""
    rows = oracle.rows.rows_of(out.id)
    if not rows:
        return False, None
    if len(rows) == 1:
        return True, oracle.rows.keys[rows[0]]
    keys = {oracle.rows.keys[row] for row in rows}
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


def rows_by_key(oracle: Oracle, view: Decoded) -> dict[str | None, list[int]]:
    """:func:`outputs_by_key` of a decoded topic, as its rows; made once per oracle and topic, then shared."""
    return oracle.memo("rows_by_key", view, lambda: _rows_by_key(oracle, view))


def _rows_by_key(oracle: Oracle, view: Decoded) -> dict[str | None, list[int]]:
    first, more, keys = oracle.rows.first, oracle.rows.more, oracle.rows.keys
    groups: dict[str | None, list[int]] = defaultdict(list)
    for row, output_id in enumerate(view.ids):
        expected = first.get(output_id)
        if expected is None:
            continue
        if more and output_id in more:
            stated = view.stated_key(row)
            if stated in {keys[r] for r in more[output_id]}:
                groups[stated].append(row)
            continue
        groups[keys[expected]].append(row)
    return dict(groups)


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
    view = observed.committed_view
    if alignment(oracle, view).exact or alignment(oracle, view).as_oracle_wrote():
        return findings.result()  # every key's outputs are the oracle's own, in its order: each replay agrees
    for key, rows in rows_by_key(oracle, view).items():
        _replay_key(oracle, key, rows, view, findings)
    return findings.result()


def _replay_key(oracle: Oracle, key: str | None, rows: list[int], view: Decoded, findings: Findings) -> None:
    """Replay one key's outputs (rows of ``view``, in topic order).

    While the replay steps the key's events in the oracle's own order, its
    state is the oracle's and what it emits is what the oracle wrote after that
    step (:attr:`ContributionRows.written`), so nothing is stepped again; an
    output with exactly those bytes agrees. The first step out of that order
    rebuilds the state from the events stepped so far and replays from there.
    A key whose state the oracle restarted (a falsy state) is replayed in full.
    """
    c = oracle.contribution_rows
    ids, values, events = view.ids, view.values, view.events
    order = c.by_key.get(key, [])  # the key's contributions, in the oracle's order
    output_ids = [ids[row] for row in rows]
    synced = key not in c.restarted  # the replay's state is the oracle's after order[:steps]
    if (synced and len(order) == len(rows) and output_ids == [c.ids[r] for r in order]
            and [values[row] for row in rows] == [c.written[r] for r in order]):
        return  # each output is the oracle's for the next step, byte for byte
    steps = 0
    state: State = {} if synced else oracle.initial_state()
    occurrences: Counter[Any] = Counter()
    for row, output_id in zip(rows, output_ids, strict=True):
        contributions = c.rows_of(key, output_id)
        occurrence = occurrences[output_id]
        occurrences[output_id] += 1
        if occurrence >= len(contributions):
            continue  # a repeat of an id already replayed: 'duplicate' reports it
        contribution = contributions[occurrence]
        written = c.written[contribution]
        if synced and written is not None and steps < len(order) and order[steps] == contribution:
            steps += 1
            if isinstance(written, bytes):
                if written == values[row]:
                    continue
                expected = [orjson.loads(written)]
            else:
                if values[row] in written:
                    continue
                expected = [orjson.loads(one) for one in written]
        else:
            if synced:
                state = oracle.initial_state()
                for stepped in order[:steps]:
                    state = oracle.step(state, c.events[stepped])
                synced = False
            event = c.events[contribution]
            state = oracle.step(state, event)
            expected = [as_written(e) for e in oracle.emit(key, state, event)]
        found = events[row]
        if not any(agrees(e, found) for e in expected):
            findings.add({"key": key, "id": output_id, **view.where(row),
                          "expected": expected[0] if len(expected) == 1 else expected, "found": found})


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
    view = observed.committed_view
    if alignment(oracle, view).exact or alignment(oracle, view).in_key_order:
        return findings.result()  # each id has one input, and each key's come in the oracle's input order
    for key, rows in rows_by_key(oracle, view).items():
        if key is not None and _in_oracle_order(oracle, key, rows, view):
            continue
        for group in _order_groups(key, rows, view):
            _check_group_order(oracle, key, group, view, findings)
    return findings.result()


def _in_oracle_order(oracle: Oracle, key: str | None, rows: list[int], view: Decoded) -> bool:
    """The key's outputs name the ids of its expected outputs in the oracle's order, and every id's outputs
    reflect one input: the oracle met those inputs in (partition, offset) order, so none is out of order."""
    expected = oracle.rows
    if expected.shared_origins:
        return False
    order = expected.by_key.get(key, [])
    ids = view.ids
    return len(order) == len(rows) and [ids[row] for row in rows] == [expected.ids[r] for r in order]


def _order_groups(key: str | None, rows: list[int], view: Decoded) -> list[list[int]]:
    """A keyed stream is one group; outputs under no key are ordered per output partition only."""
    if key is not None:
        return [rows]
    by_partition: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        by_partition[view.records[row].partition].append(row)
    return list(by_partition.values())


def _check_group_order(oracle: Oracle, key: str | None, rows: list[int], view: Decoded, findings: Findings) -> None:
    latest: dict[int, tuple[int, Any]] = {}  # source partition -> (offset, id) of the latest input seen
    seen: set[Any] = set()
    for row in rows:
        output_id = view.ids[row]
        if output_id in seen:
            continue
        seen.add(output_id)
        origin = oracle.origin_of(output_id)
        if origin is None:
            continue
        partition, offset = origin
        previous = latest.get(partition)
        if previous is not None and offset < previous[0]:
            findings.add({"key": key, "id": output_id, **view.where(row), "source_partition": partition,
                          "source_offset": offset, "after_id": previous[1], "after_source_offset": previous[0]})
        latest[partition] = (offset, output_id)
