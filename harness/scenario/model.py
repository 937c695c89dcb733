"""Scenario files as typed, frozen, validated data.

A scenario is plain data: a job reference, a workload, a list of
faults and what to expect of the run. :func:`load_scenario` reads a YAML file,
applies ``--set key=value`` overrides, validates everything and either returns
a :class:`Scenario` or raises one :class:`ScenarioError` that lists *every*
problem, each naming the file, the path to the bad value, what was expected and
what was found. Loading starts nothing.

Units: durations are ``"500ms"``, ``"2s"``, ``"1.5s"``, ``"2m"``, ``"1h"`` or a
bare number of seconds, stored as float seconds; rates are ``"5000/s"``,
``"300/m"`` or a bare number per second, stored as float events per second.
"""

from __future__ import annotations

import copy
import json
import math
import operator
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import annotated_types
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from harness.api.engine import BROKER_PICKS, Guarantee
from harness.api.pipeline import load_job
from harness.errors import ConfigError

__all__ = [
    "ANOMALY_CLASSES",
    "FAULT_KINDS",
    "Comparison",
    "Disorder",
    "DrainSpec",
    "Duration",
    "Expect",
    "Fault",
    "Idle",
    "KafkaSpec",
    "KeySkew",
    "Kill",
    "Lagging",
    "Late",
    "Pause",
    "PositiveDuration",
    "Problem",
    "Rate",
    "Restart",
    "Scenario",
    "ScenarioError",
    "Terminate",
    "Workload",
    "apply_overrides",
    "format_seconds",
    "load_scenario",
    "parse_comparison",
    "parse_duration",
    "parse_key_skew",
    "parse_rate",
]

#: Anomaly classes the checkers report (the names of ``harness.check.CHECKERS``);
#: ``expect.anomalies`` keys must be one of these. Kept here so loading a scenario imports no checker.
ANOMALY_CLASSES: tuple[str, ...] = (
    "lost", "duplicate", "unexpected", "inconsistent", "order", "aborted_read", "hanging_txn",
    "window_accounting", "window_duplicate", "definitely_late", "late_metric",
)

#: The fault actions a fault entry may name, exactly one per entry.
FAULT_KINDS: tuple[str, ...] = ("kill", "pause", "terminate", "restart", "partition", "delay", "loss", "scale",
                                "upgrade")

_FAULT_AFTER_END = "fault_after_end"


# -- problems and the error ------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario: where it is, what was expected, what was found."""

    file: str
    path: str
    expected: str
    found: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}: " if self.path else f"{self.file}: "
        return f"{where}expected {self.expected}, found {self.found}"


class ScenarioError(ConfigError):
    """A scenario file (or its overrides) cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# -- unit parsing ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Expected:
    """Annotation marker: how to describe a field's valid values in a problem."""

    text: str


_DURATION_EXPECTED = 'a duration like "2s", "500ms", "1.5m" or a number of seconds'
_POSITIVE_DURATION_EXPECTED = 'a positive duration like "60s", "500ms" or "2m"'
_RATE_EXPECTED = 'a positive rate like "5000/s"'
_KEY_SKEW_EXPECTED = 'uniform or zipf(<s>) with s > 0, like "zipf(1.1)"'
_PICK_EXPECTED = ("random, a process index >= 0 (for role broker: a node id), all (network faults), or for "
                  "role broker one of " + ", ".join(BROKER_PICKS))
_SCALAR_EXPECTED = "a scalar (a string, number or true/false), or a mapping of names to scalars"

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_RE = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m|h)?\s*$")
_RATE_UNITS = {"s": 1.0, "m": 1.0 / 60.0, "h": 1.0 / 3600.0}
_RATE_RE = re.compile(r"^\s*(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?:/\s*(?P<unit>s|m|h))?\s*$")
_ZIPF_RE = re.compile(r"^\s*zipf\s*\(\s*(?P<s>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*\)\s*$")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_with_unit(value: object, pattern: re.Pattern, units: Mapping[str, float], expected: str,
                     ok: Callable[[float], bool]) -> float:
    """A bare number, or ``<number><unit>`` matched by ``pattern`` and scaled by ``units`` (default unit "s")."""
    if _is_number(value):
        quantity = float(value)  # type: ignore[arg-type]
    elif isinstance(value, str) and (m := pattern.match(value)):
        quantity = float(m["num"]) * units[m["unit"] or "s"]
    else:
        msg = f"{value!r} is not {expected}"
        raise ValueError(msg)
    if not math.isfinite(quantity) or not ok(quantity):
        msg = f"{value!r} is not {expected}"
        raise ValueError(msg)
    return quantity


def parse_duration(value: object) -> float:
    """``"500ms"``, ``"2s"``, ``"1.5m"``, ``"1h"`` or a bare number of seconds -> float seconds (>= 0).

    Raises ValueError when the value is not such a duration.
    """
    return _parse_with_unit(value, _DURATION_RE, _DURATION_UNITS, _DURATION_EXPECTED, lambda x: x >= 0)


def parse_rate(value: object) -> float:
    """``"5000/s"``, ``"300/m"`` or a bare number per second -> float events per second (> 0).

    Raises ValueError when the value is not a positive rate.
    """
    return _parse_with_unit(value, _RATE_RE, _RATE_UNITS, _RATE_EXPECTED, lambda x: x > 0)


def format_seconds(seconds: float) -> str:
    """Seconds as a short duration string that :func:`parse_duration` reads back (``60.0 -> "60s"``)."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def _custom(expected: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError("scenario_value", "{expected}", {"expected": expected, **ctx})


def _duration_validator(value: object) -> object:
    try:
        return parse_duration(value)
    except ValueError:
        raise _custom(_DURATION_EXPECTED) from None


def _positive_duration_validator(value: object) -> object:
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise _custom(_POSITIVE_DURATION_EXPECTED) from None
    if seconds <= 0:
        raise _custom(_POSITIVE_DURATION_EXPECTED)
    return seconds


def _rate_validator(value: object) -> object:
    try:
        return parse_rate(value)
    except ValueError:
        raise _custom(_RATE_EXPECTED) from None


#: Float seconds, written as ``"2s"``, ``"500ms"``, ``"1.5m"``, ``"1h"`` or a bare number of seconds.
Duration = Annotated[float, BeforeValidator(_duration_validator), _Expected(_DURATION_EXPECTED)]
#: A :data:`Duration` that must be > 0.
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration_validator),
                             _Expected(_POSITIVE_DURATION_EXPECTED)]
#: Float events per second (> 0), written as ``"5000/s"``, ``"300/m"`` or a bare number per second.
Rate = Annotated[float, BeforeValidator(_rate_validator), _Expected(_RATE_EXPECTED)]

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
Name = Annotated[str, Strict(), Field(pattern=_NAME_PATTERN),
                 _Expected('a name of letters, digits, ".", "_" or "-", like "kill-instance-eos"')]
EngineName = Annotated[str, Strict(), Field(pattern=_NAME_PATTERN),
                       _Expected('an installed engine name (streamgauge engines lists them)')]
_JOB_EXPECTED = 'a job reference module:function, like "scenarios.jobs:running_sum"'
JobRef = Annotated[str, Strict(), Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"), _Expected(_JOB_EXPECTED)]
PositiveInt = Annotated[int, Strict(), Field(ge=1), _Expected("an integer >= 1")]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0), _Expected("an integer >= 0")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0), _Expected("a fraction between 0 and 1")]
Role = Annotated[str, Strict(), Field(pattern=_NAME_PATTERN),
                 _Expected('a role: "worker" (the engine\'s processing processes), one of the engine\'s roles, '
                           'like "jobmanager", or "broker"')]
AnomalyName = Annotated[Literal[ANOMALY_CLASSES],  # type: ignore[valid-type]
                        _Expected("an anomaly class (one of " + ", ".join(ANOMALY_CLASSES) + ")")]


# -- key skew --------------------------------------------------------------------------------

class KeySkew(BaseModel):
    """How keys are drawn: ``uniform``, or ``zipf`` with exponent ``s`` > 0."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["uniform", "zipf"] = "uniform"
    s: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _s_matches_kind(self) -> KeySkew:
        if (self.kind == "zipf") != (self.s is not None):
            raise _custom(_KEY_SKEW_EXPECTED, found=json.dumps(str(self)))
        return self

    def __str__(self) -> str:
        return f"zipf({self.s:g})" if self.kind == "zipf" else "uniform"


def parse_key_skew(text: str) -> KeySkew:
    """``"uniform"`` or ``"zipf(<s>)"`` with s > 0 -> :class:`KeySkew`; ValueError otherwise."""
    if text.strip() == "uniform":
        return KeySkew()
    m = _ZIPF_RE.match(text)
    if m and float(m["s"]) > 0:
        return KeySkew(kind="zipf", s=float(m["s"]))
    msg = f"{text!r} is not {_KEY_SKEW_EXPECTED}"
    raise ValueError(msg)


def _key_skew_validator(value: object) -> object:
    if isinstance(value, str):
        try:
            return parse_key_skew(value)
        except ValueError:
            raise _custom(_KEY_SKEW_EXPECTED) from None
    if isinstance(value, (KeySkew, Mapping)):
        return value
    raise _custom(_KEY_SKEW_EXPECTED)


KeySkewField = Annotated[KeySkew, BeforeValidator(_key_skew_validator), PlainSerializer(str, return_type=str),
                         _Expected(_KEY_SKEW_EXPECTED)]


# -- comparisons -----------------------------------------------------------------------------

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
}
_COMPARISON_RE = re.compile(r"^\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>\S.*?)\s*$")
_COUNT_COMPARISON_EXPECTED = 'a comparison with a count, like "> 0", "== 0" or "<= 10"'
_DURATION_COMPARISON_EXPECTED = 'a comparison with a duration, like "< 5s"'


class Comparison(BaseModel):
    """``op value``, e.g. ``< 5s`` (a duration, in seconds) or ``> 0`` (a count)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: float
    unit: Literal["count", "duration"] = "count"

    def holds(self, measured: float) -> bool:
        """True when ``measured <op> value`` (durations in seconds)."""
        return _OPS[self.op](measured, self.value)

    def __str__(self) -> str:
        shown = format_seconds(self.value) if self.unit == "duration" else f"{self.value:g}"
        return f"{self.op} {shown}"


def parse_comparison(text: str | int | float, unit: Literal["count", "duration"] = "count") -> Comparison:
    """Parse ``"op value"`` (ops ``< <= > >= == !=``); ``value`` is a count >= 0 or a duration.

    A bare count means ``== count``. Raises ValueError when the text is not such a comparison.
    """
    expected = _DURATION_COMPARISON_EXPECTED if unit == "duration" else _COUNT_COMPARISON_EXPECTED
    if unit == "count" and _is_number(text) and text >= 0:  # type: ignore[operator]
        return Comparison(op="==", value=float(text), unit=unit)
    m = _COMPARISON_RE.match(text) if isinstance(text, str) else None
    if not m:
        msg = f"{text!r} is not {expected}"
        raise ValueError(msg)
    if unit == "duration":
        value = parse_duration(m["value"])
    else:
        try:
            value = float(m["value"])
        except ValueError:
            msg = f"{text!r} is not {expected}"
            raise ValueError(msg) from None
        if not math.isfinite(value) or value < 0:
            msg = f"{text!r} is not {expected}"
            raise ValueError(msg)
    return Comparison(op=m["op"], value=value, unit=unit)


def _comparison_validator(unit: Literal["count", "duration"]) -> Callable[[object], object]:
    expected = _DURATION_COMPARISON_EXPECTED if unit == "duration" else _COUNT_COMPARISON_EXPECTED

    def validate(value: object) -> object:
        if isinstance(value, Comparison):
            return value
        try:
            return parse_comparison(value, unit)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            raise _custom(expected) from None

    return validate


CountComparison = Annotated[Comparison, BeforeValidator(_comparison_validator("count")),
                            PlainSerializer(str, return_type=str), _Expected(_COUNT_COMPARISON_EXPECTED)]
DurationComparison = Annotated[Comparison, BeforeValidator(_comparison_validator("duration")),
                               PlainSerializer(str, return_type=str), _Expected(_DURATION_COMPARISON_EXPECTED)]


# -- the models ------------------------------------------------------------------------------

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _pick_validator(value: object) -> object:
    if value in ("random", "all") or value in BROKER_PICKS or (
            isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise _custom(_PICK_EXPECTED)


Pick = Annotated[Literal["random", "all", "leader_of_input", "leader_of_output", "txn_coordinator", "controller"] | int, BeforeValidator(_pick_validator), _Expected(_PICK_EXPECTED)]


class _Action(_Model):
    """Which process a fault hits: ``role`` (``worker`` = the engine's processing processes) and ``pick``."""

    role: Role = "worker"
    pick: Pick = "random"


class Kill(_Action):
    """SIGKILL the process; start a replacement after ``restart_after`` seconds when given."""

    restart_after: Duration | None = None


class Pause(_Action):
    """SIGSTOP the process for ``for_`` seconds (``for`` in YAML), then SIGCONT."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    for_: PositiveDuration = Field(alias="for")


class Terminate(_Action):
    """SIGTERM the process (a graceful stop)."""


class Restart(_Action):
    """Start a previously stopped process again."""


class _NetworkAction(_Model):
    """Which workers a network fault hits (``random``, an index, or ``all``) and for how long (``for``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    pick: Pick = "random"
    for_: PositiveDuration = Field(alias="for")


class Partition(_NetworkAction):
    """Cut the workers off from the brokers (nftables drops in their namespaces), then heal."""


class Delay(_NetworkAction):
    """Hold the workers' traffic to and from the brokers ``ms`` ± ``jitter_ms`` (a proxy per worker)."""

    ms: float = Field(gt=0.0)
    jitter_ms: float = Field(0.0, ge=0.0)


class Loss(_NetworkAction):
    """Drop ``fraction`` of the workers' packets to and from the brokers."""

    fraction: Fraction


class Scale(_Model):
    """Run the job on ``to`` workers from now on (instances, or TaskManager slots x parallelism)."""

    to: PositiveInt


class Upgrade(_Model):
    """Stop the job with its state (a savepoint, or every instance's last commit) and start it again from it."""


FaultAction = Kill | Pause | Terminate | Restart | Partition | Delay | Loss | Scale | Upgrade


class Fault(_Model):
    """At ``at`` seconds into the load, do exactly one of kill / pause / terminate / restart."""

    at: Duration
    kill: Kill | None = None
    pause: Pause | None = None
    terminate: Terminate | None = None
    restart: Restart | None = None
    partition: Partition | None = None
    delay: Delay | None = None
    loss: Loss | None = None
    scale: Scale | None = None
    upgrade: Upgrade | None = None

    @model_validator(mode="after")
    def _exactly_one_action(self) -> Fault:
        named = [k for k in FAULT_KINDS if getattr(self, k) is not None]
        if len(named) != 1:
            found = " and ".join(named) if named else "none of them"
            raise _custom("exactly one of " + ", ".join(FAULT_KINDS), found=found)
        return self

    @property
    def kind(self) -> str:
        """``kill``, ``pause``, ``terminate`` or ``restart``."""
        return next(k for k in FAULT_KINDS if getattr(self, k) is not None)

    @property
    def action(self) -> FaultAction:
        """The one action of this fault."""
        return getattr(self, self.kind)


class Disorder(_Model):
    """Delay a ``fraction`` of events by up to ``max_delay`` (event-time disorder within bounds)."""

    fraction: Fraction
    max_delay: Duration


class Late(_Model):
    """Make a ``fraction`` of events late by ``delay`` (beyond any watermark bound), from ``after`` into the load."""

    fraction: Fraction
    delay: Duration
    after: Duration = 5.0


class Lagging(_Model):
    """Every event of Kafka partition ``partition`` has its event time moved back by ``delay`` (a lagging partition)."""

    partition: NonNegativeInt
    delay: Duration


class Idle(_Model):
    """Partition ``partition`` goes idle at ``at`` for ``for_`` seconds (``for`` in YAML), then catches up.

    Its events scheduled in [at, at + for) are held back and sent in one burst
    at ``at + for``, keeping their old event times.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    partition: NonNegativeInt
    at: Duration
    for_: PositiveDuration = Field(alias="for")


_GENERATORS_EXPECTED = '"auto" or a number of processes >= 1'


def _generators_validator(value: object) -> object:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise _custom(_GENERATORS_EXPECTED)


Generators = Annotated[Literal["auto"] | int, BeforeValidator(_generators_validator), _Expected(_GENERATORS_EXPECTED)]

#: the rate one generator process holds on its schedule with room to spare (events/s; measured in
#: benchmarks/, where one process alone reaches more)
GENERATOR_EPS = 50_000


class Workload(_Model):
    """The open-loop load: ``rate`` events/s for ``duration`` seconds over ``keys`` keys, seeded.

    ``disorder``, ``late``, ``lagging`` and ``idle`` transform the schedule,
    each from its own seeded random stream, so adding one changes
    neither the events' content nor another transform's choices. A partition
    named by ``lagging`` or ``idle`` is a Kafka partition of the input topic.
    """

    rate: Rate
    duration: PositiveDuration
    keys: PositiveInt = 1000
    key_skew: KeySkewField = KeySkew()
    seed: Annotated[int, Strict(), _Expected("an integer")] = 0
    max_schedule_lag: Duration = 2.0
    disorder: Disorder | None = None
    late: Late | None = None
    lagging: Lagging | None = None
    idle: Idle | None = None
    #: event times on a fixed epoch: event i's ``et`` is this instant plus its offset in the schedule, so two
    #: runs of one seed write the same events (reference against real compares them); None: the wall clock
    event_epoch: datetime | None = None
    #: the whole input is written first, then the job reads it to its end and finishes by itself (the cluster
    #: models only: the embedded models are unbounded)
    bounded: Annotated[bool, Strict(), _Expected("true or false")] = False
    #: how many generator processes share the schedule (by partition); auto: enough for the rate, at most one
    #: per core and per partition
    generators: Generators = "auto"

    def generator_processes(self, partitions: int) -> int:
        """The generator processes for this load on a topic of ``partitions`` (``generators``, auto resolved:
        one per :data:`GENERATOR_EPS` events/s, at most one per core and per partition)."""
        if self.generators != "auto":
            return min(self.generators, partitions)
        wanted = math.ceil(self.rate / GENERATOR_EPS)
        return max(1, min(wanted, os.cpu_count() or 1, partitions))

    @property
    def event_epoch_ms(self) -> int | None:
        """``event_epoch`` in ms since the Unix epoch (a time without a zone is UTC), None when unset."""
        if self.event_epoch is None:
            return None
        epoch = self.event_epoch if self.event_epoch.tzinfo else self.event_epoch.replace(tzinfo=UTC)
        return int(epoch.timestamp() * 1000)

    @model_validator(mode="after")
    def _idle_within_load(self) -> Workload:
        if self.idle is not None and self.idle.at + self.idle.for_ > self.duration:
            raise _custom(f"an idle period that ends by the end of the load ({format_seconds(self.duration)})",
                          found=json.dumps(f"at {format_seconds(self.idle.at)} for {format_seconds(self.idle.for_)}"),
                          path="workload.idle")
        return self

    @property
    def total_events(self) -> int:
        """How many events the schedule holds."""
        return round(self.rate * self.duration)


class KafkaSpec(_Model):
    """The broker set-up a scenario needs: 1 node, or 3 for broker faults."""

    nodes: Literal[1, 3] = 1


class DrainSpec(_Model):
    """After the load: wait up to ``timeout`` for outputs, done once none arrived for ``quiet``."""

    timeout: PositiveDuration = 120.0
    quiet: Duration = 10.0


class Expect(_Model):
    """What a run of this scenario must show; every field is optional.

    ``correct: true`` means the verdict must be ``pass``; ``false`` means it must not be.
    """

    correct: Annotated[bool, Strict(), _Expected("true or false")] | None = None
    p99_latency: DurationComparison | None = None
    recovery: DurationComparison | None = None
    anomalies: dict[AnomalyName, CountComparison] = Field(default_factory=dict)
    keeps_up: Annotated[bool, Strict(), _Expected("true or false")] | None = None

    def unmet(self, *, verdict: str, anomalies: Mapping[str, int], p99_latency_s: float | None = None,
              recovery_s: Sequence[float | None] = (), keeps_up: bool | None = None) -> list[str]:
        """Describe every expectation the measured run does not meet (empty: all met).

        A measurement that is missing (``None``, an anomaly class not reported,
        no recovery times, a fault it never recovered from) does not meet an
        expectation about it.
        """
        unmet: list[str] = []
        if self.correct is True and verdict != "pass":
            unmet.append(f"correct: expected verdict pass, got {verdict}")
        if self.correct is False and verdict == "pass":
            unmet.append("correct: expected a verdict other than pass, got pass")
        for name, comparison in self.anomalies.items():
            count = anomalies.get(name)
            if count is None:
                unmet.append(f"anomalies.{name}: expected {comparison}, not reported")
            elif not comparison.holds(count):
                unmet.append(f"anomalies.{name}: expected {comparison}, got {count}")
        if self.p99_latency is not None:
            if p99_latency_s is None:
                unmet.append(f"p99_latency: expected {self.p99_latency}, not measured")
            elif not self.p99_latency.holds(p99_latency_s):
                unmet.append(f"p99_latency: expected {self.p99_latency}, got {format_seconds(p99_latency_s)}")
        if self.recovery is not None:
            if not recovery_s:
                unmet.append(f"recovery: expected {self.recovery}, not measured")
            for i, seconds in enumerate(recovery_s):
                if seconds is None:
                    unmet.append(f"recovery[{i}]: expected {self.recovery}, not measured")
                elif not self.recovery.holds(seconds):
                    unmet.append(f"recovery[{i}]: expected {self.recovery}, got {format_seconds(seconds)}")
        if self.keeps_up is not None and keeps_up != self.keeps_up:
            unmet.append(f"keeps_up: expected {str(self.keeps_up).lower()}, got {keeps_up}")
        return unmet


def _scalar_validator(value: object) -> object:
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, (str, int, float, bool))
                                          for k, v in value.items()):
        return dict(value)
    raise _custom(_SCALAR_EXPECTED)


EngineConfigValue = Annotated[bool | int | float | str | dict[str, bool | int | float | str],
                              BeforeValidator(_scalar_validator), _Expected(_SCALAR_EXPECTED)]


class Scenario(_Model):
    """One scenario: a job, where and how to run it, the load, the faults and the expectations."""

    name: Name
    description: Annotated[str, Strict(), _Expected("a string")] | None = None
    job: JobRef
    engines: Annotated[list[EngineName], Field(min_length=1),
                       _Expected("a non-empty list of installed engine names (streamgauge engines lists them)")]
    guarantee: Guarantee
    parallelism: PositiveInt
    partitions: PositiveInt
    kafka: KafkaSpec = KafkaSpec()
    engine_config: dict[EngineName, dict[str, EngineConfigValue]] = Field(default_factory=dict)
    workload: Workload
    faults: list[Fault] = Field(default_factory=list)
    drain: DrainSpec = DrainSpec()
    expect: Expect = Expect()
    #: per engine, expectations that stand in for ``expect``'s for the fields they set: a real system's
    #: known behaviour (a finding) recorded as its expected result, so that the exit code still catches change
    engine_expect: dict[EngineName, Expect] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _faults_within_load(self) -> Scenario:
        for i, fault in enumerate(self.faults):
            if fault.at >= self.workload.duration:
                raise PydanticCustomError(_FAULT_AFTER_END, "{expected}", {
                    "expected": _fault_at_expected(self.workload.duration),
                    "found": json.dumps(format_seconds(fault.at)), "path": f"faults[{i}].at"})
            action = {fault.kind: fault.action.model_dump(by_alias=True)}
            for problem in _heal_after_end("", i, action, fault.at, self.workload.duration):
                raise PydanticCustomError(_FAULT_AFTER_END, "{expected}", {
                    "expected": problem.expected, "found": problem.found, "path": problem.path})
        return self

    def config_for(self, engine: str) -> dict[str, Any]:
        """The engine options for ``engine`` (``engine_config`` is keyed by engine name)."""
        return dict(self.engine_config.get(engine, {}))

    def expect_for(self, engine: str) -> Expect:
        """The expectations of a run on ``engine``: ``expect``, with ``engine_expect[engine]``'s fields in place."""
        override = self.engine_expect.get(engine)
        if override is None:
            return self.expect
        fields = {name: getattr(override, name) for name in override.model_fields_set}
        return self.expect.model_copy(update=fields)

    def engine_list(self, override: Sequence[str] | None = None) -> list[str]:
        """The engines to run: ``override`` when given (any known engines), else the scenario's list."""
        return list(override) if override else list(self.engines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (durations in seconds, rates in events/s, comparisons as text) for results.json."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _fault_at_expected(duration: float) -> str:
    return f"a time before the end of the load ({format_seconds(duration)})"


# -- problems from pydantic errors -----------------------------------------------------------

def _format_path(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def show(value: object, limit: int = 80) -> str:
    """A found value as the user would recognise it: strings quoted, YAML spellings for the rest."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif _is_number(value):
        text = f"{value}"
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _strip(annotation: Any) -> tuple[Any, list[Any]]:
    """Peel ``Annotated`` and ``X | None``; return the core type and the metadata met on the way."""
    metadata: list[Any] = []
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            metadata.extend(annotation.__metadata__)
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation, metadata
            annotation = args[0]
        else:
            return annotation, metadata


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _model_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _field_of(model: type[BaseModel], key: str) -> tuple[Any, list[Any]] | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            core, meta = _strip(info.annotation)
            return core, [*info.metadata, *meta]
    return None


def _annotation_at(loc: Sequence[int | str]) -> tuple[Any, list[Any]] | None:
    """The (core type, metadata) of the value at ``loc`` inside a Scenario, or None if unknown."""
    current: tuple[Any, list[Any]] = (Scenario, [])
    for i, part in enumerate(loc):
        tp = current[0]
        origin = typing.get_origin(tp)
        if _is_model(tp) and isinstance(part, str):
            found = _field_of(tp, part)
            if found is None:
                return None
            current = found
        elif origin is list and isinstance(part, int):
            current = _strip(typing.get_args(tp)[0])
        elif origin is dict:
            key_type, value_type = typing.get_args(tp)
            if part == "[key]":
                current = _strip(key_type)
            elif i + 1 < len(loc) and loc[i + 1] == "[key]":
                continue
            else:
                current = _strip(value_type)
        elif part == "[key]":
            continue
        else:
            return None
    return current


def _describe(tp: Any, metadata: Sequence[Any]) -> str:
    for m in metadata:
        if isinstance(m, _Expected):
            return m.text
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, Enum):
        return "one of " + ", ".join(str(e.value) for e in tp)
    if _is_model(tp):
        return "a mapping with keys " + ", ".join(_model_keys(tp))
    if tp is bool:
        return "true or false"
    if tp is int:
        bound = next((f" >= {m.ge}" for m in metadata if isinstance(m, annotated_types.Ge)), "")
        return "an integer" + bound
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if typing.get_origin(tp) is list:
        return "a list"
    if typing.get_origin(tp) is dict:
        return "a mapping"
    return "a valid value"


def _problem_from_error(file: str, error: Mapping[str, Any]) -> Problem:
    loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _annotation_at(loc[:-1])
        keys = _model_keys(parent[0]) if parent and _is_model(parent[0]) else []
        expected = "a known key (one of " + ", ".join(keys) + ")" if keys else "no key here"
        return Problem(file, _format_path(loc), expected, f"unknown key {show(str(loc[-1]))}")
    path = ctx.get("path") or _format_path(loc)
    if kind in ("scenario_value", _FAULT_AFTER_END):
        expected = str(ctx["expected"])
    else:
        at = _annotation_at(loc)
        expected = _describe(*at) if at else str(error.get("msg", "a valid value")).lower()
    if kind == "missing":
        found = "nothing"
    elif "found" in ctx:
        found = str(ctx["found"])
    elif loc and loc[-1] == "[key]":
        found = show(loc[-2])
    else:
        found = show(error.get("input"))
    return Problem(file, path, expected, found)


# -- cross checks that need more than one field, or the outside world ------------------------

def _try(parse: Callable[[object], float], value: object) -> float | None:
    try:
        return parse(value)
    except (ValueError, TypeError):
        return None


def _cross_problems(file: str, data: Mapping[str, Any], reported: set[str],
                    engines_known: set[str] | None) -> list[Problem]:
    """Checks on the raw data that run even when other fields are invalid (so all problems show at once)."""
    problems: list[Problem] = []
    job = data.get("job")
    if isinstance(job, str) and "job" not in reported:
        try:
            load_job(job)
        except ConfigError as e:
            problems.append(Problem(file, "job", "a job that loads, like \"scenarios.jobs:running_sum\"",
                                    f"{show(job)} ({e})"))
        except Exception as e:  # noqa: BLE001 - user code: any failure is a problem, not a traceback
            problems.append(Problem(file, "job", "a job that loads, like \"scenarios.jobs:running_sum\"",
                                    f"{show(job)} ({type(e).__name__}: {e})"))
    engines = data.get("engines")
    if engines_known is not None and isinstance(engines, list):
        known = ", ".join(sorted(engines_known)) or "none is installed"
        for i, name in enumerate(engines):
            if isinstance(name, str) and name not in engines_known and f"engines[{i}]" not in reported:
                problems.append(Problem(file, f"engines[{i}]", f"a known engine ({known})", show(name)))
    workload = data.get("workload")
    duration = _try(parse_duration, workload.get("duration")) if isinstance(workload, Mapping) else None
    faults = data.get("faults")
    if duration is not None and isinstance(faults, list):
        for i, fault in enumerate(faults):
            at = _try(parse_duration, fault.get("at")) if isinstance(fault, Mapping) else None
            if at is not None and at >= duration:
                problems.append(Problem(file, f"faults[{i}].at", _fault_at_expected(duration),
                                        show(fault.get("at"))))
            elif at is not None:
                problems += _heal_after_end(file, i, fault, at, duration)
    return problems


def _heal_after_end(file: str, index: int, fault: Mapping[str, Any], at: float, duration: float) -> list[Problem]:
    """A fault that heals (``kill.restart_after``, ``pause.for``: the kind's heal key) after the load ends."""
    from harness.faults.kinds import KINDS

    out = []
    for name, kind in KINDS.items():
        action = fault.get(name)
        if kind.heal_key is None or not isinstance(action, Mapping):
            continue
        after = _try(parse_duration, action.get(kind.heal_key))
        if after is not None and at + after > duration:
            out.append(Problem(file, f"faults[{index}].{name}.{kind.heal_key}",
                               f"a heal by the end of the load ({format_seconds(duration)}): at most "
                               f"{format_seconds(duration - at)} after {format_seconds(at)}",
                               show(action.get(kind.heal_key))))
    return out


def _validate(file: str, data: Mapping[str, Any], engines_known: set[str] | None) -> tuple[Scenario | None,
                                                                                            list[Problem]]:
    scenario: Scenario | None = None
    problems: list[Problem] = []
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        # fault-after-end is reported by the cross checks, which run whatever else is wrong
        problems = [_problem_from_error(file, err) for err in e.errors() if err["type"] != _FAULT_AFTER_END]
    reported = {p.path for p in problems}
    problems += _cross_problems(file, data, reported, engines_known)
    problems.sort(key=_field_order)
    return (None if problems else scenario), problems


def _field_order(problem: Problem) -> int:
    """Report problems in the order the scenario's keys are documented (a stable sort keeps the rest)."""
    top = re.split(r"[.\[]", problem.path, maxsplit=1)[0]
    order = [f.alias or name for name, f in Scenario.model_fields.items()]
    return order.index(top) if top in order else len(order)


# -- overrides -------------------------------------------------------------------------------

_OVERRIDE_EXPECTED = 'key=value, like "workload.duration=30s"'
_SEGMENT_RE = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)(?P<idx>(?:\[\d+\])*)$")


def _parse_key(key: str) -> list[str | int] | None:
    parts: list[str | int] = []
    for segment in key.split("."):
        m = _SEGMENT_RE.match(segment)
        if not m:
            return None
        parts.append(m["key"])
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m["idx"]))
    return parts


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str],
                    file: str = "<overrides>") -> tuple[dict[str, Any], list[Problem]]:
    """Apply ``key=value`` overrides to a copy of raw scenario data, before validation.

    ``key`` is a dotted path with optional list indexes (``workload.duration``,
    ``faults[0].at``); missing mappings on the way are created. ``value`` is read
    as a YAML value (``30s``, ``[]``, ``{nodes: 3}``). Returns the new data and
    the problems with overrides that could not be applied.
    """
    result = copy.deepcopy(dict(data))
    problems: list[Problem] = []
    for override in overrides:
        key, sep, text = override.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(Problem(file, "--set", _OVERRIDE_EXPECTED, show(override)))
            continue
        parts = _parse_key(key)
        if parts is None or not isinstance(parts[0], str):
            problems.append(Problem(file, f"--set {key}", "a dotted key like workload.duration or faults[0].at",
                                    show(key)))
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            problems.append(Problem(file, f"--set {key}", "a YAML value", f"{show(text)} ({_yaml_reason(e)})"))
            continue
        problem = _set_path(result, parts, value)
        if problem:
            problems.append(Problem(file, f"--set {key}", *problem))
    return result, problems


def _set_path(root: dict[str, Any], parts: list[str | int], value: Any) -> tuple[str, str] | None:
    """Set ``value`` at ``parts``; on failure return (expected, found) describing why."""
    node: Any = root
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = _format_path(parts[:depth]) or "the top level"
        if isinstance(part, int):
            if not isinstance(node, list):
                return f"a list at {where}", show(node)
            if part >= len(node):
                return f"an index below {len(node)} at {where}", str(part)
            if last:
                node[part] = value
                return None
            node = node[part]
        else:
            if not isinstance(node, dict):
                return f"a mapping at {where}", show(node)
            if last:
                node[part] = value
                return None
            if node.get(part) is None and not isinstance(parts[depth + 1], int):
                node[part] = {}
            node = node.get(part)
    return None


# -- reading the file ------------------------------------------------------------------------

class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys instead of keeping the last one silently."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_reason(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    reason = getattr(e, "problem", None) or str(e)
    if mark is not None:
        return f"{reason} at line {mark.line + 1}, column {mark.column + 1}"
    return reason


def read_yaml_mapping(path: Path, file: str, what: str = "scenario",
                      keys: str = "name, job, workload, ...") -> tuple[Any, list[Problem]]:
    """The mapping in a YAML file, or the problems that keep it from being one (``what`` names the kind of file)."""
    if path.is_dir():
        return None, [Problem(file, "", f"a {what} file", "a directory")]
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Problem(file, "", f"a {what} file", "no such file")]
    except (OSError, UnicodeDecodeError) as e:
        return None, [Problem(file, "", f"a readable UTF-8 {what} file", f"{type(e).__name__}: {e}")]
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        return None, [Problem(file, "", "valid YAML", _yaml_reason(e))]
    if not isinstance(data, dict):
        found = "an empty file" if data is None else show(data)
        return None, [Problem(file, "", f"a mapping of {what} keys ({keys})", found)]
    return data, []


def load_scenario(path: str | Path, overrides: Sequence[str] = (),
                  engines_known: set[str] | None = None) -> Scenario:
    """Read, override and validate a scenario file; raise :class:`ScenarioError` listing every problem.

    ``overrides`` are ``key=value`` strings (``--set``) applied before validation.
    When ``engines_known`` is given, every engine named must be in it. The job
    reference is imported and built (which must succeed); nothing is started.
    """
    file = str(path)
    data, problems = read_yaml_mapping(Path(path), file)
    if data is None:
        raise ScenarioError(problems)
    data, problems = apply_overrides(data, overrides, file)
    scenario, invalid = _validate(file, data, engines_known)
    problems += invalid
    if problems or scenario is None:
        raise ScenarioError(problems)
    return scenario
