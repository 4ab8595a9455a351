"""Helpers for the WebSocket transport tests: servers, clients, a raw WebSocket, native threads.

Everything listens on loopback only. The ``ws_server`` and ``ws_connect``
fixtures stop and close what they made; import ``ws_server_fixture`` and
``ws_connect_fixture`` into a test module to use them. :class:`RawWebSocket` speaks the upgrade through ``websockets``'
own ClientProtocol and then lets a test put any bytes on the wire.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.socket
import pytest
import ujson
from websockets.client import ClientProtocol
from websockets.frames import CLOSE, PING, TEXT, Close
from websockets.uri import parse_uri
from websockets.utils import apply_mask

from helpers.tcp import LOOPBACK, echo_registry
from transports.websocket import WebSocketServer, connect
from transports.websocket.protocol import receive_handshake, send_protocol_data

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def start_ws_server(handlers: Any = None, host: str = LOOPBACK, **options: Any) -> WebSocketServer:
    """Start a WebSocketServer on a free loopback port (the caller stops it)."""
    return WebSocketServer((host, 0), handlers if handlers is not None else echo_registry(), **options).start()


@pytest.fixture(name="ws_server")
def ws_server_fixture() -> Iterator[Callable[..., WebSocketServer]]:
    """Factory ``ws_server(handlers=None, **options)``: a started loopback WebSocketServer, stopped afterwards."""
    servers: list[WebSocketServer] = []

    def make(handlers: Any = None, **options: Any) -> WebSocketServer:
        server = start_ws_server(handlers, **options)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop(timeout=1)


@pytest.fixture(name="ws_connect")
def ws_connect_fixture() -> Iterator[Callable[..., Any]]:
    """Factory ``ws_connect(server_or_url, path="/", **kwargs)``: a client Engine, closed afterwards."""
    engines: list[Any] = []

    def make(target: Any, path: str = "/", **kwargs: Any) -> Any:
        url = target.url(path) if isinstance(target, WebSocketServer) else target
        engine = connect(url, **kwargs)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def frame_bytes(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True, length: int | None = None, rsv: int = 0
) -> bytes:
    """Return one WebSocket frame built by hand (so that tests can build invalid ones).

    ``length`` declares a payload length other than ``len(payload)``.
    """
    declared = len(payload) if length is None else length
    head = (0x80 if fin else 0) | (rsv << 4) | opcode
    bit = 0x80 if mask else 0
    if declared < 126:
        header = struct.pack("!BB", head, bit | declared)
    elif declared < 1 << 16:
        header = struct.pack("!BBH", head, bit | 126, declared)
    else:
        header = struct.pack("!BBQ", head, bit | 127, declared)
    if mask:
        key = os.urandom(4)
        return header + key + apply_mask(payload, key)
    return header + payload


class RawWebSocket:
    """A WebSocket client that upgrades properly and then sends whatever bytes a test wants.

    Inbound frames are parsed by ``websockets``' ClientProtocol, which also
    answers pings (when :meth:`events` runs).
    """

    def __init__(
        self,
        url: str,
        *,
        origin: str | None = None,
        subprotocols: list[str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        uri = parse_uri(url)
        self.sock = gevent.socket.create_connection((uri.host, uri.port), timeout=timeout)
        self.protocol = ClientProtocol(uri, origin=origin, subprotocols=subprotocols, max_size=None)  # type: ignore[arg-type]
        self.protocol.send_request(self.protocol.connect())
        send_protocol_data(self.sock, self.protocol)
        self.response, self.pending = receive_handshake(self.sock, self.protocol)
        if self.protocol.handshake_exc is not None:
            raise self.protocol.handshake_exc
        self.closed_by_peer = False

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        self.sock.sendall(data)

    def send_text(self, text: bytes | str, **kwargs: Any) -> None:
        """Send one masked text frame (``kwargs`` as for :func:`frame_bytes`)."""
        self.send(frame_bytes(OP_TEXT, text.encode() if isinstance(text, str) else text, **kwargs))

    def send_message(self, value: Any) -> None:
        """Send one JSON value as a text frame."""
        self.send_text(ujson.dumps(value))

    def events(self, timeout: float = 5.0) -> list[Any]:
        """Return the next frames from the server (at least one unless it closed); answers pings."""
        found = list(self.pending)
        self.pending = []
        with gevent.Timeout(timeout, AssertionError(f"no frame from the server within {timeout} s")):
            while not found and not self.closed_by_peer:
                try:
                    data = self.sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if data:
                    self.protocol.receive_data(data)
                else:
                    self.closed_by_peer = True
                    self.protocol.receive_eof()
                found.extend(self.protocol.events_received())
                try:
                    send_protocol_data(self.sock, self.protocol)
                except OSError:
                    pass
        return found

    def read_message(self, timeout: float = 5.0, skip_heartbeats: bool = True) -> Any:
        """Return the next text message, decoded (heartbeats skipped unless told otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            frames = self.events(max(0.01, deadline - time.monotonic()))
            while frames:
                frame = frames.pop(0)
                if frame.opcode is TEXT:
                    value = ujson.loads(bytes(frame.data))
                    if not (skip_heartbeats and isinstance(value, list) and value[:1] == [0]):
                        self.pending = frames + self.pending  # keep what came after it
                        return value
                elif frame.opcode is CLOSE:
                    raise EOFError(f"the server closed: {Close.parse(frame.data)}")
            if self.closed_by_peer:
                raise EOFError("the server closed the connection")

    def wait_close(self, timeout: float = 5.0) -> tuple[int | None, str, float]:
        """Read until the server's close frame (or EOF); return its code, reason, and the seconds it took.

        The code is None if the connection ended without a close frame.
        """
        started = time.monotonic()
        deadline = started + timeout
        while True:
            for frame in self.events(max(0.01, deadline - time.monotonic())):
                if frame.opcode is CLOSE:
                    close = Close.parse(frame.data)
                    return close.code, close.reason, time.monotonic() - started
            if self.closed_by_peer:
                return None, "", time.monotonic() - started

    def count_pings(self, wanted: int, timeout: float = 5.0) -> int:
        """Read (answering pings) until ``wanted`` pings came; return how many came."""
        pings = 0
        deadline = time.monotonic() + timeout
        while pings < wanted:
            for frame in self.events(max(0.01, deadline - time.monotonic())):
                if frame.opcode is PING:
                    pings += 1
                elif frame.opcode is CLOSE:
                    raise EOFError(f"the server closed: {Close.parse(frame.data)}")
        return pings

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def in_thread(func: Callable[..., Any], *args: Any, timeout: float = 30.0, **kwargs: Any) -> Any:
    """Run ``func`` in a native thread (for blocking third-party clients); wait cooperatively for its result."""
    return gevent.get_hub().threadpool.spawn(func, *args, **kwargs).get(timeout=timeout)
