"""Oracle and checkers: judge a run's output topic against a reference interpretation of the job.

Per-record classes (lost, duplicate, inconsistent, order) judge jobs that
emit per input and pass as "not applicable" on windowed jobs; the window
classes (window_accounting, window_duplicate, definitely_late) judge windowed
jobs and pass as "not applicable" on the others; unexpected, aborted_read and
hanging_txn judge both.

``run_checks(pipeline, observed)`` builds the :class:`Oracle` once and runs
every checker in :data:`CHECKERS`. A checker that raises — or needs the
oracle when the oracle could not be built — is ``unknown``, never a pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.api.pipeline import Pipeline
from harness.check.delivery import check_duplicate, check_lost, check_unexpected
from harness.check.observed import Observed, Output
from harness.check.oracle import Contribution, DefinitelyLate, Expected, Oracle, OracleError, WindowId
from harness.check.per_key import check_inconsistent, check_order
from harness.check.result import (
    FAIL,
    PASS,
    UNKNOWN,
    CheckResult,
    Verdict,
    overall,
    summarize,
    unknown_result,
    verdict_table,
)
from harness.check.transactions import check_aborted_read, check_hanging_txn
from harness.check.windows import (
    check_definitely_late,
    check_late_metric,
    check_window_accounting,
    check_window_duplicate,
)


@dataclass(frozen=True)
class Checker:
    """One anomaly class. ``check(oracle, observed)``, or ``check(observed)`` when ``needs_oracle`` is False."""

    name: str
    check: Callable[..., CheckResult]
    needs_oracle: bool = True


CHECKERS: list[Checker] = [
    Checker("lost", check_lost),
    Checker("duplicate", check_duplicate),
    Checker("unexpected", check_unexpected),
    Checker("inconsistent", check_inconsistent),
    Checker("order", check_order),
    Checker("aborted_read", check_aborted_read, needs_oracle=False),
    Checker("hanging_txn", check_hanging_txn, needs_oracle=False),
    Checker("window_accounting", check_window_accounting),
    Checker("window_duplicate", check_window_duplicate),
    Checker("definitely_late", check_definitely_late),
    Checker("late_metric", check_late_metric),
]


def run_checks(pipeline: Pipeline, observed: Observed, checkers: list[Checker] | None = None) -> list[CheckResult]:
    """Run every checker (default: :data:`CHECKERS`) on one run's observations; one result per checker."""
    checkers = CHECKERS if checkers is None else checkers
    oracle: Oracle | None = None
    oracle_failure = ""
    if any(c.needs_oracle for c in checkers):
        try:
            oracle = Oracle(pipeline, observed.inputs)
        except Exception as e:  # noqa: BLE001 - any failure makes the dependent verdicts unknown
            oracle_failure = f"the oracle failed: {type(e).__name__}: {e}"
    return [_run_one(checker, oracle, oracle_failure, observed) for checker in checkers]


def _run_one(checker: Checker, oracle: Oracle | None, oracle_failure: str, observed: Observed) -> CheckResult:
    if checker.needs_oracle and oracle is None:
        return unknown_result(checker.name, oracle_failure)
    try:
        result = checker.check(oracle, observed) if checker.needs_oracle else checker.check(observed)
    except Exception as e:  # noqa: BLE001 - a checker that raises is unknown, never a pass
        return unknown_result(checker.name, f"the checker raised {type(e).__name__}: {e}")
    if not isinstance(result, CheckResult):
        return unknown_result(checker.name, f"the checker returned {type(result).__name__}, not a CheckResult")
    return result


__all__ = [
    "CHECKERS", "FAIL", "PASS", "UNKNOWN", "CheckResult", "Checker", "Contribution", "DefinitelyLate", "Expected",
    "Observed", "Oracle", "OracleError", "Output", "Verdict", "WindowId", "check_aborted_read", "check_definitely_late",
    "check_duplicate", "check_hanging_txn", "check_inconsistent", "check_lost", "check_order", "check_unexpected",
    "check_window_accounting", "check_window_duplicate", "overall", "run_checks", "summarize", "verdict_table",
]
