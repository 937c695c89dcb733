"""Window checkers ("window accounting"): every input is counted exactly once in each window of its
key it belongs to, or declared late for it — never both, never neither; definitely-late inputs are declared late.

A window output is ``{"k", "ws", "we", ...}`` (for the built-in jobs ``n``,
``s``, ``h`` and ``st_max``); a late record ``{"id", "k", "et", "ws", "we",
"why"}`` declares one input late for one window. The oracle knows every
window's inputs; the late topic says which of them the engine declared late.

- ``window_accounting``: each emitted window equals the aggregate (the job's
  own ``init`` / ``step`` / ``emit``) of the oracle's inputs of that window
  minus those declared late for it. Counting an input also declared late, or
  neither counting nor declaring it, is such a mismatch; when the output has
  the id checksum ``h``, a single wrong id is named. A window every engine
  must have closed (:meth:`Oracle.surely_closed`) with an input not declared
  late, and no output, is *lost* (also counted here). Later windows may be
  missing, but if present they must be right.
- ``window_duplicate``: a window emitted more than once, or an input declared
  late for the same window more than once.
- ``definitely_late``: an input marked ``"dl": 1`` not declared late for every
  window it belongs to. Only judged for windows that were closed by the inputs
  sent before it (:meth:`Oracle.horizon_before`): at the very start of a load
  an engine cannot know yet that the input is late.

Outputs and late records no input explains are ``unexpected``
(:func:`unexpected_in_windowed`). On jobs without windows these checkers pass
with "not applicable".

An engine without a late side output (``Observed.late_declared`` False)
declares nothing: its late set is derived from the input as written
(:mod:`harness.check.lateness`), exactly for a job that does not re-key
before its window. For one that does, only the inputs late under every
interleaving are known: such an input must not be counted, and an emitted
window must equal its other inputs minus some of them; ``late_metric`` holds
the engine's own count of dropped pairs against the derived set. In a run
without faults, when every emitted window carries its count ``n``, the pairs
the windows did not count must be the pairs the engine says it dropped
(:func:`dropped_pairs`): then a window closed by the horizon whose every input
was dropped, and so was never emitted, is accounted for rather than lost, and
an engine that drops inputs without counting them fails ``late_metric``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from harness.api.pipeline import CHECKSUM_MOD, id_checksum
from harness.check.lateness import (
    LateSet,
    derive_stream_time_late,
    key_times,
    pair_count,
    surely_late_rekeyed,
)
from harness.check.observed import Observed, Output, as_written
from harness.check.oracle import Contribution, DefinitelyLate, Oracle, WindowId
from harness.check.per_key import agrees
from harness.check.result import MAX_EXAMPLES, NOT_WINDOW_JOB, CheckResult, Findings


def _shown(window: WindowId) -> dict[str, Any]:
    key, start, end = window
    return {"key": key, "window": [start, end]}


def declared_late(observed: Observed) -> dict[WindowId, set[Any]]:
    """The ids declared late for each window, from the committed late records."""
    declared: dict[WindowId, set[Any]] = defaultdict(set)
    for record in observed.late_outputs:
        window = record.window
        if window is not None and record.id is not None:
            declared[window].add(record.id)
    return declared


def emitted_windows(observed: Observed) -> dict[WindowId, list[Output]]:
    """The committed window outputs grouped by window, each group in output-topic order."""
    emitted: dict[WindowId, list[Output]] = defaultdict(list)
    for out in observed.committed_outputs:
        window = out.window
        if window is not None:
            emitted[window].append(out)
    return emitted


@dataclass(frozen=True)
class Lateness:
    """The late set the windows are held against, and how it is known.

    ``exact`` is False for a derived set of a re-keyed job: ``late`` then
    holds the pairs late under every interleaving, and an emitted window may
    have dropped some of its other inputs too.
    """

    late: LateSet
    exact: bool
    source: str


#: subsets tried per window when a re-keyed job's window is matched against its inputs minus some of them
SUBSET_BUDGET = 20_000


def lateness_of(oracle: Oracle, observed: Observed) -> Lateness:
    """What the engine declared late, or (no late side output) what is derived from the input."""
    if observed.late_declared:
        return Lateness(declared_late(observed), True, "declared by the engine")
    if not oracle.pipeline.rekeyed:
        return Lateness(derive_stream_time_late(oracle), True,
                        "derived from the input as written, under stream-time per input partition")
    return Lateness(surely_late_rekeyed(oracle, observed.partitions), False,
                    "derived for a re-keyed job: only the inputs late under every interleaving are known")


def closed_for(oracle: Oracle, observed: Observed) -> Any:
    """``surely_closed(window)`` as the engine's time rule has it (per key, the key's own time must get there)."""
    if observed.window_time != "key_time":
        return oracle.surely_closed
    times = key_times(oracle)

    def closed(window: WindowId) -> bool:
        key_time = times.get(window[0])
        return oracle.surely_closed(window) and key_time is not None and window[2] + oracle.grace_ms <= key_time

    return closed


# -- window accounting --------------------------------------------------------------------------

def check_window_accounting(oracle: Oracle, observed: Observed) -> CheckResult:
    """An emitted window that does not equal the aggregate of its inputs minus those declared late for it,
    or a window every engine must have closed, with inputs not declared late, that was never emitted.

    When the drain timed out, outputs and late records may still have been on
    their way: anything found is then ``unknown``.
    """
    findings = Findings("window_accounting")
    if not oracle.windowed:
        return findings.result(NOT_WINDOW_JOB)
    lateness = lateness_of(oracle, observed)
    emitted = emitted_windows(observed)
    unresolved = 0
    if lateness.exact:
        miscounted = _check_emitted(oracle, emitted, lateness.late, findings)
    else:
        miscounted, unresolved = _check_emitted_bounded(oracle, emitted, lateness.late, findings)
    closed = closed_for(oracle, observed)
    pairs = None if lateness.exact else dropped_pairs(oracle, observed, lateness, emitted)
    accounted = pairs is not None and pairs.holds
    lost = 0 if accounted else _check_lost(oracle, emitted, lateness.late, findings, closed)
    rule = "by each key's own time" if observed.window_time == "key_time" else "by the horizon"
    detail = (f"{miscounted} windows miscounted, {lost} lost; windows ending (+ grace) {rule} "
              f"({oracle.horizon_ms} ms) must be emitted; late inputs {lateness.source}")
    if pairs is not None and accounted and pairs.empty_windows:
        detail += (f"; {pairs.empty_windows} windows closed and never emitted: every input of theirs dropped as "
                   f"late, which the engine's own count accounts for ({pairs.describe()})")
    if unresolved:
        detail += (f"; {unresolved} windows not checked beyond their surely-late inputs (too many ways to "
                   f"choose which of their other inputs were dropped)")
    if findings.count and not observed.drained:
        return findings.inconclusive(f"the drain timed out; {detail}")
    return findings.result(detail)


@dataclass(frozen=True)
class DroppedPairs:
    """A re-keyed job's windows against the engine's own count of (input, window) pairs it dropped as late.

    ``low``: the pairs the emitted windows did not count (their inputs less
    their ``n``) and every pair of the windows the horizon closed that were
    never emitted; ``high`` adds the pairs of windows not surely closed that
    were not emitted (the engine may have closed them, or not yet).
    """

    low: int
    high: int
    metric: int
    empty_windows: int  # closed by the horizon, never emitted

    @property
    def holds(self) -> bool:
        return self.low <= self.metric <= self.high

    def describe(self) -> str:
        span = f"{self.low}" if self.low == self.high else f"{self.low} to {self.high}"
        return f"the engine counted {self.metric} pairs dropped as late; its windows did not count {span}"


def dropped_pairs(oracle: Oracle, observed: Observed, lateness: Lateness,
                  emitted: dict[WindowId, list[Output]]) -> DroppedPairs | None:
    """The reconciliation of a derived, inexact late set with the engine's own count of dropped pairs; None
    when it cannot be made: the late set is exact, the engine keeps no count, the run had faults (replayed
    work is dropped and counted again), or some emitted window is not one result with a count ``n`` no larger
    than its inputs."""
    if lateness.exact or observed.late_metric is None or observed.faults:
        return None
    closed = closed_for(oracle, observed)
    low = high = empty = 0
    for window, contributions in oracle.windows.items():
        outputs = emitted.get(window)
        if outputs:
            n = outputs[0].event.get("n") if len(outputs) == 1 and outputs[0].event is not None else None
            if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= len(contributions):
                return None
            low += len(contributions) - n
            high += len(contributions) - n
        elif closed(window) and oracle.window_output(window, contributions):
            low += len(contributions)
            high += len(contributions)
            empty += 1
        else:
            high += len(contributions)
    return DroppedPairs(low, high, observed.late_metric, empty)


def _check_emitted(oracle: Oracle, emitted: dict[WindowId, list[Output]], declared: dict[WindowId, set[Any]],
                   findings: Findings) -> int:
    miscounted = 0
    for window, outputs in emitted.items():
        contributions = oracle.windows.get(window)
        if contributions is None:
            continue  # no input falls in it: 'unexpected' reports it
        late_ids = declared.get(window, set())
        expected = [as_written(e) for e in oracle.window_output(window, _counted(contributions, late_ids))]
        for out in outputs:
            if not any(agrees(e, out.event) for e in expected):
                miscounted += 1
                findings.add(_mismatch(window, out, expected, contributions, late_ids, findings))
    return miscounted


def _check_emitted_bounded(oracle: Oracle, emitted: dict[WindowId, list[Output]], surely_late: LateSet,
                           findings: Findings) -> tuple[int, int]:
    """Each emitted window of a re-keyed job must equal its inputs minus the surely-late ones minus some others
    (those its task's stream-time made late in the run's interleaving). Returns (miscounted, unresolved)."""
    miscounted = unresolved = 0
    for window, outputs in emitted.items():
        contributions = oracle.windows.get(window)
        if contributions is None:
            continue
        candidates = _counted(contributions, surely_late.get(window, set()))
        for out in outputs:
            found = _explained_by_subset(oracle, window, candidates, out)
            if found is None:
                unresolved += 1
            elif not found:
                miscounted += 1
                expected = [as_written(e) for e in oracle.window_output(window, candidates)]
                findings.add({**_mismatch(window, out, expected, contributions, surely_late.get(window, set()),
                                          findings), "why": "miscounted: no subset of its inputs (less those "
                                                           "surely late) gives it"})
    return miscounted, unresolved


def _explained_by_subset(oracle: Oracle, window: WindowId, candidates: list[Contribution], out: Output) -> bool | None:
    """True when ``out`` is the aggregate of ``candidates`` less some of them; False when no such subset
    exists; None when there are too many subsets to try."""
    n = out.event.get("n") if out.event is not None else None
    dropped = len(candidates) - n if isinstance(n, int) else None
    sizes = range(len(candidates) + 1) if dropped is None else [dropped]
    if dropped is not None and dropped < 0:
        return False
    if sum(math.comb(len(candidates), d) for d in sizes) > SUBSET_BUDGET:
        return None
    for d in sizes:
        for left_out in itertools.combinations(range(len(candidates)), d):
            skip = set(left_out)
            kept = [c for i, c in enumerate(candidates) if i not in skip]
            if any(agrees(as_written(e), out.event) for e in oracle.window_output(window, kept)):
                return True
    return False


def _counted(contributions: list[Contribution], late_ids: set[Any]) -> list[Contribution]:
    """The window's inputs an engine must count: all but those it declared late for this window."""
    return [c for c in contributions if c.id not in late_ids] if late_ids else contributions


def _mismatch(window: WindowId, out: Output, expected: list[Any], contributions: list[Contribution],
              late_ids: set[Any], findings: Findings) -> dict[str, Any]:
    example: dict[str, Any] = {**_shown(window), **out.where(), "why": "miscounted",
                               "expected": expected[0] if len(expected) == 1 else expected, "found": out.event}
    if len(findings.examples) < MAX_EXAMPLES and len(expected) == 1:
        example.update(suspicious_ids(expected[0], out.event, contributions, late_ids))
    return example


def suspicious_ids(expected: Any, found: Any, contributions: list[Contribution], late_ids: set[Any]) -> dict[str, Any]:
    """Name the one input that explains a checksum difference, when one does (the window's ``h`` fields).

    ``found h - expected h`` is one input's checksum: it was counted and should
    not have been (declared late, or counted twice); the negative: it was
    neither counted nor declared late. Empty when no single input explains it.
    """
    if not (isinstance(expected, dict) and isinstance(found, dict)):
        return {}
    expected_h, found_h = expected.get("h"), found.get("h")
    if not (isinstance(expected_h, int) and isinstance(found_h, int)):
        return {}
    by_checksum = {id_checksum(c.id): c.id for c in contributions if isinstance(c.id, int)}
    surplus = (found_h - expected_h) % CHECKSUM_MOD
    if surplus in by_checksum:
        extra = by_checksum[surplus]
        why = "counted and declared late" if extra in late_ids else "counted twice"
        return {"suspicious_id": extra, "suspicious_why": why}
    missing = by_checksum.get((expected_h - found_h) % CHECKSUM_MOD)
    if missing is not None:
        return {"suspicious_id": missing, "suspicious_why": "neither counted nor declared late"}
    return {}


def _check_lost(oracle: Oracle, emitted: dict[WindowId, list[Output]], declared: dict[WindowId, set[Any]],
                findings: Findings, closed: Any) -> int:
    lost = 0
    for window, contributions in oracle.windows.items():
        if window in emitted or not closed(window):
            continue
        counted = _counted(contributions, declared.get(window, set()))
        if counted and oracle.window_output(window, counted):  # an operator after the window may drop it
            lost += 1
            findings.add({**_shown(window), "why": "lost: closed by the horizon, never emitted",
                          "inputs_not_declared_late": len(counted),
                          "ids": [c.id for c in counted[:MAX_EXAMPLES]]})
    return lost


# -- duplicates -----------------------------------------------------------------------------------

def check_window_duplicate(oracle: Oracle, observed: Observed) -> CheckResult:
    """A window emitted more than once, or an input declared late more than once for the same window."""
    findings = Findings("window_duplicate")
    if not oracle.windowed:
        return findings.result(NOT_WINDOW_JOB)
    emitted = emitted_windows(observed)
    for window, outputs in emitted.items():
        if len(outputs) > 1:
            findings.add({**_shown(window), "why": "emitted more than once", "found": len(outputs),
                          "at": [[o.partition, o.offset] for o in outputs[:MAX_EXAMPLES]]})
    declarations = Counter((r.id, r.window) for r in observed.late_outputs if r.window is not None)
    for (input_id, window), count in declarations.items():
        if count > 1:
            findings.add({"id": input_id, **_shown(window), "why": "declared late more than once", "found": count})
    return findings.result()


# -- definitely late ------------------------------------------------------------------------------

def check_definitely_late(oracle: Oracle, observed: Observed) -> CheckResult:
    """An input marked ``"dl": 1`` that is not declared late for every window it belongs to.

    Counting it is also a ``window_accounting`` mismatch. A window is judged
    only when the inputs sent before this one had closed it in every input
    partition (see the module docstring); inputs without a send time ``st``
    are judged for every window.
    """
    findings = Findings("definitely_late")
    if not oracle.windowed:
        return findings.result(NOT_WINDOW_JOB)
    if not observed.late_declared:
        return findings.result("not applicable: the engine declares no late records; window_accounting holds "
                               "its windows against the late set derived from the input")
    declared = {(r.id, r.window) for r in observed.late_outputs if r.window is not None}
    not_judged = 0
    for late in oracle.definitely_late:
        required = _required_late(oracle, late)
        not_judged += len(oracle.windows_of(late.key, late.contribution.ts)) - len(required)  # type: ignore[arg-type]
        missing = [w for w in required if (late.id, w) not in declared]
        if missing:
            c = late.contribution
            findings.add({"id": late.id, "key": late.key, "et": c.ts, "source_partition": c.partition,
                          "source_offset": c.offset, "not_declared_late_for": [[w[1], w[2]] for w in missing]})
    detail = f"{len(oracle.definitely_late)} definitely-late inputs"
    if not_judged:
        detail += f"; {not_judged} of their windows not judged (not yet closed when they were sent)"
    if findings.count and not observed.drained:
        return findings.inconclusive(f"the drain timed out; {detail}")
    return findings.result(detail)


def _required_late(oracle: Oracle, late: DefinitelyLate) -> list[WindowId]:
    """The windows of a definitely-late input that were surely closed when it was sent."""
    windows = oracle.windows_of(late.key, late.contribution.ts)  # type: ignore[arg-type]
    if late.st is None:
        return windows
    horizon = oracle.horizon_before(late.st)
    if horizon is None:
        return []
    return [w for w in windows if w[2] + oracle.grace_ms <= horizon]


# -- the engine's own count of late records --------------------------------------------------------

def check_late_metric(oracle: Oracle, observed: Observed) -> CheckResult:
    """An engine without a late side output whose own count of dropped (input, window) pairs disagrees with
    the derived late set: exactly (a job that does not re-key), or below its surely-late part (one that does).
    For a re-keyed job whose windows carry their count ``n``, the count must also be the pairs its windows did
    not count (:func:`dropped_pairs`): an input neither counted nor counted as dropped is a failure here.

    Compared only in a run without faults: work replayed after a fault is
    dropped, and counted, again.
    """
    findings = Findings("late_metric")
    if not oracle.windowed:
        return findings.result(NOT_WINDOW_JOB)
    if observed.late_declared or observed.late_metric is None:
        return findings.result("not applicable: the engine declares its late records, or keeps no count")
    lateness = lateness_of(oracle, observed)
    derived, metric = pair_count(lateness.late), observed.late_metric
    if observed.faults:
        return findings.result(f"not compared under faults (replayed work is counted again): the engine counted "
                               f"{metric} pairs dropped as late, {derived} derived")
    pairs = None if lateness.exact else dropped_pairs(oracle, observed, lateness, emitted_windows(observed))
    if pairs is not None:
        if not pairs.holds or metric < derived:
            findings.add({"why": "the engine's count of late (input, window) pairs is not the pairs its windows did "
                                 "not count", "engine": metric, "not_counted_at_least": pairs.low,
                          "not_counted_at_most": pairs.high, "surely_late": derived},
                         count=max(pairs.low - metric, metric - pairs.high, derived - metric, 1))
        return findings.result(f"{pairs.describe()}; {derived} surely late")
    if (metric != derived) if lateness.exact else (metric < derived):
        findings.add({"why": "the engine's count of late (input, window) pairs disagrees with the late set "
                             "derived from the input", "engine": metric, "derived": derived,
                      "exact": lateness.exact}, count=abs(metric - derived) or 1)
    return findings.result(f"engine counted {metric} late pairs; derived {derived}"
                           f"{'' if lateness.exact else ' (surely late; more may have been)'}")


# -- unexpected -----------------------------------------------------------------------------------

def unexpected_in_windowed(oracle: Oracle, observed: Observed, findings: Findings) -> None:
    """Add to ``findings`` every output and late record of a windowed job that no input explains."""
    for out in observed.committed_outputs:
        why = _why_unexpected_output(oracle, out)
        if why is not None:
            findings.add({"topic": "output", **out.where(), "why": why, "found": out.event})
    members = _WindowMembers(oracle)
    for record in observed.late_outputs:
        why = _why_unexpected_late(oracle, members, record)
        if why is not None:
            findings.add({"topic": "late", **record.where(), "id": record.id, "why": why, "found": record.event})


def _why_unexpected_output(oracle: Oracle, out: Output) -> str | None:
    if out.event is None:
        return "the value is not a JSON object"
    if out.window is None:
        return "not a window output (it has no integer ws and we)"
    if out.window not in oracle.windows:
        return "no input falls in this window"
    return None


def _why_unexpected_late(oracle: Oracle, members: _WindowMembers, record: Output) -> str | None:
    if record.event is None:
        return "the value is not a JSON object"
    if record.id not in oracle.inputs:
        return "no input has this id"
    if record.window is None:
        return "it names no window (no integer ws and we)"
    if record.id not in members.of(record.window):
        key, start, end = record.window
        return f"input {record.id!r} is not in window [{start}, {end}) of key {key!r}"
    return None


class _WindowMembers:
    """The ids in each window, built only for the windows late records name."""

    def __init__(self, oracle: Oracle) -> None:
        self.oracle = oracle
        self._ids: dict[WindowId, set[Any]] = {}

    def of(self, window: WindowId) -> set[Any]:
        found = self._ids.get(window)
        if found is None:
            found = self._ids[window] = {c.id for c in self.oracle.windows.get(window, ())}
        return found
