"""SessionSet: the live sessions of a server, with broadcast."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Protocol

from rpcengine.calls import Call
from rpcengine.errors import ConnectionLost, OutboxFull
from rpcengine.wire import notification_frame, notification_tail
from transports.session.driver import Session

__all__ = ["BroadcastResult", "Broker", "SessionSet"]

log = logging.getLogger(__name__)


class Broker(Protocol):
    """What a SessionSet needs of a broker that links it to other nodes (:class:`transports.redis.RedisBroker`)."""

    def attach(self, sessions: SessionSet) -> None:
        """Serve ``sessions`` through the broker."""
        ...

    def new_session_id(self) -> str:
        """Return a new session id that names this node."""
        ...

    def notify(self, method: str, data: Any = None, timeout: float | None = None) -> BroadcastResult:
        """Broadcast to every session of every node."""
        ...

    def call(self, session_id: str, method: str, data: Any = None, timeout: float | None = None) -> Call:
        """Call a session held by any node."""
        ...


class SessionSet:
    """The sessions a server holds (connected, or detached and awaiting resume).

    Iterate it to reach each session (``session.engine`` calls the peer);
    :meth:`notify` broadcasts to all of them.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        #: The broker linking this set to other nodes (set by ``broker.attach``), or None.
        self.broker: Broker | None = None

    def new_session_id(self) -> str | None:
        """Return the id for a new session: one naming the broker's node, or None (the session makes its own)."""
        return self.broker.new_session_id() if self.broker is not None else None

    def add(self, session: Session) -> None:
        """Track ``session`` until it closes."""
        self._by_id[session.session_id] = session
        session.on_closed.append(self._remove)

    def _remove(self, session: Session) -> None:
        """Forget a closed session."""
        if self._by_id.get(session.session_id) is session:
            del self._by_id[session.session_id]

    def get(self, session_id: str) -> Session | None:
        """Return the open session with this id, or None."""
        session = self._by_id.get(session_id)
        return session if session is not None and not session.closed else None

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, session: object) -> bool:
        return isinstance(session, Session) and self._by_id.get(session.session_id) is session

    def call(self, session_id: str, method: str, data: Any = None, timeout: float | None = None) -> Call:
        """Call the client of ``session_id``; return its :class:`~rpcengine.calls.Call`.

        With a broker, the session may be held by any node (see
        :meth:`transports.redis.RedisBroker.call`); without one it must be
        here. Raises ConnectionLost at once for a session that is not (or
        whose node is gone), and whatever :meth:`Engine.call
        <rpcengine.engine.Engine.call>` raises. Yields only as that does
        (and for the publish to another node).
        """
        session = self.get(session_id)
        if session is not None and session.engine is not None:
            return session.engine.call(method, data, timeout)
        if self.broker is not None:
            return self.broker.call(session_id, method, data, timeout)
        raise ConnectionLost("no such session")

    def request(self, session_id: str, method: str, data: Any = None, timeout: float | None = None) -> Any:
        """Call the client of ``session_id`` (see :meth:`call`) and wait (yielding) for the answer's data."""
        return self.call(session_id, method, data, timeout).get()

    def notify(self, method: str, data: Any = None, timeout: float | None = None) -> BroadcastResult:
        """Broadcast a Notification to every session; return how many here got it (a :class:`BroadcastResult`).

        With a broker, every session of every node gets it: it is delivered
        here and published once (:meth:`transports.redis.RedisBroker.notify`;
        the result's ``nodes`` counts the other nodes reached). Without one,
        this set's sessions (:meth:`notify_local`).
        """
        if self.broker is not None:
            return self.broker.notify(method, data, timeout)
        return self.notify_local(method, data, timeout)

    def notify_local(self, method: str, data: Any = None, timeout: float | None = None) -> BroadcastResult:
        """Send a Notification to every session of this set; return how many got it (a :class:`BroadcastResult`).

        The method and data are encoded once for all sessions. Flow control:
        a reader that keeps up never loses a broadcast because the sender is
        fast. When a session's outbox is full (``max_unacked`` messages await
        its acknowledgements), the broadcast waits (yielding) up to
        ``timeout`` (default: the session's ``broadcast_timeout``) for room;
        a peer whose acknowledgements do not come in that time, or whose
        socket does not take what is written (``max_buffer`` bytes unread),
        is closed as a slow consumer, with the reason logged and sent as the
        close reason. So the sender is paced by the slowest healthy peer.
        Raises EncodeError (sending nothing) if ``data`` cannot be encoded.
        """
        sessions = [s for s in self._by_id.values() if not s.closed and s.engine is not None]
        result = BroadcastResult(0)
        if not sessions:
            return result
        tail = notification_tail(sessions[0].codec, method, data)
        delivered = closed = 0
        waited = 0.0
        other_dialects: dict[str, bytes] = {}
        for session in sessions:
            engine = session.engine
            if engine is None or session.closed:
                continue
            try:
                if session.congested:
                    started = session.clock()
                    try:
                        session.wait_for_room(session.config.broadcast_timeout if timeout is None else timeout)
                    finally:
                        waited += session.clock() - started
                ident = engine.next_message_id()
                if session.dialect == "rpcengine":
                    frame = notification_frame(ident, tail)
                else:  # a JSON-RPC peer: its notification object, encoded once for all of them
                    frame = session.broadcast_frame(method, data, other_dialects)  # type: ignore[attr-defined]
                session.send_nowait(frame, ident)
            except OutboxFull as exc:
                log.warning("closing slow consumer %s: %s", session, exc)
                session.close(f"slow consumer: {exc}")
                closed += 1
            except ConnectionLost:
                continue
            else:
                delivered += 1
        return BroadcastResult(delivered, closed=closed, waited=waited)


class BroadcastResult(int):
    """How many sessions a broadcast reached (the int itself), with what else it did.

    ``closed``: sessions closed as slow consumers; ``waited``: seconds the
    broadcast spent waiting for peers' acknowledgements. Through a broker:
    ``nodes``, the other nodes the publish reached, and ``dropped``, True
    when it could not be published (Redis unreachable).
    """

    closed: int
    waited: float
    nodes: int
    dropped: bool

    def __new__(
        cls, delivered: int, *, closed: int = 0, waited: float = 0.0, nodes: int = 0, dropped: bool = False
    ) -> BroadcastResult:
        """Return the result of a broadcast that reached ``delivered`` sessions."""
        result = super().__new__(cls, delivered)
        result.closed = closed
        result.waited = waited
        result.nodes = nodes
        result.dropped = dropped
        return result

    @classmethod
    def total(cls, results: list[BroadcastResult]) -> BroadcastResult:
        """Return the sum of the results of one broadcast to several sets of sessions."""
        return cls(sum(results), closed=sum(r.closed for r in results), waited=sum(r.waited for r in results))

    @property
    def delivered(self) -> int:
        """Sessions the notification was queued for."""
        return int(self)

    def __repr__(self) -> str:
        return (
            f"BroadcastResult(delivered={int(self)}, closed={self.closed}, waited={self.waited:.3f}, "
            f"nodes={self.nodes}, dropped={self.dropped})"
        )
