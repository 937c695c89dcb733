"""Fast unit tests of scenario files: units, validation, problem reports, overrides (no Kafka)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from textwrap import dedent

import pytest

from harness.api.engine import Guarantee
from harness.scenario.model import (
    ANOMALY_CLASSES,
    Comparison,
    Expect,
    Fault,
    KeySkew,
    Kill,
    Pause,
    Problem,
    Scenario,
    ScenarioError,
    apply_overrides,
    load_scenario,
    parse_comparison,
    parse_duration,
    parse_key_skew,
    parse_rate,
)
from harness.scenario.registry import engine_names

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"
KNOWN = {"embedded", "cluster"}

GOOD = """\
name: small
job: scenarios.jobs:running_sum
engines: [embedded]
guarantee: exactly_once
parallelism: 2
partitions: 4
workload: {rate: 100/s, duration: 10s}
faults:
  - {at: 2s, kill: {pick: random, restart_after: 1s}}
  - {at: 5s, pause: {role: worker, pick: 1, for: 2s}}
"""


@pytest.fixture
def scenario_file(tmp_path: Path):
    """Write a scenario file (dedented) and return its path."""
    def write(text: str, name: str = "s.yaml") -> Path:
        path = tmp_path / name
        path.write_text(dedent(text))
        return path
    return write


def problems_of(path: Path, overrides: Sequence[str] = (), engines_known: set[str] | None = None) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides, engines_known)
    lines = str(info.value).splitlines()
    assert lines == [str(p) for p in info.value.problems]
    return lines


def kill_of(fault: Fault) -> Kill:
    """The kill action of a fault the test knows is a kill."""
    assert fault.kill is not None
    return fault.kill


def pause_of(fault: Fault) -> Pause:
    """The pause action of a fault the test knows is a pause."""
    assert fault.pause is not None
    return fault.pause


# -- shipped scenarios -----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(p.stem for p in SCENARIOS.glob("*.yaml")))
def test_shipped_scenarios_load_cleanly(name):
    scenario = load_scenario(SCENARIOS / f"{name}.yaml", engines_known=engine_names())
    assert scenario.name == name
    assert scenario.description
    assert scenario.parallelism == 3 and scenario.partitions == 6
    assert all(f.at < scenario.workload.duration for f in scenario.faults)
    json.dumps(scenario.to_dict())


def test_kill_instance_alos_expects_duplicates():
    eos = load_scenario(SCENARIOS / "kill-instance-eos.yaml")
    alos = load_scenario(SCENARIOS / "kill-instance-alos.yaml")
    assert eos.guarantee is Guarantee.exactly_once and eos.expect.correct is True and eos.expect.keeps_up is True
    assert alos.guarantee is Guarantee.at_least_once and alos.expect.correct is False
    assert alos.config_for("embedded") == {"commit_interval_ms": 30000}
    assert str(alos.expect.anomalies["duplicate"]) == "> 0"
    assert [(f.at, f.kind, kill_of(f).restart_after) for f in alos.faults] == [(20.0, "kill", 5.0), (40.0, "kill", 5.0)]


def test_zombie_pauses_one_worker_past_the_session_timeout():
    scenario = load_scenario(SCENARIOS / "zombie-eos.yaml")
    (fault,) = scenario.faults
    assert fault.kind == "pause" and pause_of(fault).pick == 1 and pause_of(fault).for_ == 20.0
    assert pause_of(fault).for_ * 1000 > scenario.config_for("embedded")["session_timeout_ms"]
    assert scenario.workload.rate == 2000.0


# -- a good file, typed ----------------------------------------------------------------------

def test_a_valid_file_is_typed_with_defaults(scenario_file):
    scenario = load_scenario(scenario_file(GOOD))
    assert scenario.workload.rate == 100.0 and scenario.workload.duration == 10.0
    assert scenario.workload.keys == 1000 and scenario.workload.key_skew == KeySkew()
    assert scenario.kafka.nodes == 1
    assert (scenario.drain.timeout, scenario.drain.quiet) == (120.0, 10.0)
    assert kill_of(scenario.faults[0]).role == "worker" and kill_of(scenario.faults[0]).pick == "random"
    assert pause_of(scenario.faults[1]).for_ == 2.0
    assert scenario.expect == Expect()


def test_models_are_frozen(scenario_file):
    scenario = load_scenario(scenario_file(GOOD))
    with pytest.raises(Exception, match="frozen"):
        scenario.parallelism = 5  # type: ignore[misc]  # the assignment must fail: that is the test


def test_engine_list_and_to_dict(scenario_file):
    scenario = load_scenario(scenario_file(GOOD + "engine_config: {embedded: {commit_interval_ms: 100}}\n"
                                          "expect: {p99_latency: '< 5s', anomalies: {lost: '== 0'}}\n"))
    assert scenario.engine_list() == ["embedded"]
    assert scenario.engine_list(["cluster", "embedded"]) == ["cluster", "embedded"]
    d = scenario.to_dict()
    assert d["guarantee"] == "exactly_once"
    assert d["workload"]["key_skew"] == "uniform"
    assert d["faults"][1]["pause"]["for"] == 2.0
    assert d["expect"] == {"p99_latency": "< 5s", "anomalies": {"lost": "== 0"}}
    assert Scenario.model_validate(d) == scenario  # results.json round-trips to the same scenario


# -- units -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("2s", 2.0), ("1.5s", 1.5), ("2m", 120.0), ("1h", 3600.0), (3, 3.0), (0.25, 0.25), ("30", 30.0),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-1s", "2 days", "s", "", True, None, [1]])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("text", "rate"), [("5000/s", 5000.0), ("300/m", 5.0), (250, 250.0), ("7.5", 7.5)])
def test_parse_rate(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["-5/s", "0/s", 0, "5/x", "fast"])
def test_parse_rate_rejects_non_positive_or_malformed(text):
    with pytest.raises(ValueError):
        parse_rate(text)


def test_parse_key_skew():
    assert parse_key_skew("uniform") == KeySkew(kind="uniform")
    assert parse_key_skew("zipf(1.1)") == KeySkew(kind="zipf", s=1.1)
    assert str(parse_key_skew("zipf( 2 )")) == "zipf(2)"
    for bad in ("zipf(0)", "zipf(-1)", "zipf", "normal"):
        with pytest.raises(ValueError):
            parse_key_skew(bad)


# -- comparisons -----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "measured", "holds"), [
    ("> 0", 1, True), ("> 0", 0, False), ("== 0", 0, True), ("<= 10", 10, True), ("<= 10", 11, False),
    ("!= 3", 3, False), (">=2", 2, True), (0, 0, True), (0, 1, False),
])
def test_count_comparisons_parse_and_evaluate(text, measured, holds):
    assert parse_comparison(text).holds(measured) is holds


def test_duration_comparisons_use_seconds():
    c = parse_comparison("< 5s", "duration")
    assert c == Comparison(op="<", value=5.0, unit="duration")
    assert c.holds(4.99) and not c.holds(5.0)
    assert parse_comparison("<= 500ms", "duration").holds(0.5)
    assert str(c) == "< 5s"


@pytest.mark.parametrize(("text", "unit"), [("5s", "duration"), ("< 3q", "duration"), ("> x", "count"),
                                            ("=> 1", "count"), ("> -1", "count"), ("", "count")])
def test_malformed_comparisons_are_rejected(text, unit):
    with pytest.raises(ValueError):
        parse_comparison(text, unit)


def test_expect_unmet_lists_every_miss():
    expect = Expect.model_validate({"correct": False, "p99_latency": "< 5s", "recovery": "< 30s",
                                    "anomalies": {"duplicate": "> 0", "lost": "== 0"}, "keeps_up": True})
    assert expect.unmet(verdict="fail", anomalies={"duplicate": 12, "lost": 0}, p99_latency_s=1.0,
                        recovery_s=[3.0, 4.0], keeps_up=True) == []
    misses = expect.unmet(verdict="pass", anomalies={"duplicate": 0}, p99_latency_s=6.0,
                          recovery_s=[3.0, 31.0], keeps_up=False)
    assert [m.split(":")[0] for m in misses] == [
        "correct", "anomalies.duplicate", "anomalies.lost", "p99_latency", "recovery[1]", "keeps_up"]
    assert Expect(correct=True).unmet(verdict="unknown", anomalies={}) == [
        "correct: expected verdict pass, got unknown"]


def test_a_fault_never_recovered_from_does_not_meet_a_recovery_expectation():
    expect = Expect.model_validate({"recovery": "< 30s"})
    assert expect.unmet(verdict="pass", anomalies={}, recovery_s=[3.0, None]) == [
        "recovery[1]: expected < 30s, not measured"]


def test_anomaly_names_are_the_checkers_names():
    from harness.check import CHECKERS
    assert set(ANOMALY_CLASSES) == {c.name for c in CHECKERS}


# -- problems --------------------------------------------------------------------------------

def test_four_problems_are_reported_at_once_with_file_and_path(scenario_file):
    path = scenario_file("""\
        name: bad
        job: scenarios.jobs:no_such_job
        engines: [embedded]
        guarantee: exactly_once
        parallelism: 3
        partitions: 6
        workload: {rate: -5/s, duration: 60 seconds, keys: 10, colour: red}
        """, name="bad.yaml")
    lines = problems_of(path)
    assert len(lines) == 4
    by_path = {line.split(": ")[1]: line for line in lines}
    assert set(by_path) == {"job", "workload.rate", "workload.duration", "workload.colour"}
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert by_path["workload.rate"] == f'{path}: workload.rate: expected a positive rate like "5000/s", found "-5/s"'
    assert by_path["workload.duration"].endswith('found "60 seconds"')
    assert "expected a positive duration" in by_path["workload.duration"]
    assert "one of rate, duration, keys, key_skew, seed" in by_path["workload.colour"]
    assert by_path["workload.colour"].endswith('found unknown key "colour"')
    assert "no_such_job" in by_path["job"] and "scenarios.jobs:running_sum" in by_path["job"]


def test_missing_fields_are_found_nothing(scenario_file):
    lines = problems_of(scenario_file("""\
        name: gaps
        engines: [embedded]
        guarantee: exactly_once
        parallelism: 1
        partitions: 1
        workload: {rate: 10/s}
        faults: [{at: 1s, pause: {pick: 0}}]
        """))
    assert [line.split(": ", 1)[1] for line in lines] == [
        'job: expected a job reference module:function, like "scenarios.jobs:running_sum", found nothing',
        'workload.duration: expected a positive duration like "60s", "500ms" or "2m", found nothing',
        'faults[0].pause.for: expected a positive duration like "60s", "500ms" or "2m", found nothing',
    ]


def test_wrong_types_and_values_name_the_path(scenario_file):
    lines = problems_of(scenario_file("""\
        name: types
        job: scenarios.jobs:running_sum
        engines: [embedded, flinkk]
        guarantee: exactly
        parallelism: three
        partitions: 0
        kafka: {nodes: 2}
        engine_config: {embedded: {commit_interval_ms: [1]}}
        workload: {rate: 5/s, duration: 10s, key_skew: zipf(0), seed: true}
        faults:
          - {at: 1s, kill: {pick: -1}}
          - {at: 2s, terminate: {}, restart: {}}
          - {at: 3s}
        expect: {correct: maybe, p99_latency: 5s, anomalies: {dupes: "> 0"}}
        """), engines_known=KNOWN)
    paths = [line.split(": ")[1] for line in lines]
    assert paths == [
        "engines[1]", "guarantee", "parallelism", "partitions", "kafka.nodes", "engine_config.embedded.commit_interval_ms",
        "workload.key_skew", "workload.seed", "faults[0].kill.pick", "faults[1]", "faults[2]",
        "expect.correct", "expect.p99_latency", "expect.anomalies.dupes",
    ]
    text = "\n".join(lines)
    assert 'engines[1]: expected a known engine (cluster, embedded), found "flinkk"' in text
    assert 'guarantee: expected one of at_most_once, at_least_once, exactly_once, found "exactly"' in text
    assert 'parallelism: expected an integer >= 1, found "three"' in text
    kinds = "kill, pause, terminate, restart, partition, delay, loss, scale, upgrade"
    assert f"faults[1]: expected exactly one of {kinds}, found terminate and restart" in text
    assert f"faults[2]: expected exactly one of {kinds}, found none of them" in text


def test_a_fault_at_or_after_the_end_of_load_is_a_problem(scenario_file):
    lines = problems_of(scenario_file(GOOD), ["faults[0].at=10s", "faults[1].at=15s"])
    assert [line.split(": ", 1)[1] for line in lines] == [
        'faults[0].at: expected a time before the end of the load (10s), found "10s"',
        'faults[1].at: expected a time before the end of the load (10s), found "15s"',
    ]


def test_a_fault_after_the_end_is_reported_alongside_other_problems(scenario_file):
    lines = problems_of(scenario_file(GOOD), ["faults[1].at=1m", "parallelism=0"])
    assert [line.split(": ")[1] for line in lines] == ["parallelism", "faults[1].at"]


def test_building_a_scenario_in_code_also_checks_fault_times():
    data = {"name": "x", "job": "a:b", "engines": ["e"], "guarantee": "exactly_once", "parallelism": 1,
            "partitions": 1, "workload": {"rate": 1, "duration": 5}, "faults": [{"at": 5, "kill": {}}]}
    with pytest.raises(ValueError, match="before the end of the load"):
        Scenario.model_validate(data)


def test_a_heal_after_the_end_of_load_is_a_problem_next_to_the_others(scenario_file):
    lines = problems_of(scenario_file(GOOD), ["faults[0].kill.restart_after=9s", "faults[1].pause.for=6s"])
    assert [line.split(": ", 1)[1] for line in lines] == [
        'faults[0].kill.restart_after: expected a heal by the end of the load (10s): at most 8s after 2s, found "9s"',
        'faults[1].pause.for: expected a heal by the end of the load (10s): at most 5s after 5s, found "6s"',
    ]
    mixed = problems_of(scenario_file(GOOD), ["faults[0]={at: 3s, flood: {}}", "faults[1].pause.for=6s"])
    assert [line.split(": ", 1)[1] for line in mixed] == [
        'faults[0].flood: expected a known key (one of at, kill, pause, terminate, restart, partition, delay, loss, scale, upgrade), found unknown key '
        '"flood"',
        'faults[1].pause.for: expected a heal by the end of the load (10s): at most 5s after 5s, found "6s"',
    ]
    # a heal exactly at the end is within the load
    load_scenario(scenario_file(GOOD), ["faults[1].pause.for=5s"])


def test_building_a_scenario_in_code_also_checks_heal_times():
    data = {"name": "x", "job": "a:b", "engines": ["e"], "guarantee": "exactly_once", "parallelism": 1,
            "partitions": 1, "workload": {"rate": 1, "duration": 5},
            "faults": [{"at": 4, "pause": {"for": 2}}]}
    with pytest.raises(ValueError, match="a heal by the end of the load"):
        Scenario.model_validate(data)


def test_a_missing_file_is_one_clear_problem(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value) == f"{path}: expected a scenario file, found no such file"
    assert info.value.problems == [Problem(str(path), "", "a scenario file", "no such file")]
    assert problems_of(tmp_path) == [f"{tmp_path}: expected a scenario file, found a directory"]


def test_yaml_syntax_error_has_line_and_column(scenario_file):
    (line,) = problems_of(scenario_file("name: x\n  job: [\n"))
    assert "expected valid YAML" in line and "line 2, column 6" in line


def test_duplicate_keys_and_non_mappings_are_problems(scenario_file):
    (dup,) = problems_of(scenario_file("name: x\nname: y\n"))
    assert "duplicate key 'name'" in dup
    (top,) = problems_of(scenario_file("- a\n- b\n"))
    assert "expected a mapping of scenario keys" in top


# -- overrides -------------------------------------------------------------------------------

def test_overrides_apply_before_validation(scenario_file):
    path = scenario_file(GOOD)
    scenario = load_scenario(path, ["workload.duration=30s", "job=scenarios.jobs:running_sum_rekeyed",
                                    "faults=[]", "kafka.nodes=3", "expect.anomalies.lost='== 0'",
                                    "engine_config.embedded={commit_interval_ms: 100}"])
    assert scenario.workload.duration == 30.0
    assert scenario.job == "scenarios.jobs:running_sum_rekeyed"
    assert scenario.faults == []
    assert scenario.kafka.nodes == 3
    assert str(scenario.expect.anomalies["lost"]) == "== 0"
    assert scenario.config_for("embedded") == {"commit_interval_ms": 100}
    assert scenario.config_for("cluster") == {}


def test_override_into_a_list_element(scenario_file):
    scenario = load_scenario(scenario_file(GOOD), ["faults[1].pause.for=500ms", "faults[0].kill.pick=2"])
    assert pause_of(scenario.faults[1]).for_ == 0.5
    assert kill_of(scenario.faults[0]).pick == 2


def test_overrides_do_not_change_the_input():
    data = {"workload": {"rate": 5}}
    new, problems = apply_overrides(data, ["workload.rate=7"])
    assert (new["workload"]["rate"], data["workload"]["rate"], problems) == (7, 5, [])


def test_malformed_overrides_are_reported_with_the_rest(scenario_file):
    path = scenario_file(GOOD)
    lines = problems_of(path, ["foo", "workload..x=1", "faults[5].at=1s", "name=[", "workload.rate.x=1",
                               "workload.ratee=3"])
    rest = [line.split(": ", 1)[1] for line in lines]
    assert rest[0] == '--set: expected key=value, like "workload.duration=30s", found "foo"'
    assert rest[1].startswith("--set workload..x: expected a dotted key")
    assert rest[2] == "--set faults[5].at: expected an index below 2 at faults, found 5"
    assert rest[3].startswith('--set name: expected a YAML value, found "["')
    assert rest[4] == '--set workload.rate.x: expected a mapping at workload.rate, found "100/s"'
    assert rest[5].startswith("workload.ratee: expected a known key")
    assert len(rest) == 6


# -- workload transforms ------------------------------------------------------------------------

TRANSFORMS = GOOD.replace(
    "workload: {rate: 100/s, duration: 10s}",
    "workload: {rate: 100/s, duration: 10s, disorder: {fraction: 0.1, max_delay: 2s},\n"
    "           late: {fraction: 0.001, delay: 60s}, lagging: {partition: 1, delay: 3s},\n"
    "           idle: {partition: 2, at: 4s, for: 2s}}")


def test_workload_transforms_load_in_seconds(scenario_file):
    w = load_scenario(scenario_file(TRANSFORMS)).workload
    assert w.disorder is not None and w.late is not None and w.lagging is not None and w.idle is not None

    assert (w.disorder.fraction, w.disorder.max_delay) == (0.1, 2.0)
    assert (w.late.fraction, w.late.delay) == (0.001, 60.0)
    assert (w.lagging.partition, w.lagging.delay) == (1, 3.0)
    assert (w.idle.partition, w.idle.at, w.idle.for_) == (2, 4.0, 2.0)


def test_workload_transforms_round_trip_through_to_dict(scenario_file):
    scenario = load_scenario(scenario_file(TRANSFORMS))

    d = scenario.to_dict()

    assert d["workload"]["idle"] == {"partition": 2, "at": 4.0, "for": 2.0}
    assert d["workload"]["lagging"] == {"partition": 1, "delay": 3.0}
    assert Scenario.model_validate(d) == scenario


def test_bad_workload_transforms_are_reported_with_their_paths(scenario_file):
    path = scenario_file(GOOD.replace(
        "workload: {rate: 100/s, duration: 10s}",
        "workload: {rate: 100/s, duration: 10s, lagging: {partition: -1, delay: 3s}, idle: {partition: 0, at: 1s}}"))

    problems = problems_of(path)

    assert any("workload.lagging.partition: expected an integer >= 0, found -1" in p for p in problems)
    assert any("workload.idle.for: expected" in p and "found nothing" in p for p in problems)


def test_an_idle_period_must_end_within_the_load(scenario_file):
    path = scenario_file(GOOD.replace("workload: {rate: 100/s, duration: 10s}",
                                      "workload: {rate: 100/s, duration: 10s, idle: {partition: 0, at: 8s, for: 5s}}"))

    assert problems_of(path) == [f"{path}: workload.idle: expected an idle period that ends by the end of the load "
                                 '(10s), found "at 8s for 5s"']
