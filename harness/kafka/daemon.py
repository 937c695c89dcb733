"""`streamgauge kafka up|down|status`: a cluster that lives between commands.

The cluster's processes are recorded (PID + start time) in a state file under
:func:`harness.paths.state_dir`, so ``down`` stops exactly what ``up`` started.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from harness.errors import ConfigError
from harness.kafka import ExternalKafka, LocalKafka, make_provider
from harness.kafka.base import KafkaProvider
from harness.paths import state_dir


def state_file() -> Path:
    return state_dir() / "kafka.json"


def _read_state() -> dict | None:
    path = state_file()
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _write_state(state: dict) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def _provider_from_state(state: dict) -> KafkaProvider:
    if state.get("provider") == "local":
        return LocalKafka.from_state(state)
    if state.get("provider") == "external":
        return ExternalKafka(state["bootstrap"])
    msg = f"unreadable Kafka state in {state_file()}; remove it"
    raise ConfigError(msg)


def attach() -> LocalKafka | None:
    """The local cluster of `kafka up`, for a run that may kill, pause and restart its nodes (the state file
    follows a restarted node, so `kafka down` stops it); None when there is none running."""
    running = current()
    if not isinstance(running, LocalKafka):
        return None
    state = _read_state()
    assert state is not None
    provider = LocalKafka.from_state(state, attached=True)
    provider.on_relaunch = lambda p: _write_state(p.to_state())
    return provider


def current() -> KafkaProvider | None:
    """The cluster recorded by `kafka up`, if any of it still runs (external: if recorded)."""
    state = _read_state()
    if state is None:
        return None
    provider = _provider_from_state(state)
    if isinstance(provider, LocalKafka) and not any(n.alive for n in provider.nodes()):
        return None
    return provider


def up(*, provider: str = "local", nodes: int = 1, bootstrap: str | None = None,
       foreground: bool = False, log=print) -> int:
    """Start a cluster and record it; returns an exit code."""
    running = current()
    if running is not None:
        msg = (f"a Kafka cluster is already up at {running.bootstrap_servers()} "
               f"(recorded in {state_file()}); stop it first with: streamgauge kafka down")
        raise ConfigError(msg)
    if provider == "docker" and not foreground:
        msg = "the docker provider only runs attached: add --foreground (or use --provider local)"
        raise ConfigError(msg)
    workdir = state_dir() / "kafka" / time.strftime("%Y%m%d-%H%M%S") if provider == "local" else None
    kafka = make_provider(provider, nodes=nodes, bootstrap=bootstrap, workdir=workdir, detach=not foreground)
    if isinstance(kafka, LocalKafka):
        kafka._own_workdir = True  # `down` removes the data of the cluster it stops
    kafka.preflight()
    print(f"starting {provider} Kafka ({nodes} node{'s' if nodes > 1 else ''})...", file=sys.stderr)
    # One try covers start, the ready line and the foreground wait: a Ctrl-C that lands
    # anywhere after the start began (even between printing the bootstrap and waiting)
    # stops the brokers and forgets them. Only a detached cluster that started is left up.
    keep_running = False
    try:
        bootstrap_servers = kafka.start()
        state = kafka.to_state() if isinstance(kafka, LocalKafka) else {
            "provider": kafka.name, "bootstrap": bootstrap_servers}
        state["bootstrap"] = bootstrap_servers
        state["foreground_pid"] = os.getpid() if foreground else None
        if kafka.name != "docker":
            _write_state(state)
        log(bootstrap_servers)
        sys.stdout.flush()
        if not foreground:
            keep_running = True
            return 0
        print("Kafka is up; Ctrl-C stops it", file=sys.stderr)
        while kafka.name != "local" or any(n.alive for n in kafka.nodes()):
            time.sleep(0.5)
        print("every Kafka node has exited", file=sys.stderr)
        return 1
    finally:
        if not keep_running:
            _stop_uninterrupted(kafka)


def _stop_uninterrupted(kafka) -> None:
    """Stop the brokers and clear the record; a second Ctrl-C does not cut this short."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        kafka.stop()
        _clear_state()
    finally:
        signal.signal(signal.SIGINT, previous)


def _clear_state() -> None:
    try:
        state_file().unlink()
    except FileNotFoundError:
        pass


def down() -> int:
    """Stop the recorded cluster (SIGTERM, then SIGKILL) and forget it."""
    state = _read_state()
    if state is None:
        print("no Kafka cluster recorded; nothing to stop", file=sys.stderr)
        return 0
    provider = _provider_from_state(state)
    provider.stop()
    _clear_state()
    print(f"stopped {provider.name} Kafka at {state.get('bootstrap')}", file=sys.stderr)
    return 0


def status() -> dict | None:
    provider = current()
    if provider is None:
        return None
    state = _read_state() or {}
    out = provider.status()
    out["bootstrap"] = state.get("bootstrap", out["bootstrap"])
    return out
