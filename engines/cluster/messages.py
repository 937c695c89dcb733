"""Control-plane and data-plane messages of the cluster engine.

msgspec Structs, msgpack-encoded, one per frame on asyncio streams (a 4-byte
big-endian length, then the msgpack body: :func:`send` / :func:`recv`).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import msgspec


class Msg(msgspec.Struct, tag=True, array_like=True):
    pass


# -- TaskManager <-> JobManager ------------------------------------------------------------
class Register(Msg):
    tm_id: str
    incarnation: str
    slots: int
    data_host: str
    data_port: int


class Registered(Msg):
    tm_id: str


class Heartbeat(Msg):
    tm_id: str
    incarnation: str


class Disconnect(Msg):
    """JM -> a TM it no longer knows (declared lost): cancel everything and register anew."""

    reason: str


class Channel(Msg):
    """Where a subtask sends one of its outputs: the receiving subtask and its TM's data address."""

    vertex: int
    subtask: int
    host: str
    port: int


class StateHandle(Msg):
    """One subtask's state in a completed checkpoint."""

    subtask: int                        # the subtask that wrote it (at the checkpoint's parallelism)
    path: str


class TaskDeployment(Msg):
    vertex: int
    subtask: int
    parallelism: int
    n_inputs: int                       # upstream subtasks feeding this one (0 for a source)
    outputs: list[Channel]              # downstream subtasks (hash-partitioned by key group), empty at a sink
    partitions: list[int]               # source partitions this subtask reads
    state: list[StateHandle]            # checkpoint state to restore from (none: a fresh start); at the
                                        # checkpoint's own parallelism the subtask's own, rescaled every
                                        # subtask's of the vertex (each keeps its key groups and partitions)


class Deploy(Msg):
    attempt: int
    checkpoint_id: int | None           # the checkpoint restored from
    tasks: list[TaskDeployment]


class Cancel(Msg):
    attempt: int


class Cancelled(Msg):
    tm_id: str
    attempt: int


class TasksRunning(Msg):
    tm_id: str
    attempt: int


class TriggerCheckpoint(Msg):
    attempt: int
    checkpoint_id: int


class AckCheckpoint(Msg):
    attempt: int
    checkpoint_id: int
    vertex: int
    subtask: int
    state_path: str
    alignment_ms: float
    state_bytes: int


class EndOfInput(Msg):
    """TM -> JM: a source subtask of a bounded job has read its partitions to the end offsets it took at its
    start."""

    attempt: int
    vertex: int
    subtask: int


class NotifyComplete(Msg):
    attempt: int
    checkpoint_id: int


class TaskFailed(Msg):
    attempt: int
    vertex: int
    subtask: int
    error: str


# -- TaskManager <-> TaskManager (data plane) -------------------------------------------------
class OpenChannel(Msg):
    attempt: int
    vertex: int          # receiving vertex
    subtask: int         # receiving subtask
    sender: int          # sending subtask index (the receiver's input channel number)


class Credit(Msg):
    buffers: int


class Buffer(Msg):
    records: list[Any]   # [key, event] pairs


class Barrier(Msg):
    checkpoint_id: int


class Watermark(Msg):
    """In-band event: no record with event time <= ``timestamp`` (ms) is expected any more on this channel.

    Like a barrier it needs no credit, and it waits behind the records sent
    before it (also while alignment blocks the channel).
    """

    timestamp: int


class WatermarkStatus(Msg):
    """In-band event: the sending subtask became idle (``idle``) or active again.

    An idle channel does not hold back the receiver's watermark; a subtask
    announces it is active again before it sends its next record.
    """

    idle: bool


AnyMsg = (Register | Registered | Heartbeat | Disconnect | Deploy | Cancel | Cancelled | TasksRunning
          | TriggerCheckpoint | AckCheckpoint | EndOfInput | NotifyComplete | TaskFailed | OpenChannel | Credit | Buffer | Barrier
          | Watermark | WatermarkStatus)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyMsg)
_LEN = struct.Struct(">I")


def encode(msg: Msg) -> bytes:
    body = _encoder.encode(msg)
    return _LEN.pack(len(body)) + body


async def send(writer: asyncio.StreamWriter, msg: Msg) -> None:
    writer.write(encode(msg))
    await writer.drain()


async def recv(reader: asyncio.StreamReader) -> AnyMsg:
    """The next message; raises asyncio.IncompleteReadError when the peer has gone."""
    header = await reader.readexactly(_LEN.size)
    (n,) = _LEN.unpack(header)
    return _decoder.decode(await reader.readexactly(n))
