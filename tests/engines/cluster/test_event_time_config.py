"""Deploy-time checks of the cluster engine's event-time options and windows (no Kafka)."""

from __future__ import annotations

import pytest

from engines.cluster import parse_config
from engines.cluster.graph import event_time_problems, job_graph, late_topic_of, time_field
from harness.api import BoundedOutOfOrder, EventTime, Pipeline, Tumbling
from harness.errors import ConfigError
from scenarios.jobs import group_of, running_sum, windowed_count

TOPICS = {"input": "t.in", "output": "t.out", "late": "t.late"}


def _zero() -> dict:
    return {"n": 0}


def _count(state: dict, _event: dict) -> dict:
    return {"n": state["n"] + 1}


def test_event_time_options_have_flink_like_defaults_and_are_validated():
    cfg = parse_config({})
    assert (cfg.idle_timeout_ms, cfg.watermark_interval_ms) == (5000, 200)
    assert parse_config({"idle_timeout_ms": None}).idle_timeout_ms is None
    with pytest.raises(ConfigError, match="idle_timeout_ms"):
        parse_config({"idle_timeout_ms": 0})


def test_the_built_in_windowed_job_runs_in_the_keyed_sink_vertex():
    pipeline = windowed_count()
    assert [v.windowed for v in job_graph(pipeline)] == [False, True]
    assert event_time_problems(pipeline, TOPICS) == []
    assert late_topic_of(pipeline, TOPICS) == "t.late"
    assert time_field(pipeline) == "et"


def test_non_windowed_jobs_need_nothing():
    assert event_time_problems(running_sum(), {"input": "i", "output": "o"}) == []


def test_a_missing_late_topic_is_named():
    problems = event_time_problems(windowed_count(), {"input": "i", "output": "o"})
    assert len(problems) == 1 and "'late'" in problems[0]


def test_a_window_without_watermarks_is_refused():
    pipeline = (Pipeline("no-wm").source("input", timestamps=EventTime("et")).key_by("k")
                .window(Tumbling(1000)).aggregate(init=_zero, step=_count).sink("output"))
    assert any("watermark" in p for p in event_time_problems(pipeline, TOPICS))


def test_a_re_keyed_window_with_a_late_output_is_refused():
    pipeline = (Pipeline("rekeyed-win").source("input", watermark=BoundedOutOfOrder(1000)).key_by("k")
                .window(Tumbling(1000)).aggregate(init=_zero, step=_count)
                .key_by(group_of).sink("output").late("late"))
    assert any("last key_by stage" in p for p in event_time_problems(pipeline, TOPICS))
