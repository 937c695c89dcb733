"""Window accounting: a correct windowed run passes every checker; each doctored one fails its checker."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import pytest

from harness.api import Pipeline, WindowAggregate, id_checksum, late_record
from harness.api.pipeline import CHECKSUM_MOD
from harness.check import CHECKERS, Oracle, OracleError, overall, run_checks, verdict_table
from scenarios.jobs import running_sum, sliding_sum, windowed_count

Event = dict
PER_RECORD = ("lost", "duplicate", "inconsistent", "order")
WINDOW_CHECKS = ("window_accounting", "window_duplicate", "definitely_late")


def window_op(job: Pipeline) -> WindowAggregate:
    return next(op for op in job.ops if isinstance(op, WindowAggregate))


def base_events(n: int = 600) -> list[Event]:
    """Event i at 100 ms * i, sent at 100 ms * i; four keys over three partitions (partition = i % 3)."""
    return [{"id": i, "k": "abcd"[i % 4], "v": i % 7 + 1, "et": 100 * i, "st": 100_000 * i} for i in range(n)]


def placed(events: Iterable[Event]) -> list[tuple[int, Event]]:
    return [(e["id"] % 3, e) for e in events]


def correct_windows(job: Pipeline, events: Iterable[Event], late: Iterable[tuple[int, int]] = ()) -> tuple[
        list[Event], list[Event]]:
    """What a correct engine writes: every window of every key, counting all its events but those declared
    late; ``late`` holds (id, window start) pairs to declare late. Returns (window outputs, late records)."""
    op = window_op(job)
    late = set(late)
    windows: dict[tuple[str, int, int], dict] = {}
    late_records = []
    for event in events:
        for start, end in op.windows_of(event["et"]):
            state = windows.setdefault((event["k"], start, end), {"n": 0, "s": 0, "h": 0, "st_max": 0})
            if (event["id"], start) in late:
                late_records.append(late_record(event, event["k"], start, end, "window closed"))
                continue
            state["n"] += 1
            state["s"] += event["v"]
            state["h"] = (state["h"] + id_checksum(event["id"])) % CHECKSUM_MOD
            state["st_max"] = max(state["st_max"], event["st"])
    outputs = [{"k": k, "ws": ws, "we": we, **state} for (k, ws, we), state in windows.items() if state["n"]]
    return outputs, late_records


def observed_run(make, events: list[Event], outputs: list[Event], late: Sequence[Event] = (), **overrides):
    return make.observe(make.input_events(placed(events)), make.output_topic(outputs),
                        late=make.output_topic(late, topic="late"), **overrides)


def verdicts(job: Pipeline, observed) -> dict[str, tuple[str, int]]:
    return {r.name: (r.verdict, r.count) for r in run_checks(job, observed)}


def results(job: Pipeline, observed) -> dict:
    return {r.name: r for r in run_checks(job, observed)}


def failing(job: Pipeline, observed) -> dict[str, int]:
    return {name: count for name, (verdict, count) in verdicts(job, observed).items() if verdict != "pass"}


def find(outputs: list[Event], key: str, start: int) -> Event:
    return next(o for o in outputs if o["k"] == key and o["ws"] == start)


# -- correct runs -----------------------------------------------------------------------------------

def test_a_correct_windowed_run_passes_every_checker(make):
    events = base_events()
    outputs, late = correct_windows(windowed_count(), events)

    found = results(windowed_count(), observed_run(make, events, outputs, late))

    assert verdict_table(list(found.values())) == [(c.name, "pass", 0) for c in CHECKERS]
    assert all(found[name].detail == "not applicable to windowed jobs" for name in PER_RECORD)


def test_a_correct_run_with_late_declarations_passes(make):
    events = base_events()
    outputs, late = correct_windows(windowed_count(), events, late=[(7, 0), (300, 30_000)])

    assert failing(windowed_count(), observed_run(make, events, outputs, late)) == {}


def test_window_checkers_do_not_apply_to_jobs_without_windows(make, three_keys):
    observed = make.observe(three_keys, make.output_topic(make.running_sums(three_keys)))

    found = results(running_sum(), observed)

    assert overall(list(found.values())) == "pass"
    assert all(found[name].detail.startswith("not applicable") for name in WINDOW_CHECKS)


# -- window accounting ------------------------------------------------------------------------------

def test_a_window_with_n_off_by_one_fails_accounting(make):
    events = base_events()
    outputs, late = correct_windows(windowed_count(), events)
    find(outputs, "b", 10_000)["n"] += 1

    found = results(windowed_count(), observed_run(make, events, outputs, late))

    assert failing(windowed_count(), observed_run(make, events, outputs, late)) == {"window_accounting": 1}
    example = found["window_accounting"].examples[0]
    assert (example["key"], example["window"], example["why"]) == ("b", [10_000, 15_000], "miscounted")
    assert example["found"]["n"] == example["expected"]["n"] + 1


def test_an_input_counted_and_declared_late_fails_accounting_and_is_named(make):
    events = base_events()
    outputs, _ = correct_windows(windowed_count(), events)
    late = [late_record(events[101], "b", 10_000, 15_000, "window closed")]  # also counted in the outputs

    found = results(windowed_count(), observed_run(make, events, outputs, late))

    assert found["window_accounting"].verdict == "fail" and found["window_accounting"].count == 1
    example = found["window_accounting"].examples[0]
    assert (example["suspicious_id"], example["suspicious_why"]) == (101, "counted and declared late")


def test_an_input_neither_counted_nor_declared_late_fails_accounting_and_is_named(make):
    events = base_events()
    outputs, _late = correct_windows(windowed_count(), events, late=[(101, 10_000)])
    observed = observed_run(make, events, outputs, [])  # the engine dropped 101 but never said so

    found = results(windowed_count(), observed)

    assert failing(windowed_count(), observed) == {"window_accounting": 1}
    example = found["window_accounting"].examples[0]
    assert (example["suspicious_id"], example["suspicious_why"]) == (101, "neither counted nor declared late")


def test_a_surely_closed_window_that_is_missing_is_lost(make):
    events = base_events()
    outputs, late = correct_windows(windowed_count(), events)
    outputs.remove(find(outputs, "c", 20_000))

    found = results(windowed_count(), observed_run(make, events, outputs, late))

    assert found["window_accounting"].verdict == "fail"
    example = found["window_accounting"].examples[0]
    assert (example["key"], example["window"]) == ("c", [20_000, 25_000])
    assert example["why"].startswith("lost")
    assert "0 windows miscounted, 1 lost" in found["window_accounting"].detail


def test_windows_beyond_the_horizon_may_be_missing_but_must_be_right_if_present(make):
    events = base_events()  # the slowest partition reaches 59.7 s: windows ending after 55.7 s - grace are not surely closed
    outputs, late = correct_windows(windowed_count(), events)
    last = [o for o in outputs if o["ws"] == 55_000]
    outputs = [o for o in outputs if o["ws"] != 55_000]

    assert failing(windowed_count(), observed_run(make, events, outputs, late)) == {}

    last[0]["s"] += 1
    assert failing(windowed_count(), observed_run(make, events, outputs + last, late)) == {"window_accounting": 1}


def test_a_window_whose_inputs_were_all_declared_late_need_not_be_emitted(make):
    events = base_events()
    key_a_first_window = [e["id"] for e in events if e["k"] == "a" and e["et"] < 5000]
    outputs, late = correct_windows(windowed_count(), events, late=[(i, 0) for i in key_a_first_window])

    assert not [o for o in outputs if o["k"] == "a" and o["ws"] == 0]
    assert failing(windowed_count(), observed_run(make, events, outputs, late)) == {}


def test_a_lagging_partition_holds_the_horizon_back(make):
    events = base_events()
    for e in events:
        if e["id"] % 3 == 2:
            e["et"] -= 20_000  # partition 2 lags 20 s: its max event time is 39.9 s
    outputs, late = correct_windows(windowed_count(), events)
    outputs = [o for o in outputs if o["we"] <= 35_000]  # an engine behind by the lagging partition

    oracle = Oracle(windowed_count(), make.input_events(placed(events)))
    assert oracle.horizon_ms == 39_900 - 2000 - 1
    assert oracle.surely_closed(("a", 30_000, 35_000)) and not oracle.surely_closed(("a", 35_000, 40_000))
    assert max(w[2] for w in oracle.surely_closed_windows()) == 35_000
    assert failing(windowed_count(), observed_run(make, events, outputs, late)) == {}


def test_a_lost_window_after_a_drain_timeout_is_unknown(make):
    events = base_events()
    outputs, late = correct_windows(windowed_count(), events)
    outputs.remove(find(outputs, "c", 20_000))

    found = results(windowed_count(), observed_run(make, events, outputs, late, drained=False))

    assert (found["window_accounting"].verdict, found["window_accounting"].count) == ("unknown", 1)


# -- duplicates -------------------------------------------------------------------------------------

def test_a_window_emitted_twice_is_a_duplicate(make):
    events = base_events()
    outputs, late = correct_windows(windowed_count(), events)
    outputs.append(dict(find(outputs, "a", 5_000)))

    found = results(windowed_count(), observed_run(make, events, outputs, late))

    assert failing(windowed_count(), observed_run(make, events, outputs, late)) == {"window_duplicate": 1}
    example = found["window_duplicate"].examples[0]
    assert (example["key"], example["window"], example["found"]) == ("a", [5_000, 10_000], 2)
    assert len(example["at"]) == 2


def test_a_late_declaration_repeated_is_a_duplicate(make):
    events = base_events()
    outputs, late = correct_windows(windowed_count(), events, late=[(101, 10_000)])

    found = results(windowed_count(), observed_run(make, events, outputs, late + late))

    assert failing(windowed_count(), observed_run(make, events, outputs, late + late)) == {"window_duplicate": 1}
    assert found["window_duplicate"].examples[0]["id"] == 101


# -- definitely late --------------------------------------------------------------------------------

def with_definitely_late(events: list[Event], event_id: int, delay: int = 30_000) -> list[Event]:
    event = events[event_id]
    event["et"] -= delay
    event["dl"] = 1
    return events


def test_a_definitely_late_input_declared_late_passes(make):
    events = with_definitely_late(base_events(), 400)  # et 10 s, sent at 40 s
    outputs, late = correct_windows(windowed_count(), events, late=[(400, 10_000)])

    assert failing(windowed_count(), observed_run(make, events, outputs, late)) == {}


def test_a_definitely_late_input_counted_instead_of_declared_late_fails(make):
    events = with_definitely_late(base_events(), 400)
    outputs, late = correct_windows(windowed_count(), events)  # counted in [10 s, 15 s), never declared

    found = results(windowed_count(), observed_run(make, events, outputs, late))

    assert failing(windowed_count(), observed_run(make, events, outputs, late)) == {"definitely_late": 1}
    example = found["definitely_late"].examples[0]
    assert (example["id"], example["key"], example["not_declared_late_for"]) == (400, "a", [[10_000, 15_000]])


def test_a_definitely_late_input_sent_before_every_partition_moved_on_is_not_judged(make):
    events = with_definitely_late(base_events(), 1, delay=0)  # sent at 0.1 s: partition 2 has sent nothing yet
    outputs, late = correct_windows(windowed_count(), events)

    found = results(windowed_count(), observed_run(make, events, outputs, late))

    assert found["definitely_late"].verdict == "pass"
    assert "1 of their windows not judged" in found["definitely_late"].detail


# -- unexpected -------------------------------------------------------------------------------------

def test_a_late_record_for_no_input_is_unexpected(make):
    events = base_events()
    outputs, late = correct_windows(windowed_count(), events)
    late.append(late_record({"id": 9999, "et": 10_000}, "a", 10_000, 15_000, "window closed"))

    found = results(windowed_count(), observed_run(make, events, outputs, late))

    assert failing(windowed_count(), observed_run(make, events, outputs, late)) == {"unexpected": 1}
    assert found["unexpected"].examples[0]["why"] == "no input has this id"


def test_a_late_record_for_a_window_its_input_is_not_in_is_unexpected(make):
    events = base_events()
    outputs, late = correct_windows(windowed_count(), events)
    late.append(late_record(events[101], "b", 20_000, 25_000, "window closed"))

    found = results(windowed_count(), observed_run(make, events, outputs, late))

    assert failing(windowed_count(), observed_run(make, events, outputs, late)) == {"unexpected": 1}
    assert "is not in window [20000, 25000)" in found["unexpected"].examples[0]["why"]


def test_a_window_no_input_falls_in_and_an_output_that_is_no_window_are_unexpected(make):
    events = base_events()
    outputs, late = correct_windows(windowed_count(), events)
    outputs += [{"k": "zz", "ws": 0, "we": 5000, "n": 1, "s": 1, "h": 0, "st_max": 0}, {"k": "a", "n": 3}]

    found = results(windowed_count(), observed_run(make, events, outputs, late))

    assert failing(windowed_count(), observed_run(make, events, outputs, late)) == {"unexpected": 2}
    assert {e["why"] for e in found["unexpected"].examples} == {
        "no input falls in this window", "not a window output (it has no integer ws and we)"}


# -- sliding windows --------------------------------------------------------------------------------

def test_sliding_an_event_counted_in_both_its_windows_passes(make):
    events = base_events()
    outputs, late = correct_windows(sliding_sum(), events)

    assert window_op(sliding_sum()).windows_of(12_300) == [(5_000, 15_000), (10_000, 20_000)]
    assert failing(sliding_sum(), observed_run(make, events, outputs, late)) == {}


def test_sliding_an_event_counted_in_one_window_and_declared_late_for_the_other_passes(make):
    events = base_events()
    outputs, late = correct_windows(sliding_sum(), events, late=[(123, 5_000)])

    assert failing(sliding_sum(), observed_run(make, events, outputs, late)) == {}


def test_sliding_an_event_counted_in_only_one_window_without_a_late_declaration_fails(make):
    events = base_events()
    outputs, _ = correct_windows(sliding_sum(), events, late=[(123, 5_000)])  # event 123: et 12.3 s, key d

    found = results(sliding_sum(), observed_run(make, events, outputs, []))

    assert failing(sliding_sum(), observed_run(make, events, outputs, [])) == {"window_accounting": 1}
    example = found["window_accounting"].examples[0]
    assert (example["key"], example["window"], example["suspicious_id"]) == ("d", [5_000, 15_000], 123)


# -- the oracle's side ------------------------------------------------------------------------------

def test_the_oracle_puts_each_input_in_its_windows(make):
    events = base_events(60)
    oracle = Oracle(sliding_sum(), make.input_events(placed(events)))

    assert oracle.windowed and oracle.expected == {}
    assert [c.id for c in oracle.windows[("a", 0, 10_000)]] == [0, 12, 24, 36, 48, 4, 16, 28, 40, 52, 8, 20, 32,
                                                                 44, 56]
    assert sum(len(cs) for cs in oracle.windows.values()) == 2 * 60
    assert oracle.windows_of("a", 12_300) == [("a", 5_000, 15_000), ("a", 10_000, 20_000)]


def test_the_oracle_uses_the_record_timestamp_when_the_source_has_no_event_time(make):
    job = Pipeline("windowed-by-record-time").source("input").key_by("k").window(
        window_op(windowed_count()).assigner, grace_ms=0).aggregate(init=lambda: {"n": 0},
                                                                   step=lambda s, e: {"n": s["n"] + 1}).sink("output")
    records = make.input_events(placed(base_events(3)))  # record timestamps are 1000 + offset

    oracle = Oracle(job, records)

    assert set(oracle.windows) == {("a", 0, 5000), ("b", 0, 5000), ("c", 0, 5000)}
    assert oracle.horizon_ms == 1000 - 0 - 1


def test_an_input_without_its_event_time_is_an_oracle_error(make):
    records = make.input_events([(0, {"id": 1, "k": "a", "v": 1})])

    with pytest.raises(OracleError, match="no integer event time 'et'"):
        Oracle(windowed_count(), records)


def test_window_checking_is_linear_in_the_number_of_records(make):
    """A guard against quadratic loops: 20k inputs in sliding windows are checked well within the limit."""
    events = [{"id": i, "k": f"key-{i % 100}", "v": i % 7, "et": 10 * i, "st": 10_000 * i} for i in range(20_000)]
    outputs, late = correct_windows(sliding_sum(), events, late=[(i, (10 * i) // 5000 * 5000 - 5000)
                                                                for i in range(0, 20_000, 97)])
    observed = make.observe(make.input_events([(i % 6, e) for i, e in enumerate(events)]),
                            make.output_topic(outputs, partitions=6), late=make.output_topic(late, topic="late"))

    started = time.process_time()
    found = run_checks(sliding_sum(), observed)
    elapsed = time.process_time() - started

    assert overall(found) == "pass", [(r.name, r.verdict, r.examples[:1]) for r in found if r.verdict != "pass"]
    assert elapsed < 10, f"checking 20k windowed records took {elapsed:.1f} s of CPU"

