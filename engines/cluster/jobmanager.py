"""The JobManager of the cluster engine (the Flink model).

It builds the execution graph, deploys subtasks into the TaskManagers' slots,
owns the checkpoint coordinator (trigger, collect acknowledgements, write the
metadata last and atomically, then notify completion, keep the last few), and
watches the TaskManagers by heartbeat. When one is lost (or a task fails) it
cancels every task and redeploys the whole job from the latest completed
checkpoint: global rollback.

Run as ``python -m engines.cluster.jobmanager CONFIG.json``; it writes its
port and a status file (state, attempts, checkpoint statistics) for the
deployer.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.cluster import messages as m
from engines.cluster.graph import job_graph
from engines.cluster.ha import LeaseLost, LeaseStore
from harness.api import load_job

RETAINED_CHECKPOINTS = 3


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def checkpoint_parallelism(handles: dict[str, str]) -> int:
    """The parallelism a checkpoint was taken at: the number of subtasks of its first vertex."""
    return sum(1 for name in handles if name.startswith("v0-"))


def restore_handles(handles: dict[str, str], vertex: int, subtask: int, parallelism: int) -> list[m.StateHandle]:
    """The state subtask ``subtask`` of ``vertex`` restores at ``parallelism``: its own at the checkpoint's
    parallelism; rescaled, every subtask's of the vertex (it keeps what it now owns: key groups, partitions,
    and the sink logs it inherits)."""
    own = [(int(name.split("-")[1]), path) for name, path in handles.items() if name.startswith(f"v{vertex}-")]
    if checkpoint_parallelism(handles) == parallelism:
        own = [(s, path) for s, path in own if s == subtask]
    return [m.StateHandle(s, path) for s, path in sorted(own)]


@dataclass(frozen=True)
class JMConfig:
    job: str
    parallelism: int
    partitions: int
    checkpoint_dir: str
    status_path: str
    checkpoint_interval_ms: int = 1000
    checkpoint_timeout_ms: int = 30_000
    heartbeat_timeout_ms: int = 5000
    restart_delay_ms: int = 1000
    taskmanagers: int = 1                 # the first deployment waits for this many to register
    host: str = "127.0.0.1"               # where it listens for TaskManagers (a network run: the bridge)
    bounded: bool = False                 # once every source is at its end: a final checkpoint, then FINISHED
    initial_wait_ms: int = 30_000
    name: str = "jobmanager"
    ha_dir: str | None = None             # high availability: the lease and job record there; None: no standby
    lease_timeout_ms: int = 5000          # a leader that has not renewed its lease this long is replaced

    @classmethod
    def load(cls, path: str) -> JMConfig:
        return cls(**json.loads(Path(path).read_text()))


@dataclass
class TMInfo:
    tm_id: str
    incarnation: str
    slots: int
    host: str
    port: int
    writer: asyncio.StreamWriter
    last_heartbeat: float = field(default_factory=time.monotonic)


@dataclass
class PendingCheckpoint:
    checkpoint_id: int
    attempt: int
    started: float
    expected: set[tuple[int, int]]
    acks: dict[tuple[int, int], m.AckCheckpoint] = field(default_factory=dict)


class JobManager:
    def __init__(self, cfg: JMConfig) -> None:
        self.cfg = cfg
        self.vertices = job_graph(load_job(cfg.job))
        self.tms: dict[str, TMInfo] = {}
        self.state = "CREATED"      # CREATED -> RUNNING <-> RESTARTING
        self.attempt = 0
        self.placement: dict[int, str] = {}     # slot (subtask index) -> tm id
        self.running_acks: set[str] = set()
        self.next_checkpoint = 1
        self.savepoint: int | None = None  # the checkpoint a stop with savepoint waits for
        self.ended: set[tuple[int, int]] = set()  # source subtasks of a bounded job at their end, this attempt
        self.times: dict[str, float] = {}         # first deployment, finish (a bounded job)
        self.pending: PendingCheckpoint | None = None
        self.completed: list[int] = []
        self.stats: dict[str, Any] = {"completed": 0, "failed": 0, "durations_ms": [], "alignment_ms": [],
                                      "state_bytes": [], "restores": 0, "restored_from": [], "failures": [],
                                      "rescaled": []}
        self.port = 0
        self.first_deploy = True
        self.lease = LeaseStore(cfg.ha_dir, cfg.name, cfg.lease_timeout_ms / 1000) if cfg.ha_dir else None
        self.role = "leader" if self.lease is None else "standby"
        self.stop = asyncio.Event()
        self.exit_code = 0
        self.failover_lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Any) -> None:
        """Run ``coro`` as a task, holding a reference until it ends (the loop keeps only weak ones)."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- status for the deployer --------------------------------------------------------------------
    def write_status(self) -> None:
        status = {"state": self.state, "attempt": self.attempt, "port": self.port, "role": self.role,
                  "epoch": self.lease.epoch if self.lease is not None else None,
                  "taskmanagers": {t.tm_id: {"slots": t.slots, "port": t.port} for t in self.tms.values()},
                  "placement": self.placement, "checkpoints": self.stats,
                  "latest_checkpoint": self.completed[-1] if self.completed else None, "times": self.times}
        tmp = self.cfg.status_path + ".tmp"
        Path(tmp).write_text(json.dumps(status))
        os.replace(tmp, self.cfg.status_path)

    # -- TaskManager connections -------------------------------------------------------------------------
    async def on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tm: TMInfo | None = None
        try:
            hello = await m.recv(reader)
            if not isinstance(hello, m.Register):
                writer.close()
                return
            if hello.tm_id in self.tms:
                await self.lose(hello.tm_id, "registered again (a new process or a zombie)")
            tm = TMInfo(hello.tm_id, hello.incarnation, hello.slots, hello.data_host, hello.data_port, writer)
            self.tms[tm.tm_id] = tm
            log(f"taskmanager {tm.tm_id} registered ({tm.slots} slots)")
            self.wake.set()
            while True:
                msg = await m.recv(reader)
                if self.tms.get(tm.tm_id) is not tm:
                    await m.send(writer, m.Disconnect("this TaskManager was declared lost"))
                    break
                await self.on_message(tm, msg)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if self.state != "STOPPED" and tm is not None and self.tms.get(tm.tm_id) is tm:
                await self.lose(tm.tm_id, "connection closed")

    async def on_message(self, tm: TMInfo, msg: Any) -> None:
        if isinstance(msg, m.Heartbeat):
            tm.last_heartbeat = time.monotonic()
        elif isinstance(msg, m.TasksRunning):
            if msg.attempt == self.attempt:
                self.running_acks.add(msg.tm_id)
                if self.running_acks >= set(self.placement.values()) and self.state == "DEPLOYING":
                    self.state = "RUNNING"
                    log(f"attempt {self.attempt} running")
                    self.write_status()
        elif isinstance(msg, m.AckCheckpoint):
            await self.on_ack(msg)
        elif isinstance(msg, m.EndOfInput) and msg.attempt == self.attempt:
            self.ended.add((msg.vertex, msg.subtask))
            sources = {(v.index, s) for v in self.vertices if v.is_source for s in range(self.cfg.parallelism)}
            if self.ended >= sources and self.savepoint is None:
                self._spawn(self.finish(msg.attempt))
        elif isinstance(msg, m.TaskFailed) and msg.attempt == self.attempt:
            self._spawn(self.failover(f"task {msg.vertex}-{msg.subtask} failed: {msg.error}", msg.attempt))

    async def lose(self, tm_id: str, why: str) -> None:
        tm = self.tms.pop(tm_id, None)
        if tm is None:
            return
        log(f"taskmanager {tm_id} lost: {why}")
        try:
            tm.writer.close()
        except Exception:  # noqa: BLE001
            pass
        if tm_id in self.placement.values() and self.state in ("RUNNING", "DEPLOYING"):
            self._spawn(self.failover(f"taskmanager {tm_id} lost ({why})", self.attempt))

    async def heartbeat_monitor(self) -> None:
        timeout = self.cfg.heartbeat_timeout_ms / 1000
        while True:
            await asyncio.sleep(min(0.25, timeout / 4))
            now = time.monotonic()
            for tm in list(self.tms.values()):
                if now - tm.last_heartbeat > timeout:
                    await self.lose(tm.tm_id, f"no heartbeat for {now - tm.last_heartbeat:.1f} s")

    async def broadcast(self, msg: m.Msg, tm_ids: set[str] | None = None) -> None:
        for tm in list(self.tms.values()):
            if tm_ids is None or tm.tm_id in tm_ids:
                try:
                    await m.send(tm.writer, msg)
                except (ConnectionError, OSError):
                    pass

    # -- scheduling --------------------------------------------------------------------------------------
    def free_slots(self) -> int:
        return sum(t.slots for t in self.tms.values())

    def place(self) -> dict[int, str]:
        """Spread the job's slots over the TaskManagers (slot sharing: subtask i of every vertex in slot i)."""
        order = sorted(self.tms.values(), key=lambda t: t.tm_id)
        used = {t.tm_id: 0 for t in order}
        placement: dict[int, str] = {}
        for s in range(self.cfg.parallelism):
            candidates = [t for t in order if used[t.tm_id] < t.slots]
            tm = min(candidates, key=lambda t: used[t.tm_id])
            used[tm.tm_id] += 1
            placement[s] = tm.tm_id
        return placement

    def latest_checkpoint(self) -> tuple[int | None, dict[str, str]]:
        """The latest completed checkpoint and its state handles: with high availability the one the job
        record points to (its leaders move the pointer only while they hold the lease), else the newest whose
        metadata is in place."""
        root = Path(self.cfg.checkpoint_dir)
        pointer = self.lease.job().get("checkpoint") if self.lease is not None else None
        if pointer is None:
            done = self._on_disk()
            if not done:
                return None, {}
            pointer = done[0]
        meta = json.loads((root / f"chk-{pointer}" / "_metadata").read_text())
        return int(pointer), meta["handles"]

    def _on_disk(self) -> list[int]:
        """Checkpoint ids whose metadata is written, newest first."""
        root = Path(self.cfg.checkpoint_dir)
        return sorted((int(p.name[4:]) for p in root.glob("chk-*") if (p / "_metadata").exists()), reverse=True)

    async def deploy(self) -> None:
        p = self.cfg.parallelism
        if self.first_deploy:  # spread the first deployment over every TaskManager started with the job
            deadline = time.monotonic() + self.cfg.initial_wait_ms / 1000
            while len(self.tms) < self.cfg.taskmanagers and time.monotonic() < deadline:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), 0.5)
                except TimeoutError:
                    pass
        while self.free_slots() < p:
            self.wake.clear()
            log(f"waiting for slots: {self.free_slots()} of {p}")
            try:
                await asyncio.wait_for(self.wake.wait(), 1.0)
            except TimeoutError:
                pass
        self.first_deploy = False
        self.placement = self.place()
        self.ended = set()
        self.times.setdefault("deployed", time.time())
        checkpoint_id, handles = self.latest_checkpoint()
        if checkpoint_id is not None:
            self.stats["restored_from"].append(checkpoint_id)
            taken_at = checkpoint_parallelism(handles)
            if taken_at != p:
                log(f"rescaling from checkpoint {checkpoint_id} at parallelism {taken_at} to {p}: "
                    f"key groups and partitions reassigned")
                self.stats["rescaled"].append({"checkpoint": checkpoint_id, "from": taken_at, "to": p})
        self.running_acks = set()
        self.state = "DEPLOYING"
        per_tm: dict[str, list[m.TaskDeployment]] = {}
        for v in self.vertices:
            for s in range(p):
                nxt = v.index + 1
                outputs = [] if v.has_sink else [
                    m.Channel(nxt, j, self.tms[self.placement[j]].host, self.tms[self.placement[j]].port)
                    for j in range(p)]
                td = m.TaskDeployment(
                    vertex=v.index, subtask=s, parallelism=p, n_inputs=0 if v.is_source else p, outputs=outputs,
                    partitions=[q for q in range(self.cfg.partitions) if q % p == s] if v.is_source else [],
                    state=restore_handles(handles, v.index, s, p))
                per_tm.setdefault(self.placement[s], []).append(td)
        log(f"deploying attempt {self.attempt} from checkpoint {checkpoint_id}: {self.placement}")
        if not self._record(attempt=self.attempt):
            return
        for tm_id, tasks in per_tm.items():
            await self.broadcast(m.Deploy(self.attempt, checkpoint_id, tasks), {tm_id})
        self.write_status()

    async def failover(self, why: str, attempt: int) -> None:
        """Global rollback: cancel every task, wait, redeploy all from the latest completed checkpoint.

        ``attempt`` is the attempt the failure hit; failures of an attempt
        already being replaced (its tasks fail in a cascade) are not new.
        """
        async with self.failover_lock:
            if attempt != self.attempt or self.state in ("RESTARTING", "FINISHED"):
                return
            log(f"failover: {why}")
            self.stats["failures"].append({"at": time.time(), "why": why})
            self.state = "RESTARTING"
            self.pending = None
            old = self.attempt
            self.attempt += 1
            self.stats["restores"] += 1
            self.write_status()
            await self.broadcast(m.Cancel(old))
            await asyncio.sleep(self.cfg.restart_delay_ms / 1000)
            await self.deploy()

    # -- checkpoints -------------------------------------------------------------------------------------
    async def checkpoint_loop(self) -> None:
        interval = self.cfg.checkpoint_interval_ms / 1000
        timeout = self.cfg.checkpoint_timeout_ms / 1000
        while True:
            await asyncio.sleep(interval)
            if self.pending is not None and time.monotonic() - self.pending.started > timeout:
                log(f"checkpoint {self.pending.checkpoint_id} expired after {timeout:.0f} s")
                self.stats["failed"] += 1
                self.pending = None
            if self.state != "RUNNING" or self.pending is not None or self.savepoint is not None:
                continue
            await self.trigger_checkpoint()

    async def trigger_checkpoint(self) -> int:
        n = self.next_checkpoint
        self.next_checkpoint += 1
        expected = {(v.index, s) for v in self.vertices for s in range(self.cfg.parallelism)}
        self.pending = PendingCheckpoint(n, self.attempt, time.monotonic(), expected)
        await self.broadcast(m.TriggerCheckpoint(self.attempt, n), set(self.placement.values()))
        return n

    async def checkpoint_on_request(self, attempt: int | None = None) -> int | None:
        """A checkpoint now (after the one in flight), waited for until it completes, tried again when it
        does not; None when the job restarts meanwhile (``attempt`` given: it is no longer that attempt)."""
        timeout = self.cfg.checkpoint_timeout_ms / 1000
        while True:
            while self.state != "RUNNING" or self.pending is not None:
                if attempt is not None and self.attempt != attempt:
                    return None
                await asyncio.sleep(0.02)
            self.savepoint = await self.trigger_checkpoint()
            deadline = time.monotonic() + timeout
            while self.savepoint not in self.completed and time.monotonic() < deadline and self.pending is not None:
                await asyncio.sleep(0.02)
            if self.savepoint in self.completed:
                return self.savepoint
            log(f"checkpoint {self.savepoint} on request did not complete; trying again")
            self.pending = None
            self.savepoint = None

    async def stop_with_savepoint(self, stop: asyncio.Event) -> None:
        """A checkpoint taken on request (the savepoint), then the job cancelled: a new JobManager on the same
        checkpoint directory deploys the job from it (an upgrade)."""
        log("stop with savepoint requested")
        self.stats["savepoint"] = await self.checkpoint_on_request()
        log(f"savepoint {self.savepoint} complete: stopping")
        stop.set()

    async def finish(self, attempt: int) -> None:
        """A bounded job whose sources are all at their end: a final checkpoint (its sinks commit the last
        epoch on its completion), then FINISHED."""
        log("every source is at its end of input: the final checkpoint")
        final = await self.checkpoint_on_request(attempt)
        if final is None:
            self.savepoint = None
            return  # restarted meanwhile: its sources report their end again
        await asyncio.sleep(0)  # the completion's notifications are out (on_ack broadcast them)
        self.state = "FINISHED"
        self._record(state="FINISHED")
        self.times["finished"] = time.time()
        self.stats["final_checkpoint"] = final
        log(f"final checkpoint {final} complete: FINISHED")
        await self.broadcast(m.Cancel(self.attempt))  # the tasks end; a sink closing waits for its commit
        self.write_status()

    async def on_ack(self, ack: m.AckCheckpoint) -> None:
        pc = self.pending
        if pc is None or ack.checkpoint_id != pc.checkpoint_id or ack.attempt != pc.attempt:
            return
        pc.acks[(ack.vertex, ack.subtask)] = ack
        if set(pc.acks) < pc.expected:
            return
        root = Path(self.cfg.checkpoint_dir) / f"chk-{pc.checkpoint_id}"
        meta = {"checkpoint_id": pc.checkpoint_id, "attempt": pc.attempt, "time": time.time(),
                "handles": {f"v{v}-{s}": a.state_path for (v, s), a in pc.acks.items()}}
        tmp = root / "_metadata.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, root / "_metadata")  # complete once its metadata is durably in place
        if not self._record(checkpoint=pc.checkpoint_id):  # and, highly available, once the job points to it
            return
        self.pending = None
        self.completed.append(pc.checkpoint_id)
        self.stats["completed"] += 1
        self.stats["durations_ms"].append(round((time.monotonic() - pc.started) * 1000, 1))
        self.stats["alignment_ms"].append(round(max(a.alignment_ms for a in pc.acks.values()), 1))
        self.stats["state_bytes"].append(sum(a.state_bytes for a in pc.acks.values()))
        await self.broadcast(m.NotifyComplete(pc.attempt, pc.checkpoint_id), set(self.placement.values()))
        self.discard_old()

    def discard_old(self) -> None:
        keep = set(self.completed[-RETAINED_CHECKPOINTS:])
        root = Path(self.cfg.checkpoint_dir)
        for p in root.glob("chk-*"):
            try:
                n = int(p.name[4:])
            except ValueError:
                continue
            if n not in keep and n < (self.completed[-1] if self.completed else 0):
                shutil.rmtree(p, ignore_errors=True)

    # -- main ----------------------------------------------------------------------------------------------
    async def status_loop(self) -> None:
        while True:
            self.write_status()
            await asyncio.sleep(0.5)

    def _record(self, **changes: Any) -> bool:
        """Write to the job record as its leader (nothing to do without high availability); False, and the
        JobManager stepping down, when the lease has gone to another JobManager meanwhile."""
        if self.lease is None:
            return True
        try:
            self.lease.update_job(**changes)
        except LeaseLost as e:
            self.step_down(str(e))
            return False
        return True

    def step_down(self, why: str) -> None:
        """Leadership lost (paused or cut off past the lease): stop at once, touching nothing more."""
        if self.role != "leader":
            return
        log(f"lost leadership: {why}; exiting")
        self.role, self.state, self.exit_code = "deposed", "STOPPED", 3
        self.pending = None
        self.stop.set()

    async def lease_loop(self) -> None:
        assert self.lease is not None
        while True:
            await asyncio.sleep(self.cfg.lease_timeout_ms / 1000 / 5)
            try:
                self.lease.renew()
            except LeaseLost as e:
                self.step_down(str(e))
                return

    async def elect(self) -> bool:
        """As a standby, wait until the lease is ours; False when stopped first."""
        assert self.lease is not None
        log(f"{self.cfg.name}: standby, waiting for the lease")
        while not self.stop.is_set():
            if self.lease.try_acquire(self.cfg.host, self.port):
                job = self.lease.job()
                self.role = "leader"
                self.attempt = int(job.get("attempt", -1)) + 1  # the TaskManagers accept only newer attempts
                self.next_checkpoint = max([*self._on_disk()[:1], int(job.get("checkpoint") or 0)]) + 1
                log(f"{self.cfg.name}: leader (epoch {self.lease.epoch}); the job record: {job}")
                if job.get("state") == "FINISHED":
                    self.state = "FINISHED"
                return True
            self.write_status()
            try:
                await asyncio.wait_for(self.stop.wait(), 0.2)
            except TimeoutError:
                pass
        return False

    async def main(self) -> int:
        Path(self.cfg.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        self.next_checkpoint = (self._on_disk() or [0])[0] + 1  # started again on a savepoint: numbering on from it
        server = await asyncio.start_server(self.on_connection, self.cfg.host, 0)
        self.port = server.sockets[0].getsockname()[1]
        self.write_status()
        log(f"{self.cfg.name} on port {self.port}; job {self.cfg.job}, parallelism {self.cfg.parallelism}")
        stop = self.stop
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGUSR1, lambda: self._spawn(self.stop_with_savepoint(stop)))
        background = [asyncio.create_task(self.status_loop())]
        if self.lease is None or await self.elect():
            if self.lease is not None:
                background.append(asyncio.create_task(self.lease_loop()))
            background += [asyncio.create_task(c) for c in (self.heartbeat_monitor(), self.checkpoint_loop())]
            if self.state != "FINISHED":
                await self.deploy()
            await stop.wait()
        log("stopping: cancelling the job")
        if self.state != "FINISHED":  # a bounded job that finished stays FINISHED
            self.state = "STOPPED"
        if self.role == "leader":
            await self.broadcast(m.Cancel(self.attempt))
            if self.lease is not None:
                self.lease.release()
        for t in background:
            t.cancel()
        self.write_status()
        server.close()
        return self.exit_code


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    return asyncio.run(JobManager(JMConfig.load(args[0])).main())


if __name__ == "__main__":
    sys.exit(main())
