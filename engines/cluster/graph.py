"""The job graph of the cluster engine: vertices split at every key_by (a network shuffle).

As in Flink, keying is always a hash exchange by key group (the Kafka
partitioning of the input says nothing about key groups); the operators
between two exchanges are chained into one vertex, the source into the first,
the sink into the last.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.api import Aggregate, EventTime, KeyBy, Pipeline, Sink, Source, WindowAggregate
from harness.api.pipeline import Op


@dataclass(frozen=True)
class Vertex:
    """One chained task: ``ops`` run on each record; ``out_key`` routes its output to the next vertex."""

    index: int
    ops: tuple[Op, ...]
    out_key: KeyBy | None       # None: this vertex ends in the sink
    is_source: bool

    @property
    def stateful(self) -> bool:
        return any(isinstance(o, (Aggregate, WindowAggregate)) for o in self.ops)

    @property
    def windowed(self) -> bool:
        """Whether a window operator runs in this vertex."""
        return any(isinstance(o, WindowAggregate) for o in self.ops)

    @property
    def has_sink(self) -> bool:
        return self.out_key is None


def job_graph(pipeline: Pipeline) -> list[Vertex]:
    """Vertices in topological (here: linear) order."""
    pipeline.validate()
    vertices: list[Vertex] = []
    ops: list[Op] = []
    for op in pipeline.ops:
        if isinstance(op, (Source, Sink)):
            continue
        if isinstance(op, KeyBy):
            vertices.append(Vertex(len(vertices), tuple(ops), op, is_source=not vertices))
            ops = []
        else:
            ops.append(op)
    vertices.append(Vertex(len(vertices), tuple(ops), None, is_source=not vertices))
    return vertices


def time_field(pipeline: Pipeline) -> str:
    """The event field that holds a record's event time (``source(timestamps=EventTime(field))``, default ``et``)."""
    return (pipeline.source_op.timestamps or EventTime()).field


def late_topic_of(pipeline: Pipeline, topics: dict[str, str]) -> str | None:
    """The real topic of the pipeline's late side output, or None when it declares none (or none is given).

    Looked up under the pipeline's logical name (``Pipeline.late(topic)``),
    else under ``late``.
    """
    if pipeline.late_topic is None:
        return None
    return topics.get(pipeline.late_topic) or topics.get("late")


def event_time_problems(pipeline: Pipeline, topics: dict[str, str]) -> list[str]:
    """Why the cluster engine cannot run ``pipeline``'s event-time windows with ``topics`` (empty: it can)."""
    windowed = [v for v in job_graph(pipeline) if v.windowed]
    if not windowed:
        return []
    problems = []
    if pipeline.source_op.watermark is None:
        problems.append("a window needs watermarks: declare them on the source, "
                        "e.g. source('input', timestamps=EventTime('et'), watermark=BoundedOutOfOrder(ms=2000))")
    if pipeline.late_topic is not None and late_topic_of(pipeline, topics) is None:
        problems.append(f"the late side output {pipeline.late_topic!r} has no topic: "
                        f"add it to the deploy spec's topics (found {sorted(topics)})")
    if pipeline.late_topic is not None and any(not v.has_sink for v in windowed):
        problems.append("a window whose results are re-keyed again cannot have a late side output here: "
                        "late records are written by the sink, so window in the last key_by stage")
    return problems
