"""SessionServer: what the TCP and WebSocket servers share above the socket.

For each accepted connection (a :class:`~transports.link.SocketLink`) it
runs the optional handshake, creates or resumes a
:class:`~transports.session.Session` with its own
:class:`~rpcengine.engine.Engine` bound to the server's rpc handler, and
tracks it in :attr:`SessionServer.sessions` for broadcast. Subclasses own
the listening socket and call :meth:`SessionServer.serve_link`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent

from rpcengine.engine import Engine, RpcHandler
from rpcengine.errors import ConnectionLost, ProtocolError
from transports.link import SocketLink
from transports.session.config import SessionConfig
from transports.session.driver import Session
from transports.session.handshake import (
    ClientHello,
    is_handshake_frame,
    parse_client_hello,
    refusal,
    server_hello,
)
from transports.session.sessions import SessionSet

__all__ = ["Authenticate", "SessionHook", "SessionServer"]

log = logging.getLogger(__name__)

#: ``authenticate(hello, peer_address) -> bool``; ``hello`` is None for a plain client.
Authenticate = Callable[[ClientHello | None, Any], bool]
#: ``hook(session)``, called on connect and on disconnect.
SessionHook = Callable[[Session], object]

#: Default bound on simultaneous connections per server.
DEFAULT_MAX_CONNECTIONS = 10_000
#: How long a handshake refusal may take to reach the socket before the connection closes anyway.
_REFUSAL_FLUSH_TIMEOUT = 1.0
#: How long past ``drain_timeout`` a connection that broke the framing may take to be closed by its session.
_DRAIN_MARGIN = 2.0
#: How long a stopping server waits for queued answers to reach the sockets.
_STOP_FLUSH_TIMEOUT = 0.5


class SessionServer:
    """Sessions, hooks, limits and graceful stop for a listening server.

    ``rpc_handler`` serves every session. ``on_connect(session)`` runs when a
    new session starts, ``on_disconnect(session)`` when it ends for good (not
    when a resumable session merely loses its connection).
    ``authenticate(hello, peer_address)`` may refuse a client by returning
    False. ``max_connections`` bounds open connections; one more is closed
    at once. Every other keyword is a :class:`~transports.session.config.SessionConfig`
    field.
    """

    def __init__(
        self,
        rpc_handler: RpcHandler,
        *,
        on_connect: SessionHook | None = None,
        on_disconnect: SessionHook | None = None,
        authenticate: Authenticate | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> None:
        self.rpc_handler = rpc_handler
        self.config = SessionConfig().with_options(**options)
        self.codec = self.config.make_codec()
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.authenticate = authenticate
        self.max_connections = max_connections
        self.clock = clock
        #: Every open session; ``sessions.notify(method, data)`` broadcasts.
        self.sessions = SessionSet()
        self.links: set[SocketLink] = set()
        self.accepting = True
        self.refused_connections = 0

    # -- per connection ---------------------------------------------------

    def admit(self, link: SocketLink) -> bool:
        """Return whether a new connection may be served; log and count it if not."""
        if not self.accepting or len(self.links) >= self.max_connections:
            self.refused_connections += 1
            log.warning(
                "refused connection from %s: %s",
                link.peer_address,
                "server stopping" if not self.accepting else f"{self.max_connections} connections open",
            )
            return False
        return True

    def serve_link(self, link: SocketLink, run: Callable[[], None]) -> None:
        """Serve one connection on the calling greenlet: handshake, then ``run()`` the read loop."""
        self.links.add(link)
        link.receiver = lambda frame: self._first_frame(link, frame)
        deadline = gevent.spawn_later(self.config.handshake_timeout, self._handshake_deadline, link)
        try:
            run()
        finally:
            deadline.kill(block=False)
            if not link.closed and not link.reading:
                # The peer broke the framing: the session closes the link once what came before the
                # break is answered, within ``drain_timeout``. Until then this greenlet must not end:
                # the listener closes the socket as soon as it does, and the answers with it.
                if not link.wait_closed(self.config.drain_timeout + _DRAIN_MARGIN):
                    link.close("not closed after a framing error")
            self.links.discard(link)
            if not link.closed and link.reading:
                link.close("connection ended")

    def _handshake_deadline(self, link: SocketLink) -> None:
        """Close a connection that has not sent its first frame in time."""
        if not link.closed and link.owner is None:
            log.warning("closing %s: no handshake within %s s", link.peer_address, self.config.handshake_timeout)
            link.close("handshake timeout")

    def _first_frame(self, link: SocketLink, frame: bytes) -> None:
        """Handle the first frame: a handshake object, or the first message of a plain client."""
        if not is_handshake_frame(frame):
            if not self._authenticated(link, None):
                return
            session = self._new_session(link, resumable=False)
            session.frame_received(frame)
            return
        try:
            hello = parse_client_hello(self.codec.decode(frame))
        except ProtocolError as exc:
            self._refuse(link, str(exc))
            return
        if not self._authenticated(link, hello):
            return
        previous = self.sessions.get(hello.session) if hello.session else None
        if previous is not None and previous.resumable:
            self._write_hello(link, previous, resumed=True)
            link.owner = previous
            previous.peer_outbox_bound(hello.max_unacked)
            previous.attach(link, hello.ack)
            log.info("session %s resumed from %s", previous.session_id, link.peer_address)
            return
        session = self._new_session(link, resumable=True, announce=True, peer_max_unacked=hello.max_unacked)
        session.peer_address = link.peer_address

    def _authenticated(self, link: SocketLink, hello: ClientHello | None) -> bool:
        """Run the authenticate hook; refuse the connection if it says no or raises."""
        if self.authenticate is None:
            return True
        try:
            allowed = self.authenticate(hello, link.peer_address)
        except Exception:
            log.exception("authenticate hook raised")
            allowed = False
        if not allowed:
            self._refuse(link, "authentication failed")
        return bool(allowed)

    def _refuse(self, link: SocketLink, reason: str) -> None:
        """Send a handshake refusal and close the connection."""
        log.warning("refusing %s: %s", link.peer_address, reason)
        try:
            link.write(self.codec.encode(refusal(reason)))
        except ConnectionLost:
            pass
        # Writes go out after the caller yields and close() drops what is still queued:
        # let the refusal reach the socket first (bounded, in case the peer does not read).
        link.flush_quietly(_REFUSAL_FLUSH_TIMEOUT)
        link.close(f"refused: {reason}")

    def _write_hello(self, link: SocketLink, session: Session, resumed: bool) -> None:
        """Send the server's handshake answer for ``session``."""
        config = self.config
        answer = server_hello(
            session.session_id,
            resumed,
            session.last_received,
            config.heartbeat_interval,
            config.heartbeat_timeout,
            config.max_unacked,
        )
        link.write(self.codec.encode(answer))

    def _new_session(
        self, link: SocketLink, *, resumable: bool, announce: bool = False, peer_max_unacked: int | None = None
    ) -> Session:
        """Create a session with its engine for ``link``, and run the connect hook."""
        config = self.config
        session = Session(config, resumable=resumable, clock=self.clock, peer_address=link.peer_address)
        session.peer_outbox_bound(peer_max_unacked)
        Engine(
            session,
            self.rpc_handler,
            default_timeout=config.default_timeout,
            max_pending=config.max_pending,
            max_concurrency=config.max_concurrency,
        )
        self.sessions.add(session)
        session.on_closed.append(self._session_closed)
        link.owner = session
        if announce:
            self._write_hello(link, session, resumed=False)
        session.attach(link)
        if self.on_connect is not None:
            try:
                self.on_connect(session)
            except Exception:
                log.exception("on_connect hook raised")
        return session

    def _session_closed(self, session: Session) -> None:
        """Run the disconnect hook for a session that ended."""
        if self.on_disconnect is not None:
            try:
                self.on_disconnect(session)
            except Exception:
                log.exception("on_disconnect hook raised")

    # -- lifecycle --------------------------------------------------------

    def stop_sessions(self, timeout: float | None = None) -> None:
        """Refuse new connections, send Disconnect to every session, let handlers finish, close.

        Blocks (yields) up to ``timeout`` seconds for in-flight handlers, then
        up to 0.5 s more, for all connections at once, for their answers to
        reach the sockets.
        """
        self.accepting = False
        sessions = list(self.sessions)
        for session in sessions:
            session.say_goodbye()
        deadline = None if timeout is None else self.clock() + timeout
        for session in sessions:
            if session.engine is None:
                continue
            remaining = None if deadline is None else max(0.0, deadline - self.clock())
            if not session.engine.join_handlers(remaining):
                log.warning("stop: handlers of %s still running after %s s", session, timeout)
        # Concurrently: one peer that does not read must not hold up the others' last answers.
        links = [session.link for session in sessions if session.link is not None]
        gevent.joinall([gevent.spawn(link.flush_quietly, _STOP_FLUSH_TIMEOUT) for link in links])
        for session in sessions:
            session.close("server stopped")
        for link in list(self.links):
            link.close("server stopped")
