"""``rpcengine demo --cluster``: two server processes, one counter, broadcasts through Redis.

It starts a private ``redis-server`` on a Unix socket in a temporary folder
(no TCP port, persistence off; or uses the Redis given with ``--broker
URL``), then two ``rpcengine serve rpcengine.cli.demo_service:DemoService
tcp://127.0.0.1:PORT --broker URL`` processes, node 1 and node 2, each on
its own port. alice connects to node 1 and bob to node 2, and the script
(:func:`run_cluster_script`) shows that

* a broadcast made on one node reaches the clients of both (the counter's
  ``counter.changed``, published once through Redis), and the counter is
  one value, kept in Redis, whichever node adds to it;
* a notification sent to node 2 is broadcast to the clients of both;
* node 1 can call a client held by node 2: alice asks node 1 to greet bob,
  and node 1 asks bob's ``whoami`` through the broker.

Every wait is bounded; at the end (or on Ctrl-C) the clients are closed,
both nodes are stopped (SIGTERM, then SIGKILL if one lingers), the private
redis-server is stopped and its folder, socket included, removed. Each run
uses a key prefix of its own, so a shared Redis given with ``--broker``
keeps nothing of the demo afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import gevent
from gevent import subprocess

import rpcengine
from rpcengine.cli.broker import broker_client, check_reachable, display_url
from rpcengine.cli.demo_script import WAIT, DemoClient, play, show
from rpcengine.cli.errors import CliError, ExitCode
from rpcengine.cli.signals import stop_requested
from transports import tcp

__all__ = ["REDIS_SERVER", "ClusterNode", "PrivateRedis", "find_redis_server", "run_cluster_demo", "run_cluster_script"]

#: Where Debian's redis-server package installs the server (also looked for on PATH).
REDIS_SERVER = "/usr/bin/redis-server"
#: The service both nodes serve.
SERVICE = "rpcengine.cli.demo_service:DemoService"
#: The nodes listen on the loopback interface only.
HOST = "127.0.0.1"
#: Seconds redis-server, and then each node, may take to be ready.
START_WAIT = 20.0
#: Seconds a process may take to end after SIGTERM before it is killed.
STOP_WAIT = 10.0
#: Seconds between alice's additions while the demo keeps running.
TICK = 2.0


def find_redis_server() -> str | None:
    """Return the path of a redis-server program (PATH first, then /usr/bin), or None."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    return REDIS_SERVER if os.access(REDIS_SERVER, os.X_OK) else None


def _end(process: Any, timeout: float = STOP_WAIT) -> None:
    """Stop ``process`` with SIGTERM, then SIGKILL if it has not ended within ``timeout`` (yields)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def private_redis_args(binary: str, socket_path: str, folder: Path) -> list[str]:
    """Return the command line of a private redis-server: a Unix socket only, no persistence, a log in ``folder``."""
    return [
        binary,
        "--port", "0",
        "--unixsocket", socket_path,
        "--unixsocketperm", "700",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(folder),
        "--daemonize", "no",
        "--loglevel", "warning",
        "--logfile", str(folder / "redis.log"),
    ]  # fmt: skip


class PrivateRedis:
    """The demo's own redis-server: a Unix socket in a temporary folder, no TCP port, no persistence."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.folder = Path(tempfile.mkdtemp(prefix="rpcengine-demo-"))
        self.path = str(self.folder / "redis.sock")
        #: The broker URL of this server.
        self.url = f"unix://{self.path}"
        self.process: Any = None

    def start(self) -> PrivateRedis:
        """Start redis-server and wait (yielding, bounded) until it answers PING; raise CliError (exit 4) if not."""
        args = private_redis_args(self.binary, self.path, self.folder)
        try:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        except OSError as exc:
            raise CliError(f"cannot start {self.binary}: {exc}", ExitCode.CONNECTION) from None
        client = broker_client(self.url)
        deadline = gevent.get_hub().loop.now() + START_WAIT
        try:
            while True:
                if self.process.poll() is not None:
                    raise CliError(f"{self.binary} exited with code {self.process.returncode}: {self._log()}")
                try:
                    check_reachable(client, self.url, timeout=1.0)
                    return self
                except CliError:
                    if gevent.get_hub().loop.now() >= deadline:
                        raise CliError(
                            f"{self.binary} did not answer within {START_WAIT:g} s: {self._log()}", ExitCode.CONNECTION
                        ) from None
                gevent.sleep(0.05)  # a starting process: nothing to wait on but its socket
        finally:
            client.close()

    def _log(self) -> str:
        """The last lines of the server's log (for an error message)."""
        path = self.folder / "redis.log"
        lines = path.read_text(errors="replace").splitlines()[-3:] if path.exists() else []
        return " | ".join(lines) or "no log"

    def stop(self) -> None:
        """Stop the server and remove its folder (the socket with it); bounded."""
        if self.process is not None:
            _end(self.process)
            self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)


def _port(preferred: int) -> int:
    """Return ``preferred`` if nothing listens there now, else 0 (any free port)."""
    if not preferred:
        return 0
    with socket.socket() as probe:
        try:
            probe.bind((HOST, preferred))
        except OSError:
            return 0
    return preferred


class ClusterNode:
    """One node of the demo: an ``rpcengine serve ... --broker URL`` process and what it printed."""

    def __init__(self, number: int, port: int, broker_url: str, prefix: str, *, trace: bool, log_level: str) -> None:
        self.number = number
        self.url = ""
        self.node_id = ""
        args = [
            sys.executable, "-m", "rpcengine", "serve", SERVICE, f"tcp://{HOST}:{port}",
            "--broker", broker_url, "--broker-prefix", prefix, "--log-level", log_level,
        ]  # fmt: skip
        if trace:
            args.append("--trace")
        # The same rpcengine as this process's, wherever the command runs from.
        root = str(Path(rpcengine.__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        self.process: Any = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env, universal_newlines=True
        )

    @property
    def address(self) -> tuple[str, int]:
        """The node's TCP listener, ``(host, port)``."""
        host, port = self.url.removeprefix("tcp://").rsplit(":", 1)
        return host, int(port)

    def wait_ready(self, timeout: float = START_WAIT) -> ClusterNode:
        """Read the node's ``listening on URL`` and ``broker node ID`` lines (bounded); raise CliError if it fails."""
        try:
            with gevent.Timeout(timeout):
                while not self.node_id:
                    line = self.process.stdout.readline()
                    if not line:
                        code = self.process.wait(STOP_WAIT)
                        raise CliError(f"node {self.number} exited with code {code} before it was ready")
                    if line.startswith("listening on "):
                        self.url = line.split()[-1]
                    elif line.startswith("broker node "):
                        self.node_id = line.split()[2]
        except gevent.Timeout:
            raise CliError(f"node {self.number} was not ready within {timeout:g} s", ExitCode.CONNECTION) from None
        return self

    def terminate(self) -> None:
        """Ask the node to stop (SIGTERM); does not wait."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """Stop the node (SIGTERM; SIGKILL if it lingers) and wait for it; bounded."""
        _end(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()


def run_cluster_script(alice: DemoClient, bob: DemoClient, nodes: list[ClusterNode], out: TextIO) -> None:
    """Run the cluster demo's steps: alice on node 1, bob on node 2; raise if one misbehaves."""
    a, b = alice.engine, bob.engine
    assert a is not None and b is not None
    labels = {alice.name: f"{alice.name:<5} (node 1)", bob.name: f"{bob.name:<5} (node 2)"}

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    def both_received() -> None:
        for client in (alice, bob):
            method, data = client.next_broadcast()
            say(f"   {labels[client.name]} got  {method} {show(data)}")

    say("1. request: alice calls add(5) on node 1")
    say(f"   answer: {show(a.request('add', 5, timeout=WAIT))}")
    say("2. broadcast: node 1 published counter.changed once, through Redis; the clients of both nodes got it")
    both_received()

    say("3. request: bob calls add(2) on node 2; the counter is one value, kept in Redis")
    say(f"   answer: {show(b.request('add', 2, timeout=WAIT))}")
    both_received()

    say("4. notification: bob sends say(...) to node 2; it is broadcast to the clients of both nodes")
    b.notify("say", {"name": bob.name, "text": "hello from node 2"})
    both_received()

    session = getattr(b.transport, "session_id", "")
    say("5. call across nodes: alice asks node 1 to greet bob, whose connection node 2 holds")
    owner = "node 2" if session.startswith(f"{nodes[1].node_id}.") else "another node"
    say(f"   bob's session id {session} starts with {owner}'s id")
    greeting = a.request("greet", session, timeout=WAIT)
    say(f"   node 1 asked bob through Redis: {', '.join(bob.asked)}() -> {show(bob.name)}")
    say(f"   answer: {show(greeting)}")


def _opener(address: tuple[str, int]) -> Callable[[Any], Any]:
    """Return a function that connects a client's rpc handler to ``address`` over TCP."""

    def open_tcp(handler: Any) -> Any:
        return tcp.connect(address[0], address[1], handler)

    return open_tcp


class _Cluster:
    """The Redis, the nodes and the clients of one ``demo --cluster`` run."""

    def __init__(self, broker_url: str | None, base_port: int, out: TextIO, trace: bool, log_level: str) -> None:
        self.out = out
        self.base_port = base_port
        self.trace = trace
        self.log_level = log_level
        self.given_url = broker_url
        self.redis: PrivateRedis | None = None
        self.url = broker_url or ""
        #: A prefix of this run's own: the counter starts at 0, nothing clashes on a shared Redis.
        self.prefix = f"rpcengine-demo-{secrets.token_hex(4)}"
        self.nodes: list[ClusterNode] = []
        self.clients: list[DemoClient] = []

    def say(self, text: str = "") -> None:
        """Print one line of the demo's output."""
        print(text, file=self.out, flush=True)

    def start(self) -> None:
        """Start (or check) Redis, then the two nodes, and wait until both are ready."""
        if self.given_url is None:
            binary = find_redis_server()
            if binary is None:
                raise CliError(
                    f"demo --cluster needs redis-server ({REDIS_SERVER} is not installed: apt install redis-server), "
                    "or a Redis to use: --broker URL",
                    ExitCode.USAGE,
                )
            self.redis = PrivateRedis(binary).start()
            self.url = self.redis.url
        else:
            client = broker_client(self.given_url)
            try:
                check_reachable(client, self.given_url)
            finally:
                client.close()
        for number in (1, 2):
            port = _port(self.base_port + number - 1 if self.base_port else 0)
            node = ClusterNode(number, port, self.url, self.prefix, trace=self.trace, log_level=self.log_level)
            self.nodes.append(node)
        for node in self.nodes:
            node.wait_ready()

    def connect_clients(self) -> tuple[DemoClient, DemoClient]:
        """Connect alice to node 1 and bob to node 2; return them."""
        for name, node in (("alice", self.nodes[0]), ("bob", self.nodes[1])):
            self.clients.append(DemoClient(name).connect(_opener(node.address)))
        return self.clients[0], self.clients[1]

    def print_header(self) -> None:
        """Print where Redis and the nodes are."""
        say = self.say
        say("rpcengine demo --cluster: two server processes share one counter through Redis;")
        say("a broadcast made on either node reaches the clients of both")
        say()
        where = "a private redis-server, removed at the end" if self.redis else "given with --broker"
        say(f"  Redis    {display_url(self.url)} ({where})")
        for node in self.nodes:
            say(f"  node {node.number}   {node.url}   broker node {node.node_id}")
        say()
        say("alice connects to node 1, bob to node 2.")
        say()

    def keep_running(self, seconds: float, stop: Any, alice: DemoClient) -> None:
        """Serve ``seconds`` more (or until ``stop``), alice adding 1 on node 1 every TICK seconds."""
        urls = " and ".join(node.url for node in self.nodes)
        self.say()
        self.say(f"serving {urls} for {seconds:g} s more (alice adds 1 on node 1 every {TICK:g} s); Ctrl-C stops")
        deadline = gevent.get_hub().loop.now() + seconds
        while not stop.is_set():
            remaining = deadline - gevent.get_hub().loop.now()
            if remaining <= 0 or stop.wait(min(TICK, remaining)):
                break
            assert alice.engine is not None
            alice.engine.request("add", 1, timeout=WAIT)

    def stop(self) -> None:
        """Close the clients, stop both nodes, remove the demo's key, stop the private Redis (bounded)."""
        for client in self.clients:
            client.close()
        for node in self.nodes:
            node.terminate()  # both at once: they stop side by side
        for node in self.nodes:
            node.stop()
        if self.redis is not None:
            self.redis.stop()
        elif self.url and self.nodes:
            self._forget_counter()

    def _forget_counter(self) -> None:
        """Remove the run's counter key from a Redis given with --broker (the nodes removed their own keys)."""
        client = broker_client(self.url)
        try:
            with gevent.Timeout(STOP_WAIT):
                client.delete(f"{self.prefix}:demo:counter")
        except (Exception, gevent.Timeout) as exc:  # the demo is over: say it, do not fail for it
            print(f"note: the demo's key {self.prefix}:demo:counter was not removed: {exc}", file=sys.stderr)
        finally:
            client.close()

    def farewell(self) -> None:
        """Say plainly what was stopped and removed."""
        self.say()
        if self.redis is not None:
            self.say("done: both nodes stopped, and the private redis-server; its folder and socket are removed")
        else:
            self.say(f"done: both nodes stopped; nothing of the demo is left on {display_url(self.url)}")


def run_cluster_demo(
    *,
    broker_url: str | None = None,
    keep_running: float = 0.0,
    base_port: int = 7300,
    out: TextIO | None = None,
    trace: bool = False,
    log_level: str = "warning",
) -> int:
    """Run the two-node demo; return exit code 0. Blocks (yields) until it is over.

    ``broker_url``: a Redis to use instead of a private redis-server.
    ``base_port`` and ``base_port + 1`` are tried for node 1 and node 2 (free
    ports if taken; ``0``: free ports always). ``trace`` and ``log_level``
    go to both nodes (their stderr is this process's). Raises CliError:
    exit 2 without redis-server and ``broker_url``, exit 4 when Redis or a
    node cannot be started or reached.
    """
    cluster = _Cluster(broker_url, base_port, out or sys.stdout, trace, log_level)
    stop = stop_requested()
    play(cluster, lambda alice, bob: run_cluster_script(alice, bob, cluster.nodes, cluster.out), keep_running, stop)
    return ExitCode.OK
