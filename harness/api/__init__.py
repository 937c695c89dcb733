"""The common interface: the Pipeline DSL, the Engine protocol and its capabilities, Guarantee."""

from harness.api.engine import (
    FAULT_CAPABILITIES,
    Deployment,
    DeploySpec,
    Engine,
    FaultRequest,
    Guarantee,
    Killable,
    Lagging,
    Pausable,
    Prerequisite,
    RunRequest,
    Terminable,
    fault_kind_problems,
    missing_members,
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
    Sliding,
    Source,
    State,
    Tumbling,
    WindowAggregate,
    id_checksum,
    late_record,
    load_job,
    per_record,
    per_window,
)

__all__ = [
    "FAULT_CAPABILITIES", "Aggregate", "BoundedOutOfOrder", "DeploySpec", "Deployment", "Engine", "Event",
    "EventTime", "FaultRequest", "Filter", "FlatMap", "Guarantee", "KeyBy", "Killable", "Lagging", "Map",
    "Pausable", "Pipeline", "Prerequisite", "RunRequest", "Segment", "Sink", "Sliding", "Source", "State",
    "Terminable", "Tumbling", "WindowAggregate", "fault_kind_problems", "id_checksum", "late_record", "load_job",
    "missing_members", "per_record", "per_window",
]
