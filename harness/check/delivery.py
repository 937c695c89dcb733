"""Delivery checkers: is every input reflected in the output exactly as often as the oracle says, and nothing else?

They read the committed output as decoded once (:attr:`Observed.committed_view`)
and the oracle's expected outputs as columns (:attr:`Oracle.rows`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from harness.check.alignment import alignment
from harness.check.observed import Decoded, Observed, Output
from harness.check.oracle import Oracle
from harness.check.result import MAX_EXAMPLES, NOT_WINDOWED, CheckResult, Findings
from harness.check.windows import unexpected_in_windowed


def count_ids(outputs: list[Output]) -> Counter[Any]:
    """How many outputs name each id, in order of first appearance."""
    return Counter(out.id for out in outputs if out.id is not None)


def check_lost(oracle: Oracle, observed: Observed) -> CheckResult:
    """An input the oracle says must produce output(s) has fewer in the committed output (none, normally).

    When the drain timed out, missing outputs may still have been on their way:
    the verdict is then ``unknown`` with the count, never ``fail`` or ``pass``.
    """
    findings = Findings("lost")
    if oracle.windowed:
        return findings.result(NOT_WINDOWED)
    if alignment(oracle, observed.committed_view).exact:
        return findings.result()  # each expected output committed once, as the oracle wrote it
    found = observed.committed_view.id_counts
    rows = oracle.rows
    if found.keys() >= rows.first.keys():
        # every expected id has an output: only ids expected more than once can lack some
        more = rows.more
        suspects = [(output_id, first) for output_id, first in rows.first.items() if output_id in more] if more else []
    else:
        suspects = list(rows.first.items())
    for output_id, first in suspects:
        missing = rows.count(output_id) - found.get(output_id, 0)
        if missing > 0:
            record = oracle.records[rows.inputs[first]]
            findings.add({"id": output_id, "key": rows.keys[first], "source_partition": record.partition,
                          "source_offset": record.offset, "missing": missing})
    if findings.count and not observed.drained:
        return findings.inconclusive(f"the drain timed out; {findings.count} inputs have no output yet")
    return findings.result()


def check_duplicate(oracle: Oracle, observed: Observed) -> CheckResult:
    """An input id reflected by more committed outputs than the oracle expects (normally one)."""
    findings = Findings("duplicate")
    if oracle.windowed:
        return findings.result(NOT_WINDOWED)
    view = observed.committed_view
    if alignment(oracle, view).exact:
        return findings.result()  # each expected output committed once, as the oracle wrote it
    found = view.id_counts
    rows = oracle.rows
    if found.total() > len(found):  # some id is named more than once; an id named once is never a duplicate
        for output_id, count in found.items():
            if count > 1:
                expected = rows.count(output_id)
                if expected and count > expected:
                    findings.add({"id": output_id, "key": rows.keys[rows.first[output_id]],
                                  "expected": expected, "found": count})
    _add_positions(findings, view)
    return findings.result()


def _add_positions(findings: Findings, view: Decoded) -> None:
    """Say where the outputs of each example id are (one more pass, only for the few example ids)."""
    if not findings.examples:
        return
    by_id: dict[Any, dict[str, Any]] = {example["id"]: example for example in findings.examples}
    for row, output_id in enumerate(view.ids):
        example = by_id.get(output_id)
        if example is not None and len(example.setdefault("at", [])) < MAX_EXAMPLES:
            record = view.records[row]
            example["at"].append([record.partition, record.offset])


def check_unexpected(oracle: Oracle, observed: Observed) -> CheckResult:
    """An output no input explains: unknown id, wrong key, or (stateless jobs) content the oracle never computes.

    For windowed jobs: an output that is no window, or a window no input falls
    in; a late record that names no input, no window, or a window its input is
    not in (:func:`harness.check.windows.unexpected_in_windowed`).
    """
    findings = Findings("unexpected")
    if oracle.windowed:
        unexpected_in_windowed(oracle, observed, findings)
        return findings.result()
    view = observed.committed_view
    if oracle.stateful and (alignment(oracle, view).exact or alignment(oracle, view).stated_keys_agree()):
        return findings.result()  # every output is a JSON object naming a known id under that id's key
    judge = _UnexpectedJudge(oracle, view)
    for row, (event, output_id) in enumerate(zip(view.events, view.ids, strict=True)):
        why = judge.why_unexpected(row, event, output_id)
        if why is not None:
            findings.add({**view.where(row), "id": output_id, "why": why, "found": event})
    return findings.result()


class _UnexpectedJudge:
    """Says why an output (a row of the decoded output topic) is unexpected, or None when the oracle explains it."""

    def __init__(self, oracle: Oracle, view: Decoded) -> None:
        self.oracle = oracle
        self.view = view
        self.first = oracle.rows.first
        self.more = oracle.rows.more
        self.keys = oracle.rows.keys

    def why_unexpected(self, row: int, event: dict[str, Any] | None, output_id: Any) -> str | None:
        if event is None:
            return "the value is not a JSON object"
        first = self.first.get(output_id)
        if first is None:
            if output_id in self.oracle.inputs:
                return f"input {output_id!r} produces no output"
            return "no input has this id"
        if self.oracle.stateful:
            if "k" in event:
                stated = event["k"]
            else:
                stated = self.view.stated_key(row)
            if type(stated) is str and output_id not in self.more and stated == self.keys[first]:
                return None  # the one key its id is under (a string key is in a set exactly when it is equal)
            return self._wrong_key(stated, output_id)
        # Stateless: the whole content must be one the oracle computes, which covers the "k"
        # field too (after a re-keying key_by, "k" need not be the key the output is under).
        return None if self._computed(row, event, output_id) else "the content matches no expected output"

    def _wrong_key(self, stated: Any, output_id: Any) -> str | None:
        keys = self.oracle.keys_of(output_id)
        if stated in keys:
            return None
        return f"key {stated!r}, but input {output_id!r} is under {sorted(map(str, keys))}"

    def _computed(self, row: int, event: dict[str, Any], output_id: Any) -> bool:
        """Some output the oracle computes for the id reads back as this one (equal bytes surely do)."""
        value, values = self.view.values[row], self.oracle.rows.values
        for expected in self.oracle.rows.rows_of(output_id):
            written = orjson.dumps(values[expected])  # as_written(value) is orjson.loads of these bytes
            if written == value or orjson.loads(written) == event:
                return True
        return False
