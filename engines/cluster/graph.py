"""The job graph of the cluster engine: vertices split at every key_by (a network shuffle).

As in Flink, keying is always a hash exchange by key group (the Kafka
partitioning of the input says nothing about key groups); the operators
between two exchanges are chained into one vertex, the source into the first,
the sink into the last.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.api import Aggregate, KeyBy, Pipeline, Sink, Source
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
        return any(isinstance(o, Aggregate) for o in self.ops)

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
