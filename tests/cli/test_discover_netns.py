"""Discovery across a real link: two network namespaces of our own, joined by a veth pair.

The namespaces hold nothing but loopback and one end of the veth each
(10.213.N.1/24 for the client, 10.213.N.2/24 for the servers), so every
probe, broadcast included, goes out of the veth and nowhere else: the
client's default route is the veth, and nothing beyond it exists. Servers
and ``rpcengine discover`` run inside them (``ip netns exec``); this
process sends nothing itself. Everything is removed in teardown, even on
failure. Needs root (``ip netns add``); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from helpers.cli import SERVICE, URL_LINE

from rpcengine.discovery import DEFAULT_PORT, MAX_PROBE_SIZE

PID = f"{os.getpid() % 10**7}{secrets.token_hex(2)}"  # unique names; a veth name has at most 15 characters
CLIENT, SERVER = f"rpce{PID}c", f"rpce{PID}s"
SUBNET = f"10.213.{os.getpid() % 250 + 1}"
CLIENT_IP, SERVER_IP, SUBNET_BROADCAST = f"{SUBNET}.1", f"{SUBNET}.2", f"{SUBNET}.255"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15, check=check)


def remove_namespaces() -> None:
    """Delete both namespaces (and so the veth pair in them); nothing if they are gone."""
    for name in (CLIENT, SERVER):
        if name in ip("netns", "list", check=False).stdout.split():
            ip("netns", "del", name, check=False)


@pytest.fixture(scope="module")
def namespaces() -> Iterator[None]:
    """Two namespaces joined by a veth pair with private addresses; removed afterwards."""
    if shutil.which("ip") is None:
        pytest.skip("the ip command (iproute2) is not installed")
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    try:
        first = ip("netns", "add", CLIENT, check=False)
        if first.returncode != 0:
            pytest.skip(f"ip netns add is refused here: {first.stderr.strip()}")
        ip("netns", "add", SERVER)
        ip("link", "add", f"rpv{PID}c", "netns", CLIENT, "type", "veth", "peer", "name", f"rpv{PID}s", "netns", SERVER)
        for name, end, address in ((CLIENT, "c", CLIENT_IP), (SERVER, "s", SERVER_IP)):
            ip("-n", name, "addr", "add", f"{address}/24", "dev", f"rpv{PID}{end}")
            ip("-n", name, "link", "set", f"rpv{PID}{end}", "up")
            ip("-n", name, "link", "set", "lo", "up")
        # 255.255.255.255 needs a route: the veth, the client namespace's one way out.
        ip("-n", CLIENT, "route", "add", "default", "dev", f"rpv{PID}c")
        yield
    finally:
        remove_namespaces()
    assert CLIENT not in ip("netns", "list").stdout


def in_namespace(name: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", name, sys.executable, *args]


class NsServer:
    """A `rpcengine serve` inside the server namespace, and the lines it printed."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            in_namespace(SERVER, "-m", "rpcengine", "serve", SERVICE, "tcp://0.0.0.0:0", *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("")

    def wait_for(self, count: int, timeout: float = 20) -> list[str]:
        """Return the first ``count`` lines printed; fail if it exits or says nothing in time."""
        lines = []
        deadline = time.monotonic() + timeout
        while len(lines) < count:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line, f"serve exited {self.proc.poll()} after {lines}"
            lines.append(line)
        return lines

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def start_server(namespaces: None) -> Iterator[Callable[..., str]]:
    """Start servers in the server namespace (each waited for: its URL, then its discovery line); stopped after."""
    started: list[NsServer] = []

    def start(*args: str) -> str:
        server = NsServer(*args)
        started.append(server)
        lines = server.wait_for(2 if "--discovery" in args else 1)
        match = URL_LINE.match(lines[0])
        assert match, lines
        if "--discovery" in args:
            assert lines[1].startswith(f"answering discovery on UDP port {DEFAULT_PORT}"), lines
        return match.group(1).replace("0.0.0.0", SERVER_IP)

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def discover_from_client(*args: str) -> tuple[int, list[dict[str, object]]]:
    """Run `rpcengine discover --json ARGS` in the client namespace; return its exit code and what it found."""
    result = subprocess.run(
        in_namespace(CLIENT, "-m", "rpcengine", "discover", "--json", "--timeout", "1", *args),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode in (0, 3), result.stderr
    return result.returncode, json.loads(result.stdout)


def names(found: list[dict[str, object]]) -> list[object]:
    return sorted(server["name"] for server in found)


def test_discover_finds_the_two_servers_of_its_workgroup_and_not_the_other(start_server: Callable[..., str]) -> None:
    alpha = start_server("--discovery", "--name", "alpha", "--workgroup", "lab")
    beta = start_server("--discovery", "--name", "beta", "--workgroup", "lab")
    start_server("--discovery", "--name", "gamma", "--workgroup", "other")
    code, found = discover_from_client("--workgroup", "lab")
    assert code == 0 and names(found) == ["alpha", "beta"]
    assert {server["name"]: server["urls"] for server in found} == {"alpha": [alpha], "beta": [beta]}
    assert all(server["address"] == SERVER_IP and server["workgroup"] == "lab" for server in found)
    # Without a workgroup, every server answers; the subnet's broadcast address works as well.
    assert names(discover_from_client()[1]) == ["alpha", "beta", "gamma"]
    assert names(discover_from_client("--address", SUBNET_BROADCAST, "--workgroup", "other")[1]) == ["gamma"]


SENDER = """
import json, socket, sys
port, size = int(sys.argv[1]), int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
probe = json.dumps({"rpcengine_discover": 1, "workgroup": None, "nonce": "n" * 16}).encode()
garbage = [b"", b"junk", b"\\xff" * 300, b"[" * 500, b'{"rpcengine_discover": 1}', b"{}" * 2000,
           probe[:-1] + b" " * (size + 1 - len(probe)) + b"}"]


def answers():
    count = 0
    sock.settimeout(0.5)
    try:
        while True:
            sock.recvfrom(4096)
            count += 1
    except socket.timeout:
        return count


for address in sys.argv[4:]:
    for datagram in garbage * 20:
        sock.sendto(datagram, (address, port))
ignored = answers()
sock.sendto(probe, (sys.argv[3], port))  # the control: a valid probe to one host is answered once
print(ignored, answers())
"""


def test_garbage_and_oversize_probes_are_ignored_and_responders_keep_answering(
    start_server: Callable[..., str],
) -> None:
    for name in ("alpha", "beta"):
        start_server("--discovery", "--name", name, "--workgroup", "lab")
    addresses = ("255.255.255.255", SUBNET_BROADCAST, SERVER_IP)
    result = subprocess.run(
        in_namespace(CLIENT, "-c", SENDER, str(DEFAULT_PORT), str(MAX_PROBE_SIZE), SERVER_IP, *addresses),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1"], "no garbage or oversize probe answered; a valid probe is"
    code, found = discover_from_client("--workgroup", "lab")
    assert code == 0 and names(found) == ["alpha", "beta"]


def test_with_discovery_off_nothing_answers(start_server: Callable[..., str]) -> None:
    start_server()
    code, found = discover_from_client()
    assert (code, found) == (3, [])
    code, found = discover_from_client("--address", SERVER_IP)
    assert (code, found) == (3, [])
