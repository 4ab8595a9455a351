"""The long-poll client: a Session whose link is a loop of HTTP POSTs (see :mod:`transports.http.poll`).

:func:`connect_poll` does the bootstrap (the client handshake object as the
body of ``POST <twin>/session``) and returns a ready Engine. Its
:class:`PollClientLink` runs two loops, each on its own keep-alive HTTP
connection: the *poller* keeps one poll held at the server (``[0, last
received]`` as its body; the answer's messages go to the session, which
drops resent duplicates), and the *sender* posts what the session writes,
one batch at a time, in order. A POST that fails (the connection dropped,
the answer lost) is made again, the same batch: the server drops what it
had already taken. After ``retry_for`` seconds of failures, or when the
server no longer knows the session (404), the link ends, and with it the
session.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.socket
import h11
from gevent.event import Event

from rpcengine import __version__
from rpcengine.engine import Engine, RpcHandler
from rpcengine.errors import ConnectionLost, HandshakeError, ProtocolError
from rpcengine.messages import Heartbeat
from rpcengine.wire import heartbeat_frame, parse_frame
from transports.http.poll import SECRET_HEADER, poll_config
from transports.link import FINAL_WRITE_TIMEOUT, SocketLink
from transports.listener import tune_socket
from transports.session.client import client_engine
from transports.session.config import SessionConfig
from transports.session.driver import Session
from transports.session.handshake import client_hello, parse_server_hello

__all__ = ["HttpClientConnection", "PollClientLink", "client_session", "connect_poll", "run_session"]

log = logging.getLogger(__name__)

_USER_AGENT = f"rpcengine/{__version__}"
_INITIAL_DELAY, _MAX_DELAY = 0.05, 2.0


class HttpClientConnection:
    """A keep-alive HTTP/1.1 client connection to ``(host, port)`` (h11), redialled when it breaks."""

    def __init__(self, address: tuple[str, int], host_header: str) -> None:
        self.address = address
        self.host_header = host_header
        self._sock: Any = None
        self._conn: h11.Connection | None = None

    def post(
        self, path: str, body: bytes, timeout: float, headers: list[tuple[str, str]] | None = None
    ) -> tuple[int, bytes]:
        """POST ``body`` to ``path``; return the status and body of the answer (blocks, yielding).

        Raises OSError (TimeoutError after ``timeout`` seconds) if the
        exchange fails; the connection is then dropped and the next call dials again.
        """
        try:
            with gevent.Timeout(timeout, TimeoutError(f"no HTTP answer within {timeout} s")):
                return self._exchange(path, body, headers or [])
        except (OSError, h11.ProtocolError) as exc:
            self.close()
            if isinstance(exc, OSError):
                raise
            raise ConnectionError(f"bad HTTP answer: {exc}") from None

    def _exchange(self, path: str, body: bytes, headers: list[tuple[str, str]]) -> tuple[int, bytes]:
        """Send one request and read its answer on the current (or a new) connection."""
        conn = self._conn
        if conn is not None and conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        elif conn is not None:
            self.close()
            conn = None
        if conn is None:
            self._sock = gevent.socket.create_connection(self.address)
            tune_socket(self._sock)
            conn = self._conn = h11.Connection(h11.CLIENT)
        request_headers = [
            ("Host", self.host_header),
            ("User-Agent", _USER_AGENT),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *headers,
        ]
        sock = self._sock
        sock.sendall(
            conn.send(h11.Request(method="POST", target=path, headers=request_headers))
            + conn.send(h11.Data(data=body))
            + conn.send(h11.EndOfMessage())
        )
        status, parts = 0, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return status, b"".join(parts)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed the connection")

    def close(self) -> None:
        """Drop the connection (the next POST dials again)."""
        sock, self._sock, self._conn = self._sock, None, None
        if sock is not None:
            sock.close()


class PollClientLink(SocketLink):
    """The client side of a long-poll session: a poller and a sender over HTTP.

    ``session_path`` and ``secret`` name the session; ``hold`` is the
    server's poll hold; ``last_received`` returns the id to acknowledge in
    each poll (a callback of the session above). ``on_gone`` is called once
    with the reason if the server no longer knows the session or cannot be
    reached for ``retry_for`` seconds.
    """

    def __init__(
        self,
        address: tuple[str, int],
        host_header: str,
        session_path: str,
        secret: str,
        *,
        hold: float,
        codec: Any,
        last_received: Callable[[], int],
        retry_for: float,
    ) -> None:
        super().__init__(None, address)
        self.session_path = session_path
        self.hold = hold
        self.codec = codec
        self.retry_for = retry_for
        self.last_received = last_received
        self.on_gone: Callable[[str], None] | None = None
        self._headers = [(SECRET_HEADER, secret)]
        self._polls = HttpClientConnection(address, host_header)
        self._sends = HttpClientConnection(address, host_header)
        self._pending: list[bytes] = []
        self._wake = Event()
        self._loops: list[gevent.Greenlet] = []

    # -- writing ----------------------------------------------------------

    def write(self, payload: bytes, block: bool = True) -> None:
        """Queue ``payload`` for the sender (heartbeats are dropped: polls carry the ack); never blocks.

        Raises ConnectionLost once the link is closed.
        """
        if self.closed:
            raise ConnectionLost(self.close_reason or "the poll session is closed")
        if self._is_heartbeat(payload):
            return
        self._pending.append(payload)
        self._wake.set()

    def write_nowait(self, payload: bytes) -> bool:
        """Queue ``payload`` (see :meth:`write`); always True."""
        self.write(payload)
        return True

    def write_many(self, payloads: list[bytes]) -> None:
        """Queue several payloads, in order (see :meth:`write`)."""
        for payload in payloads:
            self.write(payload)

    def write_final(self, payload: bytes) -> bool:
        """Queue a last payload, sent (bounded) when the link closes; return whether the link was open."""
        if self.closed:
            return False
        self.write(payload)
        return True

    def _is_heartbeat(self, payload: bytes) -> bool:
        """Whether ``payload`` is an encoded Heartbeat."""
        try:
            return type(parse_frame(self.codec, payload)) is Heartbeat
        except ProtocolError:
            return False

    # -- the loops --------------------------------------------------------

    def start_reading(self) -> gevent.Greenlet:
        """Start the poller and the sender; return the poller."""
        self._loops = [gevent.spawn(self._poll_loop), gevent.spawn(self._send_loop)]
        return self._loops[0]

    def _post(self, connection: HttpClientConnection, body: bytes, timeout: float) -> bytes | None:
        """POST ``body`` to the session until it is answered 200; return the answer (None once the link ended)."""
        delay, failing_since = _INITIAL_DELAY, None
        while not self.closed:
            try:
                status, answer = connection.post(self.session_path, body, timeout, self._headers)
            except OSError as exc:
                clock = gevent.get_hub().loop
                clock.update_now()
                failing_since = clock.now() if failing_since is None else failing_since
                if clock.now() - failing_since > self.retry_for:
                    self._gone(f"the server was unreachable for {self.retry_for} s: {exc}")
                    return None
                log.info("poll session POST failed (%s); trying again", exc)
                gevent.sleep(delay * random.uniform(0.5, 1.0))  # backoff before the retry
                delay = min(delay * 2, _MAX_DELAY)
                continue
            if status == 200:
                return answer
            self._gone(f"the server answered {status}: {answer[:200]!r}")
            return None
        return None

    def _poll_loop(self) -> None:
        """Keep a poll held at the server; hand every message of each answer to the session."""
        codec = self.codec
        while not self.closed:
            answer = self._post(self._polls, self.poll_body(), self.hold + self.retry_for)
            if answer is None:
                return
            try:
                messages = codec.decode(answer)
            except ProtocolError as exc:
                self.protocol_error(exc)
                return
            for message in messages if type(messages) is list else []:
                if self.closed or not self.reading:
                    return
                self.received(codec.encode(message))

    def poll_body(self) -> bytes:
        """Return the body of a poll: ``[0, last received]``, one frame on its line."""
        return heartbeat_frame(self.codec, self.last_received())

    def send_body(self, batch: list[bytes]) -> bytes:
        """Return the body that sends ``batch``: one frame per line."""
        return b"\n".join(batch) + b"\n"

    def _send_loop(self) -> None:
        """Post what the session writes, one batch at a time, in order."""
        while not self.closed:
            self._wake.wait()
            self._wake.clear()
            self._send_pending()

    def _send_pending(self) -> None:
        """Post everything queued as one batch (again until the server took it)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self._post(self._sends, self.send_body(batch), self.hold + self.retry_for)

    def _gone(self, reason: str) -> None:
        """The session cannot go on: tell whoever listens, and close."""
        log.warning("poll session with %s ended: %s", self.peer_address, reason)  # the path holds the session id
        callback, self.on_gone = self.on_gone, None
        self.close(reason)
        if callback is not None:
            callback(reason)

    def detach_callbacks(self) -> None:
        """Forget the upward callbacks and stop polling: nobody listens to what a poll would bring."""
        super().detach_callbacks()
        self._stop_loops()

    def _stop_loops(self) -> None:
        """Kill the poller and the sender (not the calling greenlet)."""
        current = gevent.getcurrent()
        for loop in self._loops:
            if loop is not current:
                loop.kill(block=False)

    def close_socket(self) -> None:
        """Stop the loops; what is still queued (a Disconnect, say) is posted once more, bounded."""
        self._stop_loops()
        if self._pending:
            gevent.spawn(self._last_words)
        else:
            self._polls.close()
            self._sends.close()

    def _last_words(self) -> None:
        """Post the payloads queued before the close (one try, bounded), then drop the connections."""
        batch, self._pending = self._pending, []
        try:
            self._sends.post(self.session_path, self.send_body(batch), FINAL_WRITE_TIMEOUT, self._headers)
        except OSError as exc:
            log.debug("last words to %s not sent: %s", self.peer_address, exc)
        self._polls.close()
        self._sends.close()


def connect_poll(
    url: str,
    rpc_handler: RpcHandler | None = None,
    *,
    hello_extra: dict[str, Any] | None = None,
    connect_timeout: float = 10.0,
    **options: Any,
) -> Engine:
    """Start a long-poll session at ``url`` (``http://host:port/rpc``, a WebSocket path's twin); return its Engine.

    Blocks (yields) for the bootstrap. ``rpc_handler`` serves the server's
    calls to this client; ``hello_extra`` adds keys to the handshake (for an
    authenticate hook). Other keywords are
    :class:`~transports.session.config.SessionConfig` fields. Raises
    ValueError for a URL that is not ``http://``, OSError if the server
    cannot be reached, HandshakeError if it refuses the session.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"a long-poll URL is http://host:port/path, not {url!r}")
    address = (parts.hostname, parts.port or 80)
    host_header = parts.netloc
    base = parts.path.rstrip("/") or "/rpc"
    config = SessionConfig().with_options(**options)
    codec = config.make_codec()
    bootstrap = HttpClientConnection(address, host_header)
    try:
        hello = client_hello(None, 0, config.max_unacked, **(hello_extra or {}))
        status, body = bootstrap.post(base + "/session", codec.encode(hello), connect_timeout)
    finally:
        bootstrap.close()
    if status != 200:
        raise HandshakeError(f"the server refused the poll session: {status} {body[:200]!r}")
    answer = codec.decode(body)
    server = parse_server_hello(answer)
    poll = answer.get("poll") if type(answer) is dict else None
    if type(poll) is not dict or type(poll.get("url")) is not str or type(poll.get("hold")) not in (int, float):
        raise HandshakeError("the server's answer names no poll URL and hold")
    hold = float(poll["hold"])
    config = poll_config(config, hold)
    session, engine = client_session(config, server.session, address, rpc_handler, server.max_unacked)
    if server.heartbeat is not None and config.heartbeat_interval is not None:
        session.heartbeat_interval = min(config.heartbeat_interval, server.heartbeat)
    link = PollClientLink(
        address,
        host_header,
        poll["url"],
        server.secret or "",
        hold=hold,
        codec=codec,
        last_received=lambda: session.last_received,
        retry_for=config.resume_grace or 0.0,
    )
    run_session(session, link)
    return engine


def client_session(
    config: SessionConfig, session_id: str, address: Any, rpc_handler: RpcHandler | None, peer_max_unacked: int | None
) -> tuple[Session, Engine]:
    """Return a resumable client session (acknowledging for a peer keeping ``peer_max_unacked``) and its Engine."""
    session = Session(config, session_id=session_id, resumable=True, handshaken=True)
    session.peer_address = address
    session.peer_outbox_bound(peer_max_unacked)
    return session, client_engine(session, rpc_handler, config)


def run_session(session: Session, link: SocketLink) -> None:
    """Attach ``link`` to ``session`` for good and start it reading; its end is the session's end.

    (These links resend what failed themselves: a lost link is not a wait for a resume.)
    """
    link.owner = session
    session.on_detached = lambda detached, lost: detached.close(lost.close_reason or "the connection ended")
    session.attach(link)
    link.start_reading()
