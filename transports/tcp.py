"""TCP transport: one JSON message per ``\\n``-terminated line, optionally over TLS.

The framing is plain enough to type by hand::

    $ nc 127.0.0.1 7000
    [2, 1, "echo", "hi"]
    [3, 1, 1, "hi"]

:class:`TcpServer` serves an rpc handler to many clients (sessions,
broadcast, hooks, limits, heartbeats, resume: see
:class:`~transports.session.server.SessionServer`); :func:`connect` returns a ready
:class:`~rpcengine.engine.Engine` whose peer is the server. IPv4 and IPv6
addresses both work; TCP_NODELAY is always on. :class:`LineServer` and
:func:`open_line_session` are what the Unix-domain socket transport
(:mod:`transports.unix`) shares with this one.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

import gevent
import gevent.socket

from rpcengine.engine import Engine, RpcHandler
from rpcengine.errors import ProtocolError
from rpcengine.packages import require_own_package
from transports.framing import LineDecoder
from transports.link import MAX_FRAMES_PER_TURN, SocketLink
from transports.listener import DEFAULT_BACKLOG, Listener, tune_socket
from transports.session.client import ReconnectPolicy, open_session, refuse_calls
from transports.session.config import SessionConfig
from transports.session.server import SessionServer
from transports.tls import wrap_socket

require_own_package("transports")  # fails at once, naming it, if 'transports' is another installation

__all__ = ["LineServer", "TcpLink", "TcpServer", "connect", "open_line_session", "open_tcp"]

log = logging.getLogger(__name__)

_RECV_SIZE = 65536
_NEWLINE = ord("\n")
_CR = ord("\r")
#: Bytes a blank line may start with (a line that starts otherwise is not blank).
_LINE_START_BLANK = frozenset(b" \t\r")


class TcpLink(SocketLink):
    """One stream-socket connection carrying line-framed messages: TCP, TLS, or a Unix-domain socket."""

    uses_write_watcher = True

    def __init__(self, sock: Any, peer_address: Any, config: SessionConfig) -> None:
        super().__init__(sock, peer_address, config.max_buffer)
        self.max_line = config.max_message_size
        self._decoder = LineDecoder(self.max_line)
        # Lines read and not yet delivered, and a framing error seen after them.
        self._lines: list[bytes] = []  # (a list: an empty deque costs 760 bytes per connection)
        self._error: ProtocolError | None = None

    def frame_batch(self, payloads: list[bytes]) -> bytes:
        """Return the payloads as newline-terminated lines."""
        if len(payloads) == 1:
            return payloads[0] + b"\n"
        payloads.append(b"")
        return b"\n".join(payloads)

    def run(self) -> None:
        """Read lines and pass them on until the connection ends (blocks, yielding).

        The calling greenlet owns the reading. While the receiver takes
        frames without blocking (its :attr:`~transports.link.SocketLink.ready`
        says so), the owner parks and the lines are read in the hub instead,
        from a read watcher: no greenlet switch per message. Whatever may
        block (a busy engine, a backed-up socket, the connection's end, bad
        framing) is handed back to the owner, which goes on here.
        """
        recv = self.sock.recv
        try:
            while not self.closed:
                if not self._deliver_pending():
                    return
                error, self._error = self._error, None
                if error is not None:
                    self.protocol_error(error)
                    return
                failed, self._hub_failed = self._hub_failed, None
                if failed is not None or self._hub_eof:
                    self.close(failed or "the peer closed the connection")
                    return
                if self._hub_reading_possible():
                    self._park()
                    continue
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
                self._take(data)
        except OSError as exc:
            self.close(f"read failed: {exc}")

    def _take(self, data: bytes) -> None:
        """Split ``data`` into lines queued for delivery; a framing error is kept until they are delivered."""
        try:
            self._lines.extend(self._decoder.feed(data))
        except ProtocolError as exc:
            # The whole lines before the break are handled (and answered) first.
            self._lines.extend(exc.lines)  # type: ignore[attr-defined]
            self._error = exc
            return
        if self.partial or data[-1] != _NEWLINE:  # (else no line is half received, before or now)
            self.report_partial(self._decoder.buffered > 0)

    def _deliver_pending(self) -> bool:
        """Deliver the queued lines (may block, yielding); return False if the link closed or stopped reading.

        Every :data:`~transports.link.MAX_FRAMES_PER_TURN` lines it lets the hub serve others once.
        """
        lines = self._lines
        received = self.received
        done = 0
        try:
            while done < len(lines):
                if done and not done % MAX_FRAMES_PER_TURN:
                    self._next_turn()
                    if self.closed or not self.reading:
                        return False
                line = lines[done]
                done += 1
                received(line)
                if self.closed or not self.reading:
                    return False
            return True
        finally:
            del lines[:done]

    # -- reading in the hub (see SocketLink._park) -------------------------

    def _take_in_hub(self, data: bytes) -> bool:
        """Hub: split ``data`` into lines and deliver them while the receiver cannot block.

        The common read, one whole line with nothing held before it, is
        delivered without the decoder; a line ending in CR LF, one that may
        be blank and one over ``max_line`` take the decoder's path.
        """
        last = len(data) - 1
        if (
            not self._lines
            and not self.partial
            and data.find(_NEWLINE) == last
            and 0 < last <= self.max_line
            and data[0] not in _LINE_START_BLANK
            and data[last - 1] != _CR
        ):
            line = data[:last]
            ready = self.ready
            if ready is None or not ready():
                self._lines.append(line)
                return False
            self.receiver(line)
            return not self.closed and self.reading
        self._take(data)
        return self._more_in_hub()

    def _more_in_hub(self) -> bool:
        """Hub: deliver the lines kept, a turn's worth at most, while the receiver cannot block."""
        lines = self._lines
        if not lines:
            return self._error is None
        done = 0
        try:
            for line in lines:
                ready = self.ready
                if ready is None or not ready():
                    return False
                if done == MAX_FRAMES_PER_TURN:
                    self._pause_turn()
                    return True
                done += 1
                self.receiver(line)
                if self.closed or not self.reading:
                    return False
        finally:
            del lines[:done]
        return self._error is None

    def close_socket(self) -> None:
        """Shut the socket down both ways, then close it."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class LineServer(SessionServer, Listener):
    """Sessions over line-framed stream sockets: what :class:`TcpServer` and the Unix-socket server share.

    Every accepted socket becomes a :class:`TcpLink` served by
    :class:`~transports.session.server.SessionServer` (handshake or plain
    lines or JSON-RPC 2.0, by the first line). Subclasses accept the socket
    and call :meth:`serve_socket`; ``address`` and ``backlog`` go to
    :class:`~transports.listener.Listener`, every other keyword to
    :class:`~transports.session.server.SessionServer`.
    """

    def __init__(
        self, address: Any, rpc_handler: RpcHandler, *, backlog: int = DEFAULT_BACKLOG, **options: Any
    ) -> None:
        SessionServer.__init__(self, rpc_handler, **options)
        Listener.__init__(self, address, backlog=backlog)

    def stop_serving(self, timeout: float | None) -> None:
        """Send Disconnect to every session, let handlers finish for ``timeout``, close (blocks, yielding)."""
        self.stop_sessions(timeout)

    def serve_socket(self, sock: Any, peer_address: Any) -> None:
        """Serve one connected socket until it ends (blocks, yielding); a refused one is told why and closed."""
        link = TcpLink(sock, peer_address, self.config)
        if not self.admit(link):
            self.refuse_connection(link, self.refusal_reason)
            link.close("refused")
            return
        self.serve_link(link, link.run)


class TcpServer(LineServer):
    """Serve ``rpc_handler`` over TCP at ``address`` (``(host, port)``; port 0 picks a free one).

    ``ssl_context`` turns on TLS. Other keywords: see
    :class:`~transports.session.server.SessionServer` and
    :class:`~transports.session.config.SessionConfig`. Use as a context manager, or
    call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        address: tuple[str, int],
        rpc_handler: RpcHandler,
        *,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = DEFAULT_BACKLOG,
        **options: Any,
    ) -> None:
        LineServer.__init__(self, address, rpc_handler, backlog=backlog, **options)
        self.ssl_context = ssl_context

    kind = "TCP server"

    def handle_connection(self, sock: Any, address: Any) -> None:
        """Serve one accepted connection (runs on its own greenlet)."""
        tune_socket(sock)
        if self.ssl_context is not None:
            try:
                sock = wrap_socket(self.ssl_context, sock, server_side=True, timeout=self.config.handshake_timeout)
            except (OSError, TimeoutError) as exc:
                log.warning("TLS handshake with %s failed: %s", address, exc)
                return
        self.serve_socket(sock, address)


def open_line_session(
    dial: Callable[[SessionConfig], TcpLink],
    rpc_handler: RpcHandler | None = None,
    *,
    handshake: bool = True,
    reconnect: bool | ReconnectPolicy = False,
    hello_extra: dict[str, Any] | None = None,
    **options: Any,
) -> Engine:
    """Open a session over the :class:`TcpLink` ``dial(config)`` connects; return a ready Engine (blocks, yielding).

    What :func:`connect` and the Unix-socket ``connect`` share: the keywords
    are those of :func:`connect` (``dial`` is called again for each
    reconnect). Raises what ``dial`` raises (OSError),
    :class:`~rpcengine.errors.HandshakeError` if the server refuses.
    """
    config = SessionConfig().with_options(**options)
    return open_session(
        lambda: dial(config),
        rpc_handler or refuse_calls,
        config,
        handshake=handshake,
        reconnect=reconnect,
        hello_extra=hello_extra,
    )


def open_tcp(
    host: str,
    port: int,
    config: SessionConfig,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float = 10.0,
) -> TcpLink:
    """Connect (and do the TLS handshake) within ``connect_timeout``; return the link, not yet reading.

    Blocks (yields). Raises OSError (TimeoutError when the deadline passes,
    ssl.SSLError for a failed TLS handshake) if the server cannot be reached.
    """
    sock = gevent.socket.create_connection((host, port), timeout=connect_timeout)
    sock.settimeout(None)
    tune_socket(sock)
    if ssl_context is not None:
        sock = wrap_socket(
            ssl_context, sock, server_side=False, server_hostname=server_hostname or host, timeout=connect_timeout
        )
    return TcpLink(sock, (host, port), config)


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
    (True or a :class:`~transports.session.client.ReconnectPolicy`) redials and
    resumes after a lost connection. ``hello_extra`` adds keys to the
    handshake (for an authenticate hook). Other keywords are
    :class:`~transports.session.config.SessionConfig` fields.

    Raises OSError if the server cannot be reached,
    :class:`~rpcengine.errors.HandshakeError` if it refuses.
    """

    def dial(config: SessionConfig) -> TcpLink:
        return open_tcp(
            host,
            port,
            config,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            connect_timeout=connect_timeout,
        )

    return open_line_session(
        dial, rpc_handler, handshake=handshake, reconnect=reconnect, hello_extra=hello_extra, **options
    )
