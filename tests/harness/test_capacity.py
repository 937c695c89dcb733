"""The capacity search and its judgement of a trial, without processes: each criterion fed a bad case fails."""

from __future__ import annotations

from typing import Any

import pytest

from harness.api.engine import Guarantee
from harness.capacity import CapacityRun, Criteria, capacity_problems, judge, lag_per_second, search, slope
from harness.errors import ConfigError
from harness.scenario.model import load_scenario

CRITERIA = Criteria(warmup_s=10, trial_s=30, slo_s=5.0, lag_tolerance=0.02, precision=0.1)


def _searched(limit: float, first: float, **kw: Any) -> tuple[float | None, list[float]]:
    tried: list[float] = []

    def sustained(rate: float) -> bool:
        tried.append(rate)
        return rate <= limit

    return search(first, sustained, **kw), tried


def test_the_ramp_doubles_to_the_first_failure_then_bisects_to_the_precision():
    found, tried = _searched(70_000, 10_000)
    assert tried[:4] == [10_000, 20_000, 40_000, 80_000]
    assert found is not None and found <= 70_000 and (70_000 - found) / found <= 0.1 + 1e-9
    assert all(r <= 70_000 for r in tried if r != 80_000 and r <= found)


def test_a_first_rate_too_high_halves_until_one_is_sustained():
    found, tried = _searched(3_000, 20_000)
    assert tried[:4] == [20_000, 10_000, 5_000, 2_500]
    assert found is not None and 2_500 <= found <= 3_000


def test_no_sustainable_rate_is_none_and_the_cap_ends_a_ramp_that_never_fails():
    assert _searched(0, 10_000)[0] is None
    found, tried = _searched(10**9, 10_000, max_rate=50_000)
    assert found == 50_000 and tried == [10_000, 20_000, 40_000, 50_000]


def _run(valid: bool = True, verdict: str = "pass", lost: int = 0) -> dict[str, Any]:
    return {"valid": valid, "invalid_reason": "" if valid else "the generator fell 3.00 s behind its schedule",
            "verdict": verdict, "anomalies": {"lost": lost}}


FLAT = [1000 + (50 if i % 2 else -50) for i in range(30)]  # a commit interval's saw-tooth, no trend


def test_a_trial_that_keeps_up_within_the_slo_is_sustainable():
    ok, why, trend = judge(10_000, _run(), FLAT, 900.0, CRITERIA, Guarantee.exactly_once)
    assert ok and "kept up" in why and abs(trend) < 10


@pytest.mark.parametrize(("run", "lag", "p99", "expected"), [
    (_run(valid=False), FLAT, 900.0, "invalid: the generator fell"),
    (_run(verdict="fail", lost=3), FLAT, 900.0, "outputs do not match inputs (verdict fail, 3 lost)"),
    (_run(), [1000 + 300 * i for i in range(30)], 900.0, "the lag grew by 300 events/s"),
    (_run(), FLAT, 5200.0, "p99 5,200 ms is above the SLO of 5,000 ms"),
    (_run(), FLAT, None, "no output of the trial's events"),
], ids=["invalid", "wrong", "lag-grows", "slo", "no-output"])
def test_each_criterion_fails_a_trial_on_its_own(run, lag, p99, expected):
    ok, why, _ = judge(10_000, run, lag, p99, CRITERIA, Guarantee.exactly_once)
    assert not ok and expected in why


def test_at_least_once_allows_duplicates_but_not_loss():
    assert judge(10_000, _run(verdict="fail"), FLAT, 900.0, CRITERIA, Guarantee.at_least_once)[0]
    assert not judge(10_000, _run(verdict="fail", lost=1), FLAT, 900.0, CRITERIA, Guarantee.at_least_once)[0]


def test_lag_is_scheduled_minus_received_per_second():
    t0 = 1_700_000_000.0
    receipts = [int((t0 + 0.5) * 1e6)] * 5 + [int((t0 + 1.5) * 1e6)] * 20 + [int((t0 + 9) * 1e6)]
    assert lag_per_second(t0, 3, [10, 10, 10], receipts) == [5, -5, 5]
    assert slope([0, 2, 4, 6]) == pytest.approx(2.0) and slope([7]) == 0.0


def test_scenarios_with_faults_windows_or_a_bounded_load_are_refused():
    steady = load_scenario("scenarios/capacity-running-sum-eos.yaml")
    assert capacity_problems(steady) == []
    faulty = load_scenario("scenarios/kill-instance-eos.yaml")
    assert any("faults: capacity is measured under a steady load" in p for p in capacity_problems(faulty))
    windowed = load_scenario("scenarios/same-input-windowed-count.yaml")
    assert any("one output per window" in p for p in capacity_problems(windowed))
    bounded = load_scenario("scenarios/bounded-eos.yaml")
    assert any("workload.bounded" in p for p in capacity_problems(bounded))


def test_a_trial_runs_the_scenario_at_its_rate_for_the_warmup_and_the_trial(tmp_path):
    scenario = load_scenario("scenarios/capacity-running-sum-eos.yaml")
    run = CapacityRun(scenario, None, tmp_path, CRITERIA, 1, print)  # type: ignore[arg-type]
    trial = run.trial_scenario(33_000.0)
    assert (trial.workload.rate, trial.workload.duration, trial.faults) == (33_000.0, 40.0, [])
    assert trial.workload.seed == scenario.workload.seed and trial.name == scenario.name
    with pytest.raises(ConfigError, match="--repetitions 0"):
        CapacityRun(scenario, None, tmp_path, CRITERIA, 0, print)  # type: ignore[arg-type]
    assert CRITERIA.lag_bound(10_000) == 150_000
