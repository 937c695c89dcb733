"""What a checker returns, and how results merge into one verdict and into results.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["pass", "fail", "unknown"]
PASS: Verdict = "pass"
FAIL: Verdict = "fail"
UNKNOWN: Verdict = "unknown"

MAX_EXAMPLES = 5

#: The detail of a per-record checker (lost, duplicate, inconsistent, order) on a windowed job: it passes.
NOT_WINDOWED = "not applicable to windowed jobs"
#: The detail of a window checker on a job without windows: it passes.
NOT_WINDOW_JOB = "not applicable: the job has no windows"


@dataclass(frozen=True)
class CheckResult:
    """One anomaly class: its verdict, how many anomalies were found, and at most five examples."""

    name: str
    verdict: Verdict
    count: int
    examples: list[dict[str, Any]] = field(default_factory=list)
    detail: str = ""


class Findings:
    """Collects the anomalies of one checker: counts every one, keeps the first few as examples."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.examples: list[dict[str, Any]] = []

    def add(self, example: dict[str, Any], count: int = 1) -> None:
        """Record one anomaly (or ``count`` of them described by one example)."""
        self.count += count
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)

    def result(self, detail: str = "") -> CheckResult:
        """Fail when anything was found, else pass."""
        return CheckResult(self.name, FAIL if self.count else PASS, self.count, self.examples, detail)

    def inconclusive(self, detail: str) -> CheckResult:
        """What was found cannot be judged (e.g. the drain timed out): unknown, with the count."""
        return CheckResult(self.name, UNKNOWN, self.count, self.examples, detail)


def unknown_result(name: str, detail: str) -> CheckResult:
    """A checker that could not decide (it raised, or its input was missing)."""
    return CheckResult(name, UNKNOWN, 0, [], detail)


def overall(results: list[CheckResult]) -> Verdict:
    """Merge by priority: any fail is a fail; else any unknown is unknown; else pass.

    No results at all is unknown: a run nobody checked is not a pass.
    """
    verdicts = {r.verdict for r in results}
    if FAIL in verdicts:
        return FAIL
    if UNKNOWN in verdicts or not results:
        return UNKNOWN
    return PASS


def summarize(results: list[CheckResult]) -> dict[str, dict[str, Any]]:
    """The ``anomalies`` and ``examples`` fields of a run in results.json.

    Every checker appears in ``anomalies``; only checkers with examples appear in ``examples``.
    """
    return {
        "anomalies": {r.name: r.count for r in results},
        "examples": {r.name: list(r.examples) for r in results if r.examples},
    }


def verdict_table(results: list[CheckResult]) -> list[tuple[str, str, int]]:
    """One row per checker: (name, verdict, count), for reports and the CLI."""
    return [(r.name, r.verdict, r.count) for r in results]
