"""Client side of a session: handshake, then optional reconnect with resume.

:func:`open_session` is what ``transports.tcp.connect`` and
``transports.websocket.connect`` share: it dials with a transport-specific
``dial()`` (which returns a connected, not yet reading,
:class:`~transports.link.SocketLink`), runs the handshake, and returns a
ready Engine. With ``reconnect`` on, a lost connection is redialled with
bounded, jittered exponential backoff and the session resumed: messages the
server has not acknowledged are sent again, and requests keep waiting. If
the server no longer knows the session (it restarted), pending requests
fail with ConnectionLost and the engine goes on in a new session.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import AsyncResult

from rpcengine.engine import Engine, RpcHandler
from rpcengine.errors import ConnectionLost, HandshakeError, MethodNotFound, ProtocolError
from transports.link import SocketLink
from transports.session.config import SessionConfig
from transports.session.driver import Session
from transports.session.handshake import client_hello, parse_server_hello

__all__ = ["Dial", "ReconnectPolicy", "client_engine", "open_session", "refuse_calls"]

log = logging.getLogger(__name__)

#: Returns a connected link whose read loop has not started; raises OSError on failure.
Dial = Callable[[], SocketLink]


def refuse_calls(request: Any) -> Any:
    """Default rpc handler of a client: every call from the server gets MethodNotFound."""
    raise MethodNotFound(request.method)


def client_engine(session: Session, rpc_handler: RpcHandler | None, config: SessionConfig) -> Engine:
    """Return the Engine of a client ``session``, with the limits of ``config`` (``rpc_handler`` None: refuse_calls)."""
    return Engine(
        session,
        rpc_handler or refuse_calls,
        default_timeout=config.default_timeout,
        max_pending=config.max_pending,
        max_concurrency=config.max_concurrency,
    )


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a client redials: exponential backoff from ``initial_delay`` to ``max_delay``.

    Each delay is multiplied by a random factor in [0.5, 1.0] (jitter), and
    redialling stops after ``max_attempts`` or ``give_up_after`` seconds
    (default: the session's ``resume_grace``), whichever comes first.
    """

    initial_delay: float = 0.05
    max_delay: float = 2.0
    max_attempts: int = 100
    give_up_after: float | None = None


def _handshake(
    link: SocketLink,
    session: Session,
    timeout: float,
    extra: dict[str, Any],
) -> None:
    """Run the client handshake on ``link`` and attach it to ``session``; raise on failure."""
    answered: AsyncResult = AsyncResult()

    def first_frame(frame: bytes) -> None:
        try:
            hello = parse_server_hello(session.codec.decode(frame))
        except ProtocolError as exc:
            answered.set_exception(HandshakeError(str(exc)))
            link.close(f"handshake failed: {exc}")
            return
        if session.session_id and not hello.resumed:
            session.restart(hello.session)
        session.session_id = hello.session
        if hello.secret is not None:
            session.secret = hello.secret
        if hello.heartbeat and (not session.heartbeat_interval or hello.heartbeat < session.heartbeat_interval):
            # The server declares us dead after its own timeout: send as often as it does.
            session.heartbeat_interval = hello.heartbeat
        session.peer_outbox_bound(hello.max_unacked)
        session.features = hello.features & session.config.features
        link.owner = session
        session.attach(link, hello.ack)
        answered.set(hello)

    def lost(_link: SocketLink, reason: str) -> None:
        if not answered.ready():
            answered.set_exception(ConnectionLost(f"connection lost during handshake: {reason}"))

    link.receiver = first_frame
    link.on_lost = lost
    link.start_reading()
    resuming = session.session_id or None
    hello = client_hello(
        resuming,
        session.last_received,
        session.config.max_unacked,
        session.secret if resuming else None,
        features=session.config.features,
        **extra,
    )
    link.write(session.codec.encode(hello))
    try:
        answered.get(timeout=timeout)
    except gevent.Timeout:
        link.close("handshake timeout")
        raise HandshakeError(f"no handshake answer within {timeout} s") from None
    except BaseException:
        link.close("handshake failed")
        raise


def open_session(
    dial: Dial,
    rpc_handler: RpcHandler,
    config: SessionConfig,
    *,
    handshake: bool = True,
    reconnect: bool | ReconnectPolicy = False,
    hello_extra: dict[str, Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Engine:
    """Dial, handshake and return a ready Engine; blocks (yields) until connected.

    Raises OSError if the connection cannot be made, HandshakeError if the
    server refuses or answers badly, ConnectionLost if it closes meanwhile.
    """
    policy = reconnect if isinstance(reconnect, ReconnectPolicy) else (ReconnectPolicy() if reconnect else None)
    session = Session(config, resumable=handshake and policy is not None, handshaken=handshake, clock=clock)
    session.session_id = ""  # named by the server's handshake answer
    engine = client_engine(session, rpc_handler, config)
    extra = hello_extra or {}
    link = dial()
    session.peer_address = link.peer_address
    if handshake:
        try:
            _handshake(link, session, config.handshake_timeout, extra)
        except BaseException:
            session.close("handshake failed")
            raise
    else:
        session.session_id = "plain"
        link.owner = session
        session.attach(link)
        link.start_reading()
    if policy is not None:
        redial_policy = policy

        def redial(detached: Session, _lost: SocketLink) -> None:
            gevent.spawn(_redial, detached, dial, redial_policy, extra)

        session.on_detached = redial
    return engine


def _redial(
    session: Session,
    dial: Dial,
    policy: ReconnectPolicy,
    extra: dict[str, Any],
) -> None:
    """Redial ``session`` until resumed, the policy gives up, or the session closes."""
    config = session.config
    limit = policy.give_up_after if policy.give_up_after is not None else (config.resume_grace or 0)
    deadline = session.clock() + limit
    delay = policy.initial_delay
    for attempt in range(1, policy.max_attempts + 1):
        if session.closed or session.link is not None:
            return
        try:
            link = dial()
            _handshake(link, session, config.handshake_timeout, extra)
        except (OSError, ProtocolError, ConnectionLost) as exc:
            log.info("reconnect attempt %d to %s failed: %s", attempt, session.peer_address, exc)
        else:
            log.info("reconnected to %s after %d attempt(s)", session.peer_address, attempt)
            return
        remaining = deadline - session.clock()
        if remaining <= 0:
            break
        gevent.sleep(min(delay * random.uniform(0.5, 1.0), remaining))
        delay = min(delay * 2, policy.max_delay)
    if not session.closed and session.link is None:
        session.close(f"could not reconnect within {limit} s")
