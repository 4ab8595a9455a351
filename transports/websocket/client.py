"""WebSocket client: :func:`connect` to a ``ws://`` or ``wss://`` URL and get a ready Engine.

The HTTP upgrade is done by ``websockets``' sans-I/O ClientProtocol over a
gevent socket; the session on top (handshake, heartbeats, reconnect and
resume) is :func:`transports.session.client.open_session`, the same as for TCP.
:func:`open_websocket` is the lower layer: one upgraded connection as a
:class:`~transports.websocket.link.WebSocketLink`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import gevent
import gevent.socket
from websockets.exceptions import InvalidStatus, InvalidURI
from websockets.uri import WebSocketURI, parse_uri

from rpcengine import __version__
from rpcengine.engine import Engine, RpcHandler
from rpcengine.errors import HandshakeError
from transports.listener import tune_socket
from transports.session.client import ReconnectPolicy, open_session, refuse_calls
from transports.session.config import SessionConfig
from transports.tls import wrap_socket
from transports.websocket.link import WebSocketLink
from transports.websocket.protocol import (
    DEFAULT_MAX_FRAGMENTS,
    SUBPROTOCOL,
    ClientProtocol,
    receive_handshake,
    send_protocol_data,
)

__all__ = ["connect", "open_websocket", "parse_url"]

_USER_AGENT = f"rpcengine/{__version__}"


def parse_url(url: str) -> WebSocketURI:
    """Parse a ``ws://`` or ``wss://`` URL (IPv6 literals in brackets); raise ValueError if it is not one."""
    try:
        return parse_uri(url)
    except InvalidURI as exc:
        raise ValueError(str(exc)) from None


def open_websocket(
    url: str,
    config: SessionConfig,
    *,
    ssl_context: ssl.SSLContext | None = None,
    origin: str | None = None,
    subprotocols: Sequence[str] | None = (SUBPROTOCOL,),
    headers: Mapping[str, str] | None = None,
    connect_timeout: float = 10.0,
    link_class: type[WebSocketLink] = WebSocketLink,
    **link_options: Any,
) -> WebSocketLink:
    """Connect and upgrade to a WebSocket within ``connect_timeout``; return the link, not yet reading.

    ``ssl_context`` is used for ``wss://`` (default: the system's trusted
    CAs, with hostname checking). ``headers`` are added to the upgrade
    request. ``link_options`` go to the link class (``max_fragments``, ...).

    Raises OSError (TimeoutError when the deadline passes) if the server
    cannot be reached, :class:`~rpcengine.errors.HandshakeError` if it
    refuses the upgrade (the message names the HTTP status).
    """
    uri = parse_url(url)
    if ssl_context is not None and not uri.secure:
        raise ValueError(f"ssl_context given for a URL that is not wss://: {url}")
    deadline = gevent.Timeout(
        connect_timeout, TimeoutError(f"WebSocket connection not open within {connect_timeout} s")
    )
    with deadline:
        sock = gevent.socket.create_connection((uri.host, uri.port))
        try:
            tune_socket(sock)
            if uri.secure:
                context = ssl_context or ssl.create_default_context()
                sock = wrap_socket(context, sock, server_side=False, server_hostname=uri.host, timeout=connect_timeout)
            protocol = ClientProtocol(
                uri,
                origin=origin,  # type: ignore[arg-type]
                subprotocols=list(subprotocols) if subprotocols else None,  # type: ignore[arg-type]
                max_size=config.max_message_size,
            )
            request = protocol.connect()
            request.headers["User-Agent"] = _USER_AGENT
            for name, value in (headers or {}).items():
                request.headers[name] = value
            protocol.send_request(request)
            send_protocol_data(sock, protocol)
            response, pending = receive_handshake(sock, protocol)
            failure = protocol.handshake_exc
            if failure is not None or response is None:
                if isinstance(failure, InvalidStatus):
                    status = failure.response
                    raise HandshakeError(f"WebSocket upgrade refused: HTTP {status.status_code} {status.reason_phrase}")
                raise HandshakeError(f"WebSocket upgrade failed: {failure or 'connection closed'}")
        except BaseException:
            sock.close()
            raise
    link = link_class(sock, (uri.host, uri.port), protocol, config, pending=pending, **link_options)
    link.path = uri.resource_name
    return link


def connect(
    url: str,
    rpc_handler: RpcHandler | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    origin: str | None = None,
    subprotocols: Sequence[str] | None = (SUBPROTOCOL,),
    headers: Mapping[str, str] | None = None,
    connect_timeout: float = 10.0,
    handshake: bool = True,
    reconnect: bool | ReconnectPolicy = False,
    hello_extra: dict[str, Any] | None = None,
    max_fragments: int = DEFAULT_MAX_FRAGMENTS,
    mushroom: str | None = None,
    mushroom_auth: Any = None,
    **options: Any,
) -> Engine:
    """Connect to a WebSocket server and return a ready Engine; blocks (yields) until connected.

    ``url`` is ``ws://host:port/path`` or ``wss://...`` (``ws://[::1]:port/``
    for IPv6). ``rpc_handler`` serves requests the server sends to this
    client (by default every such call gets MethodNotFound). ``origin`` sets
    the Origin header (for servers with an allowlist); ``subprotocols`` are
    offered in the upgrade; ``headers`` are added to it. ``handshake=False``
    speaks plain message lists (no heartbeats, no resume). ``reconnect``
    (True or a :class:`~transports.session.client.ReconnectPolicy`) redials and
    resumes after a lost connection. ``hello_extra`` adds keys to the
    session handshake (for an authenticate hook). A handshaken session
    judges the server's liveness by its heartbeats; a plain one
    (``handshake=False``) pings the server every ``heartbeat_interval`` and
    drops a connection silent for ``heartbeat_timeout``. Other keywords are
    :class:`~transports.session.config.SessionConfig` fields.

    ``mushroom="ws"`` or ``"poll"`` connects to a mushroom server instead:
    ``url`` is its ``http://`` (or ``ws://``) address, mushroom's bootstrap
    sends ``mushroom_auth`` to its authentication, and the session speaks
    the chosen mushroom transport, acknowledging every message (see
    :func:`transports.http.mushroom_client.connect_mushroom`, which this
    calls with ``rpc_handler``, ``connect_timeout`` and ``options``).

    Raises ValueError for a URL that is not ``ws://`` or ``wss://``, OSError
    if the server cannot be reached, :class:`~rpcengine.errors.HandshakeError`
    if it refuses the upgrade or the session handshake.
    """
    if mushroom is not None:
        from transports.http.mushroom_client import connect_mushroom  # the http package imports this one

        if url.startswith("ws://"):
            url = "http://" + url[len("ws://") :]
        return connect_mushroom(
            url, rpc_handler, transport=mushroom, auth=mushroom_auth, connect_timeout=connect_timeout, **options
        )
    parse_url(url)
    config = SessionConfig().with_options(**options)

    def dial() -> WebSocketLink:
        return open_websocket(
            url,
            config,
            ssl_context=ssl_context,
            origin=origin,
            subprotocols=subprotocols,
            headers=headers,
            connect_timeout=connect_timeout,
            max_fragments=max_fragments,
        )

    return open_session(
        dial,
        rpc_handler or refuse_calls,
        config,
        handshake=handshake,
        reconnect=reconnect,
        hello_extra=hello_extra,
    )
