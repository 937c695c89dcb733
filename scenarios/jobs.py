"""Built-in jobs. Each is referenced from a scenario as ``scenarios.jobs:<name>``."""

from __future__ import annotations

import zlib

from harness.api import Event, Pipeline, State


def echo() -> Pipeline:
    """Stateless: every input event is written to the output as it is."""
    return Pipeline("echo").source("input").sink("output")


def _add_value(state: State, event: Event) -> State:
    return {"n": state["n"] + 1, "s": state["s"] + event["v"]}


def _zero() -> State:
    return {"n": 0, "s": 0}


def running_sum() -> Pipeline:
    """Keyed running count and sum per input key; one output per input."""
    return (Pipeline("running-sum")
            .source("input")
            .key_by("k")
            .aggregate(init=_zero, step=_add_value, name="sum")
            .sink("output"))


def group_of(event: Event) -> str:
    """A derived key: the input key's stable group (crc32, never Python's salted hash)."""
    return f"g{zlib.crc32(event['k'].encode()) % 64:02d}"


def running_sum_rekeyed() -> Pipeline:
    """Running count and sum per derived group key: the data crosses a repartition first."""
    return (Pipeline("running-sum-rekeyed")
            .source("input")
            .key_by(group_of)
            .aggregate(init=_zero, step=_add_value, name="sum")
            .sink("output"))
