"""WebSocketServer: rpc handlers on one or more paths of one port, over ``ws://`` or ``wss://``.

Each path is served by its own :class:`~transports.session.server.SessionServer`
(the class behind :class:`~transports.tcp.TcpServer`), so sessions,
broadcast, hooks, limits, heartbeats and resume work exactly as over TCP.
This module adds what is particular to WebSocket: the HTTP upgrade (done by
``websockets``' sans-I/O ServerProtocol) with its deadline, the Host and
Origin checks (:mod:`transports.websocket.origin`: same-origin pages only
by default), subprotocol negotiation, routing by path, and the browser
client script at ``GET /rpcengine.js``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator, Mapping, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast

import gevent
from websockets.exceptions import NegotiationError
from websockets.http11 import Request
from websockets.typing import Subprotocol

from rpcengine.calls import Call
from rpcengine.engine import RpcHandler
from transports.http.front import DEFAULT_CALL_TIMEOUT, HttpFront
from transports.http.mushroom import serve_attached
from transports.http.poll import DEFAULT_POLL_HOLD
from transports.listener import DEFAULT_BACKLOG, Listener, tune_socket
from transports.session import Session
from transports.session.jsonrpc import DIALECT
from transports.session.server import DEFAULT_MAX_CONNECTIONS, SessionServer
from transports.session.sessions import BroadcastResult, SessionSet
from transports.tls import wrap_socket
from transports.websocket.link import WebSocketLink
from transports.websocket.origin import OriginPolicy, OriginRule
from transports.websocket.protocol import (
    DEFAULT_MAX_FRAGMENTS,
    SUBPROTOCOL,
    ServerProtocol,
    receive_handshake,
    send_protocol_data,
    static_response,
    wants_upgrade,
)

__all__ = ["JSONRPC_SUBPROTOCOL", "STATIC_DIR", "STATIC_PATH", "SessionGroup", "WebSocketServer"]

log = logging.getLogger(__name__)

#: Where the browser client lives on disk, and the URL path it is served at.
STATIC_DIR = Path(__file__).parent.parent / "static"
STATIC_PATH = "/rpcengine.js"
#: The WebSocket subprotocol a JSON-RPC 2.0 client may offer instead of the ``/jsonrpc`` path.
JSONRPC_SUBPROTOCOL = DIALECT
#: How long a stopping server lets HTTP answers (a held poll's Disconnect) reach their sockets.
_HTTP_STOP_TIMEOUT = 0.5


class SessionGroup:
    """The sessions of every path of a :class:`WebSocketServer`, seen as one set.

    Iterate it, take its ``len``, look a session up with :meth:`get`, or
    broadcast to all of them with :meth:`notify`.
    """

    def __init__(self, sets: Sequence[SessionSet]) -> None:
        self._sets = list(sets)

    def __iter__(self) -> Iterator[Session]:
        for sessions in self._sets:
            yield from sessions

    def __len__(self) -> int:
        return sum(map(len, self._sets))

    def __contains__(self, session: object) -> bool:
        return any(session in sessions for sessions in self._sets)

    def get(self, session_id: str) -> Session | None:
        """Return the open session with this id on any path, or None."""
        for sessions in self._sets:
            session = sessions.get(session_id)
            if session is not None:
                return session
        return None

    def call(self, session_id: str, method: str, data: Any = None, timeout: float | None = None) -> Call:
        """Call the client of ``session_id`` on any path (or, with a broker, any node); see :meth:`SessionSet.call`."""
        session = self.get(session_id)
        if session is not None and session.engine is not None:
            return session.engine.call(method, data, timeout)
        return self._sets[0].call(session_id, method, data, timeout)

    def request(self, session_id: str, method: str, data: Any = None, timeout: float | None = None) -> Any:
        """Call the client of ``session_id`` (see :meth:`call`) and wait (yielding) for the answer's data."""
        return self.call(session_id, method, data, timeout).get()

    def notify(self, method: str, data: Any = None, timeout: float | None = None) -> BroadcastResult:
        """Broadcast to every session on every path (with a broker: every node's); return how many here got it.

        See :meth:`transports.session.sessions.SessionSet.notify` (flow control, slow consumers).
        """
        broker = next((sessions.broker for sessions in self._sets if sessions.broker is not None), None)
        if broker is not None:  # every path's sessions are the node's: one publish reaches them all
            return broker.notify(method, data, timeout)
        return BroadcastResult.total([sessions.notify(method, data, timeout) for sessions in self._sets])


class WebSocketServer(Listener):
    """Serve rpc handlers over WebSocket at ``address`` (``(host, port)``; port 0 picks a free one).

    ``handlers`` is one rpc handler (served at ``/``) or a mapping from path
    to rpc handler (several paths, different handlers, one port); another
    path gets 404, whose body lists the paths served. A query string does
    not take part in routing.

    Who may connect (:class:`~transports.websocket.origin.OriginPolicy`):
    browsers always send ``Origin`` (the page's scheme, host and port), and
    by default an upgrade with an Origin is accepted only from a page of
    this server itself (same scheme, host and port as its Host header), so
    a page of another site cannot call a local service (403). ``origins``
    lists the Origins allowed instead: exact strings or compiled patterns
    (full match), ``None`` in the list for clients that send no Origin at
    all (programs, not browsers); ``origins="*"`` allows every site.
    Clients without an Origin are accepted unless ``origins`` leaves
    ``None`` out. The Host header must name this server (421 otherwise,
    400 if there is none): the address it is bound to, ``localhost``,
    ``127.0.0.1`` and ``::1`` when that is a loopback or a wildcard address
    (then any IP address too), and the names in ``hosts``
    (``hosts="*"`` accepts every Host, e.g. behind a proxy). This stops
    DNS rebinding: a page whose own name was pointed at this server.
    The script at ``/rpcengine.js`` is public and served to every request.

    ``subprotocol`` (default ``rpcengine.v1``, carrying the protocol
    version) is selected when the client offers it; a client offering only
    other subprotocols is refused with 400, one offering none is accepted
    unless ``require_subprotocol``. ``None`` turns negotiation off.

    JSON-RPC 2.0 clients are served on every path's ``/p/jsonrpc`` twin
    (``/jsonrpc`` for ``/``): a WebSocket upgrade there, or on any path
    offering the ``jsonrpc`` subprotocol (and not ours), speaks JSON-RPC
    from the start, so the server may call the client; a ``POST`` there
    answers one document (:mod:`transports.http.jsonrpc`). A connection to
    a path itself that sends a JSON-RPC document first speaks JSON-RPC too.

    ``ssl_context`` serves ``wss://``. ``serve_static`` serves the browser
    client at ``GET /rpcengine.js`` (404 while the file is missing).
    ``max_fragments`` bounds the frames one message may span (1009 above).

    Plain HTTP is served on the same port (:mod:`transports.http`): each
    path ``/p`` has an HTTP twin ``/p/rpc`` (``/rpc`` for ``/``) taking
    one-shot calls by ``POST``, whose wait for answers ``?timeout=`` may
    shorten and ``http_call_timeout`` bounds, and long-poll sessions at
    ``/p/rpc/session`` (:mod:`transports.http.poll`), each poll held up to
    ``poll_hold`` seconds. Host and Origin are checked as for an upgrade;
    an allowed page gets CORS headers. ``mushroom="/PATH"`` serves mushroom
    clients unchanged (:mod:`transports.http.mushroom`) with the handler of
    the first path.

    The HTTP upgrade (and the TLS handshake) must finish within
    ``handshake_timeout``; the session handshake then gets as long again.
    The server pings every ``heartbeat_interval`` and closes (1011) a
    connection from which nothing arrived for ``heartbeat_timeout`` while
    it was waiting to read. ``max_connections`` counts
    connections on all paths. Other keywords: see
    :class:`~transports.session.server.SessionServer` (hooks, authenticate, limits)
    and :class:`~transports.session.config.SessionConfig`; they apply to every path.
    A hook tells the path from ``session.link.path`` and sees the upgrade
    request (headers, cookies) in ``session.link.request``. Use as a
    context manager, or call :meth:`start` and :meth:`stop`.
    """

    #: The link class made for each upgraded connection (a test may substitute its own).
    link_class: type[WebSocketLink] = WebSocketLink

    def __init__(
        self,
        address: tuple[str, int],
        handlers: RpcHandler | Mapping[str, RpcHandler],
        *,
        origins: str | Sequence[OriginRule] | None = None,
        hosts: str | Sequence[str] | None = None,
        subprotocol: str | None = SUBPROTOCOL,
        require_subprotocol: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        serve_static: bool = True,
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        backlog: int = DEFAULT_BACKLOG,
        http_call_timeout: float = DEFAULT_CALL_TIMEOUT,
        poll_hold: float = DEFAULT_POLL_HOLD,
        mushroom: str | None = None,
        **options: Any,
    ) -> None:
        routes = dict(handlers) if isinstance(handlers, Mapping) else {"/": handlers}
        if not routes or not all(isinstance(path, str) and path.startswith("/") for path in routes):
            raise ValueError("WebSocket paths must be strings that start with '/'")
        #: One SessionServer per path: ``endpoints[path].sessions`` are that path's sessions.
        self.endpoints: dict[str, SessionServer] = {
            path: SessionServer(handler, max_connections=max_connections, **options) for path, handler in routes.items()
        }
        shared_links: set[Any] = set()
        shared_detached: dict[Session, float] = {}
        group = list(self.endpoints.values())
        for endpoint in group:
            # One connection limit and one memory budget across paths.
            endpoint.links = shared_links
            endpoint.detached = shared_detached
            endpoint.budget = group[0].budget
            endpoint.budget_group = group
        #: Open connections (on every path).
        self.links = shared_links
        self.config = next(iter(self.endpoints.values())).config
        #: Every session on every path; ``sessions.notify(method, data)`` broadcasts.
        self.sessions = SessionGroup([endpoint.sessions for endpoint in self.endpoints.values()])
        self._origins, self._hosts, self._host_asked = origins, hosts, address[0]
        #: The Host and Origin checks (refreshed by :meth:`start` with the address actually bound).
        self.policy = OriginPolicy([address[0]], secure=ssl_context is not None, origins=origins, hosts=hosts)
        self.subprotocol = subprotocol
        self.require_subprotocol = require_subprotocol
        self.ssl_context = ssl_context
        self.serve_static = serve_static
        self.max_fragments = max_fragments
        self.max_connections = max_connections
        self._refused = 0
        self._upgrading: set[gevent.Greenlet] = set()
        #: The plain HTTP requests of every connection, before any upgrade.
        self.http = HttpFront(
            self.endpoints,
            lambda: self.policy,
            codec=next(iter(self.endpoints.values())).codec,
            max_body_size=self.config.max_message_size,
            handshake_timeout=self.config.handshake_timeout,
            call_timeout=http_call_timeout,
            poll_hold=poll_hold,
            mushroom=mushroom,
            secure=ssl_context is not None,
        )
        Listener.__init__(self, address, backlog=backlog)

    # -- lifecycle --------------------------------------------------------

    @property
    def refused_connections(self) -> int:
        """Connections refused for the connection limit or because the server was stopping."""
        return self._refused + sum(endpoint.refused_connections for endpoint in self.endpoints.values())

    def url(self, path: str = "/", host: str | None = None) -> str:
        """Return the ``ws://`` (or ``wss://``) URL of ``path`` on this server."""
        address = self.address
        host = host or address[0]
        if ":" in host:
            host = f"[{host}]"
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{host}:{address[1]}{path}"

    def start(self) -> WebSocketServer:
        """Start listening and accepting in the background; return self. Raises OSError if it cannot bind."""
        Listener.start(self)
        self.policy = OriginPolicy(
            [self._host_asked, self.address[0]],
            secure=self.ssl_context is not None,
            origins=self._origins,
            hosts=self._hosts,
        )
        log.info("WebSocket paths served: %s", ", ".join(self.endpoints))
        return self

    def stop_serving(self, timeout: float | None) -> None:
        """Close connections still upgrading; send Disconnect on every path and let handlers finish (yields).

        HTTP requests being answered (one-shot calls, held polls) are let
        finish with the sessions: a held poll carries the Disconnect.
        """
        for endpoint in self.endpoints.values():
            endpoint.accepting = False
        answering = self.http.answering
        gevent.killall([g for g in self._upgrading if g not in answering], block=False)
        stopping = [gevent.spawn(endpoint.stop_sessions, timeout) for endpoint in self.endpoints.values()]
        gevent.joinall(stopping, raise_error=True)
        gevent.joinall(list(answering), timeout=_HTTP_STOP_TIMEOUT)
        gevent.killall(list(self._upgrading), block=False)

    # -- per connection ---------------------------------------------------

    kind = "WebSocket server"

    def handle_connection(self, sock: Any, address: Any) -> None:
        """Serve one accepted connection (runs on its own greenlet)."""
        if not self.accepting or len(self._upgrading) >= self.max_connections:
            # Open connections are limited (with a 503 answer) once upgraded; this bounds those still upgrading.
            self._refused += 1
            reason = "server stopping" if not self.accepting else f"{self.max_connections} connections upgrading"
            log.warning("refused connection from %s: %s", address, reason)
            sock.close()
            return
        current = cast(gevent.Greenlet, gevent.getcurrent())
        self._upgrading.add(current)
        try:
            upgraded = self._upgrade(sock, address)
        finally:
            self._upgrading.discard(current)
        if upgraded is not None:
            endpoint, link = upgraded
            self.serve_upgraded(endpoint, link)

    def serve_upgraded(self, endpoint: SessionServer, link: WebSocketLink) -> None:
        """Serve an upgraded connection: its session, then the read loop (blocks, yielding)."""
        if link.owner is not None:  # a mushroom client's WebSocket, for the session its bootstrap made
            serve_attached(endpoint, link)
            return
        if link.dialect == DIALECT:
            endpoint.serve_jsonrpc_link(link, link.run)
            return
        endpoint.serve_link(link, link.run)

    def _upgrade(self, sock: Any, address: Any) -> tuple[SessionServer, WebSocketLink] | None:
        """Do the TLS handshake and the HTTP upgrade within the deadline; None if refused or failed."""
        limit = self.config.handshake_timeout
        deadline = gevent.Timeout(limit)
        try:
            with deadline:
                tune_socket(sock)
                if self.ssl_context is not None:
                    sock = wrap_socket(self.ssl_context, sock, server_side=True, timeout=limit)
            received = self.http.serve(sock, address)  # plain HTTP requests, each within its own deadline
            if received is None:
                return None  # answered (and closed) by the HTTP layer
            deadline = gevent.Timeout(limit)
            with deadline:
                protocol = ServerProtocol(
                    origins=None,  # checked by self.policy
                    subprotocols=[Subprotocol(self.subprotocol)] if self.subprotocol else None,
                    select_subprotocol=lambda _protocol, offered: self._select_subprotocol(offered),
                    max_size=self.config.max_message_size,
                )
                request, pending = receive_handshake(sock, protocol, received)
                if request is None:
                    log.info("no valid WebSocket upgrade from %s: %s", address, protocol.handshake_exc)
                else:
                    upgraded = self._answer(sock, address, protocol, request, pending)
                    if upgraded is not None:
                        return upgraded
        except gevent.Timeout as exc:
            if exc is not deadline:
                raise
            log.warning("closing %s: no WebSocket upgrade within %s s", address, limit)
        except OSError as exc:  # TLS errors and TimeoutError included
            log.info("WebSocket upgrade from %s failed: %s", address, exc)
        except BaseException:  # killed by stop(), or a bug: do not leak the (possibly TLS-wrapped) socket
            sock.close()
            raise
        sock.close()
        return None

    def _answer(
        self, sock: Any, address: Any, protocol: ServerProtocol, request: Request, pending: list[Any]
    ) -> tuple[SessionServer, WebSocketLink] | None:
        """Answer the HTTP request: upgrade, the static script, or an error status."""
        if protocol.parser_exc is not None:
            log.info("closing %s: invalid frames sent before the upgrade was answered", address)
            return None
        path = request.path.partition("?")[0]
        endpoint = self.endpoints.get(path)
        jsonrpc = False
        if endpoint is None and path in self.http.jsonrpc_paths:
            endpoint, jsonrpc = self.endpoints[self.http.jsonrpc_paths[path]], True
        attached = self.http.mushroom_session(path) if endpoint is None else None
        if attached is not None:
            endpoint = attached[0]
        link = None
        if self.serve_static and path == STATIC_PATH and not wants_upgrade(request):
            response = static_response(request, STATIC_DIR, STATIC_PATH)
        elif endpoint is None:
            response = protocol.reject(
                HTTPStatus.NOT_FOUND, f"Not Found. WebSocket paths served: {', '.join(self.endpoints)}\n"
            )
        else:
            response = protocol.accept(request)  # a valid upgrade gets 101, a malformed one its error status
            if response.status_code == 101 and (refusal := self.policy.check(request.headers)) is not None:
                log.info("refused upgrade from %s: %s", address, refusal.reason)
                response = protocol.reject(refusal.status, f"{refusal.status.phrase}: {refusal.reason}\n")
            elif response.status_code == 101:
                link = self.link_class(
                    sock,
                    address,
                    protocol,
                    self.config,
                    pending=pending,
                    max_fragments=self.max_fragments,
                )
                link.request, link.path = request, path
                if jsonrpc or protocol.subprotocol == JSONRPC_SUBPROTOCOL:
                    link.dialect = DIALECT
                if attached is not None:
                    link.owner = attached[1]
                if not endpoint.admit(link):
                    response = protocol.reject(HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections\n")
                    link = None
        protocol.send_response(response)
        send_protocol_data(sock, protocol)
        if link is None:
            log.info("answered %s %s from %s with %d", request.method, path, address, response.status_code)
            return None
        assert endpoint is not None
        return endpoint, link

    def _select_subprotocol(self, offered: Sequence[str]) -> Subprotocol | None:
        """Pick our subprotocol if offered; refuse a client that offers only others."""
        wanted = self.subprotocol
        if wanted is not None and wanted in offered:
            return Subprotocol(wanted)
        if JSONRPC_SUBPROTOCOL in offered:
            return Subprotocol(JSONRPC_SUBPROTOCOL)
        if wanted is None:
            return None
        if offered or self.require_subprotocol:
            raise NegotiationError(f"unsupported subprotocol; this server speaks {wanted}")
        return None
