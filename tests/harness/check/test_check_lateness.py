"""Engines without a late side output: the late set derived from the input, held against their windows and
their own count of dropped records; each doctored run fails."""

from __future__ import annotations

from harness.check import Oracle
from harness.check.lateness import derive_stream_time_late, pair_count, surely_late_rekeyed
from harness.kafka.partitioner import partition_for
from scenarios.jobs import group_of, windowed_count, windowed_count_rekeyed
from tests.harness.check.test_check_windows import base_events, correct_windows, failing, find, placed, results

LATE = {"id": 1000, "k": "a", "v": 5, "et": 1000, "st": 60_000_000}  # window [0, 5000), sent at the end


def _derived(make, events, outputs, metric=None, faults=0, job=windowed_count):
    return make.observe(make.input_events(placed(events)), make.output_topic(outputs), late=[],
                        late_declared=False, late_metric=metric, faults=faults, partitions=3)


def test_the_stream_time_rule_declares_late_what_its_partition_had_passed():
    events = [*base_events(), LATE]  # LATE is in partition 1000 % 3 = 1, after stream-time reached 59.8 s
    late = derive_stream_time_late(Oracle(windowed_count(), make_inputs(events)))
    assert late == {("a", 0, 5000): {1000}}


def make_inputs(events):
    from tests.harness.check.conftest import input_events

    return input_events(placed(events))


def test_a_run_that_dropped_exactly_the_derived_late_inputs_passes(make):
    events = [*base_events(), LATE]
    outputs, _ = correct_windows(windowed_count(), events, late=[(1000, 0)])
    assert failing(windowed_count(), _derived(make, events, outputs, metric=1)) == {}


def test_counting_an_input_the_stream_time_rule_makes_late_fails_and_is_named(make):
    events = [*base_events(), LATE]
    outputs, _ = correct_windows(windowed_count(), events)  # the engine counted 1000 in [0, 5000)
    found = results(windowed_count(), _derived(make, events, outputs, metric=0))
    assert found["window_accounting"].verdict == "fail"
    example = found["window_accounting"].examples[0]
    assert (example["suspicious_id"], example["suspicious_why"]) == (1000, "counted and declared late")


def test_a_dropped_window_fails_as_lost(make):
    events = [*base_events(), LATE]
    outputs, _ = correct_windows(windowed_count(), events, late=[(1000, 0)])
    outputs.remove(find(outputs, "b", 10_000))
    assert failing(windowed_count(), _derived(make, events, outputs, metric=1)) == {"window_accounting": 1}


def test_the_engines_count_of_late_records_must_match_the_derived_set(make):
    events = [*base_events(), LATE]
    outputs, _ = correct_windows(windowed_count(), events, late=[(1000, 0)])
    assert failing(windowed_count(), _derived(make, events, outputs, metric=3)) == {"late_metric": 2}
    under_faults = results(windowed_count(), _derived(make, events, outputs, metric=3, faults=2))["late_metric"]
    assert under_faults.verdict == "pass" and "not compared under faults" in under_faults.detail


def test_with_a_late_side_output_nothing_is_derived(make):
    events = [*base_events(), LATE]
    outputs, late = correct_windows(windowed_count(), events)  # counted 1000, declared nothing: by its own rule
    observed = make.observe(make.input_events(placed(events)), make.output_topic(outputs),
                            late=make.output_topic(late, topic="late"))
    assert failing(windowed_count(), observed) == {}


# -- re-keyed: what can be checked -------------------------------------------------------------------

def _rekeyed(events):
    """windowed_count_rekeyed's windows are per group key: the events re-keyed as it does."""
    return [{**e, "k": group_of(e)} for e in events]


def _rekeyed_run(make, events, counted_events, metric=None, faults=0):
    outputs, _ = correct_windows(windowed_count_rekeyed(), _rekeyed(counted_events))
    return make.observe(make.input_events(placed(events)), make.output_topic(outputs), late=[],
                        late_declared=False, late_metric=metric, faults=faults, partitions=3)


def test_rekeyed_an_input_late_under_every_interleaving_must_not_be_counted(make):
    events = base_events()
    same_partition = next(e for e in events[-30:] if e["id"] % 3 == 1 and group_of(e) == group_of(LATE))
    assert partition_for(group_of(same_partition), 3) == partition_for(group_of(LATE), 3)
    late = surely_late_rekeyed(Oracle(windowed_count_rekeyed(), make_inputs([*events, LATE])), 3)
    assert late.get((group_of(LATE), 0, 5000)) == {1000}
    counted = _rekeyed_run(make, [*events, LATE], [*events, LATE], metric=1)
    # and the engine's count of one dropped pair is not what its windows did: they counted every input
    assert failing(windowed_count_rekeyed(), counted) == {"window_accounting": 1, "late_metric": 1}
    dropped = _rekeyed_run(make, [*events, LATE], events, metric=1)
    assert failing(windowed_count_rekeyed(), dropped) == {}


def test_rekeyed_a_window_missing_some_inputs_passes_but_counting_more_than_it_has_fails(make):
    events = base_events()
    # an engine may have dropped event 3 as late under an interleaving the input does not record
    assert failing(windowed_count_rekeyed(), _rekeyed_run(make, events, [e for e in events if e["id"] != 3])) == {}
    doubled = _rekeyed_run(make, events, [*events, events[3]])  # event 3 counted twice
    assert failing(windowed_count_rekeyed(), doubled) == {"window_accounting": 1}


def _first_window(events):
    """The inputs of the first window of the first event's group (closed long before the end of the input)."""
    group = group_of(events[0])
    return [e for e in events if group_of(e) == group and e["et"] < 5000]


def test_rekeyed_inputs_the_windows_did_not_count_must_be_the_engines_own_count_of_dropped_ones(make):
    events = base_events()
    dropped = [events[3], events[4]]
    kept = [e for e in events if e not in dropped]
    assert failing(windowed_count_rekeyed(), _rekeyed_run(make, events, kept, metric=2)) == {}
    # dropped without being counted as dropped: an input lost, not a late one
    assert failing(windowed_count_rekeyed(), _rekeyed_run(make, events, kept, metric=0)) == {"late_metric": 2}
    assert failing(windowed_count_rekeyed(), _rekeyed_run(make, events, kept, metric=5)) == {"late_metric": 3}
    found = results(windowed_count_rekeyed(), _rekeyed_run(make, events, kept, metric=0))["late_metric"]
    assert (found.examples[0]["not_counted_at_least"], found.examples[0]["engine"]) == (2, 0)


def test_rekeyed_a_closed_window_never_emitted_is_accounted_for_only_by_the_engines_count(make):
    events = base_events()
    window = _first_window(events)
    kept = [e for e in events if e not in window]
    # every input of the window dropped as late under the run's interleaving, and counted so by the engine
    accounted = results(windowed_count_rekeyed(), _rekeyed_run(make, events, kept, metric=len(window)))
    assert {name: r.verdict for name, r in accounted.items() if r.verdict != "pass"} == {}
    assert "1 windows closed and never emitted" in accounted["window_accounting"].detail
    # the engine says it dropped nothing: the window is lost
    assert failing(windowed_count_rekeyed(), _rekeyed_run(make, events, kept, metric=0)) == {
        "window_accounting": 1, "late_metric": len(window)}
    # under faults the count is not comparable (replayed work is counted again): lost, as before
    assert failing(windowed_count_rekeyed(), _rekeyed_run(make, events, kept, metric=len(window), faults=1)) == {
        "window_accounting": 1}


def test_late_pairs_are_counted_per_window():
    assert pair_count({("a", 0, 5): {1, 2}, ("a", 5, 10): {2}}) == 3


# -- per-key closing ----------------------------------------------------------------------------------

def test_with_per_key_time_a_window_its_key_never_passed_is_not_lost(make):
    events = [e for e in base_events() if not (e["k"] == "d" and e["et"] >= 20_000)]  # key d stops at 20 s
    outputs, late = correct_windows(windowed_count(), events)
    outputs.remove(find(outputs, "d", 15_000))  # d's time stopped at 19.9 s: [15, 20) + 2 s never closes
    observe = dict(late=make.output_topic(late, topic="late"))
    per_key = make.observe(make.input_events(placed(events)), make.output_topic(outputs), window_time="key_time",
                           **observe)
    assert failing(windowed_count(), per_key) == {}
    per_task = make.observe(make.input_events(placed(events)), make.output_topic(outputs), **observe)
    assert failing(windowed_count(), per_task) == {"window_accounting": 1}
