"""Open clients and listeners for the command line, by URL scheme.

``tcp://`` and ``tls://`` use :mod:`transports.tcp`; ``ws://`` and ``wss://``
use :mod:`transports.websocket`, imported only when such a URL is given, so
the TCP commands work without it. Every failure to reach a server becomes a
:class:`~rpcengine.cli.errors.CliError` with exit code 4.
"""

from __future__ import annotations

import importlib
import ssl
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import gevent

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

    Raises CliError with exit code 4 if the server cannot be reached, refuses
    the handshake or closes meanwhile, and with exit code 2 if the transport
    for the scheme is missing.
    """
    if endpoint.tls and ssl_context is None:
        ssl_context = client_ssl_context()
    opener = _websocket_opener(endpoint) if endpoint.websocket else _tcp_opener(endpoint)
    try:
        with gevent.Timeout(timeout + 1.0, TimeoutError(f"not connected within {timeout} s")):
            return opener(rpc_handler, timeout=timeout, ssl_context=ssl_context, **options)
    except ProtocolError as exc:
        raise CliError(f"{endpoint.url} refused the handshake: {exc}", ExitCode.CONNECTION) from None
    except ConnectionLost as exc:
        raise CliError(f"connection to {endpoint.url} lost: {exc}", ExitCode.CONNECTION) from None
    except (OSError, ssl.SSLError) as exc:
        raise CliError(f"cannot connect to {endpoint.url}: {describe_os_error(exc)}", ExitCode.CONNECTION) from None


def describe_os_error(exc: BaseException) -> str:
    """Return the readable part of an OSError (``Connection refused`` rather than ``[Errno 111] ...``)."""
    strerror = getattr(exc, "strerror", None)
    return strerror if isinstance(strerror, str) and strerror else str(exc) or type(exc).__name__


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
            real_port = server.address[1]
            started.append((server, [endpoint.with_port(real_port) for endpoint in group]))
    except BaseException:
        for server, _ in started:
            server.stop(0)
        raise
    return started


def _make_server(group: list[Endpoint], rpc_handler: RpcHandler, context: Any, options: dict[str, Any]) -> Any:
    """Return an unstarted server for endpoints that share one address."""
    first = group[0]
    if first.websocket:
        websocket = load_websocket()
        handlers = {endpoint.path: rpc_handler for endpoint in group}
        return websocket.WebSocketServer((first.host, first.port), handlers, ssl_context=context, **options)
    from transports.tcp import TcpServer

    return TcpServer((first.host, first.port), rpc_handler, ssl_context=context, **options)
