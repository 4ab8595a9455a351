"""JsonRpcSession: a plain session whose peer speaks JSON-RPC 2.0 instead of rpcengine's lists.

The session is the one every TCP and WebSocket connection has (limits,
read-ahead, frame and idle deadlines, memory budget, hooks); only the
frames differ. A :class:`~rpcengine.jsonrpc_adapter.JsonRpcAdapter` turns
each inbound document into native messages for the same Engine, and each
native message the Engine sends into JSON-RPC bytes: answers carry the
peer's ids back, a batch is answered by one array once all its items are
done, and heartbeats and Disconnect are not sent. A JSON-RPC connection is
never resumable (JSON-RPC has no handshake).

Bad input is answered, not closed on: invalid JSON gets a parse error
(``id`` null), an invalid item its INVALID_REQUEST error, and the
connection goes on. Broken framing still closes it, as for any peer: a
line over the size limit (answered ``-32003``) or one that cannot start a
JSON document (``-32700``) first gets its error object, ``id`` null.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rpcengine.errors import ConnectionLost, DecodeError, MessageTooLarge, ProtocolError
from rpcengine.features import CANCEL
from rpcengine.jsonrpc import error_from_exception, error_response
from rpcengine.jsonrpc_adapter import JsonRpcAdapter
from rpcengine.messages import Error, Message, Notification, Request, Response
from transports.link import SocketLink
from transports.session.config import SessionConfig
from transports.session.driver import Session

__all__ = ["DIALECT", "JsonRpcSession"]

log = logging.getLogger(__name__)

#: The dialect name: a WebSocket subprotocol, and the last part of the paths that speak it.
DIALECT = "jsonrpc"


class JsonRpcSession(Session):
    """The Engine-facing transport of one JSON-RPC 2.0 peer on one connection (see the module docstring).

    The ``cancel`` feature is on (a peer's ``$/cancelRequest`` stops the
    handler, and a call this side gives up on sends one); a Request carries
    no timeout (JSON-RPC has no such member).
    """

    #: What the peer's frames are (:class:`Session` has ``"rpcengine"``).
    dialect = DIALECT
    features = frozenset({CANCEL})

    def __init__(self, config: SessionConfig, **options: Any) -> None:
        super().__init__(config, resumable=False, **options)
        #: The JSON-RPC side of the connection (ids, batches, error map).
        self.adapter = JsonRpcAdapter(self.codec)
        #: Where answers go instead of the link, if set (an HTTP exchange collects its answer here).
        self.answer_sink: Callable[[bytes], None] | None = None
        #: Whether this side may call the peer (False for an HTTP client: nothing could carry the call).
        self.calls_peer = True

    def frame_received(self, frame: bytes) -> None:
        """Link callback: handle one inbound JSON-RPC document (blocks, yielding, as :meth:`Session.frame_received`)."""
        link = self.link
        if link is not None and link.buffered > self._max_buffer and not self._wait_drained(link):
            return
        received = self.adapter.receive(frame)
        for payload in received.replies:
            self._reply_now(payload)
        messages = received.messages
        if messages:
            size = max(1, len(frame) // len(messages))
            for message in messages:
                if self.closed:
                    break
                self.message_received(message, size)

    def _reply_now(self, payload: bytes) -> None:
        """Send an answer that needs no handler, without waiting for room (this is the reading greenlet)."""
        sink = self.answer_sink
        if sink is not None:
            sink(payload)
            return
        try:
            self._send_payload(payload, None, wait=False)
        except ConnectionLost:
            log.debug("JSON-RPC answer to %s not sent: the connection is gone", self.peer_address)

    def _link_protocol_error(self, link: SocketLink, exc: ProtocolError) -> None:
        """Link callback: the peer broke the framing; answer a line too large or not JSON, then close as always."""
        if link is self.link and isinstance(exc, (MessageTooLarge, DecodeError)):
            self._reply_now(self.codec.encode(error_response(None, error_from_exception(exc))))
        super()._link_protocol_error(link, exc)

    def send(self, message: Message, **kwargs: Any) -> None:
        """Encode ``message`` as JSON-RPC and write it (nothing for a batch answer not yet complete).

        Raises as :meth:`Session.send` does.
        """
        if self.closed:
            raise ConnectionLost(self.close_reason or "the session is closed")
        kind = type(message)
        if kind is Request and (self.protocol.leaving or not self.calls_peer):
            raise ConnectionLost("the session is closing" if self.calls_peer else "this peer cannot be called")
        payload = self.adapter.encode(message)
        if payload is None:
            return
        if self.answer_sink is not None and (kind is Response or kind is Error):
            self.answer_sink(payload)
            return
        self._send_payload(payload, None, kind is Request or kind is Notification)

    def broadcast_frame(self, method: str, data: Any, cache: dict[str, bytes]) -> bytes:
        """Return the notification a broadcast sends this peer, encoded once per broadcast in ``cache``."""
        frame = cache.get(DIALECT)
        if frame is None:
            frame = cache[DIALECT] = self.adapter.notification(method, data)
        return frame

    def say_goodbye(self) -> bool:
        """New requests fail from now on; nothing is sent (JSON-RPC has no Disconnect). Return False."""
        if not self.closed:
            self.protocol.disconnect_sent()
        return False

    def expire(self, reason: str) -> None:
        """Answer every request still running with a TIMEOUT error (``reason``) now; later answers are dropped."""
        for payload in self.adapter.expire(reason):
            self._reply_now(payload)

    def __repr__(self) -> str:
        return f"<JsonRpcSession {'closed' if self.closed else 'open'} peer={self.peer_address}>"
