"""Calls to sessions another node holds: the caller's transport and the owner's relay.

On the calling node, each remote session is reached through an ordinary
:class:`~rpcengine.engine.Engine` whose transport, a
:class:`RemoteSessionTransport`, publishes its messages to the owning
node's channel, so timeouts, Cancel, ``max_pending`` and
:class:`~rpcengine.calls.Call` handles work as for a local peer. On the
owning node, a :class:`Relay` runs each request over that client's own
session and publishes the answer back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent

from rpcengine.calls import Call
from rpcengine.errors import (
    ConnectionLost,
    MethodNotFound,
    OutboxFull,
    RequestCancelled,
    RequestTimeout,
    TooManyPendingRequests,
)
from rpcengine.features import CANCEL, DEADLINE
from rpcengine.messages import Cancel, Error, Message, Notification, Request, Response
from rpcengine.wire import error_data
from transports.base import Transport

if TYPE_CHECKING:
    from transports.session.driver import Session

__all__ = ["REMOTE_FEATURES", "Relay", "RemoteSessionTransport", "refuse_calls"]

log = logging.getLogger(__name__)

#: What calls across the broker carry: Cancel and the caller's deadline.
REMOTE_FEATURES = frozenset({CANCEL, DEADLINE})
#: Default bound on the requests a node relays for other nodes at once.
DEFAULT_MAX_RELAYED = 10_000


def refuse_calls(request: Request | Notification) -> Any:
    """The rpc handler of a remote session's engine: a client cannot call back through the broker."""
    raise MethodNotFound(request.method)


class RemoteSessionTransport(Transport):
    """The transport of an Engine that calls a session held by another node.

    ``publish(node, session_id, message_list) -> int`` sends one message to
    the owning node and returns how many subscribers got it (0: the node is
    gone). :meth:`send` yields for that round trip; it raises ConnectionLost
    when the node is gone (and ends the transport, failing what is pending)
    or the broker cannot be reached (the transport stays open).
    """

    features = REMOTE_FEATURES

    def __init__(self, node: str, session_id: str, publish: Callable[[str, str, list[Any]], int]) -> None:
        super().__init__()
        self.node = node
        self.session_id = session_id
        self._publish = publish

    def send(self, message: Message, **kwargs: Any) -> None:
        """Publish ``message`` to the owning node (yields); raise ConnectionLost if it cannot get there."""
        self.check_open()
        reached = self._publish(self.node, self.session_id, message.to_list())
        if reached == 0:
            reason = f"node {self.node} is gone"
            self.lost(reason)
            raise ConnectionLost(reason)

    def received(self, message: Message) -> None:
        """Hand an answer from the owning node to the engine (Responses and Errors only)."""
        if self.closed or self.engine is None:
            return
        if isinstance(message, Response | Error):
            self.engine.handle_message(message)
        else:
            log.warning("dropped a %s from node %s: only answers come back", type(message).__name__, self.node)

    def close(self) -> None:
        """End this transport: its pending calls fail with ConnectionLost."""
        if not self.closed:
            self.lost("remote session closed")

    def __repr__(self) -> str:
        return f"<RemoteSessionTransport node={self.node} closed={self.closed}>"


class Relay:
    """The owning node's side: runs other nodes' calls over the sessions it holds.

    ``find(session_id)`` returns the local Session or None;
    ``answer(node, session_id, message_list)`` and ``gone(node, session_id,
    reason)`` queue a payload back to the calling node (they must not block:
    they run in done callbacks, in the hub). At most ``max_relayed``
    requests run at once; past that a request is answered
    ``too_many_pending``.
    """

    def __init__(
        self,
        find: Callable[[str], Session | None],
        answer: Callable[[str, str, list[Any]], None],
        gone: Callable[[str, str, str], None],
        max_relayed: int = DEFAULT_MAX_RELAYED,
    ) -> None:
        self._find = find
        self._answer = answer
        self._gone = gone
        self.max_relayed = max_relayed
        self._calls: dict[tuple[str, str, int], Call] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def handle(self, node: str, session_id: str, message: Message) -> None:
        """Act on one message from ``node`` to the local session ``session_id``; may yield."""
        if isinstance(message, Cancel):
            call = self._calls.get((node, session_id, message.request_message_id))
            if call is not None:
                call.cancel()
            return
        session = self._find(session_id)
        engine = session.engine if session is not None else None
        if session is None or engine is None or session.closed:
            if isinstance(message, Request):
                self._gone(node, session_id, "no such session")
            return
        if isinstance(message, Notification):
            try:
                engine.notify(message.method, message.data)
            except (ConnectionLost, OutboxFull) as exc:
                log.info("a notification relayed from node %s not sent: %s", node, exc)
            return
        if not isinstance(message, Request):
            log.warning("dropped a %s from node %s for a session here", type(message).__name__, node)
            return
        if len(self._calls) >= self.max_relayed:
            self._reply(node, session_id, message.message_id, "too_many_pending", "the node relays too many calls")
            return
        if session.congested:
            gevent.spawn(self._start, node, session_id, session, message)  # do not hold up other deliveries
        else:
            self._start(node, session_id, session, message)

    def _start(self, node: str, session_id: str, session: Session, request: Request) -> None:
        """Call the local client for ``node``'s request and answer when it ends."""
        engine = session.engine
        timeout = None if request.timeout_ms is None else request.timeout_ms / 1000
        key = (node, session_id, request.message_id)
        try:
            if engine is None:
                raise ConnectionLost("the session has no engine")
            call = engine.call(request.method, request.data, timeout)
        except ConnectionLost as exc:
            self._gone(node, session_id, str(exc) or "connection lost")
            return
        except (TooManyPendingRequests, OutboxFull) as exc:
            self._reply(node, session_id, request.message_id, "too_many_pending", str(exc))
            return
        self._calls[key] = call
        call.add_done_callback(lambda done: self._done(key, done))

    def _done(self, key: tuple[str, str, int], call: Call) -> None:
        """Done callback (in the hub): carry the outcome back to the calling node."""
        self._calls.pop(key, None)
        node, session_id, request_id = key
        outcome = call.outcome
        if isinstance(outcome, Response):
            self._answer(node, session_id, Response(0, request_id, outcome.data).to_list())
        elif isinstance(outcome, Error):
            self._answer(node, session_id, Error(0, request_id, outcome.data).to_list())
        elif isinstance(outcome, RequestCancelled):
            return  # the caller cancelled: it expects nothing more
        elif isinstance(outcome, RequestTimeout):
            # The caller raises RequestTimeout for this kind, as for its own timer.
            self._reply(node, session_id, request_id, "deadline_exceeded", str(outcome))
        elif isinstance(outcome, ConnectionLost):
            self._gone(node, session_id, str(outcome) or "connection lost")
        else:
            self._reply(node, session_id, request_id, "internal_error", repr(outcome))

    def _reply(self, node: str, session_id: str, request_id: int, kind: str, text: str) -> None:
        """Answer ``node``'s request with an Error of ``kind``."""
        self._answer(node, session_id, Error(0, request_id, error_data(kind, text)).to_list())

    def cancel_all(self) -> None:
        """Cancel every relayed call (the node is stopping)."""
        for call in list(self._calls.values()):
            call.cancel()
