"""run_checks, overall, summarize, verdict_table: composing the checkers."""

from __future__ import annotations

import time
from typing import Any

import orjson

import harness.check
from harness.check import CHECKERS, Checker, CheckResult, overall, run_checks, summarize, verdict_table
from harness.kafka.client import Record
from scenarios.jobs import echo, running_sum

NAMES = ["lost", "duplicate", "unexpected", "inconsistent", "order", "aborted_read", "hanging_txn",
         "window_accounting", "window_duplicate", "definitely_late", "late_metric"]
NEED_THE_ORACLE = set(NAMES) - {"aborted_read", "hanging_txn"}


def _result(verdict: str, name: str = "x", count: int = 0) -> CheckResult:
    return CheckResult(name, verdict, count, [])  # type: ignore[arg-type]


def test_every_anomaly_class_is_registered():
    assert [c.name for c in CHECKERS] == NAMES


def test_a_correct_running_sum_passes_every_checker(make, three_keys):
    observed = make.observe(three_keys, make.output_topic(make.running_sums(three_keys)))

    results = run_checks(running_sum(), observed)

    assert verdict_table(results) == [(name, "pass", 0) for name in NAMES]
    assert overall(results) == "pass"


def test_a_correct_echo_passes_every_checker(make, three_keys):
    observed = make.observe(three_keys, make.output_topic([make.event_of(r) for r in three_keys]))

    assert overall(run_checks(echo(), observed)) == "pass"


def test_a_checker_that_raises_is_unknown(make, three_keys, monkeypatch):
    def broken(oracle, observed):
        raise RuntimeError("checker exploded")

    monkeypatch.setattr(harness.check, "CHECKERS", [Checker("lost", broken), *CHECKERS[1:]])
    observed = make.observe(three_keys, make.output_topic(make.running_sums(three_keys)))

    results = run_checks(running_sum(), observed)

    assert (results[0].name, results[0].verdict) == ("lost", "unknown")
    assert "checker exploded" in results[0].detail
    assert overall(results) == "unknown"


def test_a_checker_that_returns_something_else_is_unknown(make, three_keys, monkeypatch):
    def not_a_result(oracle: Any, observed: Any) -> Any:
        """A broken checker: what it returns is not a CheckResult."""
        return "pass"

    monkeypatch.setattr(harness.check, "CHECKERS", [Checker("order", not_a_result)])

    results = run_checks(running_sum(), make.observe(three_keys, []))

    assert [(r.name, r.verdict) for r in results] == [("order", "unknown")]


def test_when_the_oracle_fails_its_checkers_are_unknown_and_the_others_still_run(make):
    garbage = [Record("input", 0, 0, b"a", b"not json", 0)]

    results = {r.name: r for r in run_checks(running_sum(), make.observe(garbage, []))}

    assert {n for n, r in results.items() if r.verdict == "unknown"} == NEED_THE_ORACLE
    assert "oracle" in results["lost"].detail
    assert results["aborted_read"].verdict == "pass"
    assert results["hanging_txn"].verdict == "pass"


def test_overall_merges_by_priority():
    assert overall([_result("pass"), _result("pass")]) == "pass"
    assert overall([_result("pass"), _result("unknown")]) == "unknown"
    assert overall([_result("unknown"), _result("fail")]) == "fail"
    assert overall([]) == "unknown"


def test_summarize_gives_the_results_json_fields(make, three_keys):
    events = make.running_sums(three_keys)
    observed = make.observe(three_keys, make.output_topic(events + [events[0]]))

    summary = summarize(run_checks(running_sum(), observed))

    assert summary["anomalies"] == {name: (1 if name == "duplicate" else 0) for name in NAMES}
    assert list(summary["examples"]) == ["duplicate"]
    orjson.dumps(summary)


def test_checking_is_linear_in_the_number_of_records(make):
    """A guard against quadratic loops: 20k inputs and outputs take well under a second on a laptop."""
    inputs = make.input_topic([(i % 6, i, f"key-{i % 100}", i % 7) for i in range(20_000)])
    observed = make.observe(inputs, make.output_topic(make.running_sums(inputs), partitions=6))

    started = time.process_time()
    results = run_checks(running_sum(), observed)
    elapsed = time.process_time() - started

    assert overall(results) == "pass"
    assert elapsed < 10, f"checking 20k records took {elapsed:.1f} s of CPU"
