"""Helpers for the HTTP tests: a real HTTP/1.1 client (h11 over a gevent socket), curl, a counting server.

Everything talks to loopback only and every call is bounded in time.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.socket
import gevent.subprocess
import h11
import pytest

from transports.http.connection import HttpConnection

#: Bound on any single HTTP exchange in the tests.
EXCHANGE_LIMIT = 10.0


@dataclass
class Answer:
    """One HTTP answer: status, headers (lowercased names), body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class HttpClient:
    """A keep-alive HTTP/1.1 connection to ``(host, port)`` (h11 on the client side)."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.host = f"{address[0]}:{address[1]}"
        self.sock = gevent.socket.create_connection(address, timeout=EXCHANGE_LIMIT)
        self.conn = h11.Connection(h11.CLIENT)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: list[tuple[str, str]] | None = None
    ) -> Answer:
        """Send one request and read its answer (blocks, bounded)."""
        conn = self.conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        all_headers = [("Host", self.host), *(headers or [])]
        if body or method == "POST":
            all_headers.append(("Content-Length", str(len(body))))
        with gevent.Timeout(EXCHANGE_LIMIT):
            data = conn.send(h11.Request(method=method, target=path, headers=all_headers))
            if body:
                data += conn.send(h11.Data(data=body))
            self.sock.sendall(data + conn.send(h11.EndOfMessage()))  # one write: no Nagle stall
            return self.read_answer()

    def read_answer(self) -> Answer:
        """Read one answer (blocks, bounded by the caller)."""
        conn = self.conn
        answer: Answer | None = None
        parts: list[bytes] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(self.sock.recv(65536))
                continue
            if isinstance(event, h11.Response):
                answer = Answer(event.status_code, {k.decode(): v.decode() for k, v in event.headers})
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                assert answer is not None, "no answer"
                answer.body = b"".join(parts)
                return answer

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()


def http(address: tuple[str, int], method: str, path: str, body: bytes = b"", **kwargs: Any) -> Answer:
    """One request on a new connection; return its answer."""
    client = HttpClient(address)
    try:
        return client.request(method, path, body, **kwargs)
    finally:
        client.close()


def raw_exchange(address: tuple[str, int], data: bytes) -> bytes:
    """Send ``data`` as is, then read until the server closes (bounded); return what it sent."""
    sock = gevent.socket.create_connection(address, timeout=EXCHANGE_LIMIT)
    try:
        with gevent.Timeout(EXCHANGE_LIMIT):
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)
    finally:
        sock.close()


def curl(*args: str) -> bytes:
    """Run curl with ``args`` (bounded) and return what it printed; skip the test if there is no curl."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    result = gevent.subprocess.run(["curl", "--max-time", "10", *args], capture_output=True, timeout=20)
    return result.stdout  # type: ignore[no-any-return]


class CountingConnection(HttpConnection):
    """An HttpConnection that records, for the tests, how many bytes each connection read."""

    #: ``bytes_read`` of every connection made, once it is done with a request body.
    reads: list[int] = []

    def refuse(self, *args: Any, **kwargs: Any) -> None:
        """Record the bytes read before the refusal, then refuse as usual."""
        CountingConnection.reads.append(self.bytes_read)
        super().refuse(*args, **kwargs)


class LossyProxy:
    """An HTTP proxy on loopback that forwards each request and drops some poll answers on the way back.

    A poll (a body that starts with a heartbeat ``[0,``) is forwarded to the
    server, which answers it; with probability ``drop_rate`` (seeded) the
    answer is then thrown away and the client's connection closed, as a
    proxy that loses a response mid-flight would. ``dropped`` counts them.
    """

    def __init__(self, target: tuple[str, int], drop_rate: float, seed: int = 14) -> None:
        import random

        from gevent.server import StreamServer

        self.target = target
        self.drop_rate = drop_rate
        self.random = random.Random(seed)
        self.dropped = 0
        self.forwarded = 0
        self._server = StreamServer(("127.0.0.1", 0), self._serve)

    def start(self) -> LossyProxy:
        self._server.start()
        return self

    @property
    def address(self) -> tuple[str, int]:
        return self._server.address  # type: ignore[no-any-return]

    def stop(self) -> None:
        self._server.stop(timeout=1)

    def _serve(self, sock: Any, _address: Any) -> None:
        conn = h11.Connection(h11.SERVER)
        upstream = HttpClient(self.target)
        try:
            while True:
                request, body = self._read_request(sock, conn)
                if request is None:
                    return
                headers = [
                    (k.decode(), v.decode())
                    for k, v in request.headers
                    if k not in (b"host", b"content-length", b"connection")
                ]
                answer = upstream.request(request.method.decode(), request.target.decode(), body, headers=headers)
                if body.startswith(b"[0,") and self.random.random() < self.drop_rate:
                    self.dropped += 1
                    return  # the answer is lost: the client sees its connection close
                self.forwarded += 1
                out = [(k, v) for k, v in answer.headers.items() if k not in ("content-length", "connection")]
                out.append(("Content-Length", str(len(answer.body))))
                data = conn.send(h11.Response(status_code=answer.status, headers=out))
                sock.sendall(data + conn.send(h11.Data(data=answer.body)) + conn.send(h11.EndOfMessage()))
                conn.start_next_cycle()
        except (OSError, h11.ProtocolError, gevent.Timeout):
            return
        finally:
            upstream.close()
            sock.close()

    @staticmethod
    def _read_request(sock: Any, conn: h11.Connection) -> tuple[Any, bytes]:
        request, parts = None, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return request, b"".join(parts)
            else:
                return None, b""
