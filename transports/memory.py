"""The in-memory loopback transport: two engines in one process, real wire format.

:func:`pair` returns two connected transports. Every message passes through
the codec as bytes, so tests see what a network peer would see: values that
cannot be encoded fail, data comes back as fresh JSON values, malformed
frames (injected with :meth:`MemoryTransport.send_raw`) meet the same checks
and the same answers as on a socket: a bad frame that names a request id
gets an Error reply, any other bad frame ends the pair once what came
before it is answered, and so does a Disconnect from the peer. Closing
either side ends both, and the pending requests on each side fail with
:class:`~rpcengine.errors.ConnectionLost`.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
from gevent.queue import Queue

from rpcengine.codec import Codec, default_codec
from rpcengine.engine import Engine
from rpcengine.errors import ConnectionLost, ProtocolError
from rpcengine.messages import Disconnect, Message, Notification, Request
from rpcengine.packages import require_own_package
from rpcengine.wire import bad_frame_reply, has_request_id, parse_frame
from transports.base import Transport

require_own_package("transports")  # fails at once, naming it, if 'transports' is another installation

__all__ = ["MemoryTransport", "pair"]

log = logging.getLogger(__name__)

_EOF = object()


class MemoryTransport(Transport):
    """One end of an in-memory loopback pair; see :func:`pair`."""

    def __init__(self, codec: Codec, capacity: int) -> None:
        super().__init__()
        self.codec = codec
        self.inbox: Queue = Queue(maxsize=capacity)
        self.peer: MemoryTransport | None = None
        self._reader: gevent.Greenlet | None = None
        self._peer_disconnecting = False
        self.frames_received = 0

    @property
    def peer_disconnecting(self) -> bool:
        """Whether the peer sent Disconnect."""
        return self._peer_disconnecting

    def bind(self, engine: Engine) -> None:
        """Attach the engine and start delivering inbound messages to it."""
        super().bind(engine)
        if self._reader is None:
            self._reader = gevent.spawn(self._read_loop)

    def send(self, message: Message, **kwargs: Any) -> None:
        """Encode ``message`` and queue it for the peer; blocks (yields) while its inbox is full."""
        self.check_open()
        self.send_raw(self.codec.encode(message.to_list()))

    def send_raw(self, frame: bytes) -> None:
        """Queue raw bytes for the peer as one frame, as a network would deliver them."""
        self.check_open()
        assert self.peer is not None
        if self.peer.closed:
            raise ConnectionLost("the peer transport is closed")
        self.peer.inbox.put(frame)

    def close(self) -> None:
        """Close both ends; pending requests on each side fail with ConnectionLost."""
        if self.closed:
            return
        self.lost("closed locally")
        if self.peer is not None and not self.peer.closed:
            self.peer.inbox.put(_EOF)

    def lost(self, reason: str | BaseException | None = None) -> None:
        """Mark this end ended, stop its reader and tell its engine."""
        super().lost(reason)
        reader = self._reader
        if reader is not None and reader is not gevent.getcurrent():
            reader.kill(block=False)

    def _read_loop(self) -> None:
        """Deliver inbound frames until the peer closes."""
        inbox = self.inbox
        while True:
            frame = inbox.get()
            if frame is _EOF:
                self.lost("the peer closed the connection")
                return
            self.frames_received += 1
            try:
                message = parse_frame(self.codec, frame)
            except ProtocolError as exc:
                self._reject(exc)
                continue
            kind = type(message)
            if kind is Disconnect:
                self._peer_disconnecting = True
                self.finish("the peer disconnected")
            elif self._ending is not None and (kind is Request or kind is Notification):
                log.debug("dropped %r: the transport is ending", message)
            else:
                self.deliver(message)

    def _reject(self, exc: ProtocolError) -> None:
        """Answer bad input: an Error if its request id is known, else end the pair once what came is answered."""
        engine = self.engine
        assert engine is not None
        if not has_request_id(exc):
            log.warning("loopback transport closing on bad input: %s", exc)
            self.finish(f"protocol error: {exc}")
            return
        log.warning("loopback transport received an invalid request: %s", exc)
        reply = bad_frame_reply(exc, engine.next_message_id())
        assert reply is not None
        try:
            self.send(reply)
        except ConnectionLost:
            log.debug("error reply not sent: the peer is gone")

    def __repr__(self) -> str:
        return f"<MemoryTransport {'closed' if self.closed else 'open'}>"


def pair(codec: Codec | None = None, capacity: int = 1024) -> tuple[MemoryTransport, MemoryTransport]:
    """Return two connected loopback transports; give one to each of two Engines.

    ``capacity`` bounds the frames waiting in each direction: a sender blocks
    (yields) while its peer's inbox is full.
    """
    codec = codec or default_codec()
    left, right = MemoryTransport(codec, capacity), MemoryTransport(codec, capacity)
    left.peer, right.peer = right, left
    return left, right
