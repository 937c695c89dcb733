"""Network faults between engine workers and the brokers, made in the kernel as Jepsen makes them.

Each worker gets a network namespace of its own, attached by a veth pair to a bridge in the root namespace.
The bridge's address is where the brokers (and whatever else a worker must reach) listen for such a run. A
fault is a rule in the worker's own namespace, so it touches that worker's traffic to the brokers and nothing
else (a JobManager on the same address keeps its connections):

- ``partition``: nftables drops the worker's traffic to and from the brokers' ports;
- ``loss``: nftables drops that fraction of it, packet by packet (``numgen random``);
- ``delay`` (and jitter): the worker's connections to the brokers are redirected (nftables ``dnat`` in its
  namespace) through a TCP proxy of the harness (:mod:`harness.faults.proxy`), which holds each chunk for the
  delay; the kernel here has no netem.

Everything is named after the harness's PID (``sg<pid>w<i>``, ``sg<pid>br``), so :func:`clean_stale` removes
what a harness that was killed (even by SIGKILL) left; a :class:`Network` calls it when it starts and
removes its own at :meth:`Network.close`, on every exit path of the run.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

import psutil

from harness.errors import CapabilityError, ProcessError
from harness.faults.proxy import DelayProxies

TABLE = "sg"
NAMESPACE = re.compile(r"^sg(\d+)w\d+$")
BRIDGE = re.compile(r"^sg(\d+)br$")
VETH = re.compile(r"^sg(\d+)v\d+$")
#: the /24 networks a run may take for its bridge, the first one no interface uses
SUBNETS = [ipaddress.ip_network(f"10.213.{i}.0/24") for i in range(1, 250)]


def _run(*argv: str, namespace: str | None = None, check: bool = True, stdin: str | None = None) -> str:
    cmd = (["ip", "netns", "exec", namespace] if namespace else []) + list(argv)
    proc = subprocess.run(cmd, capture_output=True, text=True, input=stdin, timeout=30)
    if check and proc.returncode != 0:
        msg = f"{' '.join(cmd)} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()}"
        raise ProcessError(msg)
    return proc.stdout


def problems() -> list[str]:
    """Why network faults cannot be made on this machine (one line each), before the run."""
    out = []
    if os.geteuid() != 0:
        out.append("network faults make namespaces, a bridge and nftables rules: they need root")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            out.append(f"network faults need `{tool}` (the Debian package {package}: apt-get install {package})")
    if out:
        return out
    probe = f"sg{os.getpid()}w999"
    try:
        _run("ip", "netns", "add", probe)
        _run("nft", "list", "tables", namespace=probe)
    except ProcessError as e:
        out.append(f"network namespaces cannot be made here: {e}")
    finally:
        _run("ip", "netns", "delete", probe, check=False)
    return out


def _owner_gone(pid: int) -> bool:
    return pid != os.getpid() and not psutil.pid_exists(pid)


def clean_stale() -> list[str]:
    """Remove the namespaces and bridges of harnesses that are no longer running; returns what it removed."""
    removed = []
    for line in _run("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        m = NAMESPACE.match(name)
        if m and _owner_gone(int(m.group(1))):
            _run("ip", "netns", "delete", name, check=False)
            removed.append(name)
    for name in _links():
        m = BRIDGE.match(name) or VETH.match(name)
        if m and _owner_gone(int(m.group(1))):
            _run("ip", "link", "delete", name, check=False)
            removed.append(name)
    return removed


def _links(*kind: str) -> list[str]:
    out = _run("ip", "-o", "link", "show", *kind, check=False)
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


def _free_subnet() -> ipaddress.IPv4Network:
    used = _run("ip", "-o", "-4", "addr", "show", check=False)
    for net in SUBNETS:
        if f" {net.network_address + 1}/" not in used and str(net.network_address)[:-1] not in used:
            return net  # type: ignore[return-value]
    msg = "no free 10.213.x.0/24 network for a bridge"
    raise ProcessError(msg)


@dataclass
class Worker:
    """One worker's namespace and address, and what is in force on it."""

    name: str
    namespace: str
    address: str
    partitioned: bool = False
    loss: float = 0.0
    proxy_ports: dict[int, int] = field(default_factory=dict)  # broker port -> this worker's proxy port


class Network:
    """The namespaces and bridge of one run. ``broker_ports``: the ports whose traffic the faults touch
    (set before workers are added)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.bridge = f"sg{self.pid}br"
        self.subnet: ipaddress.IPv4Network | None = None
        self.workers: dict[str, Worker] = {}
        self.broker_ports: list[int] = []
        #: every worker's broker traffic through a delay proxy (a run with delay faults)
        self.proxied = False
        self._proxies: DelayProxies | None = None

    @property
    def bridge_address(self) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    def start(self) -> str:
        """Clean what killed runs left, make the bridge; returns its address."""
        if why := problems():
            raise CapabilityError("\n".join(why))
        clean_stale()
        self.subnet = _free_subnet()
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        try:
            _run("ip", "addr", "add", f"{self.bridge_address}/24", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
        except ProcessError:
            self.close()
            raise
        return self.bridge_address

    def add_worker(self, name: str) -> Worker:
        """A namespace for worker ``name`` (the same one again when it restarts), with the run's rules table."""
        if name in self.workers:
            return self.workers[name]
        assert self.subnet is not None
        index = len(self.workers)
        namespace = f"sg{self.pid}w{index}"
        address = str(self.subnet.network_address + 10 + index)
        root_end, ns_end = f"sg{self.pid}v{index}", f"sg{self.pid}p{index}"
        _run("ip", "netns", "add", namespace)
        worker = Worker(name, namespace, address)
        self.workers[name] = worker
        _run("ip", "link", "add", root_end, "type", "veth", "peer", "name", ns_end, "netns", namespace)
        _run("ip", "link", "set", root_end, "master", self.bridge)
        _run("ip", "link", "set", root_end, "up")
        _run("ip", "link", "set", "lo", "up", namespace=namespace)
        _run("ip", "link", "set", ns_end, "name", "eth0", namespace=namespace)
        _run("ip", "addr", "add", f"{address}/24", "dev", "eth0", namespace=namespace)
        _run("ip", "link", "set", "eth0", "up", namespace=namespace)
        _run("nft", "-f", "-", namespace=namespace, stdin=self._base_rules())
        return worker

    def wrap(self, name: str, argv: list[str]) -> list[str]:
        """``argv`` run inside worker ``name``'s namespace (the process keeps its PID: ``ip netns exec`` execs),
        through its delay proxy when the network is ``proxied``."""
        worker = self.add_worker(name)
        if self.proxied:
            self.proxy(name)
        return ["ip", "netns", "exec", worker.namespace, *argv]

    def proxy(self, name: str) -> None:
        """Send worker ``name``'s broker connections through a delay proxy from now on (call it before the
        worker starts: connections made before keep their path)."""
        worker = self.add_worker(name)
        if self._proxies is None:
            self._proxies = DelayProxies(self.bridge_address, seed=self.pid)
        if not worker.proxy_ports:
            worker.proxy_ports = self._proxies.add(name, self.broker_ports)
            _run("nft", "-f", "-", namespace=worker.namespace, stdin=self._base_rules(worker))

    # -- faults ----------------------------------------------------------------------------------------
    def delay(self, name: str, ms: float, jitter_ms: float = 0.0) -> None:
        """Hold worker ``name``'s traffic to and from the brokers for ``ms`` ± ``jitter_ms`` (0 heals it)."""
        if self._proxies is None or not self.workers[name].proxy_ports:
            msg = f"worker {name} does not reach the brokers through a delay proxy (Network.proxy before it starts)"
            raise ProcessError(msg)
        self._proxies.set_delay(name, ms, jitter_ms)

    def partition(self, name: str) -> None:
        """Cut worker ``name`` off from the brokers (both directions)."""
        worker = self.workers[name]
        self._rules(worker, f"add rule ip {TABLE} egress ip daddr {self.bridge_address} tcp dport {self._ports(worker)} "
                            f"drop comment \"partition\"\n"
                            f"add rule ip {TABLE} ingress ip saddr {self.bridge_address} tcp sport {self._ports(worker)} "
                            f"drop comment \"partition\"\n")
        worker.partitioned = True

    def lose(self, name: str, fraction: float) -> None:
        """Drop ``fraction`` of worker ``name``'s packets to and from the brokers."""
        worker = self.workers[name]
        per_mille = round(fraction * 1000)
        if per_mille <= 0:
            return
        draw = f"numgen random mod 1000 < {per_mille} " if per_mille < 1000 else ""
        self._rules(worker, f"add rule ip {TABLE} egress ip daddr {self.bridge_address} tcp dport {self._ports(worker)} "
                            f"{draw}drop comment \"loss\"\n"
                            f"add rule ip {TABLE} ingress ip saddr {self.bridge_address} tcp sport {self._ports(worker)} "
                            f"{draw}drop comment \"loss\"\n")
        worker.loss = fraction

    def heal(self, name: str) -> None:
        """Remove worker ``name``'s partition and loss rules (its proxy's delay is healed there)."""
        worker = self.workers[name]
        _run("nft", "-f", "-", namespace=worker.namespace, stdin=self._base_rules(worker))
        worker.partitioned, worker.loss = False, 0.0

    def heal_all(self) -> None:
        """Every worker's rules and delay back to none (the end of a run: the next one starts clean)."""
        for name, worker in self.workers.items():
            if worker.partitioned or worker.loss:
                self.heal(name)
            if self._proxies is not None and worker.proxy_ports:
                self._proxies.set_delay(name, 0.0)

    def rules(self, name: str) -> str:
        """The worker's nftables ruleset now (for tests and the run's log)."""
        return _run("nft", "list", "table", "ip", TABLE, namespace=self.workers[name].namespace)

    def close(self) -> None:
        """Remove every namespace (their veths and rules go with them), the proxies and the bridge. Safe to
        call twice."""
        if self._proxies is not None:
            self._proxies.close()
            self._proxies = None
        links = _links()
        for index, worker in enumerate(self.workers.values()):
            if f"sg{self.pid}v{index}" in links:  # the pair goes at once; a namespace's own end goes with it later
                _run("ip", "link", "delete", f"sg{self.pid}v{index}", check=False)
            _run("ip", "netns", "delete", worker.namespace, check=False)
        self.workers.clear()
        if self.bridge in links:
            _run("ip", "link", "delete", self.bridge, check=False)

    def __enter__(self) -> Network:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------------------
    def _ports(self, worker: Worker) -> str:
        ports = sorted({*self.broker_ports, *worker.proxy_ports.values()})
        if not ports:
            msg = "the network has no broker ports to act on"
            raise ProcessError(msg)
        return "{ " + ", ".join(str(p) for p in ports) + " }"

    def _rules(self, worker: Worker, rules: str) -> None:
        _run("nft", "-f", "-", namespace=worker.namespace, stdin=rules)

    def _base_rules(self, worker: Worker | None = None) -> str:
        """The table with its chains and, when the worker is proxied, the redirect of its broker traffic."""
        lines = [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}",
                 f"table ip {TABLE} {{",
                 "  chain egress { type filter hook output priority 0; policy accept; }",
                 "  chain ingress { type filter hook input priority 0; policy accept; }",
                 "  chain nat_out { type nat hook output priority -100; policy accept; }", "}"]
        for broker, proxy in (worker.proxy_ports.items() if worker else []):
            lines.append(f"add rule ip {TABLE} nat_out ip daddr {self.bridge_address} tcp dport {broker} "
                         f"dnat to {self.bridge_address}:{proxy}")
        return "\n".join(lines) + "\n"
