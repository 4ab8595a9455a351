"""One-shot calls: the messages of one HTTP POST handled by a plain session, their answers as the reply.

The body is one message list (``[2, 1, "add", [2, 3]]``) or a JSON array of
them. Each POST gets a plain session of the endpoint it is the twin of (the
same :class:`~transports.session.server.SessionServer` that serves the
WebSocket path), so the rpc handler, ``authenticate`` (with ``hello=None``,
as for any client without a handshake), ``on_connect`` and
``on_disconnect`` see it as they see any other connection. The session's
link is a :class:`CollectingLink`: it writes nothing, it keeps what the
session sends, and :func:`run_calls` picks the answers out of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import Event

from rpcengine.errors import ConnectionLost, InvalidMessage, ProtocolError
from rpcengine.messages import Error, Message, Request, Response
from rpcengine.wire import error_data, frame_array, parse_frame
from transports.http.connection import HttpError
from transports.link import SocketLink
from transports.session.server import SessionServer

__all__ = ["CallResult", "CollectingLink", "parse_calls", "run_calls"]

log = logging.getLogger(__name__)


class CollectingLink(SocketLink):
    """A link with no socket: it keeps every payload the session writes, for the HTTP answer.

    ``request`` (the HTTP request, a ``websockets.http11.Request`` as on
    WebSocket) and ``path`` (the WebSocket path this POST is the twin of)
    are there for hooks, as on a :class:`~transports.websocket.link.WebSocketLink`.
    """

    def __init__(self, peer_address: Any, request: Any = None, path: str | None = None) -> None:
        super().__init__(None, peer_address)
        self.request = request
        self.path = path
        #: Every payload written, in order.
        self.collected: list[bytes] = []
        self._written = Event()

    def write(self, payload: bytes, block: bool = True) -> None:
        """Keep ``payload``; never blocks. Raises ConnectionLost once closed."""
        if self.closed:
            raise ConnectionLost(self.close_reason or "the HTTP exchange is over")
        self.collected.append(payload)
        self._written.set()

    def write_nowait(self, payload: bytes) -> bool:
        """Keep ``payload`` (see :meth:`write`); always True."""
        self.write(payload)
        return True

    def write_many(self, payloads: list[bytes]) -> None:
        """Keep every payload (see :meth:`write`)."""
        for payload in payloads:
            self.write(payload)

    def write_final(self, payload: bytes) -> bool:
        """Keep a last payload before the close; return whether the link was still open."""
        if self.closed:
            return False
        self.write(payload)
        return True

    def wait_written(self, timeout: float | None) -> None:
        """Block (yielding) up to ``timeout`` until something is written or the link closes."""
        if not self.closed:
            self._written.wait(timeout)
        self._written.clear()

    def close_socket(self) -> None:
        """Nothing to close: the HTTP connection belongs to the server's HTTP layer; wakes waiters."""
        self._written.set()


@dataclass
class CallResult:
    """What a POST's messages came to: the HTTP ``status`` and ``body``."""

    status: int
    body: bytes


def parse_calls(codec: Any, body: bytes) -> tuple[list[Any], bool]:
    """Return the message lists in ``body`` and whether it was a batch (an array of them).

    Raises HttpError 400 for a body that is not JSON, an empty batch, or a
    message without a request id that is not a valid message (one that
    names a request id is answered with an Error instead, as on every
    transport).
    """
    try:
        value = codec.decode(body)
    except ProtocolError as exc:
        raise HttpError(400, "invalid_json", f"the body is not a JSON message: {exc}") from None
    batch = type(value) is list and bool(value) and all(type(item) is list for item in value)
    messages = value if batch else [value]
    if type(value) is list and not value:
        raise HttpError(400, "invalid_message", "an empty list is neither a message nor a batch")
    for item in messages:
        try:
            Message.from_list(item)
        except InvalidMessage as exc:
            if exc.request_id is None:
                raise HttpError(400, "invalid_message", str(exc)) from None
    return messages, batch


def _wanted(messages: list[Any]) -> list[int]:
    """Return the request ids whose answers the reply waits for, in order."""
    ids: list[int] = []
    for item in messages:
        try:
            message = Message.from_list(item)
        except InvalidMessage as exc:
            if exc.request_id is not None:
                ids.append(exc.request_id)
            continue
        if type(message) is Request:
            ids.append(message.message_id)
    return ids


def run_calls(
    endpoint: SessionServer,
    messages: list[Any],
    batch: bool,
    *,
    peer_address: Any,
    request: Any,
    path: str,
    timeout: float,
) -> CallResult:
    """Handle ``messages`` on a new plain session of ``endpoint``; return the reply (blocks, yielding).

    Waits up to ``timeout`` seconds for the answers to the requests among
    them; a request not answered in time gets an Error ``timeout``. Only
    notifications: 204 at once. A server full or stopping: 503; refused by
    ``authenticate``: 403.
    """
    codec = endpoint.codec
    link = CollectingLink(peer_address, request, path)
    if not endpoint.admit(link):
        return CallResult(503, codec.encode(error_data("unavailable", endpoint.refusal_reason)))
    wanted = _wanted(messages)
    answers: dict[int, bytes] = {}
    outcome: list[CallResult] = []

    def run() -> None:
        for item in messages:
            if link.closed:
                break
            link.received(codec.encode(item))
        if link.owner is None:
            outcome.append(CallResult(403, codec.encode(error_data("refused", "authentication failed"))))
            return
        deadline = gevent.Timeout(timeout)
        seen = 0
        try:
            with deadline:
                while True:
                    for payload in link.collected[seen:]:
                        _take_answer(codec, payload, answers)
                    seen = len(link.collected)
                    if all(ident in answers for ident in wanted) or link.closed:
                        break
                    link.wait_written(None)
        except gevent.Timeout as exc:
            if exc is not deadline:
                raise
        engine = link.owner.engine
        for ident in wanted:
            if ident not in answers:
                reason = "the session ended" if link.closed else f"no answer within {timeout:g} s"
                message_id = engine.next_message_id() if engine is not None else 0
                error = Error(message_id, ident, error_data("timeout", reason))
                answers[ident] = codec.encode(error.to_list())

    endpoint.serve_link(link, run)
    if outcome:
        return outcome[0]
    if not wanted:
        return CallResult(204, b"")
    replies = [answers[ident] for ident in wanted]
    return CallResult(200, frame_array(replies) if batch else replies[0])


def _take_answer(codec: Any, payload: bytes, answers: dict[int, bytes]) -> None:
    """Keep ``payload`` in ``answers`` if it answers a request (other messages are not part of the reply)."""
    try:
        message = parse_frame(codec, payload)
    except ProtocolError:
        return
    if type(message) is Response or type(message) is Error:
        answers.setdefault(message.request_message_id, payload)
