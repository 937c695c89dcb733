"""Typed, validated configuration of the embedded engine."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness.api import Guarantee, Pipeline, WindowAggregate
from harness.api.deployment import parse_engine_config
from harness.api.toolkit import ConfigError


class EmbeddedConfig(BaseModel):
    """Options of the embedded engine (Kafka Streams names in brackets).

    ``commit_interval_ms`` defaults like Kafka Streams: 100 ms under
    exactly_once, 30 s otherwise. ``linger_ms`` is the client's default, 5;
    Kafka Streams sets 100 for its producers, but then a paused instance holds
    that much unsent output in its producer, which expires with the
    transaction timeout while it is paused: it fails on its own time-out
    instead of meeting the fence, and the zombie scenario measures fencing.

    ``static_membership`` gives each instance a ``group.instance.id`` (its
    name, KIP-345): an instance restarted within the session timeout takes
    its partitions back without a rebalance, so the others never stop. The
    price: an instance that leaves (stops, or dies for good) keeps its
    partitions until its session times out.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    commit_interval_ms: int | None = Field(
        None, gt=0, description="commit.interval.ms; None: 100 under exactly_once, 30000 otherwise")
    session_timeout_ms: int = Field(10_000, ge=1_000, description="session.timeout.ms")
    heartbeat_interval_ms: int = Field(1_000, ge=100, description="heartbeat.interval.ms")
    max_poll_interval_ms: int = Field(300_000, ge=10_000, description="max.poll.interval.ms")
    transaction_timeout_ms: int = Field(10_000, ge=1_000, description="transaction.timeout.ms (exactly_once)")
    group_protocol: str = Field("classic", pattern="^(classic|consumer)$",
                                description="group.protocol: classic, or consumer (KIP-848)")
    poll_batch: int = Field(500, ge=1, description="records taken per poll")
    linger_ms: int = Field(5, ge=0, description="the producer's linger.ms")
    static_membership: bool = Field(False, description="a group.instance.id per instance (KIP-345)")
    task_timeout_ms: int = Field(300_000, ge=100, description="task.timeout.ms: how long a state restore may "
                                 "make no progress (a changelog partition without a leader) before the instance "
                                 "gives its tasks up and rejoins")
    record_cost_us: int = Field(0, ge=0, description="a deliberate slowdown: spin this many microseconds of CPU on "
                                "every input record (for testing the gate; never for measurements)")

    def effective_commit_interval_ms(self, guarantee: Guarantee) -> int:
        if self.commit_interval_ms is not None:
            return self.commit_interval_ms
        return 100 if guarantee is Guarantee.exactly_once else 30_000


def parse_config(raw: dict[str, Any]) -> EmbeddedConfig:
    return parse_engine_config(EmbeddedConfig, raw, "embedded")


def late_topic_of(pipeline: Pipeline, topics: dict[str, str]) -> str | None:
    """The real topic of the pipeline's late side output, or None when it declares none.

    Looked up under the pipeline's logical name (``Pipeline.late(topic)``), else
    under ``late``, the name the runner gives it.
    """
    if pipeline.late_topic is None:
        return None
    return topics.get(pipeline.late_topic) or topics.get("late")


def late_topic_problems(pipeline: Pipeline, topics: dict[str, str]) -> list[str]:
    """A windowed pipeline that declares a late side output but is given no topic for it."""
    windowed = any(isinstance(op, WindowAggregate) for op in pipeline.ops)
    if windowed and pipeline.late_topic is not None and late_topic_of(pipeline, topics) is None:
        return [f"pipeline {pipeline.name!r} writes late records to {pipeline.late_topic!r}, "
                f"but the deploy spec's topics name no topic for it (found {sorted(topics)}); "
                f"add topics[{pipeline.late_topic!r}] = <real topic>"]
    return []


def check_late_topic(pipeline: Pipeline, topics: dict[str, str]) -> None:
    """Raise ConfigError when a windowed pipeline declares a late side output but no topic is given for it."""
    problems = late_topic_problems(pipeline, topics)
    if problems:
        raise ConfigError("embedded engine: " + "; ".join(problems))
