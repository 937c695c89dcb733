"""Disorder transforms of the schedule: seeded, each from its own random stream.

An event's content (id, key, value) comes from the seed alone
(:class:`~harness.workload.events.EventSource`); these transforms only move
its event time ``et`` (``disorder``, ``late``, ``lagging``) or its send time
(``idle``). Each draws from its own ``Random`` seeded from the scenario seed
and its name, so adding a transform changes neither the content nor another
transform's choices.

Specs take the scenario model's field names and units (durations in seconds;
``idle`` also accepts ``for``), so ``Workload.<field>.model_dump(by_alias=True)``
is a valid spec, and keep milliseconds internally.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError

Event = dict[str, Any]


def _ms(seconds: float) -> int:
    return round(float(seconds) * 1000)


def _fraction(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        msg = f"{name}.fraction must be between 0 and 1, found {value!r}"
        raise ConfigError(msg)
    return float(value)


def _non_negative(name: str, value: int) -> int:
    if value < 0:
        msg = f"{name} must be >= 0, found {value!r}"
        raise ConfigError(msg)
    return value


@dataclass(frozen=True)
class Disorder:
    """A ``fraction`` of events get ``et`` moved back by a uniform delay in (0, ``max_delay_ms``]."""

    fraction: float
    max_delay_ms: int

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> Disorder:
        """From ``{fraction, max_delay}`` (seconds)."""
        return cls(_fraction("disorder", spec["fraction"]),
                   _non_negative("disorder.max_delay", _ms(spec["max_delay"])))


@dataclass(frozen=True)
class Late:
    """A ``fraction`` of events get ``et = scheduled - delay_ms`` and ``"dl": 1`` (definitely late).

    Only events scheduled ``after_ms`` or more into the load: before every
    engine has seen data (and, in the cluster model, watermarks from every
    input), nothing is late by anyone's rule, however old.
    """

    fraction: float
    delay_ms: int
    after_ms: int = 5000

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> Late:
        """From ``{fraction, delay, after}`` (seconds; ``after`` defaults to 5 s)."""
        return cls(_fraction("late", spec["fraction"]), _non_negative("late.delay", _ms(spec["delay"])),
                   _non_negative("late.after", _ms(spec.get("after", 5))))


@dataclass(frozen=True)
class Lagging:
    """Every event of Kafka partition ``partition`` gets ``et`` moved back by ``delay_ms``."""

    partition: int
    delay_ms: int

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> Lagging:
        """From ``{partition, delay}`` (seconds)."""
        return cls(_non_negative("lagging.partition", int(spec["partition"])),
                   _non_negative("lagging.delay", _ms(spec["delay"])))


@dataclass(frozen=True)
class Idle:
    """Events of ``partition`` scheduled in [at, at + for) are held back and sent in one burst at at + for."""

    partition: int
    at_ms: int
    for_ms: int

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> Idle:
        """From ``{partition, at, for}`` (seconds; ``for_`` is accepted for ``for``)."""
        length = spec["for"] if "for" in spec else spec["for_"]
        return cls(_non_negative("idle.partition", int(spec["partition"])),
                   _non_negative("idle.at", _ms(spec["at"])), _non_negative("idle.for", _ms(length)))

    @property
    def end_ms(self) -> int:
        """When the partition catches up, in ms from the start of the load."""
        return self.at_ms + self.for_ms


Transform = Disorder | Late | Lagging | Idle


def coerce(kind: type[Transform], spec: Transform | Mapping[str, Any] | None) -> Any:
    """``spec`` as a ``kind``: None stays None, a mapping is read with ``kind.of``."""
    if spec is None or isinstance(spec, kind):
        return spec
    if isinstance(spec, Mapping):
        try:
            return kind.of(spec)
        except (KeyError, TypeError, ValueError) as e:
            msg = f"{kind.__name__.lower()}: {spec!r} is not a valid spec ({type(e).__name__}: {e})"
            raise ConfigError(msg) from e
    msg = f"{kind.__name__.lower()}: expected a mapping, found {spec!r}"
    raise ConfigError(msg)


def stream(seed: int, name: str) -> random.Random:
    """The random stream of one transform: a function of the scenario seed and the transform's name only."""
    return random.Random(f"streamgauge/{seed}/{name}")


class EventTimeTransforms:
    """Moves the event time of each event, in schedule order: disorder, then late, then lagging.

    ``late`` sets ``et`` from the scheduled time, so it overrides disorder;
    ``lagging`` applies to every event of its partition, late ones too.
    Every event draws the same number of values from each stream whatever
    happens to other events, so a transform's choices depend only on the seed.
    """

    def __init__(self, seed: int, disorder: Disorder | None = None, late: Late | None = None,
                 lagging: Lagging | None = None) -> None:
        self.disorder, self.late, self.lagging = disorder, late, lagging
        self._disorder_rng = stream(seed, "disorder")
        self._late_rng = stream(seed, "late")

    def apply(self, event: Event, partition: int | None, elapsed_ms: int | None = None) -> Event:
        """Transform ``event`` (its ``et`` scheduled, in ms, ``elapsed_ms`` into the load) in place and return it."""
        scheduled_ms = event["et"]
        if self.disorder is not None:
            event["et"] -= self._disorder_delay(self.disorder)
        if (self.late is not None and self._late_rng.random() < self.late.fraction
                and (elapsed_ms is None or elapsed_ms >= self.late.after_ms)):
            event["et"] = scheduled_ms - self.late.delay_ms
            event["dl"] = 1
        if self.lagging is not None and partition == self.lagging.partition:
            event["et"] -= self.lagging.delay_ms
        return event

    def _disorder_delay(self, disorder: Disorder) -> int:
        chosen = self._disorder_rng.random() < disorder.fraction
        # the delay is drawn for every event, chosen or not, so the stream stays aligned with the ids
        delay = self._disorder_rng.randint(1, disorder.max_delay_ms) if disorder.max_delay_ms >= 1 else 0
        return delay if chosen else 0
