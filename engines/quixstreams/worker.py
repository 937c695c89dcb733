"""One quixstreams application instance for streamgauge: ``python worker.py CONFIG.json``.

Run by the interpreter of the quixstreams virtual environment
(engines/quixstreams/venv.py); it imports nothing from streamgauge, only the
standard library, quixstreams and its dependencies, so the jobs below restate
scenarios/jobs.py in quixstreams' own API and must stay equal to it.

Config (JSON object):
  bootstrap            Kafka bootstrap servers
  application_id       consumer group (it names quixstreams' internal topics and the state store directory)
  instance_id          this instance's name (logs; ``transactional_id`` may build on it)
  job                  running_sum | running_sum_rekeyed | windowed_count | windowed_count_rekeyed |
                       sliding_sum | echo (or ``scenarios.jobs:<name>``)
  guarantee            exactly_once | at_least_once
  topics               {"input": ..., "output": ..., "late": ... (optional)}; input and output must exist
  state_dir            this instance's state directory, kept across restarts
  status_path          where the status JSON is written (tmp + rename)
  commit_interval_s    optional; quixstreams' default (5 s) when absent
  properties           optional librdkafka settings: flat keys go to the consumer and the producer;
                       {"consumer": {...}, "producer": {...}} to one of them only
  session_timeout_ms, heartbeat_interval_ms   optional consumer settings
  transactional_id     optional producer transactional.id (exactly_once); quixstreams' default is a
                       random UUID per process, so a restarted instance does not fence its predecessor
  closing_strategy     optional "key" | "partition" for window jobs; quixstreams' default ("key") when absent

Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 1 when the application failed, 2 for a bad config.
"""

from __future__ import annotations

import time

PROCESS_START = time.time()  # before the heavy imports: time to RUNNING counts them

import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402
import zlib  # noqa: E402
from typing import Any  # noqa: E402

PREFIX = "streamgauge-quix"
JOBS = ("echo", "running_sum", "running_sum_rekeyed", "windowed_count", "windowed_count_rekeyed", "sliding_sum")
GUARANTEES = {"exactly_once": "exactly-once", "at_least_once": "at-least-once"}
CHECKSUM_MOD = 1 << 53
STATUS_EVERY_S = 1.0
CARRIED = ("processed", "processed_by_topic", "outputs", "windows_emitted", "late_records", "rebalances",
           "revocations", "recoveries", "restored_records", "starts")
"""Counters a restarted instance carries on from its predecessor's status file."""
MAX_TRANSITIONS = 200
LATE_WARNINGS_LOGGED = 5  # quixstreams' own "Skipping window processing" warning, for the first few only


class ConfigProblem(Exception):
    """The config file cannot be used (exit 2)."""


# -- the jobs' functions (scenarios/jobs.py, harness/api/pipeline.py) --------------------------------
def group_of(value: dict) -> str:
    """The derived key of the rekeyed jobs: crc32 of the entity key, 64 groups."""
    return f"g{zlib.crc32(value['k'].encode()) % 64:02d}"


def id_checksum(event_id: int) -> int:
    return ((int(event_id) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF) >> 11


def window_add(agg: dict, value: dict) -> dict:
    return {"n": agg["n"] + 1, "s": agg["s"] + value["v"],
            "h": (agg["h"] + id_checksum(value["id"])) % CHECKSUM_MOD,
            "st_max": max(agg["st_max"], value.get("st", 0))}


def window_init(value: dict) -> dict:
    return window_add({"n": 0, "s": 0, "h": 0, "st_max": 0}, value)


# -- config ------------------------------------------------------------------------------------------
def job_name(raw: Any) -> str:
    name = str(raw or "")
    if name.startswith("scenarios.jobs:"):
        name = name.split(":", 1)[1]
    return name


def load_config(path: str) -> dict:
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigProblem(f"cannot read the config {path}: {e}") from e
    if not isinstance(cfg, dict):
        raise ConfigProblem(f"the config {path} is not a JSON object")
    missing = [k for k in ("bootstrap", "application_id", "job", "guarantee", "topics", "state_dir", "status_path")
               if not cfg.get(k)]
    if missing:
        raise ConfigProblem(f"the config {path} lacks {', '.join(missing)}")
    topics = cfg["topics"]
    if not isinstance(topics, dict) or not topics.get("input") or not topics.get("output"):
        raise ConfigProblem("topics must name an input and an output topic")
    if cfg["guarantee"] not in GUARANTEES:
        raise ConfigProblem(f"guarantee {cfg['guarantee']!r} is not supported (one of {', '.join(GUARANTEES)})")
    strategy = cfg.get("closing_strategy")
    if strategy is not None and strategy not in ("key", "partition"):
        raise ConfigProblem(f"closing_strategy {strategy!r} is not one of key, partition")
    props = cfg.get("properties") or {}
    if not isinstance(props, dict):
        raise ConfigProblem("properties must be a JSON object")
    return cfg


def client_configs(cfg: dict) -> tuple[dict, dict]:
    """(consumer_extra_config, producer_extra_config) for the Application."""
    props = dict(cfg.get("properties") or {})
    only_consumer = props.pop("consumer", None) if isinstance(props.get("consumer"), dict) else {}
    only_producer = props.pop("producer", None) if isinstance(props.get("producer"), dict) else {}
    consumer = {**props, **(only_consumer or {})}
    producer = {**props, **(only_producer or {})}
    if cfg.get("session_timeout_ms"):
        consumer["session.timeout.ms"] = int(cfg["session_timeout_ms"])
    if cfg.get("heartbeat_interval_ms"):
        consumer["heartbeat.interval.ms"] = int(cfg["heartbeat_interval_ms"])
    instance = str(cfg.get("instance_id") or "")
    if instance:
        consumer.setdefault("client.id", f"{cfg['application_id']}-{instance}-consumer")
        producer.setdefault("client.id", f"{cfg['application_id']}-{instance}-producer")
    if cfg.get("transactional_id") and cfg["guarantee"] == "exactly_once":
        producer["transactional.id"] = str(cfg["transactional_id"])
    return consumer, producer


# -- status --------------------------------------------------------------------------------------------
def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class Status:
    """The status file: state, transitions and counters; written atomically, every second and on changes."""

    def __init__(self, cfg: dict) -> None:
        self.path = cfg["status_path"]
        self.lock = threading.Lock()
        self.state = "STARTING"
        self.transitions: list[dict] = []
        self.processed = 0
        self.processed_by_topic: dict[str, int] = {}
        self.outputs = 0
        self.windows_emitted = 0
        self.late_records = 0
        self.rebalances = 0
        self.revocations = 0
        self.recoveries = 0
        self.restored_records = 0
        self.starts = 0
        self.hooks: dict[str, bool] = {}
        self.assigned: list[str] = []
        self.internal_topics: list[str] = []
        self.error: str | None = None
        self.first_running: float | None = None
        self.imported_s: float | None = None
        self.info = {"instance_id": cfg.get("instance_id"), "application_id": cfg["application_id"],
                     "job": job_name(cfg["job"]), "guarantee": cfg["guarantee"], "pid": os.getpid(),
                     "started_at": PROCESS_START}
        self._load_previous()
        self.starts += 1
        self.transition("STARTING", initial=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="status", daemon=True)
        self._thread.start()

    def _load_previous(self) -> None:
        try:
            with open(self.path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            return
        if not isinstance(old, dict):
            return
        for name in CARRIED:
            if isinstance(old.get(name), type(getattr(self, name))):
                setattr(self, name, old[name])
        if isinstance(old.get("transitions"), list):
            self.transitions = old["transitions"][-MAX_TRANSITIONS:]

    def transition(self, to: str, *, initial: bool = False) -> None:
        with self.lock:
            if not initial and to == self.state:
                return
            now = time.time()
            self.transitions.append({"t": round(now, 3), "from": None if initial else self.state, "to": to,
                                     "pid": os.getpid()})
            del self.transitions[:-MAX_TRANSITIONS]
            self.state = to
            if to == "RUNNING" and self.first_running is None:
                self.first_running = now
        print(f"{PREFIX}: state {to}", flush=True)
        self.write()

    def snapshot(self) -> dict:
        return {
            "state": self.state, **self.info,
            "processed": self.processed, "processed_by_topic": dict(self.processed_by_topic),
            "outputs": self.outputs, "windows_emitted": self.windows_emitted, "late_records": self.late_records,
            "rebalances": self.rebalances, "revocations": self.revocations, "recoveries": self.recoveries,
            "restored_records": self.restored_records, "starts": self.starts,
            "assigned": list(self.assigned), "internal_topics": list(self.internal_topics),
            "import_s": self.imported_s,
            "time_to_running_s": (round(self.first_running - PROCESS_START, 3)
                                  if self.first_running is not None else None),
            "rss_bytes": rss_bytes(), "hooks": dict(self.hooks), "error": self.error,
            "updated_at": round(time.time(), 3), "transitions": list(self.transitions),
        }

    def write(self) -> None:
        with self.lock:
            data = json.dumps(self.snapshot())
            tmp = f"{self.path}.tmp"
            try:
                with open(tmp, "w") as f:
                    f.write(data)
                os.replace(tmp, self.path)
            except OSError as e:
                print(f"{PREFIX}: cannot write the status file {self.path}: {e}", file=sys.stderr, flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(STATUS_EVERY_S):
            try:
                self.write()
            except Exception as e:  # noqa: BLE001 - the status thread must outlive one bad write
                print(f"{PREFIX}: status write failed: {e}", file=sys.stderr, flush=True)

    def close(self, state: str) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.transition(state)


# -- the application -----------------------------------------------------------------------------------
class Worker:
    def __init__(self, cfg: dict, status: Status) -> None:
        self.cfg = cfg
        self.status = status
        self.job = job_name(cfg["job"])
        self.topics = cfg["topics"]
        self.late_topic = self.topics.get("late") or None
        self.stopping = False
        self.awaiting_assignment = True  # no assignment seen since the start or the last revocation
        self.app: Any = None

    # counters fed by quixstreams' callbacks and by the jobs
    def _on_processed(self, topic: str, _partition: int, _offset: int) -> None:
        st = self.status
        logical = "input" if topic == self.topics["input"] else "repartition"
        if logical == "input":
            st.processed += 1
        st.processed_by_topic[logical] = st.processed_by_topic.get(logical, 0) + 1

    def _on_late(self, value: Any, key: Any, timestamp_ms: int, _late_by_ms: int, start: int, end: int,
                 _name: str, _topic: str, _partition: int, _offset: int) -> bool:
        """quixstreams' on_late window callback: one call per (record, closed window) pair."""
        self.status.late_records += 1
        if self.late_topic is not None:
            k = key.decode() if isinstance(key, bytes) else key
            record = {"id": value.get("id"), "k": k, "et": value.get("et"), "ws": start, "we": end,
                      "why": "window closed"}
            # The application's own producer: under exactly-once the record joins the open transaction
            # of the checkpoint that processes this input, like the outputs do.
            self.app._producer.produce(topic=self.late_topic, key=None if k is None else str(k).encode(),
                                       value=json.dumps(record, separators=(",", ":")).encode(),
                                       timestamp=timestamp_ms)
        return self.status.late_records <= LATE_WARNINGS_LOGGED

    def _timestamp(self, value: Any, _headers: Any, timestamp: int, _type: Any) -> int:
        et = value.get("et") if isinstance(value, dict) else None
        return et if isinstance(et, int) and not isinstance(et, bool) else timestamp

    # the pipeline of each job
    def build(self, app: Any) -> None:
        inp, out = self.topics["input"], self.topics["output"]
        if self.job == "echo":
            sdf = app.dataframe(app.topic(inp, key_deserializer="bytes", value_deserializer="bytes"))
            sdf = sdf.update(self._count_output)
            sdf.to_topic(app.topic(out, key_serializer="bytes", value_serializer="bytes"))
            return
        source = app.topic(inp, key_deserializer="str", value_deserializer="json", timestamp_extractor=self._timestamp)
        sink = app.topic(out, key_serializer="str", value_serializer="json")
        sdf = app.dataframe(source)
        if self.job.endswith("_rekeyed"):
            # a real repartition topic (quixstreams' group_by), keys as plain UTF-8
            sdf = sdf.group_by(group_of, name="group", key_serializer="str", key_deserializer="str")
        if self.job.startswith("running_sum"):
            sdf = sdf.apply(self._running_sum, stateful=True, metadata=True)
        else:
            if self.job == "sliding_sum":
                # quixstreams' "sliding_window" is another kind of window; this is the DSL's Sliding(10 s, 5 s)
                window = sdf.hopping_window(duration_ms=10_000, step_ms=5000, grace_ms=2000, name="win",
                                            on_late=self._on_late)
            else:
                window = sdf.tumbling_window(duration_ms=5000, grace_ms=2000, name="win", on_late=self._on_late)
            reduced = window.reduce(reducer=window_add, initializer=window_init)
            strategy = self.cfg.get("closing_strategy")
            sdf = reduced.final(closing_strategy=strategy) if strategy else reduced.final()
            sdf = sdf.apply(self._window_output, metadata=True)
        sdf.to_topic(sink)

    def _count_output(self, _value: Any) -> None:
        self.status.outputs += 1

    def _running_sum(self, value: dict, key: Any, _ts: int, _headers: Any, state: Any) -> dict:
        agg = state.get("sum")
        n, s = (agg["n"], agg["s"]) if agg else (0, 0)
        n, s = n + 1, s + value["v"]
        state.set("sum", {"n": n, "s": s})
        self.status.outputs += 1
        return {"id": value["id"], "k": key, "n": n, "s": s, "et": value.get("et"), "st": value.get("st")}

    def _window_output(self, window: dict, key: Any, _ts: int, _headers: Any) -> dict:
        self.status.windows_emitted += 1
        self.status.outputs += 1
        return {"k": key, "ws": window["start"], "we": window["end"], **window["value"]}

    # observing quixstreams: assignment, recovery, stop
    def install_hooks(self, app: Any) -> None:
        """Wrap the Application's rebalance callbacks and message step, and count changelog restores.

        These are quixstreams 3.28.1 internals (Application._on_assign, _on_revoke, _on_lost,
        _process_message, the RecoveryManager's do_recovery, RecoveryPartition.recover_from_changelog_message);
        a hook that is missing is reported as false under "hooks" and its counters stay 0.
        """
        st = self.status
        hooks = st.hooks

        def wrap(obj: Any, name: str, before: Any = None, after: Any = None) -> bool:
            original = getattr(obj, name, None)
            if not callable(original):
                return False

            def wrapped(*args: Any, **kwargs: Any) -> Any:
                if before is not None:
                    before(*args, **kwargs)
                result = original(*args, **kwargs)
                if after is not None:
                    after(*args, **kwargs)
                return result

            setattr(obj, name, wrapped)
            return True

        def on_assign(_consumer: Any, partitions: list) -> None:
            st.rebalances += 1
            self.awaiting_assignment = False
            data = set(app._topic_manager.non_changelog_topics)
            st.assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions if tp.topic in data)
            if st.state == "RUNNING" and not self.stopping:
                st.transition("REBALANCING")
            st.write()

        def on_revoke(_consumer: Any, partitions: list) -> None:
            if partitions:
                st.revocations += 1
            self.awaiting_assignment = True
            st.assigned = []
            if st.state == "RUNNING" and not self.stopping:
                st.transition("REBALANCING")

        hooks["on_assign"] = wrap(app, "_on_assign", before=on_assign)
        hooks["on_revoke"] = wrap(app, "_on_revoke", before=on_revoke)
        hooks["on_lost"] = wrap(app, "_on_lost", before=on_revoke)

        state_manager = app._state_manager

        def maybe_running(*_a: Any, **_k: Any) -> None:
            # the main loop calls _process_message only when no recovery is pending
            if (not self.awaiting_assignment and not self.stopping and st.state != "RUNNING"
                    and not state_manager.recovery_required):
                st.transition("RUNNING")

        hooks["process_message"] = wrap(app, "_process_message", before=maybe_running, after=maybe_running)

        recovery = getattr(state_manager, "_recovery_manager", None)

        def count_recovery(*_a: Any, **_k: Any) -> None:
            st.recoveries += 1
            if st.state == "RUNNING" and not self.stopping:
                st.transition("REBALANCING")

        hooks["recovery"] = recovery is not None and wrap(recovery, "do_recovery", before=count_recovery)
        try:
            from quixstreams.state.recovery import RecoveryPartition

            original = RecoveryPartition.recover_from_changelog_message

            def counted(rp: Any, *args: Any, **kwargs: Any) -> Any:
                st.restored_records += 1
                return original(rp, *args, **kwargs)

            RecoveryPartition.recover_from_changelog_message = counted
            hooks["restored_records"] = True
        except (ImportError, AttributeError):
            hooks["restored_records"] = False

        def stop_requested(*_a: Any, **_k: Any) -> None:
            self.stopping = True

        hooks["stop"] = wrap(app, "stop", before=stop_requested)

    def run(self) -> int:
        import warnings

        # authlib (a dependency of confluent-kafka's schema registry client) warns at import; not ours to fix
        warnings.filterwarnings("ignore", message="The httpx module is deprecated")
        import quixstreams
        from confluent_kafka.admin import AdminClient
        from quixstreams import Application

        st = self.status
        st.imported_s = round(time.time() - PROCESS_START, 3)
        st.info["quixstreams"] = quixstreams.__version__
        cfg = self.cfg

        # quixstreams would create a missing input or output topic itself (1 partition, its own config):
        # the harness creates them, so a missing one is a config error here, not something to paper over.
        admin = AdminClient({"bootstrap.servers": cfg["bootstrap"], "log_level": 3})
        existing = admin.list_topics(timeout=30).topics
        missing = [t for t in (self.topics["input"], self.topics["output"]) if t not in existing]
        if missing:
            raise ConfigProblem(f"topics {', '.join(missing)} do not exist (the harness creates them before workers)")

        consumer_config, producer_config = client_configs(cfg)
        kwargs: dict[str, Any] = {}
        if cfg.get("commit_interval_s") is not None:
            kwargs["commit_interval"] = float(cfg["commit_interval_s"])
        app = Application(
            broker_address=cfg["bootstrap"],
            consumer_group=cfg["application_id"],
            auto_offset_reset="earliest",
            consumer_extra_config=consumer_config,
            producer_extra_config=producer_config,
            state_dir=cfg["state_dir"],
            on_message_processed=self._on_processed,
            processing_guarantee=GUARANTEES[cfg["guarantee"]],
            loglevel="INFO",
            auto_create_topics=True,  # its changelog and repartition topics; input/output exist (checked above)
            **kwargs,
        )
        self.app = app
        self.build(app)
        tm = app._topic_manager
        st.internal_topics = sorted([*tm.repartition_topics, *(t.name for t in tm.changelog_topics_list)])
        st.info["commit_interval_s"] = app.config.commit_interval
        st.info["transactional_id"] = app.config.producer_extra_config.get("transactional.id")
        self.install_hooks(app)
        if self.stopping:  # SIGTERM while starting
            return 0
        app.run()
        return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} CONFIG.json", file=sys.stderr)
        return 2
    try:
        cfg = load_config(argv[1])
    except ConfigProblem as e:
        print(f"{PREFIX}: {e}", file=sys.stderr, flush=True)
        return 2
    if job_name(cfg["job"]) not in JOBS:
        print(f"{PREFIX}: unknown job {cfg['job']!r} (known: {', '.join(JOBS)})", file=sys.stderr, flush=True)
        return 2
    os.makedirs(cfg["state_dir"], exist_ok=True)
    status = Status(cfg)
    worker = Worker(cfg, status)

    def early_stop(_signum: int, _frame: Any) -> None:  # quixstreams installs its own handlers in run()
        worker.stopping = True
        if worker.app is not None:
            worker.app.stop()

    signal.signal(signal.SIGTERM, early_stop)
    signal.signal(signal.SIGINT, early_stop)
    try:
        code = worker.run()
    except ConfigProblem as e:
        status.error = str(e)
        print(f"{PREFIX}: {e}", file=sys.stderr, flush=True)
        status.close("FAILED")
        return 2
    except BaseException as e:  # noqa: BLE001 - reported in the status file and the log
        status.error = f"{type(e).__name__}: {e}"
        traceback.print_exc()
        status.close("FAILED")
        return 1
    status.close("STOPPED")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
