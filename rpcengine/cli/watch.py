"""What ``serve`` reports about its clients: connections and calls at debug level, and ``--trace``.

:func:`server_watchers` returns the ``on_connect`` and ``on_disconnect``
hooks and the middleware a server needs for ``--log-level debug`` and
``--trace``, and nothing when neither is asked for, so a quiet server's
calls run exactly as without the command line.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from dispatchers.middleware import Middleware
from rpcengine.cli.trace import Tracer, peer_name
from rpcengine.engine import RpcHandler
from rpcengine.messages import Notification, Request

__all__ = ["log_calls", "server_watchers"]

log = logging.getLogger(__name__)


def _peer(message: Request | Notification) -> str:
    """Return the peer a message came from, for a log line."""
    engine = getattr(message, "engine", None)
    transport = getattr(engine, "transport", None)
    return peer_name(getattr(transport, "peer_address", None))


def log_calls(message: Request | Notification, call_next: RpcHandler) -> Any:
    """Middleware: log each call, its outcome and its duration at debug level."""
    kind = "notification" if type(message) is Notification else "call"
    peer = _peer(message)
    log.debug("%s %s from %s (id %d)", kind, message.method, peer, message.message_id)
    started = time.perf_counter()
    try:
        result = call_next(message)
    except Exception as exc:
        elapsed = (time.perf_counter() - started) * 1000
        log.debug("%s %s from %s raised %s after %.1f ms", kind, message.method, peer, type(exc).__name__, elapsed)
        raise
    log.debug("%s %s from %s done in %.1f ms", kind, message.method, peer, (time.perf_counter() - started) * 1000)
    return result


def server_watchers(tracer: Tracer | None) -> tuple[dict[str, Any], list[Middleware]]:
    """Return the server hooks (keyword arguments) and middleware for debug logging and ``tracer``."""
    debug = log.isEnabledFor(logging.DEBUG)
    if not debug and tracer is None:
        return {}, []

    def connected(session: Any) -> None:
        peer = peer_name(session.peer_address)
        # Never the session id: with it (and the secret) a log reader could resume the session.
        kind = "resumable session" if getattr(session, "resumable", False) else "plain session"
        log.debug("client %s connected (%s)", peer, kind)
        if tracer is not None and session.engine is not None:
            tracer.attach(session.engine, peer)

    def disconnected(session: Any) -> None:
        reason = getattr(session, "close_reason", "") or "closed"
        log.debug("client %s disconnected: %s", peer_name(session.peer_address), reason)

    hooks: dict[str, Any] = {"on_connect": connected}
    if debug:
        hooks["on_disconnect"] = disconnected
    return hooks, [log_calls] if debug else []
