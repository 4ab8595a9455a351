"""TCP transport: one JSON message per ``\\n``-terminated line, optionally over TLS.

The framing is plain enough to type by hand::

    $ nc 127.0.0.1 7000
    [2, 1, "echo", "hi"]
    [3, 1, 1, "hi"]

:class:`TcpServer` serves an rpc handler to many clients (sessions,
broadcast, hooks, limits, heartbeats, resume: see
:class:`~transports.server.SessionServer`); :func:`connect` returns a ready
:class:`~rpcengine.engine.Engine` whose peer is the server. IPv4 and IPv6
addresses both work; TCP_NODELAY is always on.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

import gevent
import gevent.socket
from gevent.server import StreamServer

from rpcengine.engine import Engine, RpcHandler
from rpcengine.errors import ProtocolError
from transports.client import ReconnectPolicy, open_session, refuse_calls
from transports.config import SessionConfig
from transports.framing import LineDecoder
from transports.link import SocketLink
from transports.server import SessionServer
from transports.tls import wrap_socket

__all__ = ["TcpLink", "TcpServer", "connect"]

log = logging.getLogger(__name__)

_RECV_SIZE = 65536


class TcpLink(SocketLink):
    """One TCP connection carrying line-framed messages."""

    uses_write_watcher = True

    def __init__(self, sock: Any, peer_address: Any, config: SessionConfig) -> None:
        super().__init__(sock, peer_address, config.max_buffer)
        self.max_line = config.max_message_size

    def frame_batch(self, payloads: list[bytes]) -> bytes:
        """Return the payloads as newline-terminated lines."""
        if len(payloads) == 1:
            return payloads[0] + b"\n"
        payloads.append(b"")
        return b"\n".join(payloads)

    def run(self) -> None:
        """Read lines and pass them on until the connection ends (blocks, yielding)."""
        decoder = LineDecoder(self.max_line)
        recv = self.sock.recv
        received = self.received
        try:
            while not self.closed:
                try:
                    data = recv(_RECV_SIZE)
                except ValueError as exc:
                    # gevent's SSLSocket, shut down or closed by another greenlet just as this one
                    # was woken to read, raises ValueError ("Read on closed or unwrapped SSL socket").
                    self.close(f"read failed: {exc}")
                    return
                if not data:
                    self.close("the peer closed the connection")
                    return
                for line in decoder.feed(data):
                    received(line)
                    if self.closed:
                        return
        except ProtocolError as exc:
            self.protocol_error(exc)
        except OSError as exc:
            self.close(f"read failed: {exc}")

    def protocol_error(self, exc: ProtocolError) -> None:
        """End the connection and its session after a framing error (logged once)."""
        log.warning("closing connection from %s: %s", self.peer_address, exc)
        reason = f"protocol error: {exc}"
        if self.session is not None:
            self.session.close(reason)
        self.close(reason)

    def close_socket(self) -> None:
        """Shut the socket down both ways, then close it."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _tune(sock: Any) -> None:
    """Turn on TCP_NODELAY (and keepalive) on a connected socket."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


class TcpServer(SessionServer):
    """Serve ``rpc_handler`` over TCP at ``address`` (``(host, port)``; port 0 picks a free one).

    ``ssl_context`` turns on TLS. Other keywords: see
    :class:`~transports.server.SessionServer` and
    :class:`~transports.config.SessionConfig`. Use as a context manager, or
    call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        address: tuple[str, int],
        rpc_handler: RpcHandler,
        *,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 1024,
        **options: Any,
    ) -> None:
        super().__init__(rpc_handler, **options)
        self.ssl_context = ssl_context
        self._server = StreamServer(address, self._handle, backlog=backlog)

    @property
    def address(self) -> tuple[str, int]:
        """The address the server listens on (with the real port once started)."""
        return self._server.address

    def start(self) -> TcpServer:
        """Start listening and accepting in the background; return self."""
        self._server.start()
        log.info("TCP server listening on %s", self.address)
        return self

    def serve_forever(self) -> None:
        """Start (if needed) and block until :meth:`stop` is called."""
        self._server.serve_forever()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop gracefully: refuse new connections, send Disconnect, let handlers finish, close.

        Blocks (yields) up to ``timeout`` seconds for in-flight handlers, then
        up to 0.5 s more for their answers to reach the sockets.
        """
        self.accepting = False
        self._server.stop(timeout=0)
        self.stop_sessions(timeout)

    def __enter__(self) -> TcpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _handle(self, sock: Any, address: Any) -> None:
        """Serve one accepted connection (runs on its own greenlet)."""
        _tune(sock)
        if self.ssl_context is not None:
            try:
                sock = wrap_socket(self.ssl_context, sock, server_side=True, timeout=self.config.handshake_timeout)
            except (OSError, TimeoutError) as exc:
                log.warning("TLS handshake with %s failed: %s", address, exc)
                return
        link = TcpLink(sock, address, self.config)
        if not self.admit(link):
            link.close("refused")
            return
        self.serve_link(link, link.run)


def connect(
    host: str,
    port: int,
    rpc_handler: RpcHandler | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float = 10.0,
    handshake: bool = True,
    reconnect: bool | ReconnectPolicy = False,
    hello_extra: dict[str, Any] | None = None,
    **options: Any,
) -> Engine:
    """Connect to a TCP server and return a ready Engine; blocks (yields) until connected.

    ``rpc_handler`` serves requests the server sends to this client (by
    default every such call gets MethodNotFound). ``handshake=False``
    speaks plain message lines (no heartbeats, no resume). ``reconnect``
    (True or a :class:`~transports.client.ReconnectPolicy`) redials and
    resumes after a lost connection. ``hello_extra`` adds keys to the
    handshake (for an authenticate hook). Other keywords are
    :class:`~transports.config.SessionConfig` fields.

    Raises OSError if the server cannot be reached,
    :class:`~rpcengine.errors.HandshakeError` if it refuses.
    """
    config = SessionConfig().with_options(**options)

    def dial() -> TcpLink:
        sock = gevent.socket.create_connection((host, port), timeout=connect_timeout)
        sock.settimeout(None)
        _tune(sock)
        if ssl_context is not None:
            sock = wrap_socket(
                ssl_context, sock, server_side=False, server_hostname=server_hostname or host, timeout=connect_timeout
            )
        return TcpLink(sock, (host, port), config)

    return open_session(
        dial,
        rpc_handler or refuse_calls,
        config,
        handshake=handshake,
        reconnect=reconnect,
        hello_extra=hello_extra,
    )
