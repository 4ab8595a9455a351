"""The WebSocket protocol pieces the link, server and client share, around ``websockets``' sans-I/O core.

``websockets`` does the framing, masking, control frames, closing handshake
and size limits (:class:`ServerProtocol` and :class:`ClientProtocol` differ
from its own only in accepting a close frame between fragments). This
module adds what it leaves to the application: joining fragments with a
bound on their number, checking that text is UTF-8 as it arrives
(:class:`MessageAssembler`), moving the HTTP upgrade over a socket
(:func:`receive_handshake`, :func:`send_protocol_data`), and the close code
for each reason a session closes a link (:func:`close_code_for`), and the
plain HTTP answers of the server (:func:`static_response`).
"""

from __future__ import annotations

import codecs
import email.utils
import socket
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.client import ClientProtocol as _ClientProtocol
from websockets.datastructures import Headers
from websockets.frames import CLOSE, CONT, TEXT, CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol
from websockets.server import ServerProtocol as _ServerProtocol

from rpcengine.errors import MessageRefused
from transports.session.handshake import PROTOCOL_VERSION

__all__ = [
    "DEFAULT_MAX_FRAGMENTS",
    "SUBPROTOCOL",
    "ClientProtocol",
    "MessageAssembler",
    "ServerProtocol",
    "close_code_for",
    "receive_handshake",
    "send_protocol_data",
    "short_reason",
    "static_response",
    "wants_upgrade",
]

#: The WebSocket subprotocol name that carries the rpcengine protocol version.
SUBPROTOCOL = f"rpcengine.v{PROTOCOL_VERSION}"
#: Fragments one message may arrive in before it is refused (close code 1009).
DEFAULT_MAX_FRAGMENTS = 1024

_RECV_SIZE = 65536
_MAX_REASON = 123  # bytes of reason text that fit in a close frame


class _CloseInterrupts:
    """Accept a close frame in the middle of a fragmented message (RFC 6455, section 5.4).

    Control frames, close included, may come between the fragments of a
    message; ``websockets`` fails the connection with 1002 instead of
    closing normally (Autobahn case 7.1.5). The unfinished message is dropped.
    """

    current_size: int | None

    def recv_frame(self, frame: Frame) -> None:
        """Process an incoming frame (see ``websockets.protocol.Protocol.recv_frame``)."""
        if frame.opcode is CLOSE:
            self.current_size = None
        super().recv_frame(frame)  # type: ignore[misc]


class ServerProtocol(_CloseInterrupts, _ServerProtocol):
    """``websockets``' sans-I/O server protocol, accepting a close frame between fragments."""


class ClientProtocol(_CloseInterrupts, _ClientProtocol):
    """``websockets``' sans-I/O client protocol, accepting a close frame between fragments."""


class MessageAssembler:
    """Join data frames into messages, at most ``max_fragments`` frames each, text checked as UTF-8.

    Feed it every text, binary and continuation frame; it returns
    ``(opcode, payload)`` for each complete message and None meanwhile.
    Text is checked fragment by fragment, so a bad byte is refused as soon
    as its fragment arrives. (The total size is bounded by the protocol's
    ``max_size``.)
    """

    def __init__(self, max_fragments: int = DEFAULT_MAX_FRAGMENTS) -> None:
        self.max_fragments = max_fragments
        self._parts: list[bytes] | None = None
        self._kind: Opcode = TEXT
        self._utf8: codecs.IncrementalDecoder | None = None

    def feed(self, frame: Frame) -> tuple[Opcode, bytes] | None:
        """Take one data frame; return the message it completes, if any. Raises MessageRefused."""
        opcode, data = frame.opcode, frame.data
        if type(data) is not bytes:
            data = bytes(data)
        if opcode is CONT:
            parts = self._parts
            if parts is None:  # websockets refuses this before it gets here
                raise MessageRefused("continuation frame without a message", CloseCode.PROTOCOL_ERROR)
            parts.append(data)
            if len(parts) > self.max_fragments:
                self._reset()
                raise MessageRefused(f"message in more than {self.max_fragments} fragments", CloseCode.MESSAGE_TOO_BIG)
            if self._utf8 is not None:
                self._check(data, frame.fin)
            if not frame.fin:
                return None
            kind = self._kind
            self._reset()
            return kind, b"".join(parts)
        if not frame.fin:
            self._parts, self._kind = [data], opcode
            if opcode is TEXT:
                self._utf8 = codecs.getincrementaldecoder("utf-8")()
                self._check(data, False)
            return None
        if opcode is TEXT and not data.isascii():
            try:
                data.decode()
            except UnicodeDecodeError as exc:
                raise MessageRefused(f"text message is not UTF-8: {exc.reason}", CloseCode.INVALID_DATA) from None
        return opcode, data

    @property
    def in_progress(self) -> bool:
        """Whether a fragmented message is begun and not yet complete."""
        return self._parts is not None

    def _check(self, data: bytes, final: bool) -> None:
        """Check the next fragment of a text message; raise MessageRefused (1007) if it is not UTF-8."""
        assert self._utf8 is not None
        try:
            self._utf8.decode(data, final)
        except UnicodeDecodeError as exc:
            self._reset()
            raise MessageRefused(f"text message is not UTF-8: {exc.reason}", CloseCode.INVALID_DATA) from None

    def _reset(self) -> None:
        """Forget the message being assembled."""
        self._parts, self._utf8 = None, None


def send_protocol_data(sock: Any, protocol: Protocol, extra: list[bytes] | None = None) -> None:
    """Write what ``protocol`` has queued (then ``extra``) to ``sock``; half-close where it says so."""
    chunks = protocol.data_to_send()
    if extra:
        chunks.extend(extra)
    for chunk in chunks:
        if chunk:
            sock.sendall(chunk)
        else:
            sock.shutdown(socket.SHUT_WR)


def receive_handshake(sock: Any, protocol: Protocol, received: bytes = b"") -> tuple[Any, list[Any]]:
    """Read until ``protocol`` has parsed the HTTP request (server) or response (client); blocks.

    ``received`` holds bytes of it read from ``sock`` already (the server's
    HTTP layer read the request head). Returns the Request or Response
    event (None if the peer closed or sent something that is not HTTP; the
    protocol's answer, if any, has then been written) and the frames that
    arrived after it.
    """
    while True:
        data, received = (received, b"") if received else (sock.recv(_RECV_SIZE), b"")
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
        events = protocol.events_received()
        if events:
            return events[0], events[1:]
        if protocol.handshake_exc is not None or not data:
            send_protocol_data(sock, protocol)
            return None, []


#: Close codes for the reasons the session layer gives when it closes a link.
_CODES_BY_REASON = (
    ("server stopped", CloseCode.GOING_AWAY),
    ("protocol error", CloseCode.PROTOCOL_ERROR),
    ("handshake", CloseCode.POLICY_VIOLATION),
    ("refused", CloseCode.POLICY_VIOLATION),
    ("slow consumer", CloseCode.POLICY_VIOLATION),
    ("no frame from the peer", CloseCode.INTERNAL_ERROR),
)


def close_code_for(reason: str) -> int:
    """Return the WebSocket close code for a link closed with ``reason`` (1000 unless it names a failure)."""
    for prefix, code in _CODES_BY_REASON:
        if reason.startswith(prefix):
            return code
    return CloseCode.NORMAL_CLOSURE


def short_reason(reason: str) -> str:
    """Return ``reason`` cut to what fits in a close frame, on a character boundary."""
    return reason.encode()[:_MAX_REASON].decode(errors="ignore")


def wants_upgrade(request: Request) -> bool:
    """Return whether ``request`` asks for a WebSocket upgrade."""
    return any("websocket" in value.lower() for value in request.headers.get_all("Upgrade"))


def static_response(request: Request, directory: Path, path: str) -> Response:
    """Return the file ``path`` of ``directory`` as JavaScript for a GET (404 while missing, 405 for other methods)."""
    headers = Headers([("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close")])
    status, body = HTTPStatus.OK, b""
    if request.method != "GET":
        status, body = HTTPStatus.METHOD_NOT_ALLOWED, b"Method Not Allowed\n"
        headers["Allow"] = "GET"
    else:
        try:
            body = (directory / path.lstrip("/")).read_bytes()
        except OSError:
            status, body = HTTPStatus.NOT_FOUND, b"Not Found\n"
    if status is HTTPStatus.OK:
        headers["Content-Type"] = "application/javascript; charset=utf-8"
        headers["Cache-Control"] = "no-cache"
        headers["X-Content-Type-Options"] = "nosniff"
    else:
        headers["Content-Type"] = "text/plain; charset=utf-8"
    headers["Content-Length"] = str(len(body))
    return Response(status.value, status.phrase, headers, body)
