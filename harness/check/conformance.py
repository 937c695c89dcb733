"""Reference against real: the committed outputs of a reference engine and of the real system of its model.

Two engines of one model (embedded and Kafka Streams, cluster and Flink) that
read the same input must commit the same results, record by record:

- **keyed running jobs** (``running_sum``, ``echo``): per key, the same
  sequence of outputs;
- **re-keyed running jobs**, whose interleaving of source partitions is not
  fixed: per key the same final output and the same ids (the order within a
  source partition is each run's own ``order`` check);
- **windowed jobs**: the same result for every window that both models surely
  close by the end of the input (the open tail is left out), and, where both
  define lateness the same way (the same ``window_time``, each late set known
  exactly), the same late (input, window) pairs.

Fields that follow the wall clock (``st``, ``st_max``: the scheduled send
time) are left out of every comparison. Engines whose rules for time differ
(quixstreams closes windows per key) differ in which records are late and so
in those windows' results; such differences are counted as a *model
difference*, named, and do not make the comparison unequal.

A comparison needs both sides to have read the same input. Event times
follow the wall clock unless the workload fixes their epoch
(``workload.event_epoch``); :func:`input_digest` tells, and a comparison of
different inputs says so instead of judging.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from harness.check.observed import Observed, Output
from harness.check.oracle import Oracle
from harness.check.windows import closed_for, lateness_of

#: output fields that follow the wall clock, never compared
WALL_CLOCK_FIELDS = frozenset({"st", "st_max"})
EXAMPLES = 5

WindowId = tuple[Any, int, int]


def projected(out: Output) -> tuple[tuple[str, Any], ...]:
    """An output's value without its wall-clock fields, as a comparable tuple (field order does not matter)."""
    event = out.event or {}
    return tuple(sorted((k, v) for k, v in event.items() if k not in WALL_CLOCK_FIELDS))


def input_digest(records: Iterable[Any]) -> str:
    """sha256 over every input's (partition, id, k, v, et), in (partition, offset) order: equal inputs, equal digest."""
    digest = hashlib.sha256()
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):  # a read interleaves partitions freely
        try:
            event = orjson.loads(record.value) if record.value else {}
        except orjson.JSONDecodeError:
            event = {}
        if not isinstance(event, dict):
            event = {}
        row = (record.partition, event.get("id"), event.get("k"), event.get("v"), event.get("et"))
        digest.update(orjson.dumps(row))
    return digest.hexdigest()[:16]


@dataclass
class Side:
    """What one engine committed, reduced to what a conformance comparison looks at."""

    engine: str
    kind: str                                  # "sequence", "rekeyed" or "windowed"
    inputs: str                                # input_digest
    window_time: str = "stream_time"
    late_exact: bool = True
    late_source: str = ""
    #: sequence / rekeyed: per key, the outputs in topic order as (id, projected value)
    per_key: dict[Any, list[tuple[Any, tuple]]] = field(default_factory=dict)
    #: windowed: per window, every committed result (projected), and the late ids
    windows: dict[WindowId, list[tuple]] = field(default_factory=dict)
    late: dict[WindowId, set[Any]] = field(default_factory=dict)
    closed: Callable[[WindowId], bool] = lambda window: False
    #: why the committed output depends on where the faults fell (at_least_once under faults), else None
    replayed: str | None = None


def side_of(engine: str, oracle: Oracle, observed: Observed, at_least_once: bool = False) -> Side:
    """Reduce one run's committed output (and, for windows, its late set) for :func:`compare`."""
    side = _side_of(engine, oracle, observed)
    if at_least_once and observed.faults:
        side.replayed = (f"{engine} ran at_least_once under {observed.faults} faults, so its output repeats "
                         f"what was replayed after each, which depends on where the faults fell")
    return side


def _side_of(engine: str, oracle: Oracle, observed: Observed) -> Side:
    pipeline = oracle.pipeline
    digest = input_digest(observed.inputs)
    if oracle.windowed:
        windows: dict[WindowId, list[tuple]] = defaultdict(list)
        for out in observed.committed_outputs:
            if out.window is not None:
                windows[out.window].append(projected(out))
        lateness = lateness_of(oracle, observed)
        return Side(engine, "windowed", digest, observed.window_time, lateness.exact, lateness.source,
                    windows=dict(windows), late={w: set(ids) for w, ids in lateness.late.items()},
                    closed=closed_for(oracle, observed))
    per_key: dict[Any, list[tuple[Any, tuple]]] = defaultdict(list)
    for out in observed.committed_outputs:
        per_key[out.stated_key].append((out.id, projected(out)))
    return Side(engine, "rekeyed" if pipeline.rekeyed else "sequence", digest, per_key=dict(per_key))


class _Tally:
    """Counts and a few examples of what differs."""

    def __init__(self) -> None:
        self.compared = 0
        self.only_reference = 0
        self.only_real = 0
        self.differing = 0
        self.model_difference = 0
        self.examples: list[dict[str, Any]] = []

    def example(self, **what: Any) -> None:
        if len(self.examples) < EXAMPLES:
            self.examples.append(what)


def compare(reference: Side, real: Side) -> dict[str, Any]:
    """The conformance of ``real`` to ``reference``: ``equal``, counts, examples and a one-line summary."""
    head: dict[str, Any] = {"reference": reference.engine, "real": real.engine}
    if reference.inputs != real.inputs:
        return {**head, "comparable": False, "equal": None,
                "summary": (f"{reference.engine} and {real.engine} read different inputs (digests "
                            f"{reference.inputs} and {real.inputs}): event times follow the wall clock unless "
                            f"the workload fixes their epoch (workload.event_epoch), so nothing is compared")}
    replayed = [side.replayed for side in (reference, real) if side.replayed]
    if replayed:
        return {**head, "comparable": False, "equal": None,
                "summary": f"not compared: {'; '.join(replayed)}"}
    tally = _Tally()
    if reference.kind == "windowed":
        basis, notes = _compare_windows(reference, real, tally)
    elif reference.kind == "rekeyed":
        basis, notes = _compare_rekeyed(reference, real, tally), []
    else:
        basis, notes = _compare_sequences(reference, real, tally), []
    equal = tally.only_reference == 0 and tally.only_real == 0 and tally.differing == 0
    counts = {"compared": tally.compared, "only_reference": tally.only_reference, "only_real": tally.only_real,
              "differing": tally.differing, "model_difference": tally.model_difference}
    verdict = "equal" if equal else "NOT equal"
    summary = (f"{real.engine} against {reference.engine}: {verdict} over {tally.compared} {basis}"
               + ("" if equal else f" ({tally.only_reference} only in {reference.engine}, {tally.only_real} only "
                                   f"in {real.engine}, {tally.differing} differing)"))
    if tally.model_difference:
        summary += f"; {tally.model_difference} differ by a difference between the models ({'; '.join(notes)})"
    return {**head, "comparable": True, "equal": equal, "basis": basis, **counts, "notes": notes,
            "examples": tally.examples, "summary": summary}


def _shown(value: tuple | None) -> dict[str, Any] | None:
    return dict(value) if value is not None else None


def _compare_sequences(reference: Side, real: Side, tally: _Tally) -> str:
    """Per key, the same outputs in the same order."""
    for key in sorted(set(reference.per_key) | set(real.per_key), key=str):
        ref, rl = reference.per_key.get(key, []), real.per_key.get(key, [])
        ref_by_id, real_by_id = dict(ref), dict(rl)
        tally.compared += len(ref)
        for i in ref_by_id.keys() - real_by_id.keys():
            tally.only_reference += 1
            tally.example(key=key, id=i, why=f"only in {reference.engine}", reference=_shown(ref_by_id[i]))
        for i in real_by_id.keys() - ref_by_id.keys():
            tally.only_real += 1
            tally.example(key=key, id=i, why=f"only in {real.engine}", real=_shown(real_by_id[i]))
        common = [(i, v) for i, v in ref if i in real_by_id]
        theirs = [(i, v) for i, v in rl if i in ref_by_id]
        for position, (mine, other) in enumerate(zip(common, theirs)):
            if mine != other:
                tally.differing += 1
                tally.example(key=key, position=position, why="differs", reference=_shown(mine[1]),
                              real=_shown(other[1]))
    return "outputs (per key, the same sequence)"


def _compare_rekeyed(reference: Side, real: Side, tally: _Tally) -> str:
    """Per key, the same ids and the same final output (source partitions interleave freely)."""
    for key in sorted(set(reference.per_key) | set(real.per_key), key=str):
        ref, rl = reference.per_key.get(key, []), real.per_key.get(key, [])
        ref_ids, real_ids = {i for i, _ in ref}, {i for i, _ in rl}
        tally.compared += len(ref)
        tally.only_reference += len(ref_ids - real_ids)
        tally.only_real += len(real_ids - ref_ids)
        for i in sorted(ref_ids ^ real_ids, key=str)[:EXAMPLES]:
            tally.example(key=key, id=i, why=f"only in {reference.engine if i in ref_ids else real.engine}")
        last_ref, last_real = _final(ref), _final(rl)
        if ref and rl and last_ref != last_real:
            tally.differing += 1
            tally.example(key=key, why="final output differs", reference=last_ref, real=last_real)
    return "outputs (per key, the same ids and final n, s)"


def _final(outputs: list[tuple[Any, tuple]]) -> dict[str, Any] | None:
    """The final output's fields that do not name the input (n, s): the state after every input."""
    if not outputs:
        return None
    return {k: v for k, v in outputs[-1][1] if k not in {"id", "et", "v"}}


def _compare_windows(reference: Side, real: Side, tally: _Tally) -> tuple[str, list[str]]:
    """The results of every window both close, and (same rule for time, exact sets) the same late pairs."""
    same_rule = reference.window_time == real.window_time
    late_compared = same_rule and reference.late_exact and real.late_exact
    notes: list[str] = []
    if not same_rule:
        notes.append(f"{reference.engine} closes windows by {reference.window_time}, {real.engine} by "
                     f"{real.window_time}: they declare different records late")
    elif not late_compared:
        notes.append("late pairs not compared: a late set is not known exactly ("
                     + "; ".join(s.late_source for s in (reference, real) if not s.late_exact) + ")")
    interleaved = 0
    windows = set(reference.windows) | set(real.windows) | set(reference.late) | set(real.late)
    both_closed = sorted((w for w in windows if reference.closed(w) and real.closed(w)), key=str)
    for window in both_closed:
        ref, rl = reference.windows.get(window, []), real.windows.get(window, [])
        late_differs = reference.late.get(window, set()) != real.late.get(window, set())
        if ref or rl:
            tally.compared += 1
        if ref == rl:
            pass
        elif late_differs and not same_rule:
            tally.model_difference += 1
        elif same_rule and not late_compared and _dropped_by_inexact_side(reference, real, ref, rl):
            tally.model_difference += 1
            interleaved += 1
        elif not rl:
            tally.only_reference += 1
            tally.example(window=list(window), why=f"only {reference.engine} emitted it", reference=_shown(ref[0]))
        elif not ref:
            tally.only_real += 1
            tally.example(window=list(window), why=f"only {real.engine} emitted it", real=_shown(rl[0]))
        else:
            tally.differing += 1
            tally.example(window=list(window), why="results differ", reference=[_shown(v) for v in ref],
                          real=[_shown(v) for v in rl])
        if late_compared and late_differs:
            mine, theirs = reference.late.get(window, set()), real.late.get(window, set())
            tally.only_reference += len(mine - theirs)
            tally.only_real += len(theirs - mine)
            tally.example(window=list(window), why="late pairs differ",
                          late_only_in_reference=sorted(mine - theirs, key=str)[:EXAMPLES],
                          late_only_in_real=sorted(theirs - mine, key=str)[:EXAMPLES])
    if interleaved:
        notes.append(f"{interleaved} windows counted fewer of their inputs (or none: never emitted) on the side whose "
                     f"late set is not known exactly: a re-keyed job decides lateness on the re-keyed records, whose interleaving "
                     f"differs from run to run, so which inputs are late differs too (each side's window "
                     f"accounting checks its own windows)")
    basis = "windows both models close by the end of the input" + (", and their late pairs" if late_compared else "")
    return basis, notes


def _dropped_by_inexact_side(reference: Side, real: Side, ref: list[tuple], rl: list[tuple]) -> bool:
    """One result each, and the one with fewer inputs (n and s no larger, input values being positive) is
    from a side whose late set is not known exactly: the difference can be inputs it dropped as late under its
    own interleaving. A side with more, or with fewer but a larger sum, is a real difference. A window one side
    never emitted is the same case with every input dropped, when that side's late set is not known exactly."""
    if len(ref) + len(rl) == 1:
        return not (reference if not ref else real).late_exact
    if len(ref) != 1 or len(rl) != 1:
        return False
    mine, theirs = dict(ref[0]), dict(rl[0])
    try:
        n_ref, s_ref, n_real, s_real = int(mine["n"]), int(mine["s"]), int(theirs["n"]), int(theirs["s"])
    except (KeyError, TypeError, ValueError):
        return False
    if n_real < n_ref and s_real <= s_ref:
        return not real.late_exact
    if n_ref < n_real and s_ref <= s_real:
        return not reference.late_exact
    return False


__all__ = ["WALL_CLOCK_FIELDS", "Side", "compare", "input_digest", "projected", "side_of"]
