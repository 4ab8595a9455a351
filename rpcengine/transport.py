"""The interface between an Engine and its transport.

The Engine never touches a socket: it hands outbound messages to a
transport and the transport hands inbound ones back. Any object with these
methods can carry an Engine; :class:`transports.base.Transport` is a base
class that implements the bookkeeping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rpcengine.engine import Engine
    from rpcengine.messages import Message

__all__ = ["TransportInterface"]


class TransportInterface(Protocol):
    """What an :class:`~rpcengine.engine.Engine` requires of its transport.

    * ``bind(engine)`` is called once by the Engine's constructor. From then
      on the transport delivers each inbound message with
      ``engine.handle_message(message)`` and reports its end, once, with
      ``engine.connection_lost(reason)``.
    * ``send(message, **kwargs)`` queues one message for the peer. It may
      block (yield) for backpressure, raises
      :class:`~rpcengine.errors.ConnectionLost` once the transport is closed
      and :class:`~rpcengine.errors.EncodeError` if the message cannot be
      encoded; in that case nothing was sent.
    * ``close()`` ends the transport; the engine's pending requests fail.
    * ``features`` names the protocol features (:mod:`rpcengine.features`)
      both ends take: the Engine sends a Cancel or a Request's fifth item
      only when they are named, and the transport parses them only then.
    * ``closed`` tells whether it has ended.
    * ``peer_disconnecting`` tells whether the peer sent Disconnect ``[-1]``
      (the transport acts on it: it answers what is in flight, then closes);
      ``leaving`` whether either side did. While ``leaving``, the Engine
      sends no new request.
    * ``congested`` tells whether the transport's bound on unacknowledged
      messages is reached; the Engine then calls ``wait_for_room()`` before
      it numbers a new Request or Notification, so that the bound is checked
      before a message is queued, for any number of senders, and ids still
      reach the wire in order.
    """

    closed: bool
    features: frozenset[str]

    @property
    def peer_disconnecting(self) -> bool:
        """Whether the peer sent Disconnect."""
        ...

    @property
    def leaving(self) -> bool:
        """Whether either side sent Disconnect."""
        ...

    @property
    def congested(self) -> bool:
        """Whether a new Request or Notification must wait (:meth:`wait_for_room`) before it is numbered."""
        ...

    def wait_for_room(self) -> None:
        """Block (yielding) until a new message may be queued; raise OutboxFull or ConnectionLost."""
        ...

    def bind(self, engine: Engine) -> None:
        """Attach the engine that receives this transport's inbound messages."""
        ...

    def send(self, message: Message, **kwargs: Any) -> None:
        """Queue ``message`` for the peer."""
        ...

    def close(self) -> None:
        """End the transport."""
        ...
