"""inconsistent and order: per key, in output-topic order."""

from __future__ import annotations

import itertools

import pytest

from harness.check import Oracle, check_inconsistent, check_order, overall, run_checks
from scenarios.jobs import echo, group_of, running_sum, running_sum_rekeyed


def _two_keys_of_one_group() -> tuple[str, str]:
    """Two input keys that running_sum_rekeyed puts under the same derived key."""
    first_of_group: dict[str, str] = {}
    for i in itertools.count():
        key = f"key-{i}"
        group = group_of({"k": key})
        if group in first_of_group:
            return first_of_group[group], key
        first_of_group[group] = key
    raise AssertionError("unreachable")


# -- inconsistent ------------------------------------------------------------------------------

def test_inconsistent_passes_a_correct_running_sum(make, three_keys):
    observed = make.observe(three_keys, make.output_topic(make.running_sums(three_keys)))

    assert check_inconsistent(Oracle(running_sum(), three_keys), observed).verdict == "pass"


@pytest.mark.parametrize("field", ["n", "s"])
def test_inconsistent_fails_on_a_wrong_count_or_sum(make, three_keys, field):
    events = make.running_sums(three_keys)
    events[5] = {**events[5], field: events[5][field] + 1}

    result = check_inconsistent(Oracle(running_sum(), three_keys),
                                make.observe(three_keys, make.output_topic(events)))

    assert (result.verdict, result.count) == ("fail", 1)
    example = result.examples[0]
    assert (example["key"], example["id"]) == (events[5]["k"], events[5]["id"])
    assert example["found"][field] == example["expected"][field] + 1


def test_a_double_count_after_a_bad_restore_flags_every_later_output(make):
    inputs = make.input_topic([(0, i, "a", 1) for i in range(1, 11)])
    events = make.running_sums(inputs)
    bad = events[:5] + [{**e, "n": e["n"] + 3, "s": e["s"] + 3} for e in events[5:]]  # restored from a too-new state

    result = check_inconsistent(Oracle(running_sum(), inputs), make.observe(inputs, make.output_topic(bad)))

    assert (result.verdict, result.count) == ("fail", 5)


def test_inconsistent_skips_repeats_and_unknown_ids(make, three_keys):
    events = make.running_sums(three_keys)
    doctored = events[:3] + [events[2], {"id": 999, "k": "a", "n": 0, "s": 0}] + events[3:]

    result = check_inconsistent(Oracle(running_sum(), three_keys),
                                make.observe(three_keys, make.output_topic(doctored)))

    assert result.verdict == "pass"


def test_inconsistent_passes_stateless_jobs(make, three_keys):
    outputs = make.output_topic([{**make.event_of(r), "v": -1} for r in three_keys])

    result = check_inconsistent(Oracle(echo(), three_keys), make.observe(three_keys, outputs))

    assert result.verdict == "pass"
    assert "stateless" in result.detail


# -- order -------------------------------------------------------------------------------------

def test_order_passes_outputs_in_source_order(make, three_keys):
    observed = make.observe(three_keys, make.output_topic(make.running_sums(three_keys)))

    assert check_order(Oracle(running_sum(), three_keys), observed).verdict == "pass"


def test_order_fails_when_two_outputs_of_a_key_from_one_partition_are_swapped(make, three_keys):
    a_inputs = [r for r in three_keys if make.event_of(r)["k"] == "a"]
    swapped = a_inputs[:3] + [a_inputs[4], a_inputs[3]] + a_inputs[5:]
    # replayed in the swapped order, so the sums are consistent: only the order is wrong
    events = make.running_sums(swapped)

    result = check_order(Oracle(running_sum(), three_keys), make.observe(three_keys, make.output_topic(events)))

    assert (result.verdict, result.count) == ("fail", 1)
    example = result.examples[0]
    assert (example["id"], example["after_id"]) == (make.event_of(a_inputs[3])["id"], make.event_of(a_inputs[4])["id"])
    assert check_inconsistent(Oracle(running_sum(), three_keys),
                              make.observe(three_keys, make.output_topic(events))).verdict == "pass"


def test_order_counts_an_output_moved_early_once(make):
    inputs = make.input_topic([(0, i, "a", i) for i in range(1, 11)])
    moved = [inputs[9]] + inputs[:9]

    result = check_order(Oracle(running_sum(), inputs), make.observe(inputs, make.output_topic(make.running_sums(moved))))

    assert result.count == 1


def test_order_ignores_repeats_of_an_id(make):
    inputs = make.input_topic([(0, i, "a", i) for i in range(1, 6)])
    events = make.running_sums(inputs)
    replayed = events + events[1:3]

    result = check_order(Oracle(running_sum(), inputs), make.observe(inputs, make.output_topic(replayed)))

    assert result.verdict == "pass"


# -- re-keyed: one derived key fed by two source partitions -------------------------------------

def _rekeyed_inputs(make):
    first, second = _two_keys_of_one_group()
    specs = [(0, i, first, i) for i in range(1, 9)] + [(1, 100 + i, second, 10 * i) for i in range(1, 9)]
    inputs = make.input_topic(specs)
    return [r for r in inputs if r.partition == 0], [r for r in inputs if r.partition == 1], inputs


def _interleave(left, right):
    """An interleaving that keeps each side's order: l, r, r, l, l, r, ..."""
    merged, left, right = [], list(left), list(right)
    pattern = itertools.cycle([(1, 0), (0, 2), (2, 0), (0, 1)])
    while left or right:
        take_left, take_right = next(pattern)
        merged += left[:take_left] + right[:take_right]
        left, right = left[take_left:], right[take_right:]
    return merged


def test_a_rekeyed_job_passes_everything_under_an_order_preserving_interleaving(make):
    partition_0, partition_1, inputs = _rekeyed_inputs(make)
    processed = _interleave(partition_0, partition_1)
    outputs = make.output_topic(make.running_sums(processed, key_of=group_of))

    results = run_checks(running_sum_rekeyed(), make.observe(inputs, outputs))

    assert {r.name: r.verdict for r in results} == {r.name: "pass" for r in results}
    assert overall(results) == "pass"


def test_a_rekeyed_job_fails_order_when_one_partition_is_reversed(make):
    partition_0, partition_1, inputs = _rekeyed_inputs(make)
    processed = _interleave(list(reversed(partition_0)), partition_1)
    outputs = make.output_topic(make.running_sums(processed, key_of=group_of))

    results = {r.name: r for r in run_checks(running_sum_rekeyed(), make.observe(inputs, outputs))}

    assert results["order"].verdict == "fail"
    assert results["order"].count == len(partition_0) - 1
    assert results["inconsistent"].verdict == "pass"  # the sums replay fine: only the order is wrong
