"""SessionServer: what the TCP and WebSocket servers share above the socket.

For each accepted connection (a :class:`~transports.link.SocketLink`) it
runs the optional handshake, creates or resumes a
:class:`~transports.session.Session` with its own
:class:`~rpcengine.engine.Engine` bound to the server's rpc handler, and
tracks it in :attr:`SessionServer.sessions` for broadcast. Subclasses own
the listening socket and call :meth:`SessionServer.serve_link`.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

import gevent

from rpcengine.engine import Engine, RpcHandler
from rpcengine.errors import ConnectionLost, ProtocolError
from rpcengine.features import NO_FEATURES
from rpcengine.jsonrpc import is_jsonrpc_frame
from transports.link import SocketLink
from transports.session.budget import DEFAULT_MAX_MEMORY, MemoryBudget
from transports.session.config import SessionConfig
from transports.session.driver import Session
from transports.session.handshake import (
    ClientHello,
    is_handshake_frame,
    parse_client_hello,
    refusal,
    server_hello,
)
from transports.session.jsonrpc import JsonRpcSession
from transports.session.sessions import Broker, SessionSet

__all__ = ["DEFAULT_MAX_CONNECTIONS", "DEFAULT_SERVER_MAX_PENDING", "Authenticate", "SessionHook", "SessionServer"]

log = logging.getLogger(__name__)

#: ``authenticate(hello, peer_address) -> bool``; ``hello`` is None for a plain client.
Authenticate = Callable[[ClientHello | None, Any], bool]
#: ``hook(session)``, called on connect and on disconnect.
SessionHook = Callable[[Session], object]

#: Default bound on simultaneous connections (and detached sessions) per server.
DEFAULT_MAX_CONNECTIONS = 10_000
#: Default bound on the requests a server may have pending per session (a client's default is higher).
DEFAULT_SERVER_MAX_PENDING = 1024
#: How long a handshake refusal may take to reach the socket before the connection closes anyway.
_REFUSAL_FLUSH_TIMEOUT = 1.0
#: How long a stopping server waits for queued answers to reach the sockets.
_STOP_FLUSH_TIMEOUT = 0.5


class SessionServer:
    """Sessions, hooks, limits and graceful stop for a listening server.

    ``rpc_handler`` serves every session. ``on_connect(session)`` runs when a
    new session starts, ``on_disconnect(session)`` when it ends for good (not
    when a resumable session merely loses its connection).
    ``authenticate(hello, peer_address)`` may refuse a client by returning
    False. ``max_connections`` bounds open connections and sessions waiting
    for a resume together: when it is reached, the session detached longest
    is ended to make room, and with none detached a new connection gets a
    refusal (``{"rpcengine": 1, "error": "server full: ..."}``) and is closed.
    ``max_memory`` bounds the bytes all sessions hold queued (outboxes and
    write buffers, answers included); past it the sessions holding the most
    are closed first. ``max_pending`` defaults to
    ``DEFAULT_SERVER_MAX_PENDING`` (requests the server may have pending per
    session). Every other keyword is a
    :class:`~transports.session.config.SessionConfig` field. ``broker``
    (a :class:`transports.redis.RedisBroker`) makes this server one node of
    many: session ids name the node, ``sessions.notify`` reaches every
    node's sessions and ``sessions.call(session_id, ...)`` any node's.
    """

    def __init__(
        self,
        rpc_handler: RpcHandler,
        *,
        on_connect: SessionHook | None = None,
        on_disconnect: SessionHook | None = None,
        authenticate: Authenticate | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
        clock: Callable[[], float] = time.monotonic,
        broker: Broker | None = None,
        **options: Any,
    ) -> None:
        self.rpc_handler = rpc_handler
        options.setdefault("max_pending", DEFAULT_SERVER_MAX_PENDING)
        self.config = SessionConfig().with_options(**options)
        self.codec = self.config.make_codec()
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.authenticate = authenticate
        self.max_connections = max_connections
        self.clock = clock
        #: Every open session; ``sessions.notify(method, data)`` broadcasts.
        self.sessions = SessionSet()
        #: The broker linking this server to the other nodes of its service (:class:`transports.redis.RedisBroker`).
        self.broker = broker
        if broker is not None:
            broker.attach(self.sessions)
        self.links: set[SocketLink] = set()
        #: Sessions waiting for a resume, oldest first (they count against ``max_connections``).
        self.detached: dict[Session, float] = {}
        #: The bytes every session holds queued, against ``max_memory``.
        self.budget = MemoryBudget(max_memory, self._over_budget)
        #: The servers whose sessions share this one's budget (a WebSocket server's paths).
        self.budget_group: list[SessionServer] = [self]
        self.accepting = True
        self.refused_connections = 0
        self.evicted_sessions = 0
        #: Why the last connection was refused by :meth:`admit`.
        self.refusal_reason = ""

    # -- per connection ---------------------------------------------------

    def admit(self, link: SocketLink) -> bool:
        """Return whether a new connection may be served; log and count it if not.

        Open connections and detached sessions share ``max_connections``: the
        session detached longest is ended to make room for a live connection.
        """
        if self.accepting and len(self.links) + len(self.detached) >= self.max_connections and self.detached:
            oldest = next(iter(self.detached))
            self.evicted_sessions += 1
            log.warning("ending a detached session from %s to make room", oldest.peer_address)
            oldest.close("ended to make room: the server is full")
        if not self.accepting or len(self.links) + len(self.detached) >= self.max_connections:
            self.refused_connections += 1
            reason = "server stopping" if not self.accepting else f"server full: {self.max_connections} connections"
            log.warning("refused connection from %s: %s", link.peer_address, reason)
            self.refusal_reason = reason
            return False
        return True

    def refuse_connection(self, link: SocketLink, reason: str) -> None:
        """Tell a connection that is not served why, without blocking (transports may answer otherwise)."""
        try:
            link.write_final(self.codec.encode(refusal(reason)))
        except ConnectionLost:
            log.debug("refusal to %s not sent: it is gone", link.peer_address)

    def _session_detached(self, session: Session, link: SocketLink) -> None:
        """A resumable session lost its connection: it counts against the connection limit while it waits.

        The lost link stops counting at once (its socket may linger while what came is answered):
        one connection is one slot, whether attached or waiting for a resume.
        """
        self.links.discard(link)
        self.detached[session] = self.clock()

    def _over_budget(self) -> None:
        """Budget callback: too many bytes queued; close the largest holders (on a greenlet: hooks may block)."""
        gevent.spawn(self._shed_memory)

    def _shed_memory(self) -> None:
        """Close the sessions holding the most bytes until the budget is kept again."""
        budget = self.budget
        while budget.exceeded:
            sessions = [s for server in self.budget_group for s in server.sessions if not s.closed]
            if not sessions:
                break
            largest = max(sessions, key=_held_bytes)
            held = _held_bytes(largest)
            if held == 0:
                break  # nothing left to shed: what is counted is not held by a session
            log.warning("closing %s: it holds %d bytes queued, over the server's memory budget", largest, held)
            self.evicted_sessions += 1
            largest.close(f"memory budget exceeded: {held} bytes queued for this peer")  # releases them now
        # The budget calls again only once it has been back under its limit: no storm of calls while
        # what is counted cannot be shed.

    def serve_link(self, link: SocketLink, run: Callable[[], None]) -> None:
        """Serve one connection on the calling greenlet: handshake, then ``run()`` the read loop."""
        self.links.add(link)
        link.receiver = lambda frame: self._first_frame(link, frame)
        # A timer, not a greenlet: an idle connection should not keep one alive for this.
        deadline = gevent.get_hub().loop.timer(self.config.handshake_timeout)
        deadline.start(self._handshake_deadline, link)
        try:
            run()
        finally:
            deadline.stop()
            if not link.reading:
                # The peer broke the framing: its session closes the link once what came before the
                # break is answered (within ``drain_timeout``); the socket must live until then.
                link.wait_closed(self.config.drain_timeout + 1.0)
            self.links.discard(link)
            if not link.closed:
                link.close("connection ended")

    def _handshake_deadline(self, link: SocketLink) -> None:
        """Timer callback (in the hub): close a connection that has not sent its first frame in time."""
        if not link.closed and link.owner is None:
            log.warning("closing %s: no handshake within %s s", link.peer_address, self.config.handshake_timeout)
            link.close("handshake timeout")

    def serve_jsonrpc_link(self, link: SocketLink, run: Callable[[], None]) -> None:
        """Serve one connection whose peer speaks JSON-RPC 2.0 from the start (blocks, yielding).

        For a WebSocket at a ``/jsonrpc`` path or with the ``jsonrpc``
        subprotocol: the session starts at once (``authenticate`` sees
        ``hello=None``), so the server may call the client first.
        """
        self.links.add(link)
        try:
            if self._authenticated(link, None):
                self.open_jsonrpc_session(link)
                run()
        finally:
            self.links.discard(link)
            if not link.closed:
                link.close("connection ended")

    def open_jsonrpc_session(self, link: SocketLink) -> JsonRpcSession:
        """Create the JSON-RPC 2.0 session (with its engine) of ``link`` and run the connect hook."""
        session = self._new_session(link, resumable=False, session_class=JsonRpcSession)
        assert isinstance(session, JsonRpcSession)
        return session

    def _first_frame(self, link: SocketLink, frame: bytes) -> None:
        """Handle the first frame: a handshake object, the first message of a plain client, or JSON-RPC 2.0.

        A JSON-RPC document (:func:`~rpcengine.jsonrpc.is_jsonrpc_frame`: an
        object with a ``jsonrpc`` member and no ``rpcengine`` one, or an
        array whose first item is an object) makes the connection a JSON-RPC
        one for good.
        """
        if is_jsonrpc_frame(frame, self.codec):
            if not self._authenticated(link, None):
                return
            log.debug("connection from %s speaks JSON-RPC 2.0", link.peer_address)
            self.open_jsonrpc_session(link).frame_received(frame)
            return
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
        previous = self._resumable_session(hello)
        if previous is not None:
            self.detached.pop(previous, None)
            self._write_hello(link, previous, resumed=True)  # with the features it had
            link.owner = previous
            previous.peer_outbox_bound(hello.max_unacked)
            previous.attach(link, hello.ack)
            log.info("session resumed from %s", link.peer_address)
            return
        if hello.session is not None:
            log.warning("resume refused for %s (unknown session or wrong secret): new session", link.peer_address)
        session = self._new_session(
            link, resumable=True, announce=True, peer_max_unacked=hello.max_unacked, features=hello.features
        )
        session.peer_address = link.peer_address

    def _resumable_session(self, hello: ClientHello) -> Session | None:
        """Return the session ``hello`` may resume: known, resumable, and its secret presented."""
        if hello.session is None:
            return None
        session = self.sessions.get(hello.session)
        if session is None or not session.resumable or hello.secret is None:
            return None
        if not hmac.compare_digest(session.secret.encode(), hello.secret.encode()):
            return None
        return session

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
            None if resumed else session.secret,
            session.features,
        )
        link.write(self.codec.encode(answer))

    def open_session(
        self, link: SocketLink, *, config: SessionConfig | None = None, peer_max_unacked: int | None = None
    ) -> Session:
        """Create a resumable session (with its engine) on ``link``, whose handshake the caller answers itself.

        For transports whose handshake is not a first frame (HTTP long-poll).
        ``config`` replaces the server's settings for this session. Runs the
        connect hook; does not block unless the hook does.
        """
        return self._new_session(link, resumable=True, peer_max_unacked=peer_max_unacked, config=config)

    def _new_session(
        self,
        link: SocketLink,
        *,
        resumable: bool,
        announce: bool = False,
        peer_max_unacked: int | None = None,
        config: SessionConfig | None = None,
        features: frozenset[str] = NO_FEATURES,
        session_class: type[Session] = Session,
    ) -> Session:
        """Create a session with its engine for ``link``, and run the connect hook.

        ``features`` are those the client announced: the session takes those
        the configuration offers (a JsonRpcSession has its own).
        """
        config = config or self.config
        if session_class is Session:
            session = Session(
                config,
                session_id=self.sessions.new_session_id(),
                resumable=resumable,
                clock=self.clock,
                peer_address=link.peer_address,
            )
            session.features = features & config.features
        else:
            session = session_class(
                config, session_id=self.sessions.new_session_id(), clock=self.clock, peer_address=link.peer_address
            )
        session.peer_outbox_bound(peer_max_unacked)
        session.protocol.budget = self.budget
        session.on_detached = self._session_detached
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
        self.detached.pop(session, None)
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


def _held_bytes(session: Session) -> int:
    """Bytes ``session`` holds queued: its outbox and its link's write queue."""
    link = session.link
    return session.protocol.outbox_bytes + session.backlog_bytes + (link.held if link is not None else 0)
