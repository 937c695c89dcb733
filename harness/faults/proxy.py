"""A TCP proxy that holds what it forwards for a delay (with jitter), per worker: the ``delay`` fault, made in
userspace because this kernel has no netem.

Each worker gets one listening port per broker port; its namespace redirects its connections to the broker
there (:class:`harness.faults.network.Network`). Every chunk read from one side is written to the other side
``delay ± jitter`` after it arrived, never before the chunk ahead of it (TCP is a stream: jitter must not
reorder it). With no delay in force a chunk is forwarded at once.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass

from harness.errors import ProcessError

CHUNK = 64 * 1024


@dataclass
class _Delay:
    ms: float = 0.0
    jitter_ms: float = 0.0


class DelayProxies:
    """The proxies of one run, on an event loop of their own thread. ``host``: the address they listen on and
    the brokers' address."""

    def __init__(self, host: str, seed: int = 0) -> None:
        self.host = host
        self._rng = random.Random(seed)
        self._delays: dict[str, _Delay] = {}
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.AbstractServer] = []
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxies", daemon=True)
        self._thread.start()

    def add(self, worker: str, broker_ports: list[int]) -> dict[int, int]:
        """Listen for ``worker``'s connections to each broker port; returns broker port -> proxy port."""
        self._delays.setdefault(worker, _Delay())
        return {port: self._call(self._listen(worker, port)) for port in broker_ports}

    def set_delay(self, worker: str, ms: float, jitter_ms: float = 0.0) -> None:
        """Hold ``worker``'s traffic for ``ms`` ± ``jitter_ms`` from now on (0: forward at once)."""
        self._delays[worker] = _Delay(ms, jitter_ms)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        for server in self._servers:
            self._loop.call_soon_threadsafe(server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # -- on the loop -----------------------------------------------------------------------------------
    def _call(self, coro):
        try:
            return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)
        except Exception as e:
            msg = f"delay proxy: {e}"
            raise ProcessError(msg) from e

    async def _listen(self, worker: str, broker_port: int) -> int:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection(self.host, broker_port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(self._pump(worker, reader, up_writer), self._pump(worker, up_reader, writer),
                                 return_exceptions=True)

        server = await asyncio.start_server(accept, self.host, 0)
        self._servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def _pump(self, worker: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward one direction, each chunk at its due time, in order."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        last_due = 0.0
        try:
            while data := await reader.read(CHUNK):
                delay = self._delays.get(worker, _Delay())
                hold = delay.ms + (self._rng.uniform(-delay.jitter_ms, delay.jitter_ms) if delay.jitter_ms else 0.0)
                last_due = max(last_due, time.monotonic() + max(0.0, hold) / 1000)
                queue.put_nowait((last_due, data))
        except (ConnectionError, OSError):
            pass
        finally:
            queue.put_nowait((0.0, b""))
            try:
                await sender
            except (ConnectionError, OSError):
                pass
            writer.close()
