"""The cross-engine comparison of late drops: reported as a difference between the models."""

from __future__ import annotations

from harness.scenario.runner import compare_late


def test_different_late_drops_are_reported_as_a_difference_not_a_failure():
    c = compare_late({"embedded": {1, 2, 3, 4}, "cluster": {4}})
    assert c["models_differ"] is True
    assert c["late_only_by"] == {"cluster": 0, "embedded": 3}
    assert c["late_inputs"] == {"cluster": 1, "embedded": 4}
    assert "difference between the models" in c["summary"] and "not a failure" in c["summary"]


def test_the_same_late_drops_are_said_to_agree():
    c = compare_late({"embedded": {7}, "cluster": {7}})
    assert c["models_differ"] is False
    assert "the same records" in c["summary"]
