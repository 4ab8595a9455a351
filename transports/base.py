"""Transport base class: holds the engine and reports the end exactly once."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import gevent

from rpcengine.errors import ConnectionLost
from rpcengine.features import NO_FEATURES
from rpcengine.messages import Message

if TYPE_CHECKING:
    from rpcengine.engine import Engine

__all__ = ["DEFAULT_DRAIN_TIMEOUT", "Transport"]

log = logging.getLogger(__name__)

#: How long a transport that is ending waits for in-flight work before it closes anyway.
DEFAULT_DRAIN_TIMEOUT = 5.0


class Transport:
    """Base class for transports: holds the engine and reports the end exactly once.

    Subclasses implement :meth:`send` and :meth:`close`, deliver inbound
    messages with :meth:`deliver` and call :meth:`lost` when they end.
    """

    #: The protocol features (:mod:`rpcengine.features`) both ends of this transport take; none by default.
    features: frozenset[str] = NO_FEATURES

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.closed = False
        self._ending: str | None = None

    @property
    def peer_disconnecting(self) -> bool:
        """Whether the peer sent Disconnect (subclasses that see it say so)."""
        return False

    @property
    def leaving(self) -> bool:
        """Whether either side sent Disconnect: the Engine sends no new request."""
        return self.peer_disconnecting

    @property
    def congested(self) -> bool:
        """Whether a new message must wait for room (transports with an outbox bound say so)."""
        return False

    def wait_for_room(self) -> None:
        """Block (yielding) until a new message may be queued (nothing to wait for here)."""

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

    # -- ending after in-flight work --------------------------------------

    def finish(self, reason: str, timeout: float = DEFAULT_DRAIN_TIMEOUT, *, answers_may_come: bool = True) -> None:
        """Close once in-flight work is done; does not block.

        Used when the peer said Disconnect or broke the framing: what it
        sent before is still handled and answered, as data before a FIN is
        read. With ``answers_may_come`` (the peer said Disconnect, and the
        connection is still read) this side's pending requests may still be
        answered and are waited for too. Waits up to ``timeout`` on a new
        greenlet, then ends with ``reason``. From now on the peer's new
        requests and notifications are dropped.
        """
        if self.closed or self._ending is not None:
            return
        self._ending = reason
        gevent.spawn(self._drain_and_end, reason, timeout, answers_may_come)

    @property
    def ending(self) -> bool:
        """Whether :meth:`finish` was called: the transport closes once in-flight work is done."""
        return self._ending is not None

    def _drain_and_end(self, reason: str, timeout: float, answers_may_come: bool) -> None:
        """Wait (bounded) for handlers (and pending requests), flush, then :meth:`end`."""
        engine = self.engine
        with gevent.Timeout(timeout, False):  # type: ignore[arg-type]  # False: silent (types-gevent omits it)
            if engine is not None:
                engine.join_handlers()
                if answers_may_come:
                    engine.join_pending()
        if engine is not None and engine.active_handlers:
            log.warning("%r ends with handlers still running after %s s", self, timeout)
        self.flush(1.0)
        self.end(reason)

    def flush(self, timeout: float) -> None:
        """Wait (yielding) up to ``timeout`` for queued output to leave (subclasses that queue)."""

    def end(self, reason: str) -> None:
        """Close for ``reason`` (subclasses whose close takes a reason override this)."""
        self.close()
