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

Both ends take every protocol feature (:mod:`rpcengine.features`) unless
:func:`pair` is told otherwise, so calls can be cancelled and carry their
deadline. While every handler is busy the reader reads ahead (up to
``capacity`` messages), so that a Cancel reaches the engine at once.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
from gevent.event import Event
from gevent.queue import Queue

from rpcengine.codec import Codec, default_codec
from rpcengine.engine import Engine
from rpcengine.errors import ConnectionLost, ProtocolError
from rpcengine.features import ALL_FEATURES
from rpcengine.messages import Cancel, Disconnect, Message, Notification, Request, StreamCredit
from rpcengine.packages import require_own_package
from rpcengine.wire import bad_frame_reply, has_request_id, parse_frame
from transports.base import Transport

require_own_package("transports")  # fails at once, naming it, if 'transports' is another installation

__all__ = ["MemoryTransport", "pair"]

log = logging.getLogger(__name__)

_EOF = object()


class MemoryTransport(Transport):
    """One end of an in-memory loopback pair; see :func:`pair`."""

    def __init__(self, codec: Codec, capacity: int, features: frozenset[str] = ALL_FEATURES) -> None:
        super().__init__()
        self.codec = codec
        self.features = features
        self.capacity = capacity
        self.inbox: Queue = Queue(maxsize=capacity)
        # Messages read while every handler was busy, delivered in order by their own greenlet.
        self._ahead: list[Message] = []
        self._ahead_room: Any = None
        self._deliverer: gevent.Greenlet | None = None
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
                message = parse_frame(self.codec, frame, self.features)
            except ProtocolError as exc:
                self._reject(exc)
                continue
            kind = type(message)
            if kind is Disconnect and not self._ahead:
                self._disconnected()
            elif self._ending is not None and (kind is Request or kind is Notification):
                log.debug("dropped %r: the transport is ending", message)
            elif (self._ahead and kind is not Cancel and kind is not StreamCredit) or (
                (kind is Request or kind is Notification) and self.engine is not None and self.engine.saturated
            ):
                self._read_ahead(message)
            else:
                self.deliver(message)

    def _read_ahead(self, message: Message) -> None:
        """Keep ``message`` for the deliverer; block (yielding) while ``capacity`` messages wait so."""
        self._ahead.append(message)
        if self._deliverer is None:
            self._deliverer = gevent.spawn(self._deliver_ahead)
        while len(self._ahead) >= self.capacity and not self.closed:
            room = self._ahead_room
            if room is None:
                room = self._ahead_room = Event()
            room.wait()

    def _deliver_ahead(self) -> None:
        """Deliver what was read ahead, in order (blocking, yielding, while every handler is busy)."""
        ahead = self._ahead
        try:
            while ahead and not self.closed:
                message = ahead.pop(0)
                room = self._ahead_room
                if room is not None:
                    self._ahead_room = None
                    room.set()
                if type(message) is Disconnect:
                    self._disconnected()
                else:
                    self.deliver(message)
        finally:
            self._deliverer = None

    def _disconnected(self) -> None:
        """The peer sent Disconnect: answer what it sent before, then end."""
        self._peer_disconnecting = True
        self.finish("the peer disconnected")

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


def pair(
    codec: Codec | None = None, capacity: int = 1024, features: frozenset[str] = ALL_FEATURES
) -> tuple[MemoryTransport, MemoryTransport]:
    """Return two connected loopback transports; give one to each of two Engines.

    ``capacity`` bounds the frames waiting in each direction: a sender blocks
    (yields) while its peer's inbox is full (and as many more may be read
    ahead while the peer's handlers are all busy). ``features`` are the
    protocol features both ends take (``frozenset()``: those of a plain peer).
    """
    codec = codec or default_codec()
    left, right = MemoryTransport(codec, capacity, features), MemoryTransport(codec, capacity, features)
    left.peer, right.peer = right, left
    return left, right
