"""SessionSet: the live sessions of a server, with broadcast."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from rpcengine.errors import ConnectionLost, OutboxFull
from rpcengine.wire import notification_frame, notification_tail
from transports.session.driver import Session

__all__ = ["SessionSet"]

log = logging.getLogger(__name__)


class SessionSet:
    """The sessions a server holds (connected, or detached and awaiting resume).

    Iterate it to reach each session (``session.engine`` calls the peer);
    :meth:`notify` broadcasts to all of them.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

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

    def notify(self, method: str, data: Any = None) -> int:
        """Send a Notification to every session without blocking; return how many got it.

        The method and data are encoded once for all sessions. A session
        whose peer does not keep up (its outbox or socket buffer is full) is
        closed as a slow consumer rather than holding up the others or
        growing without bound; the reason is logged.
        """
        sessions = [s for s in self._by_id.values() if not s.closed and s.engine is not None]
        if not sessions:
            return 0
        tail = notification_tail(sessions[0].codec, method, data)
        delivered = 0
        for session in sessions:
            engine = session.engine
            assert engine is not None
            ident = engine.next_message_id()
            payload = notification_frame(ident, tail)
            try:
                session.send_nowait(payload, ident)
            except OutboxFull as exc:
                log.warning("closing slow consumer %s: %s", session, exc)
                session.close(f"slow consumer: {exc}")
            except ConnectionLost:
                continue
            else:
                delivered += 1
        return delivered
