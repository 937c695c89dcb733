"""lost, duplicate, unexpected: each passes a correct output and fails a doctored one."""

from __future__ import annotations

import orjson

from harness.check import Oracle, check_duplicate, check_inconsistent, check_lost, check_unexpected
from harness.kafka.client import Record
from scenarios.jobs import echo, running_sum


def _correct_running_sum(make, inputs):
    return make.output_topic(make.running_sums(inputs))


def _without(outputs: list[Record], output_id: int, make) -> list[Record]:
    return [r for r in outputs if make.event_of(r)["id"] != output_id]


# -- lost ---------------------------------------------------------------------------------

def test_lost_passes_when_every_input_has_its_output(make, three_keys):
    observed = make.observe(three_keys, _correct_running_sum(make, three_keys))

    result = check_lost(Oracle(running_sum(), three_keys), observed)

    assert (result.verdict, result.count) == ("pass", 0)


def test_lost_fails_on_a_dropped_output(make, three_keys):
    outputs = _without(_correct_running_sum(make, three_keys), 7, make)

    result = check_lost(Oracle(running_sum(), three_keys), make.observe(three_keys, outputs))

    assert (result.verdict, result.count) == ("fail", 1)
    assert result.examples == [{"id": 7, "key": "a", "source_partition": 0, "source_offset": 4, "missing": 1}]


def test_lost_is_unknown_when_the_drain_timed_out_with_outputs_missing(make, three_keys):
    outputs = _without(_correct_running_sum(make, three_keys), 7, make)

    result = check_lost(Oracle(running_sum(), three_keys), make.observe(three_keys, outputs, drained=False))

    assert (result.verdict, result.count) == ("unknown", 1)
    assert "drain" in result.detail


def test_lost_passes_after_a_drain_timeout_when_nothing_is_missing(make, three_keys):
    observed = make.observe(three_keys, _correct_running_sum(make, three_keys), drained=False)

    assert check_lost(Oracle(running_sum(), three_keys), observed).verdict == "pass"


def test_lost_does_not_expect_outputs_of_filtered_inputs(make):
    from harness.api import Pipeline

    inputs = make.input_topic([(0, 1, "a", 1), (0, 2, "a", -1)])
    positive = Pipeline("positive").source("input").filter(lambda e: e["v"] > 0).sink("output")
    outputs = make.output_topic([make.event_of(inputs[0])])

    assert check_lost(Oracle(positive, inputs), make.observe(inputs, outputs)).verdict == "pass"


# -- duplicate ------------------------------------------------------------------------------

def test_duplicate_passes_when_each_id_appears_once(make, three_keys):
    observed = make.observe(three_keys, _correct_running_sum(make, three_keys))

    assert check_duplicate(Oracle(running_sum(), three_keys), observed).verdict == "pass"


def test_duplicate_fails_on_a_repeated_output(make, three_keys):
    events = make.running_sums(three_keys)
    repeated = events[:10] + [events[9]] + events[10:]

    result = check_duplicate(Oracle(running_sum(), three_keys), make.observe(three_keys, make.output_topic(repeated)))

    assert (result.verdict, result.count) == ("fail", 1)
    example = result.examples[0]
    assert (example["id"], example["expected"], example["found"]) == (events[9]["id"], 1, 2)
    assert len(example["at"]) == 2


def test_the_at_least_once_replay_pattern_fails_duplicate_and_inconsistent(make):
    """Outputs 1..50, a restart replays ids 41..50 from a restored count of 50 (n=51..60), then 51..60 (n=61..70)."""
    inputs = make.input_topic([(0, i, "a", i) for i in range(1, 61)])
    honest = make.running_sums(inputs[:50])

    def emitted(input_id: int, n: int, s: int) -> dict:
        return {"id": input_id, "k": "a", "n": n, "s": s, "et": 10 * input_id, "st": 100 * input_id}

    replayed, n, s = [], 50, sum(range(1, 51))
    for input_id in list(range(41, 51)) + list(range(51, 61)):
        n, s = n + 1, s + input_id
        replayed.append(emitted(input_id, n, s))
    oracle = Oracle(running_sum(), inputs)
    observed = make.observe(inputs, make.output_topic(honest + replayed))

    duplicate, inconsistent = check_duplicate(oracle, observed), check_inconsistent(oracle, observed)

    assert (duplicate.verdict, duplicate.count) == ("fail", 10)
    assert (inconsistent.verdict, inconsistent.count) == ("fail", 10)
    assert inconsistent.examples[0]["id"] == 51
    assert inconsistent.examples[0]["expected"]["n"] == 51
    assert inconsistent.examples[0]["found"]["n"] == 61
    assert check_lost(oracle, observed).verdict == "pass"


# -- unexpected ------------------------------------------------------------------------------

def test_unexpected_passes_a_correct_running_sum(make, three_keys):
    observed = make.observe(three_keys, _correct_running_sum(make, three_keys))

    assert check_unexpected(Oracle(running_sum(), three_keys), observed).verdict == "pass"


def test_unexpected_fails_on_an_id_that_was_never_input(make, three_keys):
    events = make.running_sums(three_keys) + [{"id": 999, "k": "a", "n": 11, "s": 1, "et": 0, "st": 0}]

    result = check_unexpected(Oracle(running_sum(), three_keys), make.observe(three_keys, make.output_topic(events)))

    assert (result.verdict, result.count) == ("fail", 1)
    assert result.examples[0]["id"] == 999
    assert result.examples[0]["why"] == "no input has this id"


def test_unexpected_fails_on_an_output_under_the_wrong_key(make, three_keys):
    events = make.running_sums(three_keys)
    events[0] = {**events[0], "k": "b"}

    result = check_unexpected(Oracle(running_sum(), three_keys), make.observe(three_keys, make.output_topic(events)))

    assert (result.verdict, result.count) == ("fail", 1)
    assert "key 'b'" in result.examples[0]["why"]


def test_unexpected_fails_on_a_value_that_is_not_json(make, three_keys):
    outputs = _correct_running_sum(make, three_keys) + [Record("output", 9, 0, b"a", b"\x00garbage", 0)]

    result = check_unexpected(Oracle(running_sum(), three_keys), make.observe(three_keys, outputs))

    assert (result.verdict, result.count) == ("fail", 1)


def test_unexpected_passes_echo_outputs_equal_to_their_inputs(make, three_keys):
    outputs = make.output_topic([make.event_of(r) for r in three_keys])

    assert check_unexpected(Oracle(echo(), three_keys), make.observe(three_keys, outputs)).verdict == "pass"


def test_unexpected_fails_an_echo_output_whose_content_changed(make, three_keys):
    events = [make.event_of(r) for r in three_keys]
    events[4] = {**events[4], "v": events[4]["v"] + 1}

    result = check_unexpected(Oracle(echo(), three_keys), make.observe(three_keys, make.output_topic(events)))

    assert (result.verdict, result.count) == ("fail", 1)
    assert result.examples[0]["why"] == "the content matches no expected output"


def test_unexpected_fails_an_output_of_an_input_that_produces_none(make):
    from harness.api import Pipeline

    inputs = make.input_topic([(0, 1, "a", 1), (0, 2, "a", -1)])
    positive = Pipeline("positive").source("input").filter(lambda e: e["v"] > 0).sink("output")
    outputs = make.output_topic([make.event_of(r) for r in inputs])

    result = check_unexpected(Oracle(positive, inputs), make.observe(inputs, outputs))

    assert (result.verdict, result.count) == ("fail", 1)
    assert result.examples[0]["why"] == "input 2 produces no output"


def test_examples_are_at_most_five_and_json_serialisable(make, three_keys):
    events = [{"id": 1000 + i, "k": "a", "n": 1, "s": 1, "et": 0, "st": 0} for i in range(20)]

    result = check_unexpected(Oracle(running_sum(), three_keys), make.observe(three_keys, make.output_topic(events)))

    assert result.count == 20
    assert len(result.examples) == 5
    orjson.dumps(result.examples)
