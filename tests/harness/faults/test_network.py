"""Network faults in the kernel: a worker's namespace cut off from, losing packets to, and delayed on its way to a
server on the bridge; everything removed at the end, and what a killed harness left removed by the next."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest

from harness.faults import network
from harness.faults.network import Network
from harness.proc import wait_until
from tests.harness.faults.leftovers import network_leftovers

pytestmark = pytest.mark.skipif(bool(network.problems()), reason="; ".join(network.problems()) or "-")


def _echo_server(host: str) -> tuple[int, threading.Event]:
    srv = socket.create_server((host, 0))
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], stop


def _echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)


CLIENT = textwrap.dedent("""
    import socket, sys, time
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    try:
        s = socket.create_connection((host, port), timeout=2)
        s.settimeout(2)
        ok = 0
        t = time.monotonic()
        for i in range(n):
            s.sendall(b"ping")
            got = b""
            while len(got) < 4:
                got += s.recv(4 - len(got))
            ok += 1
        print(f"ok {ok} {(time.monotonic() - t) / n * 1000:.0f}")
    except OSError as e:
        print(f"failed {type(e).__name__}")
""")


def _exchange(net: Network, worker: str, port: int, n: int = 5) -> str:
    argv = net.wrap(worker, [sys.executable, "-c", CLIENT, net.bridge_address, str(port), str(n)])
    return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.strip()


@pytest.fixture
def net() -> Iterator[Network]:
    with Network() as n:
        yield n


def test_partition_loss_and_delay_act_on_one_worker_and_heal(net):
    port, stop = _echo_server(net.bridge_address)
    try:
        net.broker_ports = [port]
        net.add_worker("w0")
        net.proxy("w1")
        assert _exchange(net, "w0", port).startswith("ok 5")
        net.partition("w0")
        assert _exchange(net, "w0", port) == "failed TimeoutError"
        assert _exchange(net, "w1", port).startswith("ok 5")  # the other worker is untouched
        assert "partition" in net.rules("w0")
        net.heal("w0")
        assert "partition" not in net.rules("w0")
        assert _exchange(net, "w0", port).startswith("ok 5")
        net.lose("w0", 1.0)
        assert _exchange(net, "w0", port) == "failed TimeoutError"
        net.heal("w0")
        assert _exchange(net, "w0", port).startswith("ok 5")

        fast = int(_exchange(net, "w1", port).split()[2])
        net.delay("w1", 150, jitter_ms=30)
        slow = _exchange(net, "w1", port, n=4)
        assert slow.startswith("ok 4") and int(slow.split()[2]) >= 2 * 120  # each way held 150 ± 30 ms
        net.delay("w1", 0)
        assert int(_exchange(net, "w1", port).split()[2]) < 100 + fast
        with pytest.raises(Exception, match="does not reach the brokers through a delay proxy"):
            net.delay("w0", 100)
    finally:
        stop.set()
    net.close()
    assert network_leftovers(net.pid) == []


def test_what_a_killed_harness_left_is_removed_by_the_next(tmp_path):
    script = textwrap.dedent("""
        import time
        from harness.faults.network import Network
        net = Network()
        net.start()
        net.broker_ports = [9]
        net.add_worker("w0")
        net.partition("w0")
        print("ready", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert len(network_leftovers(proc.pid)) >= 2  # its namespace and bridge (and the bridge's veth end)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert network_leftovers(proc.pid) != []  # SIGKILL leaves them
        removed = network.clean_stale()
        assert f"sg{proc.pid}w0" in removed and f"sg{proc.pid}br" in removed
        wait_until(lambda: network_leftovers(proc.pid) == [], 10, "the veth end to go with its namespace")
    finally:
        proc.kill()
        network.clean_stale()


def test_a_partition_needs_ports_to_act_on(net):
    net.add_worker("w0")
    with pytest.raises(Exception, match="no broker ports"):
        net.partition("w0")
    time.sleep(0)
