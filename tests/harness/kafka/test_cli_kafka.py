"""`streamgauge kafka up|status|down` end to end, clean refusals, and no JVM left behind on any exit path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Producer

from harness.kafka.client import create_topics, read_all
from harness.proc import ManagedProcess, wait_until

CLI = [sys.executable, "-m", "harness.cli"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["STREAMGAUGE_HOME"] = str(tmp_path / "home")
    env.pop("STREAMGAUGE_BOOTSTRAP", None)
    env.update(extra)
    return env


def _sg(tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180):
    return subprocess.run([*CLI, *args], env=env or _env(tmp_path), capture_output=True, text=True,
                          timeout=timeout)


def _recorded_pids(tmp_path: Path) -> list[ManagedProcess]:
    state = json.loads((tmp_path / "home" / "kafka.json").read_text())
    return [ManagedProcess.from_dict(n["process"]) for n in state["nodes"]]


def _all_gone(procs: list[ManagedProcess]) -> bool:
    return not any(p.alive() for p in procs)


@pytest.mark.kafka
def test_up_status_down(tmp_path):
    up = _sg(tmp_path, "kafka", "up")
    assert up.returncode == 0, up.stderr
    procs = _recorded_pids(tmp_path)
    try:
        status = _sg(tmp_path, "kafka", "status", "--json")
        assert status.returncode == 0, status.stderr
        st = json.loads(status.stdout)
        assert st["provider"] == "local"
        assert st["version"].startswith("4.")
        assert st["bootstrap"] == up.stdout.strip()
        assert [n["alive"] for n in st["nodes"]] == [True]
        assert st["nodes"][0]["pid"] == procs[0].pid
        # a plain confluent-kafka client can use the bootstrap it printed
        bs = st["bootstrap"]
        create_topics(bs, {"sg.test.cli": 1})
        p = Producer({"bootstrap.servers": bs})
        p.produce("sg.test.cli", value=b"hello")
        assert p.flush(30) == 0
        assert [r.value for r in read_all(bs, "sg.test.cli")] == [b"hello"]
    finally:
        down = _sg(tmp_path, "kafka", "down")
    assert down.returncode == 0, down.stderr
    assert _all_gone(procs), "kafka down left a broker JVM running"  # by PID + start time; a zombie is gone
    after = _sg(tmp_path, "kafka", "status", "--json")
    assert after.returncode == 1 and json.loads(after.stdout)["provider"] is None


def test_refuses_cleanly_without_java(tmp_path):
    env = _env(tmp_path, PATH=str(tmp_path / "empty-path"))
    env.pop("JAVA_HOME", None)
    env.pop("STREAMGAUGE_JAVA", None)
    r = _sg(tmp_path, "kafka", "up", env=env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # one clear message, nothing else
    assert lines[0].startswith("streamgauge: error: Java 17+ not found"), r.stderr
    assert "JAVA_HOME" in lines[0]
    assert not (tmp_path / "home" / "kafka.json").exists()


def test_refuses_java_older_than_17(tmp_path):
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.21\" 2023-10-17' >&2\n")
    fake.chmod(0o755)
    r = _sg(tmp_path, "kafka", "up", env=_env(tmp_path, STREAMGAUGE_JAVA=str(fake)))
    assert r.returncode == 2
    assert "11.0.21" in r.stderr and "Java 17" in r.stderr and "Traceback" not in r.stderr


def test_maven_failure_names_the_command_and_how_to_retry(tmp_path):
    fake = tmp_path / "mvn"
    fake.write_text("#!/bin/sh\necho '[ERROR] Could not transfer artifact: network is unreachable'\nexit 1\n")
    fake.chmod(0o755)
    env = _env(tmp_path, STREAMGAUGE_MVN=str(fake), STREAMGAUGE_CACHE=str(tmp_path / "cache"))
    r = _sg(tmp_path, "kafka", "classpath", env=env)
    assert r.returncode == 2
    assert "Maven could not resolve the Kafka classpath" in r.stderr
    assert f"command: {fake}" in r.stderr and "dependency:build-classpath" in r.stderr
    assert "network is unreachable" in r.stderr
    assert "retry with: streamgauge kafka classpath" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.kafka
def test_ctrl_c_on_foreground_up_stops_the_broker(tmp_path):
    proc = subprocess.Popen([*CLI, "kafka", "up", "--foreground"], env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None  # both piped
    try:
        line = proc.stdout.readline()  # the bootstrap, printed once ready
        assert ":" in line, proc.stderr.read() if proc.poll() is not None else line
        procs = _recorded_pids(tmp_path)
        assert procs and all(p.alive() for p in procs)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) in (0, 130)
        wait_until(lambda: _all_gone(procs), 30, "broker JVM still running after Ctrl-C")
        assert not (tmp_path / "home" / "kafka.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.kafka
def test_ctrl_c_while_the_broker_starts_leaves_nothing(tmp_path):
    """Ctrl-C before the broker is ready: its JVM is stopped, nothing is recorded, no data is kept."""
    proc = subprocess.Popen([*CLI, "kafka", "up", "--foreground"], env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None  # both piped
    try:
        harness = psutil.Process(proc.pid)

        def jvms() -> list[psutil.Process]:
            """The broker JVMs (not the short-lived JVM that formats the storage first)."""
            found = []
            for c in harness.children(recursive=True):
                try:
                    if "java" in c.name() and "kafka.Kafka" in c.cmdline():
                        found.append(c)
                except psutil.NoSuchProcess:
                    continue
            return found

        wait_until(lambda: bool(jvms()) or proc.poll() is not None, 120, "no broker JVM was started")
        started = jvms()
        assert started, proc.stderr.read() if proc.poll() is not None else "the broker JVM is gone already"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) in (1, 130)
        wait_until(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in started),
                   30, "broker JVM still running after Ctrl-C during start")
        assert proc.stdout.read() == ""  # never reported a bootstrap
        assert not (tmp_path / "home" / "kafka.json").exists()
        assert not any((tmp_path / "home" / "kafka").glob("*/*")), "the stopped cluster's data was kept"
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.kafka
def test_broker_dies_with_a_killed_harness(tmp_path):
    """Even SIGKILL of the harness (no teardown code runs) takes its attached brokers down."""
    script = textwrap.dedent(f"""
        import json, sys, time
        from pathlib import Path
        from harness.kafka import LocalKafka
        k = LocalKafka(nodes_count=1, workdir=Path({str(tmp_path / 'k')!r}))
        k.start()
        print(json.dumps([p.to_dict() for p in k.processes()]), flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None  # piped
    try:
        procs = [ManagedProcess.from_dict(d) for d in json.loads(proc.stdout.readline())]
        assert all(p.alive() for p in procs)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        wait_until(lambda: _all_gone(procs), 30, "broker JVM outlived its SIGKILLed harness")
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.kafka
def test_a_failing_test_still_tears_the_broker_down(tmp_path):
    test_file = tmp_path / "test_inner.py"
    pids_file = tmp_path / "pids.json"
    test_file.write_text(textwrap.dedent(f"""
        import json
        from harness.kafka import LocalKafka

        def test_fails():
            with LocalKafka(nodes_count=1) as k:
                open({str(pids_file)!r}, "w").write(json.dumps([p.to_dict() for p in k.processes()]))
                assert False, "this inner test fails on purpose"
    """))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "this inner test fails on purpose" in r.stdout
    procs = [ManagedProcess.from_dict(d) for d in json.loads(pids_file.read_text())]
    assert procs and _all_gone(procs)


def test_docker_provider_without_an_engine_names_the_local_provider(tmp_path):
    from harness.kafka.docker import docker_available

    if docker_available()[0]:
        pytest.skip("a Docker engine answers on this machine")
    r = _sg(tmp_path, "kafka", "up", "--provider", "docker", "--foreground",
            env=_env(tmp_path, DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Docker engine answers" in lines[0] and "--provider local" in lines[0], r.stderr
