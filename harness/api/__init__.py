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
    Sliding,
    Tumbling,
    WindowAggregate,
    id_checksum,
    late_record,
    load_job,
    per_record,
    per_window,
)

__all__ = [
    "Aggregate", "BoundedOutOfOrder", "DeploySpec", "Deployment", "Engine", "Event", "EventTime", "Filter",
    "FlatMap", "Guarantee", "KeyBy", "Killable", "Lagging", "Map", "Pausable", "Pipeline", "Segment", "Sink",
    "Sliding", "Source", "State", "Terminable", "Tumbling", "WindowAggregate", "id_checksum", "late_record",
    "load_job", "per_record", "per_window",
]
