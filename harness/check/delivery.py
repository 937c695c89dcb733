"""Delivery checkers: is every input reflected in the output exactly as often as the oracle says, and nothing else?"""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.check.observed import Observed, Output, as_written
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
    found = count_ids(observed.committed_outputs)
    for output_id, expected in oracle.expected.items():
        missing = len(expected) - found.get(output_id, 0)
        if missing > 0:
            first = expected[0]
            findings.add({"id": output_id, "key": first.key, "source_partition": first.partition,
                          "source_offset": first.offset, "missing": missing})
    if findings.count and not observed.drained:
        return findings.inconclusive(f"the drain timed out; {findings.count} inputs have no output yet")
    return findings.result()


def check_duplicate(oracle: Oracle, observed: Observed) -> CheckResult:
    """An input id reflected by more committed outputs than the oracle expects (normally one)."""
    findings = Findings("duplicate")
    if oracle.windowed:
        return findings.result(NOT_WINDOWED)
    found = count_ids(observed.committed_outputs)
    for output_id, count in found.items():
        expected = oracle.expected_count(output_id)
        if expected and count > expected:
            findings.add({"id": output_id, "key": oracle.expected[output_id][0].key,
                          "expected": expected, "found": count})
    _add_positions(findings, observed.committed_outputs)
    return findings.result()


def _add_positions(findings: Findings, outputs: list[Output]) -> None:
    """Say where the outputs of each example id are (one more pass, only for the few example ids)."""
    by_id: dict[Any, dict[str, Any]] = {example["id"]: example for example in findings.examples}
    for out in outputs:
        example = by_id.get(out.id)
        if example is not None and len(example.setdefault("at", [])) < MAX_EXAMPLES:
            example["at"].append([out.partition, out.offset])


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
    judge = _UnexpectedJudge(oracle)
    for out in observed.committed_outputs:
        why = judge.why_unexpected(out)
        if why is not None:
            findings.add({**out.where(), "id": out.id, "why": why, "found": out.event})
    return findings.result()


class _UnexpectedJudge:
    """Says why an output is unexpected, or None when the oracle explains it."""

    def __init__(self, oracle: Oracle) -> None:
        self.oracle = oracle

    def why_unexpected(self, out: Output) -> str | None:
        if out.event is None:
            return "the value is not a JSON object"
        if out.id not in self.oracle.expected:
            if out.id in self.oracle.inputs:
                return f"input {out.id!r} produces no output"
            return "no input has this id"
        if self.oracle.stateful:
            return self._wrong_key(out)
        # Stateless: the whole content must be one the oracle computes, which covers the "k"
        # field too (after a re-keying key_by, "k" need not be the key the output is under).
        return None if self._computed(out) else "the content matches no expected output"

    def _wrong_key(self, out: Output) -> str | None:
        keys = self.oracle.keys_of(out.id)
        if out.stated_key in keys:
            return None
        return f"key {out.stated_key!r}, but input {out.id!r} is under {sorted(map(str, keys))}"

    def _computed(self, out: Output) -> bool:
        return any(as_written(e.value) == out.event for e in self.oracle.expected[out.id])
