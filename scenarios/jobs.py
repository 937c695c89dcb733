"""Built-in jobs. Each is referenced from a scenario as ``scenarios.jobs:<name>``."""

from __future__ import annotations

import zlib

from harness.api import BoundedOutOfOrder, Event, EventTime, Pipeline, Sliding, State, Tumbling, id_checksum
from harness.api.pipeline import CHECKSUM_MOD


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


def _window_zero() -> State:
    return {"n": 0, "s": 0, "h": 0, "st_max": 0}


def _window_add(state: State, event: Event) -> State:
    return {"n": state["n"] + 1, "s": state["s"] + event["v"],
            "h": (state["h"] + id_checksum(event["id"])) % CHECKSUM_MOD,
            "st_max": max(state["st_max"], event.get("st", 0))}


def windowed_count() -> Pipeline:
    """Per key, 5 s tumbling windows of event time with 2 s grace: count, sum and id checksum, emitted once."""
    return (Pipeline("windowed-count")
            .source("input", timestamps=EventTime("et"), watermark=BoundedOutOfOrder(ms=2000))
            .key_by("k")
            .window(Tumbling(size_ms=5000), grace_ms=2000)
            .aggregate(init=_window_zero, step=_window_add, name="win")
            .sink("output")
            .late("late"))


def sliding_sum() -> Pipeline:
    """Per key, 10 s windows sliding by 5 s with 2 s grace: each event counts in two windows."""
    return (Pipeline("sliding-sum")
            .source("input", timestamps=EventTime("et"), watermark=BoundedOutOfOrder(ms=2000))
            .key_by("k")
            .window(Sliding(size_ms=10_000, slide_ms=5000), grace_ms=2000)
            .aggregate(init=_window_zero, step=_window_add, name="win")
            .sink("output")
            .late("late"))


def windowed_count_rekeyed() -> Pipeline:
    """windowed_count per derived group key: the events cross a repartition (embedded) or shuffle (cluster)
    before the window, so one task's notion of time mixes every input partition."""
    return (Pipeline("windowed-count-rekeyed")
            .source("input", timestamps=EventTime("et"), watermark=BoundedOutOfOrder(ms=2000))
            .key_by(group_of)
            .window(Tumbling(size_ms=5000), grace_ms=2000)
            .aggregate(init=_window_zero, step=_window_add, name="win")
            .sink("output")
            .late("late"))
