"""HttpFront: plain HTTP on a WebSocket server's port, in front of the WebSocket upgrade.

Every connection to a :class:`~transports.websocket.server.WebSocketServer`
starts here. Requests are read with h11 (keep-alive, limits: see
:mod:`transports.http.connection`); a ``GET`` (a WebSocket upgrade, or the
browser client script, or anything else the WebSocket layer answers) is
handed back with its bytes as received, and the WebSocket protocol takes
the connection from there. What this layer answers itself:

* ``POST <twin>``, where the twin of WebSocket path ``/p`` is ``/p/rpc``
  (``/`` gives ``/rpc``): one-shot calls (:mod:`transports.http.calls`);
* ``POST /p/jsonrpc`` (``/jsonrpc`` for ``/``): a JSON-RPC 2.0 document
  (:mod:`transports.http.jsonrpc`); a ``GET`` there is a WebSocket upgrade
  that speaks JSON-RPC;
* ``OPTIONS <twin>``: the CORS preflight;
* any other method: 405 (with ``Allow``), or 404 for a path not served.

Host and Origin are checked as for an upgrade (the server's
:class:`~transports.websocket.origin.OriginPolicy`); an allowed page's
Origin is echoed in ``Access-Control-Allow-Origin`` (never ``*``). Each
request's head and body must arrive within ``handshake_timeout``, and a
kept-alive connection may stay idle that long.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import gevent
import h11
from websockets.datastructures import Headers
from websockets.http11 import Request

from rpcengine.codec import Codec
from transports.http.calls import parse_calls, run_calls
from transports.http.connection import DEFAULT_MAX_HEADER_SIZE, HttpConnection, HttpError
from transports.http.jsonrpc import jsonrpc_path, run_jsonrpc
from transports.http.mushroom import MushroomSessions
from transports.http.poll import DEFAULT_POLL_HOLD, SECRET_HEADER, PollSessions
from transports.session.server import SessionServer

if TYPE_CHECKING:  # transports.websocket imports this module
    from transports.websocket.origin import OriginPolicy

__all__ = ["DEFAULT_CALL_TIMEOUT", "JSON_TYPES", "HttpFront", "twin_path"]

log = logging.getLogger(__name__)

#: Longest a one-shot call may wait for its answers (``?timeout=`` may ask for less).
DEFAULT_CALL_TIMEOUT = 30.0
#: Content types a POST body may be declared as: JSON, and the two that a browser's form and curl send.
JSON_TYPES = frozenset({"application/json", "text/plain", "application/x-www-form-urlencoded"})
_PREFLIGHT_MAX_AGE = "600"
#: The methods this layer answers (GET goes to the WebSocket layer).
_ALLOWED = ("POST", "OPTIONS")
_ALLOW = ", ".join(_ALLOWED)
#: How an HTTP request starts: a method (a token of capitals, as every method in use is) and a space.
_METHOD = re.compile(rb"[A-Z]{1,20} ")


def twin_path(path: str) -> str:
    """Return the HTTP path of one-shot calls for WebSocket path ``path`` (``/`` -> ``/rpc``, ``/p`` -> ``/p/rpc``)."""
    return path.rstrip("/") + "/rpc"


def _headers(request: h11.Request) -> Headers:
    """Return the request's headers as ``websockets`` Headers (what hooks see on every transport)."""
    return Headers([(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers])


class HttpFront:
    """Answer the plain HTTP requests of one server's connections; hand WebSocket ones back.

    ``endpoints`` maps each WebSocket path to the
    :class:`~transports.session.server.SessionServer` serving it; ``policy``
    returns the server's current Host and Origin policy. ``call_timeout``
    bounds a one-shot call's wait (and is the wait when the request names
    none). ``poll_hold`` is how long a long-poll is held (:mod:`transports.http.poll`).
    ``mushroom`` mounts mushroom's bootstrap at that base path
    (:mod:`transports.http.mushroom`); ``secure``: the server is ``wss://``.
    """

    #: The class reading each connection (a test may substitute its own).
    connection_class: type[HttpConnection] = HttpConnection

    def __init__(
        self,
        endpoints: Mapping[str, SessionServer],
        policy: Any,
        *,
        codec: Codec,
        max_body_size: int,
        handshake_timeout: float,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        poll_hold: float = DEFAULT_POLL_HOLD,
        mushroom: str | None = None,
        secure: bool = False,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    ) -> None:
        self.endpoints = endpoints
        self._policy = policy
        self.codec = codec
        self.max_body_size = max_body_size
        self.handshake_timeout = handshake_timeout
        self.call_timeout = call_timeout
        self.max_header_size = max_header_size
        #: Twin path -> WebSocket path.
        self.twins = {twin_path(path): path for path in endpoints}
        #: JSON-RPC 2.0 path -> WebSocket path (a path served itself is not shadowed).
        self.jsonrpc_paths = {jsonrpc_path(path): path for path in endpoints if jsonrpc_path(path) not in endpoints}
        #: The greenlets answering a request now (a server that stops lets them finish, briefly).
        self.answering: set[Any] = set()
        #: Long-poll sessions, by WebSocket path.
        self.polls = {path: PollSessions(endpoint, hold=poll_hold) for path, endpoint in endpoints.items()}
        #: mushroom's bootstrap and poll transport at the ``mushroom`` base path (for the first WebSocket path).
        self.mushroom: MushroomSessions | None = None
        if mushroom is not None:
            first = next(iter(endpoints.values()))
            self.mushroom = MushroomSessions(first, mushroom, hold=poll_hold, secure=secure)
        #: The largest body of a poll or a send (frames one per line, each within ``max_body_size``).
        self.max_poll_body = max(max_body_size, next(iter(endpoints.values())).config.max_buffer)

    @property
    def policy(self) -> OriginPolicy:
        """The server's Host and Origin policy (it changes once the server is bound)."""
        return self._policy()  # type: ignore[no-any-return]

    def serve(self, sock: Any, address: Any) -> bytes | None:
        """Serve HTTP requests on ``sock`` until one is for the WebSocket layer (blocks, yielding).

        Returns the raw bytes of that request (the connection is then the
        WebSocket layer's), or None once the connection is closed here.
        """
        conn = self.connection_class(
            sock, address, max_header_size=self.max_header_size, max_body_size=self.max_body_size
        )
        while True:
            deadline = gevent.Timeout(self.handshake_timeout)
            try:
                with deadline:
                    request = conn.next_request()
                    if request is None:
                        conn.close()
                        return None
                    if request.method == b"GET" and not self._mushroom_bootstrap(request):
                        return bytes(conn.raw)
                    body = self._read(conn, request)
            except gevent.Timeout as exc:
                if exc is not deadline:
                    raise
                log.info("closing %s: no whole HTTP request within %s s", address, self.handshake_timeout)
                conn.close()
                return None
            except HttpError as error:
                if conn.request is None and error.status != 431 and conn.raw.startswith(b"GET "):
                    # A GET head h11 will not take (no Host, say): the WebSocket layer answers it as it always did.
                    return bytes(conn.raw)
                if conn.request is None and _METHOD.match(conn.raw) is None:
                    log.info("closing %s: what it sent is not HTTP (%s)", address, error.message)
                    conn.close()  # a TLS hello, say: no HTTP answer would be read
                    return None
                conn.refuse(error, self.codec, self._cors(conn.request))
                return None
            current = gevent.getcurrent()
            self.answering.add(current)
            try:
                if not self._answer(conn, request, body):
                    conn.linger()
                    return None
            except OSError as exc:
                log.info("HTTP answer to %s failed: %s", address, exc)
                conn.close()
                return None
            except HttpError as error:
                conn.refuse(error, self.codec, self._cors(request))
                return None
            except Exception:  # a bug, or a hook that raised: this request fails, the server goes on
                log.exception("answering %s %s from %s failed", request.method, request.target, address)
                conn.refuse(HttpError(500, "internal_error", "internal server error"), self.codec, self._cors(request))
                return None
            finally:
                self.answering.discard(current)

    # -- one request ------------------------------------------------------

    def _mushroom_bootstrap(self, request: h11.Request) -> bool:
        """Whether ``request`` is for mushroom's bootstrap path."""
        path = request.target.decode("latin-1").partition("?")[0]
        return self.mushroom is not None and self.mushroom.route(path) == "bootstrap"

    def mushroom_session(self, path: str) -> tuple[SessionServer, Any] | None:
        """Return the endpoint and the mushroom session a WebSocket upgrade at ``path`` attaches to, if any."""
        mushroom = self.mushroom
        if mushroom is None:
            return None
        session_id = mushroom.route(path)
        session = mushroom.session(session_id) if session_id not in (None, "bootstrap") else None
        return (mushroom.polls.endpoint, session) if session is not None else None

    def _route(self, path: str) -> tuple[str, str, str]:
        """Return what ``path`` is (``calls``, ``bootstrap``, ``session``, ``mushroom``), its WebSocket path, an id.

        Raises HttpError 404 (405 for a WebSocket path: only GET goes there).
        """
        mushroom = self.mushroom.route(path) if self.mushroom is not None else None
        if mushroom is not None:
            return "mushroom", next(iter(self.endpoints)), mushroom
        ws_path = self.twins.get(path)
        if ws_path is not None:
            return "calls", ws_path, ""
        ws_path = self.jsonrpc_paths.get(path)
        if ws_path is not None:
            return "jsonrpc", ws_path, ""
        twin, _, rest = path.rpartition("/session")
        if twin in self.twins and rest == "":
            return "bootstrap", self.twins[twin], ""
        twin, _, session_id = path.rpartition("/session/")
        if twin in self.twins and session_id and "/" not in session_id:
            return "session", self.twins[twin], session_id
        if path in self.endpoints:
            raise HttpError(405, "method_not_allowed", "only GET (a WebSocket upgrade) goes here", [("Allow", "GET")])
        served = ", ".join([*self.twins, *self.jsonrpc_paths])
        raise HttpError(404, "not_found", f"not found; one-shot call paths served: {served}")

    def _read(self, conn: HttpConnection, request: h11.Request) -> bytes:
        """Check a non-GET request and read its body; raise HttpError to refuse it."""
        path = request.target.decode("latin-1").partition("?")[0]
        method = request.method.decode("latin-1")
        headers = _headers(request)
        kind, _ws_path, _session_id = self._route(path)
        if method not in _ALLOWED:
            raise HttpError(405, "method_not_allowed", f"{method} is not allowed here", [("Allow", _ALLOW)])
        refusal = self.policy.check(headers)
        if refusal is not None:
            error = "forbidden" if refusal.status == 403 else "bad_request"
            raise HttpError(refusal.status.value, error, refusal.reason)
        if method == "POST" and kind != "mushroom":  # mushroom's client sends JSON as text/plain, or as nothing
            content_type = headers.get("Content-Type", "application/json").partition(";")[0].strip().lower()
            if content_type not in JSON_TYPES:
                raise HttpError(415, "unsupported_media_type", f"the body must be JSON, not {content_type}")
        # A poll or send carries frames already bounded one by one, up to a socket buffer's worth.
        conn.max_body_size = self.max_poll_body if kind == "session" else self.max_body_size
        return conn.read_body()

    def _answer(self, conn: HttpConnection, request: h11.Request, body: bytes) -> bool:
        """Answer a checked request whose body is read; return whether the connection stays open."""
        target = request.target.decode("latin-1")
        path, _, query = target.partition("?")
        cors = self._cors(request)
        if request.method == b"OPTIONS":
            preflight = [
                ("Access-Control-Allow-Methods", _ALLOW),
                ("Access-Control-Allow-Headers", f"Content-Type, {SECRET_HEADER}"),
                ("Access-Control-Max-Age", _PREFLIGHT_MAX_AGE),
            ]
            conn.respond(204, [*cors, *preflight, ("Allow", _ALLOW)])
            return _keeps_alive(conn)
        kind, ws_path, session_id = self._route(path)
        headers = _headers(request)
        common: dict[str, Any] = {
            "peer_address": conn.peer_address,
            "request": Request(target, headers),
            "path": ws_path,
        }
        content_type = "application/json"
        if kind == "mushroom":
            assert self.mushroom is not None
            if session_id == "bootstrap":
                host = headers.get("Host", "")
                result = self.mushroom.bootstrap(body, host=host, **common)
            else:
                result = self.mushroom.exchange(session_id, body, **common)
            if result.status != 200:
                content_type = "text/plain; charset=utf-8"
        elif kind == "calls":
            timeout = self._timeout(query)
            messages, batch = parse_calls(self.codec, body)
            result = run_calls(self.endpoints[ws_path], messages, batch, timeout=timeout, **common)
        elif kind == "jsonrpc":
            result = run_jsonrpc(self.endpoints[ws_path], body, timeout=self._timeout(query), **common)
        elif kind == "bootstrap":
            result = self.polls[ws_path].bootstrap(body, base=path, **common)
        else:
            result = self.polls[ws_path].exchange(session_id, headers.get(SECRET_HEADER), body, **common)
        answer_headers = [*cors]
        if result.body:
            answer_headers.append(("Content-Type", content_type))
        if result.status == 401:
            answer_headers.append(("WWW-Authenticate", "Mushroom" if kind == "mushroom" else "Rpcengine"))
        conn.respond(result.status, answer_headers, result.body)
        log.debug("answered POST %s from %s with %d", path, conn.peer_address, result.status)
        return _keeps_alive(conn)

    def _timeout(self, query: str) -> float:
        """Return the wait a request asks for with ``?timeout=`` (capped), or the default; HttpError 400 if bad."""
        values = parse_qs(query).get("timeout")
        if not values:
            return self.call_timeout
        try:
            timeout = float(values[-1])
        except ValueError:
            timeout = -1.0
        if not timeout >= 0:  # also NaN
            raise HttpError(400, "bad_request", f"timeout must be a number of seconds, not {values[-1]!r}")
        return min(timeout, self.call_timeout)

    def _cors(self, request: h11.Request | None) -> list[tuple[str, str]]:
        """Return the CORS headers for an allowed page's request (none without an Origin)."""
        if request is None:
            return []
        origins = [value for name, value in request.headers if name == b"origin"]
        if len(origins) != 1 or self.policy.check(_headers(request)) is not None:
            return [("Vary", "Origin")]
        return [("Access-Control-Allow-Origin", origins[0].decode("latin-1")), ("Vary", "Origin")]


def _keeps_alive(conn: HttpConnection) -> bool:
    """Whether h11 says the connection may carry another request."""
    return conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE
