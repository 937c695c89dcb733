"""The Pipeline DSL: structure, segments at re-keying points, job loading."""

from __future__ import annotations

import pytest

from harness.api import Pipeline, load_job
from harness.errors import ConfigError


def test_running_sum_has_one_segment_keyed_by_the_record_key():
    segs = load_job("scenarios.jobs:running_sum").segments()
    assert [(s.input, s.output, s.stateful) for s in segs] == [("input", "output", True)]


def test_rekeyed_job_splits_at_the_repartition():
    segs = load_job("scenarios.jobs:running_sum_rekeyed").segments()
    assert [(s.input, s.output, s.stateful) for s in segs] == [
        ("input", "repartition-0", False), ("repartition-0", "output", True)]
    assert segs[0].key_by is not None and segs[0].key_by.key_of({"k": "k1"}).startswith("g")


def test_aggregate_needs_a_key():
    p = Pipeline("bad").source("input").aggregate(init=dict, step=lambda s, e: s).sink("output")
    with pytest.raises(ConfigError, match="needs a key_by"):
        p.validate()


@pytest.mark.parametrize("ref,match", [
    ("scenarios.jobs", "module:function"),
    ("no_such_module:job", "cannot be imported"),
    ("scenarios.jobs:no_such_job", "has no function"),
])
def test_bad_job_references_are_named(ref, match):
    with pytest.raises(ConfigError, match=match):
        load_job(ref)
