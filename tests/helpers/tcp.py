"""Helpers for the TCP transport tests: servers, clients, raw sockets, a cutting proxy, TLS certificates.

Everything listens on loopback only. The fixtures at the end (``tcp_server``,
``tcp_connect``, ``tcp_raw``, ``tcp_server_process``, ``tcp_proxy``) stop whatever they
started; ``tests/conftest.py`` imports them so that every test module sees them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import gevent.subprocess
import pytest
import ujson

from dispatchers import Registry
from transports.tcp import TcpServer, connect

LOOPBACK = "127.0.0.1"
SERVER_SCRIPT = Path(__file__).with_name("tcp_server_process.py")
HELLO = b'{"rpcengine": 1, "session": null, "ack": 0}\n'


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.005, what: str = "") -> None:
    """Poll ``predicate`` (yielding to the hub) until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"condition not met within {timeout} s: {what or predicate}")
        gevent.sleep(interval)


def call_quietly(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Return ``func(*args, **kwargs)``, or the exception it raised (for spawned greenlets)."""
    try:
        return func(*args, **kwargs)
    except Exception as exc:
        return exc


def ipv6_loopback_available() -> bool:
    """Return whether a socket can listen on ``::1``."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def echo_registry() -> Registry:
    """Return a dispatcher with ``echo`` (returns its data) and ``sleep`` (sleeps ``data`` seconds)."""
    registry = Registry()

    @registry.register
    def echo(request: Any) -> Any:
        return request.data

    @registry.register
    def sleep(request: Any) -> Any:
        gevent.sleep(request.data)
        return request.data

    return registry


class Recorder:
    """An rpc handler that counts every call by ``(method, data)`` and answers with the data."""

    def __init__(self, on_call: Callable[[Any], object] | None = None, delay: Callable[[], float] | None = None):
        self.counts: Counter = Counter()
        self.on_call = on_call
        self.delay = delay

    def __call__(self, request: Any) -> Any:
        if self.delay is not None:
            gevent.sleep(self.delay())
        key = request.data if isinstance(request.data, (int, str)) else json.dumps(request.data)
        self.counts[(request.method, key)] += 1
        if self.on_call is not None:
            self.on_call(request)
        return request.data

    def total(self, method: str) -> int:
        """Number of calls handled for ``method``, duplicates included."""
        return sum(n for (name, _), n in self.counts.items() if name == method)


class RawClient:
    """A socket typing protocol lines by hand (gevent socket, so an in-process server keeps running)."""

    def __init__(self, address: tuple[str, int], rcvbuf: int | None = None, sndbuf: int | None = None) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sock = gevent.socket.socket(family, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.sock.settimeout(10)
        self.sock.connect(address)
        self.local_address = self.sock.getsockname()
        self._buffer = b""

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        self.sock.sendall(data)

    def send_message(self, value: Any) -> None:
        """Send one JSON value as a line."""
        self.sock.sendall(ujson.dumps(value).encode() + b"\n")

    def handshake(self) -> dict:
        """Send the client handshake and return the server's answer."""
        self.send(HELLO)
        return self.read_message()

    def read_line(self, timeout: float = 5.0) -> bytes:
        """Return the next line (without its newline); raise EOFError if the server closed first."""
        with gevent.Timeout(timeout, AssertionError(f"no line from the server within {timeout} s")):
            while b"\n" not in self._buffer:
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("the server closed the connection")
                self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def read_message(self, timeout: float = 5.0, skip_heartbeats: bool = True) -> Any:
        """Return the next decoded message (heartbeats skipped unless told otherwise)."""
        while True:
            value = ujson.loads(self.read_line(timeout))
            if not (skip_heartbeats and isinstance(value, list) and value[:1] == [0]):
                return value

    def wait_closed(self, timeout: float) -> tuple[float, list[Any]]:
        """Read until the server closes; return the seconds it took and the messages read meanwhile.

        A reset (the server closed with our bytes unread) counts as closed too.
        """
        started = time.monotonic()
        messages: list[Any] = []
        with gevent.Timeout(timeout, AssertionError(f"connection still open after {timeout} s")):
            while True:
                try:
                    data = self.sock.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                self._buffer += data
                while b"\n" in self._buffer:
                    line, self._buffer = self._buffer.split(b"\n", 1)
                    messages.append(ujson.loads(line))
        return time.monotonic() - started, messages

    def close(self, reset: bool = False) -> None:
        """Close the socket (with a reset instead of a FIN when ``reset``); idempotent."""
        if reset and not self.sock.closed:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class ServerProcess:
    """A TcpServer running ``tests/helpers/tcp_server_process.py`` in a child process."""

    def __init__(self, port: int = 0, host: str = LOOPBACK, **options: Any) -> None:
        self.host = host
        self.proc = gevent.subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), host, str(port), json.dumps(options)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            with gevent.Timeout(20, AssertionError("server process did not report its port")):
                line = self.proc.stdout.readline()
            self.port = int(line)
        except BaseException:
            self.kill()
            raise

    @property
    def address(self) -> tuple[str, int]:
        """Where the server listens."""
        return self.host, self.port

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the server process."""
        os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        """Kill the process (waking it first if stopped) and reap it; idempotent."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.kill()
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class TcpProxy:
    """A loopback TCP proxy in front of ``target`` whose :meth:`cut` drops every connection with a reset.

    Bytes in flight inside the proxy are lost, as on a real network failure.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = gevent.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(128)
        self.address = self.listener.getsockname()
        self.connections: list[tuple[Any, Any, list[gevent.Greenlet]]] = []
        self.accepted = 0
        self.cuts = 0
        self._acceptor = gevent.spawn(self._accept)

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            upstream = gevent.socket.create_connection(self.target)
            self.accepted += 1
            pumps: list[gevent.Greenlet] = []
            self.connections.append((client, upstream, pumps))
            pumps.append(gevent.spawn(self._pump, client, upstream))
            pumps.append(gevent.spawn(self._pump, upstream, client))

    @staticmethod
    def _pump(source: Any, sink: Any) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Reset every current connection on both sides; new connections are still proxied."""
        connections, self.connections = self.connections, []
        self.cuts += 1
        for client, upstream, pumps in connections:
            for greenlet in pumps:
                greenlet.kill(block=False)
            for sock in (client, upstream):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        """Stop accepting and cut everything."""
        self._acceptor.kill(block=False)
        self.listener.close()
        self.cut()


def make_tls_contexts(workdir: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Return ``(server_context, client_context)`` for a fresh self-signed certificate of 127.0.0.1.

    Uses ``trustme`` when installed, else the ``openssl`` command; skips the test if neither is there.
    """
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        import trustme
    except ImportError:
        trustme = None
    if trustme is not None:
        authority = trustme.CA()
        authority.issue_cert(LOOPBACK, "localhost").configure_cert(server)
        authority.configure_trust(client)
        return server, client
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("neither trustme nor the openssl command is available to make a certificate")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", f"subjectAltName=IP:{LOOPBACK},DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server.load_cert_chain(cert, key)
    client.load_verify_locations(cert)
    return server, client


def start_server(handler: Any = None, host: str = LOOPBACK, **options: Any) -> TcpServer:
    """Start a TcpServer on a free loopback port (the caller stops it)."""
    return TcpServer((host, 0), handler if handler is not None else echo_registry(), **options).start()


# -- fixtures ---------------------------------------------------------------


@pytest.fixture
def tcp_server() -> Iterator[Callable[..., TcpServer]]:
    """Factory ``tcp_server(handler=None, **options)``: a started loopback TcpServer, stopped afterwards."""
    servers: list[TcpServer] = []

    def make(handler: Any = None, **options: Any) -> TcpServer:
        server = start_server(handler, **options)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop(timeout=1)


@pytest.fixture
def tcp_connect() -> Iterator[Callable[..., Any]]:
    """Factory ``tcp_connect(server_or_address, **kwargs)``: a connected client Engine, closed afterwards."""
    engines: list[Any] = []

    def make(target: Any, **kwargs: Any) -> Any:
        host, port = target.address[:2] if hasattr(target, "address") else target[:2]
        engine = connect(host, port, **kwargs)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def tcp_raw() -> Iterator[Callable[..., RawClient]]:
    """Factory ``tcp_raw(address, **kwargs)``: a RawClient, closed afterwards."""
    clients: list[RawClient] = []

    def make(address: tuple[str, int], **kwargs: Any) -> RawClient:
        client = RawClient(address, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def tcp_server_process() -> Iterator[Callable[..., ServerProcess]]:
    """Factory ``tcp_server_process(port=0, **options)``: a TcpServer in a child process, killed afterwards."""
    processes: list[ServerProcess] = []

    def make(port: int = 0, host: str = LOOPBACK, **options: Any) -> ServerProcess:
        process = ServerProcess(port, host, **options)
        processes.append(process)
        return process

    yield make
    for process in processes:
        process.kill()


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[[tuple[str, int]], TcpProxy]]:
    """Factory ``tcp_proxy(target_address)``: a TcpProxy, closed afterwards."""
    proxies: list[TcpProxy] = []

    def make(target: tuple[str, int]) -> TcpProxy:
        proxy = TcpProxy(target)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
