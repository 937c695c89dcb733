"""The common interface: the Pipeline DSL, the Engine protocol and its capabilities, Guarantee."""

from harness.api.engine import (
    DeploySpec,
    Deployment,
    Engine,
    Guarantee,
    Killable,
    Lagging,
    Pausable,
    Terminable,
)
from harness.api.pipeline import (
    Aggregate,
    BoundedOutOfOrder,
    Event,
    EventTime,
    Filter,
    FlatMap,
    KeyBy,
    Map,
    Pipeline,
    Segment,
    Sink,
    Source,
    State,
    load_job,
    per_record,
)

__all__ = [
    "Aggregate", "BoundedOutOfOrder", "DeploySpec", "Deployment", "Engine", "Event", "EventTime", "Filter",
    "FlatMap", "Guarantee", "KeyBy", "Killable", "Lagging", "Map", "Pausable", "Pipeline", "Segment", "Sink",
    "Source", "State", "Terminable", "load_job", "per_record",
]
