"""Helpers shared by the reliability tests: leak counts, fds, worlds, healthy clients, probes.

A *world* is one server (loopback, TCP or WebSocket) serving :class:`Service`;
``world.connect()`` returns a :class:`Connection`: a client Engine, the
server-side Engine of the same connection, and ways to put raw frames on
the wire in either direction. Engine-level tests run once per transport.
"""

from __future__ import annotations

import gc
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.socket
from gevent.event import Event
from gevent.hub import Hub
from gevent.threadpool import _WorkerGreenlet as ThreadPoolWorker
from greenlet import greenlet

from dispatchers import MethodDispatcher
from rpcengine import ALL_FEATURES, ConnectionLost, Engine, Error, Message, Request, RpcError
from transports.link import SocketLink
from transports.memory import pair
from transports.session import Session

from .service import Service

#: The per-input latency budget for an Error reply or a clean close.
BUDGET = 0.1

#: Types whose live instances the leak check counts.
TRACKED_TYPES: dict[str, type] = {
    "Engine": Engine,
    "Session": Session,
    "SocketLink": SocketLink,
    "Request": Request,
    "greenlet": greenlet,
}


def fd_count() -> int:
    """Return the number of file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def _counted_greenlet(obj: object) -> bool:
    """Whether ``obj`` is a greenlet the library could leak (not gevent's hub or thread-pool machinery)."""
    return (
        isinstance(obj, greenlet)
        and not obj.dead
        and obj.parent is not None  # a thread's main greenlet
        and not isinstance(obj, (Hub, ThreadPoolWorker))
    )


def object_counts() -> Counter[str]:
    """Return live instance counts of :data:`TRACKED_TYPES` (after a full collection).

    Greenlets count when alive and not part of gevent itself (the hub, the
    resolver's thread pool, whose idle workers exit on their own time).
    """
    gc.collect()
    counts: Counter[str] = Counter({name: 0 for name in TRACKED_TYPES})
    kinds = tuple((name, kind) for name, kind in TRACKED_TYPES.items() if kind is not greenlet)
    for obj in gc.get_objects():
        if isinstance(obj, greenlet):
            if _counted_greenlet(obj):
                counts["greenlet"] += 1
            continue
        for name, kind in kinds:
            if isinstance(obj, kind):
                counts[name] += 1
    return counts


@dataclass
class Baseline:
    """Object and fd counts taken before a test's load, to compare with after it."""

    objects: Counter[str]
    fds: int

    @classmethod
    def take(cls) -> Baseline:
        """Settle the hub, then record object and fd counts."""
        settle()
        return cls(object_counts(), fd_count())

    def excess(self) -> dict[str, int]:
        """Return what is alive now beyond the baseline (empty when back to it)."""
        now = object_counts()
        extra = {name: now[name] - self.objects[name] for name in TRACKED_TYPES if now[name] > self.objects[name]}
        fds = fd_count()
        if fds > self.fds:
            extra["fds"] = fds - self.fds
        return extra

    def wait_back(self, timeout: float = 10.0) -> dict[str, int]:
        """Yield until counts are back at the baseline or ``timeout`` passes; return the excess left."""
        deadline = time.monotonic() + timeout
        extra = self.excess()
        while extra and time.monotonic() < deadline:
            if os.environ.get("DEBUG_LEAKS"):
                print("excess", round(time.monotonic() - deadline + timeout, 2), extra, flush=True)
                for obj in gc.get_objects():
                    if _counted_greenlet(obj):
                        print("   alive:", obj, getattr(obj, "_run", None))
            gevent.sleep(0.02)
            extra = self.excess()
        return extra


def settle(turns: int = 5) -> None:
    """Let every runnable greenlet run a few times (no wall-clock waiting)."""
    for _ in range(turns):
        gevent.idle()
        gevent.sleep(0)


def wait_until(condition: Callable[[], object], timeout: float, what: str = "condition") -> float:
    """Yield until ``condition()`` is true; return the seconds it took; fail after ``timeout``."""
    start = time.monotonic()
    deadline = start + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        gevent.sleep(0.002)
    return time.monotonic() - start


# -- connections and worlds ---------------------------------------------------


class Connection:
    """A client Engine, its server-side Engine, and raw frame injection both ways."""

    def __init__(
        self,
        client: Engine,
        server: Engine,
        to_server: Callable[[bytes], None],
        to_client: Callable[[bytes], None],
    ) -> None:
        self.client = client
        self.server = server
        self._to_server = to_server
        self._to_client = to_client
        #: Every message the client engine received (in order) with its arrival time.
        self.received: list[tuple[float, Message]] = []
        self.closed_at: float | None = None
        self.changed = Event()
        original = client.handle_message

        def recording(message: Message) -> None:
            self.received.append((time.perf_counter(), message))
            self.changed.set()
            original(message)

        client.handle_message = recording  # type: ignore[method-assign]
        client.on_close(self._closed)

    def _closed(self, _engine: Engine) -> None:
        self.closed_at = time.perf_counter()
        self.changed.set()

    def inject(self, frame: bytes) -> None:
        """Put ``frame`` on the wire from client to server, as one frame (no validation)."""
        self._to_server(frame)

    def inject_to_client(self, frame: bytes) -> None:
        """Put ``frame`` on the wire from server to client, as one frame."""
        self._to_client(frame)

    def replies_to(self, request_id: int) -> list[tuple[float, Message]]:
        """Return the Responses and Errors received for ``request_id``."""
        return [(t, m) for t, m in self.received if getattr(m, "request_message_id", None) == request_id]

    def wait_for(self, condition: Callable[[], object], timeout: float) -> bool:
        """Wait (yielding, woken by each arrival or the close) until ``condition()``; return it."""
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            if condition():
                return True
            self.changed.wait(remaining)
        return True

    def close(self) -> None:
        """Close the client engine (and so the connection)."""
        self.client.close()


@dataclass
class Outcome:
    """What a bad input led to: ``error`` (an Error reply), ``close`` (a clean close) or ``survive``."""

    kind: str
    elapsed: float
    detail: Any = None


def send_bad(conn: Connection, frame: bytes, request_id: int | None = None, probe: bool = True) -> Outcome:
    """Inject ``frame`` and classify what happens, measuring the time it takes.

    A probe request follows the frame on the same connection; frames are
    handled in order, so once the probe is answered the bad frame has been
    dealt with: an Error naming ``request_id`` means ``error``, a closed
    connection means ``close``, and an answered probe with no Error means
    the input was ignored and the connection ``survive``\\ d.
    """
    start = time.perf_counter()
    conn.inject(frame)
    probe_answered: float | None = None
    probe_error: str | None = None
    if probe and not conn.client.closed:
        try:
            conn.client.request("echo", "probe", timeout=5)
            probe_answered = time.perf_counter()
        except RpcError as exc:  # kept as text: the exception's traceback would keep the engines alive
            probe_error = repr(exc)
    if request_id is not None:
        # An Error for a request id may come from a worker, after the probe's answer.
        conn.wait_for(lambda: conn.replies_to(request_id) or conn.closed_at is not None, 2.0)
        replies = conn.replies_to(request_id)
        if replies:
            at, message = replies[0]
            kind = "error" if type(message) is Error else "response"
            return Outcome(kind, at - start, message.data)  # type: ignore[attr-defined]
    if conn.closed_at is not None or conn.client.closed:
        if conn.closed_at is None:
            conn.wait_for(lambda: conn.closed_at is not None, 2.0)
        return Outcome("close", (conn.closed_at or time.perf_counter()) - start, probe_error)
    if probe_answered is not None:
        return Outcome("survive", probe_answered - start)
    if not probe:
        return Outcome("sent", time.perf_counter() - start)
    return Outcome("stuck", time.perf_counter() - start, probe_error)


class World:
    """A server of :class:`Service` on one transport; connections made with :meth:`connect`."""

    name = "abstract"
    #: Whether garbage with no request id closes the connection (False: logged and skipped).
    closes_on_garbage = True

    def __init__(self, **options: Any) -> None:
        self.service = Service()
        self.handler = MethodDispatcher(self.service)
        self.options = options
        self.connections: list[Connection] = []

    def start(self) -> World:
        """Start the server; return self."""
        return self

    def connect(self, **options: Any) -> Connection:
        """Return a new connection to this world's server."""
        raise NotImplementedError

    def server_sessions(self) -> int:
        """Number of server-side sessions (connections) alive; forgets the closed ones."""
        self.connections = [c for c in self.connections if not (c.client.closed and c.server.closed)]
        return sum(1 for c in self.connections if not c.server.closed)

    def stop(self) -> None:
        """Close every connection and stop the server."""
        self.service.release.set()
        for conn in self.connections:
            conn.client.close()
            conn.server.close()
        self.connections.clear()


class LoopbackWorld(World):
    """Each connection is an in-memory pair with its own server Engine (sharing one handler)."""

    name = "loopback"

    def connect(self, **options: Any) -> Connection:
        """Return a new loopback connection."""
        capacity = options.pop("capacity", 1024)
        server_options = dict(self.options)
        features = server_options.pop("features", ALL_FEATURES)  # (a pair's, not an Engine's option)
        left, right = pair(capacity=capacity, features=features)
        client = Engine(left, options.pop("rpc_handler", None) or _refuse, **options)
        server = Engine(right, self.handler, **server_options)
        conn = Connection(client, server, left.send_raw, right.send_raw)
        self.connections.append(conn)
        return conn


def _refuse(request: Any) -> Any:
    """Client-side handler: refuses every call from the server."""
    from rpcengine import MethodNotFound

    raise MethodNotFound(request.method)


class _SessionWorld(World):
    """Shared part of the TCP and WebSocket worlds: a SessionServer with real sockets."""

    server: Any

    def _find_server_engine(self, client: Engine, before: set[int]) -> Engine:
        """Return the server-side Engine of the connection ``client`` just made."""
        local = None
        link = client.transport.link  # type: ignore[attr-defined]
        sock = getattr(link, "sock", None)
        try:
            local = sock.getsockname() if sock is not None else None
        except OSError:
            local = None

        def found() -> Session | None:
            fresh = [s for s in self.server.sessions if id(s) not in before and s.engine is not None]
            for session in fresh:
                peer = session.peer_address
                if local is not None and peer is not None and tuple(peer)[:2] == tuple(local)[:2]:
                    return session
            return fresh[0] if len(fresh) == 1 else None

        wait_until(lambda: found() is not None, 5.0, "server session for a new connection")
        session = found()
        assert session is not None and session.engine is not None
        return session.engine

    def _connection(self, client: Engine, before: set[int]) -> Connection:
        server = self._find_server_engine(client, before)

        def to_server(frame: bytes) -> None:
            link = client.transport.link  # type: ignore[attr-defined]
            if link is None:
                raise ConnectionLost("no link")
            link.write(frame)

        def to_client(frame: bytes) -> None:
            link = server.transport.link  # type: ignore[attr-defined]
            if link is None:
                raise ConnectionLost("no link")
            link.write(frame)

        conn = Connection(client, server, to_server, to_client)
        self.connections.append(conn)
        return conn

    def server_sessions(self) -> int:
        """Number of server-side sessions alive (attached or awaiting resume); forgets closed connections."""
        self.connections = [c for c in self.connections if not (c.client.closed and c.server.closed)]
        return len(self.server.sessions)

    def stop(self) -> None:
        """Close every connection and stop the server."""
        self.service.release.set()
        for conn in self.connections:
            conn.client.close()
        self.connections.clear()
        self.server.stop(timeout=1)


class TcpWorld(_SessionWorld):
    """A TcpServer on 127.0.0.1 and handshaken TCP clients."""

    name = "tcp"

    def start(self) -> TcpWorld:
        """Start the TCP server on an ephemeral loopback port."""
        from transports.tcp import TcpServer

        self.server = TcpServer(("127.0.0.1", 0), self.handler, **self.options).start()
        return self

    @property
    def address(self) -> tuple[str, int]:
        """The server's (host, port)."""
        return self.server.address

    def connect(self, **options: Any) -> Connection:
        """Return a new handshaken TCP connection."""
        from transports.tcp import connect

        before = {id(s) for s in self.server.sessions}
        host, port = self.server.address
        client = connect(host, port, options.pop("rpc_handler", None), **options)
        return self._connection(client, before)


class WebSocketWorld(_SessionWorld):
    """A WebSocketServer on 127.0.0.1 and its clients (needs ``transports.websocket``)."""

    name = "websocket"

    def start(self) -> WebSocketWorld:
        """Start the WebSocket server on an ephemeral loopback port."""
        from transports.websocket import WebSocketServer

        self.server = WebSocketServer(("127.0.0.1", 0), self.handler, **self.options)
        self.server.start()
        return self

    @property
    def url(self) -> str:
        """The ``ws://`` URL of the server."""
        host, port = self.server.address[:2]
        return f"ws://{host}:{port}/"

    def connect(self, **options: Any) -> Connection:
        """Return a new WebSocket connection."""
        from transports.websocket import connect

        before = {id(s) for s in self.server.sessions}
        client = connect(self.url, options.pop("rpc_handler", None), **options)
        return self._connection(client, before)


WORLDS: dict[str, type[World]] = {"loopback": LoopbackWorld, "tcp": TcpWorld, "websocket": WebSocketWorld}


def websocket_missing() -> str | None:
    """Return why the WebSocket transport cannot be used, or None if it can."""
    try:
        import transports.websocket as ws
    except ImportError as exc:
        return f"transports.websocket is not importable: {exc}"
    for name in ("WebSocketServer", "connect"):
        if not hasattr(ws, name):
            return f"transports.websocket has no {name}"
    return None


# -- a client that must keep getting answers -----------------------------------


@dataclass
class HealthStats:
    """What a healthy client saw."""

    calls: int = 0
    failures: list[str] = field(default_factory=list)
    worst: float = 0.0


class HealthyClient:
    """A greenlet calling ``echo`` on its own connection and checking every answer.

    Paced (one call per ``interval`` at most) and bounded by ``max_calls``
    and ``max_seconds``; :meth:`stop` returns the statistics.
    """

    def __init__(
        self, conn: Connection, interval: float = 0.002, max_calls: int = 200_000, max_seconds: float = 300
    ) -> None:
        self.conn = conn
        self.interval = interval
        self.max_calls = max_calls
        self.max_seconds = max_seconds
        self.stats = HealthStats()
        self._stop = Event()
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        stats = self.stats
        for index in range(self.max_calls):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            started = time.perf_counter()
            try:
                answer = self.conn.client.request("echo", [index, "healthy"], timeout=5)
            except Exception as exc:
                stats.failures.append(f"call {index}: {exc!r}")
                return
            elapsed = time.perf_counter() - started
            stats.worst = max(stats.worst, elapsed)
            if answer != [index, "healthy"]:
                stats.failures.append(f"call {index}: wrong answer {answer!r}")
                return
            stats.calls += 1
            self._stop.wait(self.interval)

    def stop(self, min_calls: int = 3) -> HealthStats:
        """Stop calling (after at least ``min_calls`` answers, waited for up to 5 s); return the statistics."""
        deadline = time.monotonic() + 5
        while self.stats.calls < min_calls and not self._greenlet.dead and time.monotonic() < deadline:
            gevent.sleep(self.interval)
        self._stop.set()
        self._greenlet.join(timeout=10)
        if not self._greenlet.dead:
            self._greenlet.kill(block=False)
            self.stats.failures.append("healthy client did not stop in time")
        return self.stats


def raw_tcp(address: tuple[str, int], timeout: float = 5.0) -> gevent.socket.socket:
    """Return a raw (no framework) TCP socket connected to ``address`` with TCP_NODELAY."""
    sock = gevent.socket.create_connection(address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class LineReader:
    """Read ``\\n``-terminated lines from a raw socket, with a deadline per call."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buffer = b""
        self.eof = False

    def readline(self, timeout: float) -> bytes | None:
        """Return the next line (without newline), or None at EOF; raise TimeoutError after ``timeout``."""
        with gevent.Timeout(timeout, TimeoutError(f"no line within {timeout} s")):
            while b"\n" not in self.buffer:
                if self.eof:
                    return None
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.eof = True
                    if not self.buffer:
                        return None
                    continue
                self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line


# -- peers in other processes ----------------------------------------------------------

PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer.py")


class PeerProcess:
    """A ``peer.py`` subprocess: events read from its stdout, commands and signals sent to it.

    Always :meth:`kill` it in a ``finally`` (or use it as a context manager).
    """

    def __init__(self, mode: str, *args: str, prefix: tuple[str, ...] = (), options: dict | None = None) -> None:
        import json
        import sys

        from gevent import subprocess

        self._json = json
        command = [*prefix, sys.executable, PEER_SCRIPT, mode, "--options", json.dumps(options or {}), *args]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.events: list[dict[str, Any]] = []
        self.arrived = Event()
        self._reader = gevent.spawn(self._read)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = self._json.loads(line)
            except ValueError:
                continue
            event["received"] = time.monotonic()
            self.events.append(event)
            self.arrived.set()
        self.arrived.set()

    def wait_event(self, name: str, timeout: float, after: int = 0) -> dict[str, Any]:
        """Return the first event called ``name`` (from index ``after``); fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[after:]:
                if event["event"] == name:
                    return event
                if event["event"] == "crashed":
                    raise AssertionError(f"peer crashed: {event}")
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self._reader.dead and self.process.poll() is not None):
                raise AssertionError(f"no {name!r} event from the peer within {timeout} s: {self.events[-5:]}")
            self.arrived.clear()
            self.arrived.wait(min(remaining, 0.5))

    def last(self, name: str) -> dict[str, Any] | None:
        """Return the latest event called ``name``, if any."""
        for event in reversed(self.events):
            if event["event"] == name:
                return event
        return None

    def send(self, command: str) -> None:
        """Write one command line to the peer's stdin."""
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()

    def signal(self, number: int) -> None:
        """Send signal ``number`` to the peer (if it still runs)."""
        if self.process.poll() is None:
            self.process.send_signal(number)

    def kill(self) -> None:
        """SIGKILL the peer (continuing it first if frozen) and reap it; idempotent."""
        import signal

        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGCONT)
                self.process.kill()
            except OSError:
                pass
        try:
            self.process.wait(timeout=10)
        except Exception:  # pragma: no cover - the kernel reaps a SIGKILLed child promptly
            pass
        # The reader sees EOF once the process is gone; only then may its pipe be closed.
        self._reader.join(timeout=5)
        self._reader.kill(block=True, timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            try:
                if stream is not None:
                    stream.close()
            except (OSError, RuntimeError):
                pass

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def call_quietly(engine: Engine, method: str, data: Any = None, timeout: float | None = None) -> Any:
    """Return ``engine.request(...)``'s answer, or the RpcError it raised (for spawned calls)."""
    try:
        return engine.request(method, data, timeout=timeout)
    except RpcError as exc:
        return exc
