"""raw-ws: a raw WebSocket echo on the ``websockets`` sans-I/O core over gevent sockets.

Same JSON lists as raw-tcp, one per text message; no RPC layer. The server
drives ``websockets.server.ServerProtocol`` (``receive_data``,
``events_received``, ``send_text``, ``data_to_send``) and answers every
message of one read with a single ``sendall``; the clients drive
``websockets.client.ClientProtocol`` the same way. A, C and D read answers
inline; B (and pending requests) use a reader greenlet and a batching writer.
No extension (compression) is negotiated.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import gevent
import ujson
from gevent import socket
from gevent.event import AsyncResult, Event
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import Protocol
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from benchmarks.base import CALL_TIMEOUT, Conn, System
from benchmarks.raw_tcp import open_socket, start_raw_server

_RECV_SIZE = 256 * 1024
_MAX_SIZE = 16 * 1024 * 1024


def _dumps(message: list) -> bytes:
    return ujson.dumps(message, ensure_ascii=False, escape_forward_slashes=False).encode()


def _flush(sock: socket.socket, protocol: Protocol) -> None:
    """Send whatever ``protocol`` has queued, with one sendall."""
    data = protocol.data_to_send()
    if data:
        sock.sendall(b"".join(data))


def _text_messages(protocol: Protocol) -> list[Any]:
    """Return the decoded text messages among the events received so far."""
    return [ujson.loads(event.data) for event in protocol.events_received() if event.opcode is Opcode.TEXT]


def _handle(sock: socket.socket, _address: Any) -> None:
    """Serve one WebSocket connection: handshake, then echo every request."""
    protocol = ServerProtocol(max_size=_MAX_SIZE)
    ids = itertools.count(1)
    try:
        while True:  # opening handshake
            data = sock.recv(_RECV_SIZE)
            if not data:
                return
            protocol.receive_data(data)
            events = protocol.events_received()
            if events:
                protocol.send_response(protocol.accept(events[0]))
                _flush(sock, protocol)
                break
        while True:
            data = sock.recv(_RECV_SIZE)
            if not data:
                return
            protocol.receive_data(data)
            for message in _text_messages(protocol):
                if message[2] != "hang":
                    protocol.send_text(_dumps([3, next(ids), message[1], message[3]]))
            _flush(sock, protocol)
    except OSError:
        return
    finally:
        sock.close()


def _open(port: int) -> tuple[socket.socket, ClientProtocol]:
    """Connect and complete the opening handshake; return the socket and protocol."""
    sock = open_socket(port)
    protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/rpc"), max_size=_MAX_SIZE)
    protocol.send_request(protocol.connect())
    _flush(sock, protocol)
    while True:
        data = sock.recv(_RECV_SIZE)
        if not data:
            raise ConnectionError("server closed the connection during the handshake")
        protocol.receive_data(data)
        events = protocol.events_received()
        if events and isinstance(events[0], Response):
            if protocol.handshake_exc is not None:
                raise protocol.handshake_exc
            return sock, protocol


class InlineWsConn:
    """Sequential client: send a message, then read until its answer arrives."""

    def __init__(self, port: int) -> None:
        self.sock, self.protocol = _open(port)
        self.ids = itertools.count(1)
        self.ready: list[Any] = []

    def call(self, data: Any, method: str = "echo") -> Any:
        """Send one request and return the data of its answer."""
        ident = next(self.ids)
        self.protocol.send_text(_dumps([2, ident, method, data]))
        _flush(self.sock, self.protocol)
        while not self.ready:
            chunk = self.sock.recv(_RECV_SIZE)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.protocol.receive_data(chunk)
            self.ready = _text_messages(self.protocol)
        message = self.ready.pop(0)
        if message[2] != ident:
            raise ValueError(f"answer for {message[2]} while waiting for {ident}")
        return message[3]

    def close(self) -> None:
        """Close the socket (without a closing handshake)."""
        self.sock.close()


class PipelinedWsConn:
    """Client for many concurrent callers: reader greenlet + batching writer greenlet."""

    def __init__(self, port: int) -> None:
        self.sock, self.protocol = _open(port)
        self.sock.settimeout(None)
        self.ids = itertools.count(1)
        self.waiting: dict[int, AsyncResult] = {}
        self.wake = Event()
        self.greenlets = [gevent.spawn(self._read_loop), gevent.spawn(self._write_loop)]

    def call(self, data: Any, method: str = "echo") -> Any:
        """Queue one request and wait for its answer."""
        ident = next(self.ids)
        result = AsyncResult()
        self.waiting[ident] = result
        try:
            self.protocol.send_text(_dumps([2, ident, method, data]))
            self.wake.set()
            return result.get(timeout=CALL_TIMEOUT)
        finally:
            self.waiting.pop(ident, None)

    def _write_loop(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            _flush(self.sock, self.protocol)

    def _read_loop(self) -> None:
        try:
            while True:
                chunk = self.sock.recv(_RECV_SIZE)
                if not chunk:
                    break
                self.protocol.receive_data(chunk)
                for message in _text_messages(self.protocol):
                    result = self.waiting.get(message[2])
                    if result is not None:
                        result.set(message[3])
        except OSError:
            pass
        error = ConnectionError("connection closed")
        for result in list(self.waiting.values()):
            result.set_exception(error)

    def close(self) -> None:
        """Stop the helper greenlets and close the socket."""
        gevent.killall(self.greenlets)
        self.sock.close()


class RawWs(System):
    """Raw WebSocket echo limit on the websockets sans-I/O core."""

    name = "raw-ws"
    description = "websockets sans-I/O ServerProtocol/ClientProtocol over gevent sockets, no RPC layer"
    memory = True

    def start_server(self) -> tuple[int, Callable[[], None]]:
        """Start the raw WebSocket echo server."""
        return start_raw_server(_handle)

    def connect(self, port: int, scenario: str) -> Conn:
        """Inline client for A, C and D; pipelined for B and pending requests."""
        if scenario in ("B", "pending"):
            return PipelinedWsConn(port)
        return InlineWsConn(port)
