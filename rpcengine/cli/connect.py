"""Open clients and listeners for the command line, by URL scheme.

``tcp://`` and ``tls://`` use :mod:`transports.tcp`, ``unix:`` :mod:`transports.unix`; ``ws://`` and ``wss://``
use :mod:`transports.websocket`, and ``http://`` a long-poll session
(:mod:`transports.http.client`), imported only when such a URL is given, so
the TCP commands work without them. An endpoint that speaks JSON-RPC 2.0
(``jsonrpc+tcp://``, a ``/jsonrpc`` path, ``--jsonrpc``) uses
:mod:`transports.jsonrpc_client`. Every failure to reach a server becomes a
:class:`~rpcengine.cli.errors.CliError` with exit code 4.
"""

from __future__ import annotations

import importlib
import logging
import ssl
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import gevent

from rpcengine.cli.diagnose import NoAnswer, describe_os_error, explain
from rpcengine.cli.errors import CliError, ExitCode
from rpcengine.cli.urls import Endpoint
from rpcengine.engine import Engine, RpcHandler
from rpcengine.errors import ConnectionLost, ProtocolError

__all__ = [
    "client_ssl_context",
    "connect",
    "describe_os_error",
    "load_websocket",
    "open_listeners",
    "server_ssl_context",
    "websocket_available",
]

log = logging.getLogger(__name__)


def load_websocket() -> ModuleType:
    """Return the :mod:`transports.websocket` module; raise CliError (exit 2) if it is missing."""
    try:
        return importlib.import_module("transports.websocket")
    except ImportError as exc:
        if exc.name == "transports.websocket":
            raise CliError(
                "the WebSocket transport (transports.websocket) is not installed; use a tcp:// URL",
                ExitCode.USAGE,
            ) from None
        raise CliError(
            f"the WebSocket transport cannot be loaded ({exc}); try: pip install 'rpcengine[websocket]'",
            ExitCode.USAGE,
        ) from None


def websocket_available() -> bool:
    """Return whether :mod:`transports.websocket` can be imported."""
    try:
        load_websocket()
    except CliError:
        return False
    return True


def client_ssl_context(cafile: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """Return a client TLS context: system trust, plus ``cafile``; no verification if ``insecure``."""
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise CliError(f"cannot load CA file {cafile!r}: {exc}", ExitCode.USAGE) from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def server_ssl_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext:
    """Return a server TLS context from a certificate chain and key file; raise CliError if unusable."""
    if not certfile:
        raise CliError("a tls:// or wss:// listener needs --certfile (and --keyfile)", ExitCode.USAGE)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise CliError(f"cannot load certificate {certfile!r}: {exc}", ExitCode.USAGE) from None
    return context


def connect(
    endpoint: Endpoint,
    rpc_handler: RpcHandler | None,
    *,
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    **options: Any,
) -> Engine:
    """Connect to ``endpoint`` and return a ready Engine; blocks (yields) at most ``timeout`` seconds.

    Raises CliError with exit code 4 if the server cannot be reached, does
    not answer in time, refuses the handshake or closes meanwhile; the
    message names the likely cause (see :mod:`rpcengine.cli.diagnose`,
    which may take a few seconds more to probe the port). Exit code 2 if
    the transport for the scheme is missing.
    """
    if endpoint.tls and ssl_context is None:
        ssl_context = client_ssl_context()
    if endpoint.jsonrpc:
        opener = _jsonrpc_opener(endpoint)
    elif endpoint.http:
        opener = _poll_opener(endpoint)
    elif endpoint.unix:
        opener = _unix_opener(endpoint)
    else:
        opener = _websocket_opener(endpoint) if endpoint.websocket else _tcp_opener(endpoint)
    log.debug("connecting to %s (timeout %g s)", endpoint.url, timeout)
    # The transports' own deadlines come later, so that a silent server is told apart from a refusal.
    inner = timeout + _INNER_GRACE
    deadline = gevent.Timeout(timeout)
    deadline.start()
    failure: BaseException
    try:
        engine = opener(rpc_handler, timeout=inner, ssl_context=ssl_context, **options)
    except gevent.Timeout as exc:
        if exc is not deadline:
            raise
        failure = NoAnswer(timeout)
    except (ProtocolError, ConnectionLost, OSError) as exc:  # ssl.SSLError is an OSError
        # A transport may catch the deadline and raise its own error: the deadline says it fired.
        failure = exc if deadline.pending else NoAnswer(timeout)
    else:
        kind = "resumable session" if getattr(engine.transport, "session_id", None) else "plain session"
        log.debug("connected to %s (%s)", endpoint.url, kind)  # never the session id
        return engine
    finally:
        deadline.cancel()
    log.debug("connecting to %s failed: %r", endpoint.url, failure)
    raise CliError(explain(endpoint, failure, timeout), ExitCode.CONNECTION) from None


#: Seconds the transports' own connect and handshake deadlines wait beyond the command's.
_INNER_GRACE = 5.0

Opener = Callable[..., Engine]


def _tcp_opener(endpoint: Endpoint) -> Opener:
    """Return a function that connects to a tcp:// or tls:// endpoint."""
    from transports import tcp

    def open_tcp(rpc_handler: RpcHandler | None, *, timeout: float, ssl_context: Any, **options: Any) -> Engine:
        return tcp.connect(
            endpoint.host,
            endpoint.port,
            rpc_handler,
            ssl_context=ssl_context,
            connect_timeout=timeout,
            handshake_timeout=timeout,
            **options,
        )

    return open_tcp


def _unix_opener(endpoint: Endpoint) -> Opener:
    """Return a function that connects to a unix: endpoint (its ``ssl_context`` is always None)."""
    from transports import unix

    def open_unix(rpc_handler: RpcHandler | None, *, timeout: float, ssl_context: Any, **options: Any) -> Engine:
        return unix.connect(endpoint.path, rpc_handler, connect_timeout=timeout, handshake_timeout=timeout, **options)

    return open_unix


def _websocket_opener(endpoint: Endpoint) -> Opener:
    """Return a function that connects to a ws:// or wss:// endpoint."""
    websocket = load_websocket()

    def open_websocket(rpc_handler: RpcHandler | None, *, timeout: float, ssl_context: Any, **options: Any) -> Engine:
        if ssl_context is not None:
            options["ssl_context"] = ssl_context
        return websocket.connect(
            endpoint.url, rpc_handler, connect_timeout=timeout, handshake_timeout=timeout, **options
        )

    return open_websocket


def _jsonrpc_opener(endpoint: Endpoint) -> Opener:
    """Return a function that opens a JSON-RPC 2.0 connection to a TCP, TLS or WebSocket endpoint."""
    if endpoint.http:
        raise CliError(f"{endpoint.url}: JSON-RPC over HTTP is one POST per call, not a connection", ExitCode.USAGE)
    if endpoint.websocket:
        load_websocket()
    from transports import jsonrpc_client

    def open_jsonrpc(rpc_handler: RpcHandler | None, *, timeout: float, ssl_context: Any, **options: Any) -> Engine:
        if endpoint.websocket:
            if ssl_context is not None:
                options["ssl_context"] = ssl_context
            return jsonrpc_client.connect_websocket(endpoint.url, rpc_handler, connect_timeout=timeout, **options)
        return jsonrpc_client.connect_tcp(
            endpoint.host, endpoint.port, rpc_handler, ssl_context=ssl_context, connect_timeout=timeout, **options
        )

    return open_jsonrpc


def _poll_opener(endpoint: Endpoint) -> Opener:
    """Return a function that starts a long-poll session at an http:// endpoint."""
    load_websocket()  # the HTTP client comes with the WebSocket transport's extra (h11)
    from transports.http.client import connect_poll

    def open_poll(rpc_handler: RpcHandler | None, *, timeout: float, ssl_context: Any, **options: Any) -> Engine:
        return connect_poll(endpoint.url, rpc_handler, connect_timeout=timeout, **options)

    return open_poll


def open_listeners(
    endpoints: Sequence[Endpoint],
    rpc_handler: RpcHandler,
    *,
    ssl_context: ssl.SSLContext | None = None,
    **options: Any,
) -> list[tuple[Any, list[Endpoint]]]:
    """Create and start one server per distinct address; return each with its real endpoints.

    WebSocket URLs that share a scheme, host and port (even port 0) are
    served by one server with a handler per path; every TCP URL gets its
    own server. Raises CliError (exit 4) if an address
    cannot be listened on; servers already started are stopped first.
    """
    groups: dict[tuple[object, ...], list[Endpoint]] = {}
    for index, endpoint in enumerate(endpoints):
        key = (endpoint.scheme, endpoint.host, endpoint.port) if endpoint.websocket else (index,)
        group = groups.setdefault(key, [])
        if any(other.path == endpoint.path for other in group):
            raise CliError(f"listener {endpoint.url} is given twice", ExitCode.USAGE)
        group.append(endpoint)
    started: list[tuple[Any, list[Endpoint]]] = []
    try:
        for group in groups.values():
            context = ssl_context if group[0].tls else None
            server = _make_server(group, rpc_handler, context, options)
            try:
                server.start()
            except OSError as exc:
                url = group[0].url
                raise CliError(f"cannot listen on {url}: {describe_os_error(exc)}", ExitCode.CONNECTION) from None
            real = group if group[0].unix else [endpoint.with_port(server.address[1]) for endpoint in group]
            started.append((server, real))
    except BaseException:
        for server, _ in started:
            server.stop(0)
        raise
    return started


#: Server options that only WebSocket listeners take.
WEBSOCKET_ONLY_OPTIONS = frozenset({"origins", "hosts", "mushroom"})


def _make_server(group: list[Endpoint], rpc_handler: RpcHandler, context: Any, options: dict[str, Any]) -> Any:
    """Return an unstarted server for endpoints that share one address."""
    first = group[0]
    if first.websocket:
        websocket = load_websocket()
        handlers = {endpoint.path: rpc_handler for endpoint in group}
        return websocket.WebSocketServer((first.host, first.port), handlers, ssl_context=context, **options)
    from transports.tcp import TcpServer

    tcp_options = {name: value for name, value in options.items() if name not in WEBSOCKET_ONLY_OPTIONS}
    if first.unix:
        from transports.unix import UnixServer

        return UnixServer(first.path, rpc_handler, **tcp_options)
    return TcpServer((first.host, first.port), rpc_handler, ssl_context=context, **tcp_options)
