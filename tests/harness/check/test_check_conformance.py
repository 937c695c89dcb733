"""Reference against real: equal outputs compare equal; every doctored output makes the comparison fail."""

from __future__ import annotations

import dataclasses

import orjson

from harness.check import Oracle
from harness.check.conformance import compare, input_digest, side_of
from scenarios.jobs import running_sum, running_sum_rekeyed, windowed_count
from tests.harness.check.test_check_windows import base_events, correct_windows, observed_run, placed


def _running(make, three_keys, outputs=None, **overrides):
    observed = make.observe(three_keys, make.output_topic(outputs or make.running_sums(three_keys)), **overrides)
    return Oracle(running_sum(), three_keys), observed


def _side(engine, oracle, observed):
    return side_of(engine, oracle, observed)


def test_the_same_running_sums_compare_equal_and_wall_clock_fields_are_ignored(make, three_keys):
    reference = _side("embedded", *_running(make, three_keys))
    other = make.running_sums(three_keys)
    for out in other:
        out["st"] += 12_345  # the scheduled send time follows the wall clock: never compared
    real = _side("kafka-streams", *_running(make, three_keys, other))

    result = compare(reference, real)

    assert result["equal"] is True and result["comparable"] is True
    assert result["compared"] == 30 and result["differing"] == result["only_real"] == result["only_reference"] == 0


def test_a_doctored_running_sum_makes_the_comparison_fail(make, three_keys):
    reference = _side("embedded", *_running(make, three_keys))
    doctored = make.running_sums(three_keys)
    doctored[4]["s"] += 1
    real = _side("kafka-streams", *_running(make, three_keys, doctored))

    result = compare(reference, real)

    assert result["equal"] is False and result["differing"] == 1
    assert result["examples"][0]["why"] == "differs"
    assert "NOT equal" in result["summary"]


def test_a_missing_and_a_reordered_output_are_each_counted(make, three_keys):
    reference = _side("cluster", *_running(make, three_keys))
    outputs = make.running_sums(three_keys)
    missing = _side("flink", *_running(make, three_keys, outputs[:-1]))
    swapped = outputs[:]
    a = [i for i, o in enumerate(swapped) if o["k"] == "a"]
    swapped[a[0]], swapped[a[1]] = swapped[a[1]], swapped[a[0]]
    reordered = _side("flink", *_running(make, three_keys, swapped))

    assert compare(reference, missing)["only_reference"] == 1
    assert compare(reference, reordered)["differing"] == 2


def test_different_inputs_are_not_compared(make, three_keys):
    reference = _side("embedded", *_running(make, three_keys))
    shifted = [dataclasses.replace(r, value=orjson.dumps({**make.event_of(r), "et": make.event_of(r)["et"] + 1}))
               for r in three_keys]
    real_observed = make.observe(shifted, make.output_topic(make.running_sums(shifted)))
    real = side_of("kafka-streams", Oracle(running_sum(), shifted), real_observed)

    result = compare(reference, real)

    assert input_digest(three_keys) != input_digest(shifted)
    assert result["comparable"] is False and result["equal"] is None and "event_epoch" in result["summary"]


def test_rekeyed_running_sums_compare_final_state_and_ids(make, three_keys):
    group = running_sum_rekeyed()
    outputs = make.running_sums(three_keys, key_of=lambda e: "g")
    reference = side_of("embedded", Oracle(group, three_keys), make.observe(three_keys, make.output_topic(outputs)))
    doctored = [dict(o) for o in outputs]
    doctored[-1]["n"] += 1
    real = side_of("kafka-streams", Oracle(group, three_keys),
                   make.observe(three_keys, make.output_topic(doctored)))

    assert compare(reference, reference)["equal"] is True
    result = compare(reference, real)
    assert result["equal"] is False and result["differing"] == 1


def _windowed(make, outputs, late, window_time="watermark"):
    events = base_events()
    observed = observed_run(make, events, outputs, late, window_time=window_time)
    return side_of("x", Oracle(windowed_count(), make.input_events(placed(events))), observed)


def test_the_same_windows_compare_equal_and_a_doctored_window_fails(make):
    outputs, late = correct_windows(windowed_count(), base_events())
    reference = _windowed(make, outputs, late)
    doctored = [dict(o) for o in outputs]
    doctored[3]["h"] ^= 1

    assert compare(reference, _windowed(make, outputs, late))["equal"] is True
    result = compare(reference, _windowed(make, doctored, late))
    assert result["equal"] is False and result["differing"] == 1 and result["examples"][0]["why"] == "results differ"


def test_a_different_late_set_under_the_same_rule_fails_and_under_another_rule_is_a_model_difference(make):
    events = base_events()
    outputs, late = correct_windows(windowed_count(), events)
    other_outputs, other_late = correct_windows(windowed_count(), events, late=[(7, 0)])
    reference = _windowed(make, outputs, late)

    same_rule = compare(reference, _windowed(make, other_outputs, other_late))
    other_rule = compare(reference, _windowed(make, other_outputs, other_late, window_time="key_time"))

    assert same_rule["equal"] is False and same_rule["only_real"] >= 1
    assert other_rule["equal"] is True and other_rule["model_difference"] == 1
    assert "key_time" in other_rule["notes"][0]


def test_fewer_inputs_counted_by_a_side_whose_late_set_is_derived_is_named_and_more_is_a_failure(make):
    events = base_events()
    outputs, late = correct_windows(windowed_count(), events)
    dropped_outputs, _ = correct_windows(windowed_count(), events, late=[(7, 0)])
    reference = _windowed(make, outputs, late)
    derived = {"late_exact": False, "late_source": "derived for a re-keyed job", "late": {}}
    fewer = dataclasses.replace(_windowed(make, dropped_outputs, []), **derived)
    more = [dict(o) for o in outputs]
    more[3]["n"] += 1
    more[3]["s"] += 5
    bigger_sum = [dict(o) for o in dropped_outputs]
    changed = next(i for i, (a, b) in enumerate(zip(outputs, dropped_outputs, strict=True)) if a != b)
    bigger_sum[changed]["s"] = outputs[changed]["s"] + 1

    interleaved = compare(reference, fewer)
    assert interleaved["equal"] is True and interleaved["model_difference"] == 1
    assert "interleaving" in interleaved["notes"][-1]
    assert compare(reference, dataclasses.replace(_windowed(make, more, []), **derived))["equal"] is False
    assert compare(reference, dataclasses.replace(_windowed(make, bigger_sum, []), **derived))["equal"] is False
    exact_fewer = compare(reference, dataclasses.replace(fewer, late_exact=True))
    assert exact_fewer["equal"] is False
    # a window never emitted by the derived side: every input of it dropped under its interleaving
    none = dataclasses.replace(_windowed(make, [o for i, o in enumerate(outputs) if i != 3], []), **derived)
    assert compare(reference, none)["equal"] is True and compare(reference, none)["model_difference"] == 1
    exact_none = compare(reference, dataclasses.replace(none, late_exact=True))
    assert exact_none["equal"] is False and exact_none["only_reference"] == 1
    # the exact side never emitting a window the derived side has is no interleaving of the derived side's
    missing_in_reference = _windowed(make, [o for i, o in enumerate(outputs) if i != 3], late)
    assert compare(missing_in_reference, dataclasses.replace(reference, **derived))["equal"] is False


def test_the_input_digest_does_not_depend_on_how_a_read_interleaved_the_partitions(three_keys):
    interleaved = sorted(three_keys, key=lambda r: (r.offset, r.partition))
    assert interleaved != three_keys
    assert input_digest(interleaved) == input_digest(three_keys)


def test_exactly_once_under_faults_is_compared_and_at_least_once_under_faults_is_not(make, three_keys):
    reference = _side("embedded", *_running(make, three_keys, faults=2))
    doubled = make.running_sums(three_keys)
    doubled.insert(5, doubled[4])  # a replay after a kill repeats an output
    exactly_once = compare(reference, _side("kafka-streams", *_running(make, three_keys, doubled, faults=2)))
    assert exactly_once["comparable"] is True and exactly_once["equal"] is False

    oracle, observed = _running(make, three_keys, doubled, faults=2)
    replayed = side_of("kafka-streams", oracle, observed, at_least_once=True)
    result = compare(reference, replayed)
    assert (result["comparable"], result["equal"]) == (False, None)
    assert "at_least_once under 2 faults" in result["summary"]
    # without faults an at_least_once run has nothing replayed: compared
    oracle, observed = _running(make, three_keys, doubled)
    fault_free = side_of("kafka-streams", oracle, observed, at_least_once=True)
    assert compare(_side("embedded", *_running(make, three_keys)), fault_free)["comparable"] is True
