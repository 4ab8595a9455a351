"""raw-tcp: the raw-socket limit, with no RPC layer.

gevent StreamServer and gevent sockets, 4-byte big-endian length prefix
framing, ujson lists ``[2, id, "echo", data]`` / ``[3, id, request_id, data]``.
The server answers every complete frame of one read with a single
``sendall``; requests for the method ``hang`` are never answered (used to
measure pending requests).

Clients: A, Bpool, C, C1 and D send and then read the answer inline (no
greenlet switch; Bpool has 100 such connections); B uses a reader greenlet that matches answers to callers by id
through gevent ``AsyncResult`` and, in the ``raw-tcp`` baseline, a writer
greenlet that sends everything queued with one ``sendall``
(``raw-tcp-plain`` sends each frame itself, under a lock).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from typing import Any

import gevent
import ujson
from gevent import socket
from gevent.event import AsyncResult, Event
from gevent.lock import Semaphore
from gevent.server import StreamServer

from benchmarks.base import CALL_TIMEOUT, Conn, System

_HEADER = struct.Struct(">I")
_RECV_SIZE = 256 * 1024


def encode_frame(message: list) -> bytes:
    """Return ``message`` as one length-prefixed JSON frame."""
    body = ujson.dumps(message, ensure_ascii=False, escape_forward_slashes=False).encode()
    return _HEADER.pack(len(body)) + body


def take_frames(buf: bytearray) -> list[Any]:
    """Remove every complete frame from ``buf`` and return their decoded messages."""
    messages = []
    pos = 0
    size = len(buf)
    while size - pos >= 4:
        (length,) = _HEADER.unpack_from(buf, pos)
        end = pos + 4 + length
        if end > size:
            break
        messages.append(ujson.loads(bytes(buf[pos + 4 : end])))
        pos = end
    if pos:
        del buf[:pos]
    return messages


def handle_echo(sock: socket.socket, _address: Any) -> None:
    """Serve one connection: echo every request, batching the answers of one read."""
    ids = itertools.count(1)
    buf = bytearray()
    try:
        while True:
            data = sock.recv(_RECV_SIZE)
            if not data:
                return
            buf += data
            out = [
                encode_frame([3, next(ids), message[1], message[3]])
                for message in take_frames(buf)
                if message[2] != "hang"
            ]
            if out:
                sock.sendall(b"".join(out))
    except OSError:
        return
    finally:
        sock.close()


def start_raw_server(handle: Callable[[socket.socket, Any], None]) -> tuple[int, Callable[[], None]]:
    """Start a StreamServer with ``handle`` on 127.0.0.1; return its port and stopper."""
    server = StreamServer(("127.0.0.1", 0), handle, backlog=4096)
    server.init_socket()
    server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server.start()
    return server.address[1], lambda: server.stop(timeout=1)


def open_socket(port: int) -> socket.socket:
    """Connect a gevent TCP socket to 127.0.0.1:``port`` with TCP_NODELAY."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=CALL_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


#: Opens a connected client socket to the server known by a port (or a Unix-socket key).
Opener = Callable[[int], socket.socket]


class InlineConn:
    """Sequential client: send a frame, then read until its answer arrives."""

    def __init__(self, port: int, opener: Opener = open_socket) -> None:
        self.sock = opener(port)
        self.buf = bytearray()
        self.ids = itertools.count(1)
        self.ready: list[Any] = []

    def call(self, data: Any, method: str = "echo") -> Any:
        """Send one request and return the data of its answer."""
        ident = next(self.ids)
        self.sock.sendall(encode_frame([2, ident, method, data]))
        while not self.ready:
            chunk = self.sock.recv(_RECV_SIZE)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
            self.ready = take_frames(self.buf)
        message = self.ready.pop(0)
        if message[2] != ident:
            raise ValueError(f"answer for {message[2]} while waiting for {ident}")
        return message[3]

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


class PipelinedConn:
    """Client for many concurrent callers: a reader greenlet, optionally a batching writer."""

    def __init__(self, port: int, batched: bool = True, opener: Opener = open_socket) -> None:
        self.sock = opener(port)
        self.sock.settimeout(None)
        self.ids = itertools.count(1)
        self.waiting: dict[int, AsyncResult] = {}
        self.queue: list[bytes] = []
        self.wake = Event()
        self.lock = Semaphore()
        self.batched = batched
        self.greenlets = [gevent.spawn(self._read_loop)]
        if batched:
            self.greenlets.append(gevent.spawn(self._write_loop))

    def call(self, data: Any, method: str = "echo") -> Any:
        """Send one request and wait for its answer (other callers may run meanwhile)."""
        ident = next(self.ids)
        result = AsyncResult()
        self.waiting[ident] = result
        try:
            frame = encode_frame([2, ident, method, data])
            if self.batched:
                self.queue.append(frame)
                self.wake.set()
            else:
                with self.lock:
                    self.sock.sendall(frame)
            return result.get(timeout=CALL_TIMEOUT)
        finally:
            self.waiting.pop(ident, None)

    def _write_loop(self) -> None:
        """Send everything queued since the last write with one sendall."""
        while True:
            self.wake.wait()
            self.wake.clear()
            if self.queue:
                data = b"".join(self.queue)
                self.queue.clear()
                self.sock.sendall(data)

    def _read_loop(self) -> None:
        """Read answers and hand each to its waiting caller."""
        buf = bytearray()
        try:
            while True:
                chunk = self.sock.recv(_RECV_SIZE)
                if not chunk:
                    break
                buf += chunk
                for message in take_frames(buf):
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


class RawTcp(System):
    """The raw-socket limit; scenario B uses the batching writer."""

    name = "raw-tcp"
    description = "gevent StreamServer + socket, length-prefixed ujson, no RPC layer"
    scenarios = ("A", "B", "Bpool", "C", "C1", "D")
    memory = True
    #: How a client connects (raw-unix: to a Unix-domain socket).
    opener: Opener = staticmethod(open_socket)

    def start_server(self) -> tuple[int, Callable[[], None]]:
        """Start the raw echo server."""
        return start_raw_server(handle_echo)

    def connect(self, port: int, scenario: str) -> Conn:
        """Inline client for A, Bpool, C, C1 and D; pipelined (batched writer) for B and pending requests."""
        if scenario in ("B", "pending"):
            return PipelinedConn(port, batched=True, opener=self.opener)
        return InlineConn(port, opener=self.opener)


class RawTcpPlain(RawTcp):
    """raw-tcp for scenario B without the batching writer: one sendall per frame."""

    name = "raw-tcp-plain"
    description = "raw-tcp, scenario B with one locked sendall per frame instead of the batching writer"
    scenarios = ("B",)
    memory = False

    def connect(self, port: int, scenario: str) -> Conn:
        """Pipelined client with an unbatched writer."""
        return PipelinedConn(port, batched=False, opener=self.opener)
