"""The oracle: a reference interpretation of the Pipeline DSL over the input topic as written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import pytest

from harness.api import Pipeline
from harness.api.pipeline import Op
from harness.check import Oracle, OracleError
from harness.kafka.client import Record
from scenarios.jobs import echo, group_of, running_sum, running_sum_rekeyed


def test_running_sum_expects_one_output_per_input_under_its_key(make, three_keys):
    oracle = Oracle(running_sum(), three_keys)

    assert oracle.stateful
    assert {oracle.expected_count(i) for i in range(1, 31)} == {1}
    assert oracle.keys_of(4) == {"a"}
    assert oracle.origin_of(4) == (0, 2)  # partition 0 holds ids 1, 2, 4, 5, ...
    assert [c.id for c in oracle.contributions["a"]] == [1, 4, 7, 10, 13, 16, 19, 22, 25, 28]


def test_running_sum_values_follow_the_source_order(three_keys):
    oracle = Oracle(running_sum(), three_keys)

    last_of_c = oracle.expected[30][0].value
    assert (last_of_c["n"], last_of_c["s"]) == (10, sum(range(3, 31, 3)))


def test_the_replay_functions_are_the_aggregates(three_keys):
    oracle = Oracle(running_sum(), three_keys)
    event = oracle.contributions_of("a", 1)[0].event

    state = oracle.step(oracle.initial_state(), event)

    assert state == {"n": 1, "s": 1}
    assert oracle.emit("a", state, event) == [{"id": 1, "k": "a", "n": 1, "s": 1, "et": 10, "st": 100}]


def test_a_rekeyed_job_puts_outputs_under_the_derived_key(three_keys):
    oracle = Oracle(running_sum_rekeyed(), three_keys)

    assert oracle.keys_of(1) == {group_of({"k": "a"})}
    assert oracle.origin_of(3) == (1, 0)


def test_echo_expects_the_input_event_itself(make, three_keys):
    oracle = Oracle(echo(), three_keys)

    assert not oracle.stateful
    assert oracle.expected[5][0].value == make.event_of(three_keys[3])  # partition 0 holds ids 1, 2, 4, 5, ...
    assert oracle.keys_of(5) == {"b"}
    assert oracle.contributions == {}


def test_filter_map_and_flat_map_are_interpreted(make):
    inputs = make.input_topic([(0, 1, "a", 1), (0, 2, "a", -2), (0, 3, "b", 3)])
    pipeline = (Pipeline("shapes").source("input")
                .filter(lambda e: e["v"] > 0)
                .map(lambda e: {**e, "v": e["v"] * 10})
                .flat_map(lambda e: [e, {**e, "copy": True}])
                .sink("output"))

    oracle = Oracle(pipeline, inputs)

    assert oracle.expected_count(1) == 2
    assert oracle.expected_count(2) == 0 and 2 in oracle.inputs
    assert [e.value["v"] for e in oracle.expected[3]] == [30, 30]


def test_an_operator_the_oracle_does_not_know_is_an_error(make):
    @dataclass(frozen=True)
    class Window:  # windows come later; until then the oracle must refuse them, not guess
        size_ms: int

    pipeline = Pipeline("windowed").source("input").key_by("k")
    pipeline.ops.append(cast(Op, Window(1000)))  # deliberately not one of the operators
    pipeline.sink("output")

    with pytest.raises(OracleError, match="Window"):
        Oracle(pipeline, make.input_topic([(0, 1, "a", 1)]))


def test_an_input_that_is_not_json_is_an_error():
    garbage = Record("input", 0, 0, b"a", b"not json", 0)

    with pytest.raises(OracleError, match=r"input\[0\]@0"):
        Oracle(echo(), [garbage])


def test_inputs_are_read_in_partition_and_offset_order(make, three_keys):
    oracle = Oracle(running_sum(), list(reversed(three_keys)))

    assert oracle.expected[1][0].value["n"] == 1
