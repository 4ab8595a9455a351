"""Transport base class and the inbound-frame handling every transport shares."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from rpcengine.codec import Codec
from rpcengine.engine import error_data
from rpcengine.errors import ConnectionLost, InvalidMessage, ProtocolError
from rpcengine.messages import Error, Message

if TYPE_CHECKING:
    from rpcengine.engine import Engine

__all__ = ["Transport", "error_reply_for", "parse_frame"]

log = logging.getLogger(__name__)


def parse_frame(codec: Codec, frame: bytes) -> Message:
    """Decode one frame into a message; raise a ProtocolError subclass if it is not one."""
    return Message.from_list(codec.decode(frame))


def error_reply_for(engine: Engine, exc: ProtocolError) -> Error | None:
    """Return the Error reply for bad input whose request id could be recovered, else None."""
    request_id = exc.request_id if isinstance(exc, InvalidMessage) else None
    if request_id is None:
        return None
    return Error(engine.next_message_id(), request_id, error_data("invalid_message", str(exc)))


class Transport:
    """Base class for transports: holds the engine and reports the end exactly once.

    Subclasses implement :meth:`send` and :meth:`close`, deliver inbound
    messages with :meth:`deliver` and call :meth:`lost` when they end.
    """

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.closed = False

    def bind(self, engine: Engine) -> None:
        """Attach the engine that receives this transport's inbound messages."""
        if self.engine is not None and self.engine is not engine:
            raise RuntimeError("this transport already carries an engine")
        self.engine = engine

    def send(self, message: Message, **kwargs: Any) -> None:
        """Queue ``message`` for the peer (implemented by subclasses)."""
        raise NotImplementedError

    def close(self) -> None:
        """End the transport (implemented by subclasses)."""
        raise NotImplementedError

    def deliver(self, message: Message) -> None:
        """Hand an inbound message to the engine; may block (yield) for backpressure."""
        if self.engine is None:
            raise RuntimeError("no engine bound to this transport")
        self.engine.handle_message(message)

    def lost(self, reason: str | BaseException | None = None) -> None:
        """Mark the transport ended and tell the engine; idempotent."""
        self.closed = True
        if self.engine is not None:
            self.engine.connection_lost(reason)

    def check_open(self) -> None:
        """Raise ConnectionLost if the transport has ended."""
        if self.closed:
            raise ConnectionLost("the transport is closed")
