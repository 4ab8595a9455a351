"""HttpConnection: one HTTP/1.1 connection on a gevent socket, parsed by h11.

h11 does the parsing and the framing of answers (keep-alive, chunked
bodies, pipelining); this module moves bytes between it and the socket and
enforces the limits: a request head over ``max_header_size`` is answered
431, a body over ``max_body_size`` 413 while it is read (never buffered
whole: a ``Content-Length`` above the limit is refused before any of it is
read), anything h11 refuses 400 (or the status it names). Every refusal is
an :class:`HttpError`, which the caller answers with :meth:`HttpConnection.refuse`.

The raw bytes of the request being read are kept (:attr:`HttpConnection.raw`)
so that a WebSocket upgrade can be handed, as received, to the WebSocket
protocol.
"""

from __future__ import annotations

import email.utils
import logging
import socket
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

import gevent
import h11

from rpcengine.codec import Codec
from rpcengine.wire import error_data

__all__ = ["DEFAULT_MAX_HEADER_SIZE", "HttpConnection", "HttpError"]

log = logging.getLogger(__name__)

#: Bytes a request line and its headers may take before the request is refused with 431.
DEFAULT_MAX_HEADER_SIZE = 16 * 1024
#: Bytes read from the socket at once (the "read buffer" a body may overshoot its limit by).
RECV_SIZE = 65536
#: How long, and how many bytes, a connection refused mid-body is read (and dropped) before it closes.
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 1 << 20


class HttpError(Exception):
    """A request this server refuses: ``status`` and a short ``kind`` and ``message`` for the error body."""

    def __init__(self, status: int, kind: str, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = list(headers)


class HttpConnection:
    """Read requests from ``sock`` and write answers, one at a time, keep-alive included.

    Nothing here sets a deadline: the caller bounds each call in time
    (``gevent.Timeout``). Methods that read or write block (yield).
    """

    def __init__(
        self,
        sock: Any,
        peer_address: Any,
        *,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_body_size: int,
    ) -> None:
        self.sock = sock
        self.peer_address = peer_address
        self.max_body_size = max_body_size
        self.max_header_size = max_header_size
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_size)
        #: The bytes of the current request (head and what followed it), as received.
        self.raw = bytearray()
        #: Body bytes read for the current request.
        self.body_read = 0
        #: Every byte read from the socket on this connection.
        self.bytes_read = 0
        self._eof = False
        self._content_length: int | None = None
        #: The head of the request being answered (None before the first one is read).
        self.request: h11.Request | None = None

    # -- reading ----------------------------------------------------------

    def _receive(self) -> None:
        """Read once from the socket into h11 (an empty read is the peer's end)."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except OSError as exc:
            log.debug("read from %s failed: %s", self.peer_address, exc)
            data = b""
        self.bytes_read += len(data)
        self.raw += data
        if not data:
            self._eof = True
        self.h11.receive_data(data)

    def _next_event(self) -> Any:
        """Return h11's next event, reading as needed; raises HttpError for what h11 refuses."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                kind = "request_header_fields_too_large" if status == 431 else "bad_request"
                raise HttpError(status, kind, str(exc)) from None
            if event is not h11.NEED_DATA:
                return event
            if self._eof:
                return h11.ConnectionClosed()
            self._receive()

    def next_request(self) -> h11.Request | None:
        """Block until the next request head is read; return it, or None once the peer closed.

        Raises HttpError for a malformed head or one over the size limit.
        """
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        self.raw = bytearray(self.h11.trailing_data[0])
        self.body_read = 0
        self._content_length = None
        self.request = None
        event = self._next_event()
        if not isinstance(event, h11.Request):
            return None
        if _head_size(self.raw) > self.max_header_size:
            # h11 bounds only a head still incomplete after a read; one that came whole is measured here.
            raise HttpError(
                431, "request_header_fields_too_large", f"the request head is over {self.max_header_size} bytes"
            )
        self.request = event
        for name, value in event.headers:
            if name == b"content-length":
                self._content_length = int(value)  # h11 checked that it is one number
        return event

    def read_body(self) -> bytes:
        """Read the whole body of the current request (blocks); raises HttpError 413 past ``max_body_size``.

        A declared ``Content-Length`` over the limit is refused before any
        of the body is read; a chunked body is refused as soon as it has
        gone over (at most one read buffer past the limit).
        """
        limit = self.max_body_size
        declared = self._content_length
        if declared is not None and declared > limit:
            raise HttpError(413, "payload_too_large", f"the body of {declared} bytes is over the {limit} byte limit")
        parts: list[bytes] = []
        while True:
            event = self._next_event()
            if isinstance(event, h11.Data):
                self.body_read += len(event.data)
                if self.body_read > limit:
                    raise HttpError(413, "payload_too_large", f"the body is over the {limit} byte limit")
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:
                raise HttpError(400, "bad_request", "the connection ended inside the request body")

    def discard_body(self) -> None:
        """Read and drop the body of the current request (blocks); raises HttpError 413 past the limit."""
        self.read_body()

    @property
    def paused(self) -> bool:
        """Whether h11 stopped after an upgrade request (the rest of the bytes belong to another protocol)."""
        return self.h11.their_state is h11.MIGHT_SWITCH_PROTOCOL

    # -- writing ----------------------------------------------------------

    def respond(
        self,
        status: int,
        headers: Iterable[tuple[str, str]],
        body: bytes = b"",
        *,
        close: bool = False,
    ) -> None:
        """Send one whole answer (blocks until the socket took it); ``close`` ends keep-alive after it.

        ``Date``, ``Content-Length``, ``Cache-Control: no-store`` and
        ``X-Content-Type-Options: nosniff`` are added. Raises OSError if
        the socket fails.
        """
        names = {name.lower() for name, _ in headers}
        full = list(headers)
        full.append(("Date", email.utils.formatdate(usegmt=True)))
        if "cache-control" not in names:
            full.append(("Cache-Control", "no-store"))
        full.append(("X-Content-Type-Options", "nosniff"))
        if status != 204 and status != 304:
            full.append(("Content-Length", str(len(body))))
        if close:
            full.append(("Connection", "close"))
        conn = self.h11
        data = conn.send(h11.Response(status_code=status, headers=full, reason=_phrase(status)))
        if body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        self.sock.sendall(data)

    def refuse(self, error: HttpError, codec: Codec, extra_headers: Iterable[tuple[str, str]] = ()) -> None:
        """Answer ``error`` with a JSON error body and close the connection afterwards; never raises.

        The socket is half-closed and the rest of what the peer sends is
        read and dropped for a moment (bounded), so that the answer is not
        lost to a reset while the peer is still sending.
        """
        body = codec.encode(error_data(error.kind, error.message))
        headers = [("Content-Type", "application/json"), *error.headers, *extra_headers]
        log.info("answered %s with %d: %s", self.peer_address, error.status, error.message)
        try:
            # IDLE: h11 refused the request head, and a server may still answer it.
            if self.h11.our_state is h11.SEND_RESPONSE or self.h11.our_state is h11.IDLE:
                self.respond(error.status, headers, body, close=True)
        except (OSError, h11.LocalProtocolError) as exc:
            log.debug("error answer to %s not sent: %s", self.peer_address, exc)
        self.linger()

    def linger(self) -> None:
        """Half-close, drop what the peer still sends (bounded in time and bytes), then close the socket."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            dropped = 0
            with gevent.Timeout(_LINGER_SECONDS, False):  # type: ignore[arg-type]  # False: silent
                while dropped < _LINGER_BYTES:
                    data = self.sock.recv(RECV_SIZE)
                    if not data:
                        break
                    dropped += len(data)
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        """Close the socket; never raises."""
        try:
            self.sock.close()
        except OSError as exc:
            log.debug("closing socket failed: %s", exc)


def _phrase(status: int) -> bytes:
    """Return the reason phrase of ``status`` (empty for a code Python does not name)."""
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _head_size(raw: bytes | bytearray) -> int:
    """Return the length of the request head at the start of ``raw``, up to and including its blank line."""
    ends = [end + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (end := raw.find(mark)) >= 0]
    return min(ends) if ends else len(raw)
