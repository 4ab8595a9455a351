"""JSON-RPC 2.0 clients: an Engine over TCP or WebSocket, and one-shot calls over HTTP.

:func:`connect_tcp` and :func:`connect_websocket` return a ready
:class:`~rpcengine.engine.Engine` whose transport is a
:class:`~transports.session.jsonrpc.JsonRpcSession`: there is no
handshake, ``engine.request(method, data, timeout=...)`` sends a JSON-RPC
request object with the engine's own id, and the server may call the
client (its calls go to ``rpc_handler``)::

    from transports.jsonrpc_client import call_http, connect_tcp

    engine = connect_tcp("127.0.0.1", 7000)
    engine.request("subtract", [42, 23], timeout=5)        # 19
    call_http("http://127.0.0.1:8000/jsonrpc", "subtract", [42, 23])

A call's data is its ``params``: a list or a dict as it is, None as no
``params``, any other value as a one-item array (JSON-RPC has no other
kind). A JSON-RPC error answer raises
:class:`~rpcengine.errors.RequestException` whose data is ``{"error":
kind, "message", "code", "data"?}``
(:func:`~rpcengine.jsonrpc_adapter.native_error_data`); the server's
TIMEOUT (``-32001``) raises :class:`~rpcengine.errors.RequestTimeout`. A
call that times out on this side sends ``$/cancelRequest`` for it.

The WebSocket and HTTP clients need the ``websocket`` extra (``websockets``
and ``h11``); they are imported only when used.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from rpcengine.codec import Codec
from rpcengine.engine import Engine, RpcHandler
from rpcengine.errors import ProtocolError, RequestException, RequestTimeout
from rpcengine.jsonrpc import Reply, notification_object, parse_frame, request_object
from rpcengine.jsonrpc_adapter import native_error_data
from transports.link import SocketLink
from transports.session.client import client_engine
from transports.session.config import SessionConfig
from transports.session.jsonrpc import DIALECT, JsonRpcSession
from transports.tcp import open_tcp

__all__ = ["Observer", "call_http", "connect_tcp", "connect_websocket", "notify_http", "open_jsonrpc"]

#: Called with ``(sent, payload)`` for each JSON-RPC document an HTTP call sends (True) and receives (False).
Observer = Callable[[bool, bytes], None]

#: Seconds an HTTP exchange may take beyond the wait the server is asked for (``?timeout=``).
_HTTP_GRACE = 2.0


def open_jsonrpc(link: SocketLink, rpc_handler: RpcHandler | None, config: SessionConfig) -> Engine:
    """Put a client JsonRpcSession and its Engine on the connected ``link`` and start reading; return the Engine.

    Does not block. ``rpc_handler`` answers the server's calls (default:
    MethodNotFound for each).
    """
    session = JsonRpcSession(config, peer_address=link.peer_address)
    session.session_id = DIALECT
    engine = client_engine(session, rpc_handler, config)
    link.owner = session
    session.attach(link)
    link.start_reading()
    return engine


def connect_tcp(
    host: str,
    port: int,
    rpc_handler: RpcHandler | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float = 10.0,
    **options: Any,
) -> Engine:
    """Connect to a TCP server that speaks JSON-RPC 2.0 (one document per line); return a ready Engine.

    Blocks (yields) until connected, at most ``connect_timeout`` seconds.
    An rpcengine :class:`~transports.tcp.TcpServer` takes the connection as
    JSON-RPC from its first line. ``ssl_context`` turns on TLS. Other
    keywords are :class:`~transports.session.config.SessionConfig` fields.

    Raises OSError (TimeoutError when the deadline passes) if the server
    cannot be reached.
    """
    config = SessionConfig().with_options(**options)
    link = open_tcp(
        host, port, config, ssl_context=ssl_context, server_hostname=server_hostname, connect_timeout=connect_timeout
    )
    return open_jsonrpc(link, rpc_handler, config)


def connect_websocket(
    url: str,
    rpc_handler: RpcHandler | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    origin: str | None = None,
    headers: Mapping[str, str] | None = None,
    connect_timeout: float = 10.0,
    **options: Any,
) -> Engine:
    """Connect to a WebSocket that speaks JSON-RPC 2.0 (one document per text frame); return a ready Engine.

    Blocks (yields) until upgraded, at most ``connect_timeout`` seconds.
    ``url`` is ``ws://host:port/path`` or ``wss://...``; the ``jsonrpc``
    subprotocol is offered, so an rpcengine server speaks JSON-RPC on any
    of its paths (``/jsonrpc`` does without the subprotocol). ``origin`` and
    ``headers`` go into the upgrade request. Other keywords are
    :class:`~transports.session.config.SessionConfig` fields.

    Raises ValueError for a URL that is not ``ws://`` or ``wss://``, OSError
    if the server cannot be reached, :class:`~rpcengine.errors.HandshakeError`
    if it refuses the upgrade.
    """
    from transports.websocket.client import open_websocket

    config = SessionConfig().with_options(**options)
    link = open_websocket(
        url,
        config,
        ssl_context=ssl_context,
        origin=origin,
        subprotocols=(DIALECT,),
        headers=headers,
        connect_timeout=connect_timeout,
    )
    return open_jsonrpc(link, rpc_handler, config)


def _post(url: str, body: bytes, timeout: float, observe: Observer | None) -> tuple[int, bytes]:
    """POST ``body`` to ``url`` asking the server to wait ``timeout`` s; return the status and answer (blocks)."""
    from transports.http.client import HttpClientConnection  # the websocket extra brings h11

    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"a JSON-RPC HTTP URL is http://host:port/jsonrpc, not {url!r}")
    path = parts.path if parts.path not in ("", "/") else "/jsonrpc"
    query = f"{parts.query}&" if parts.query else ""
    connection = HttpClientConnection((parts.hostname, parts.port or 80), parts.netloc)
    if observe is not None:
        observe(True, body)
    try:
        status, answer = connection.post(f"{path}?{query}timeout={timeout:g}", body, timeout + _HTTP_GRACE)
    finally:
        connection.close()
    if observe is not None and answer:
        observe(False, answer)
    return status, answer


def _result(codec: Codec, status: int, answer: bytes, url: str) -> Any:
    """Return the result in an HTTP answer to one request, or raise its error."""
    reply = None
    if answer:
        document = parse_frame(codec, answer)
        if len(document.items) == 1 and not document.is_batch:
            reply = document.items[0]
    if type(reply) is not Reply or status not in (200, 403, 503):
        raise ProtocolError(f"{url} answered HTTP {status} with no JSON-RPC response: {answer[:200]!r}")
    if reply.error is None:
        return reply.result
    data = native_error_data(reply.error)
    if data["error"] == "deadline_exceeded":
        raise RequestTimeout(f"{url}: {data['message']}")
    raise RequestException(data)


def call_http(
    url: str,
    method: str,
    data: Any = None,
    *,
    timeout: float = 30.0,
    request_id: int = 1,
    codec: Codec | None = None,
    observe: Observer | None = None,
) -> Any:
    """POST one JSON-RPC request to ``url`` (``http://host:port/jsonrpc``); return its result (blocks, yielding).

    The server is asked to wait ``timeout`` seconds for the answer
    (``?timeout=``); the exchange may take a little longer. ``observe``
    sees the documents sent and received. Raises
    :class:`~rpcengine.errors.RequestException` for an error answer (an
    authentication refusal, 403, and a full server, 503, included),
    :class:`~rpcengine.errors.RequestTimeout` for the server's TIMEOUT,
    :class:`~rpcengine.errors.ProtocolError` for an answer that is not a
    JSON-RPC response (another status: 404 for a path not served, say),
    OSError if the server cannot be reached or does not answer in time,
    ValueError for a URL that is not ``http://``.
    """
    codec = codec or SessionConfig().make_codec()
    body = codec.encode(request_object(request_id, method, data))
    status, answer = _post(url, body, timeout, observe)
    return _result(codec, status, answer, url)


def notify_http(
    url: str,
    method: str,
    data: Any = None,
    *,
    timeout: float = 30.0,
    codec: Codec | None = None,
    observe: Observer | None = None,
) -> None:
    """POST one JSON-RPC notification to ``url``; return once the server took it (HTTP 204; blocks, yielding).

    Raises as :func:`call_http` does (an error answer to a notification is
    one the server sends for the whole document: refused, full).
    """
    codec = codec or SessionConfig().make_codec()
    body = codec.encode(notification_object(method, data))
    status, answer = _post(url, body, timeout, observe)
    if status != 204:
        _result(codec, status, answer, url)
        raise ProtocolError(f"{url} answered a notification with HTTP {status}")
