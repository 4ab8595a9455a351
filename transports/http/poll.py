"""Long-poll sessions: the session protocol over HTTP requests, for clients that cannot keep a WebSocket.

The session (outbox, acknowledgements, deduplication, liveness, resume
grace) is the same :class:`~transports.session.driver.Session` as on TCP
and WebSocket; only its link differs. Each *poll* is a resume: a
:class:`PollLink` attaches to the session with the client's
acknowledgement, so everything the client has not acknowledged is sent
again, and a poll answer lost on the way costs nothing but a resend. The
wire shapes (``<twin>`` is ``/rpc`` for the WebSocket path ``/``):

* ``POST <twin>/session`` with the client handshake object (as over TCP
  and WebSocket) -> the server's handshake answer, with ``"poll"``: the
  session's URL path and the hold time;
* ``POST <twin>/session/<id>`` with header ``X-Rpcengine-Secret`` and a
  body of frames, one message list per line (as over TCP). A body that
  starts with a heartbeat ``[0, ack]`` is a poll: it is held until the
  server has something to send (``hold`` seconds at most), then answered
  with a JSON array of every unacknowledged message followed by
  ``[0, last id received]``. A newer poll makes the one held before it
  return at once. A body without a leading heartbeat only sends: it is
  answered at once with ``[[0, last id received]]``. An unknown session
  (or a wrong secret): 404.

Between polls the session is detached: it waits ``resume_grace`` for the
next one and then ends. The peer's liveness while a poll is held is the
session's ``heartbeat_timeout``, raised to at least ``hold + POLL_MARGIN``
so that a held poll is never taken for silence.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import gevent

from rpcengine.errors import ProtocolError
from rpcengine.messages import Heartbeat
from rpcengine.wire import error_data, frame_array, heartbeat_frame, parse_frame
from transports.http.calls import CallResult, CollectingLink
from transports.http.connection import HttpError
from transports.session.config import SessionConfig
from transports.session.driver import Session
from transports.session.handshake import parse_client_hello, server_hello
from transports.session.server import SessionServer

__all__ = [
    "DEFAULT_POLL_HOLD",
    "POLL_MARGIN",
    "SECRET_HEADER",
    "PollLink",
    "PollSessions",
    "poll_config",
    "split_frames",
]

log = logging.getLogger(__name__)

#: Longest a poll is held by default: under the 30 s idle timeout of common proxies.
DEFAULT_POLL_HOLD = 25.0
#: How much longer than a poll's hold the peer may stay silent before it is declared dead.
POLL_MARGIN = 5.0
#: The request header that carries the session's resume secret.
SECRET_HEADER = "X-Rpcengine-Secret"


def poll_config(config: SessionConfig, hold: float) -> SessionConfig:
    """Return ``config`` with ``heartbeat_timeout`` at least ``hold + POLL_MARGIN`` (a held poll is not silence)."""
    timeout = config.heartbeat_timeout
    if timeout is not None and timeout < hold + POLL_MARGIN:
        return config.with_options(heartbeat_timeout=hold + POLL_MARGIN)
    return config


def split_frames(body: bytes) -> list[bytes]:
    """Return the frames of a body that holds one per line (blank lines skipped)."""
    return [line for line in body.split(b"\n") if line.strip()]


class PollLink(CollectingLink):
    """One held poll under a session: keeps what the session writes until the HTTP answer takes it.

    Heartbeats the session writes on its own are dropped: every answer ends
    with a fresh one. ``codec`` tells them apart.
    """

    def __init__(self, peer_address: Any, request: Any, path: str | None, codec: Any) -> None:
        super().__init__(peer_address, request, path)
        self.codec = codec

    def write(self, payload: bytes, block: bool = True) -> None:
        """Keep ``payload`` for the answer (a heartbeat is dropped); never blocks. Raises ConnectionLost if closed."""
        if not self.closed and _is_heartbeat(self.codec, payload):
            return
        super().write(payload, block)

    def wait_for_answer(self, hold: float) -> None:
        """Block (yielding) until something is written, the link closes, or ``hold`` seconds passed."""
        with gevent.Timeout(hold, False):  # type: ignore[arg-type]  # False: silent (types-gevent omits it)
            while not self.collected and not self.closed:
                self.wait_written(None)

    def take(self) -> list[bytes]:
        """Return and forget every payload kept so far."""
        taken, self.collected = self.collected, []
        return taken


class PollSessions:
    """The long-poll sessions of one endpoint (one WebSocket path's :class:`SessionServer`)."""

    def __init__(
        self, endpoint: SessionServer, *, hold: float = DEFAULT_POLL_HOLD, config: SessionConfig | None = None
    ) -> None:
        self.endpoint = endpoint
        self.hold = hold
        self.codec = endpoint.codec
        #: The settings of these sessions (the endpoint's, with a heartbeat timeout longer than a held poll).
        self.config = config or poll_config(endpoint.config, hold)
        #: Open poll sessions by id.
        self.sessions: dict[str, Session] = {}

    def bootstrap(self, body: bytes, *, peer_address: Any, request: Any, path: str, base: str) -> CallResult:
        """Start a session for the client handshake in ``body``; return the handshake answer.

        Runs ``authenticate`` (401 if it refuses) and the connect hook; 400
        for a handshake that cannot be accepted, 503 when the server is
        full. Does not block unless a hook does.
        """
        codec, endpoint = self.codec, self.endpoint
        try:
            hello = parse_client_hello(codec.decode(body))
        except ProtocolError as exc:
            raise HttpError(400, "invalid_handshake", str(exc)) from None
        if not self.authenticated(hello, peer_address):
            return CallResult(401, codec.encode(error_data("refused", "authentication failed")))
        session = self.start(hello, peer_address=peer_address, request=request, path=path)
        if session is None:
            return CallResult(503, codec.encode(error_data("unavailable", endpoint.refusal_reason)))
        config = self.config
        answer = server_hello(
            session.session_id,
            False,
            session.last_received,
            config.heartbeat_interval,
            config.heartbeat_timeout,
            config.max_unacked,
            session.secret,
        )
        answer["poll"] = {"url": f"{base}/{session.session_id}", "hold": self.hold}
        return CallResult(200, codec.encode(answer))

    def authenticated(self, hello: Any, peer_address: Any) -> bool:
        """Run the endpoint's ``authenticate`` hook (a hook that raises refuses); log a refusal."""
        authenticate = self.endpoint.authenticate
        if authenticate is None:
            return True
        try:
            allowed = bool(authenticate(hello, peer_address))
        except Exception:
            log.exception("authenticate hook raised")
            allowed = False
        if not allowed:
            log.warning("refusing a poll session for %s: authentication failed", peer_address)
        return allowed

    def start(self, hello: Any, *, peer_address: Any, request: Any, path: str) -> Session | None:
        """Open a session (connect hook run; detached, waiting for its first poll); None if the server is full."""
        endpoint = self.endpoint
        link = PollLink(peer_address, request, path, self.codec)
        if not endpoint.admit(link):
            return None
        endpoint.links.add(link)
        session = endpoint.open_session(link, config=self.config, peer_max_unacked=hello.max_unacked)
        self.sessions[session.session_id] = session
        session.on_closed.append(self._forget)
        self._end_poll(link)
        log.info("poll session started for %s", peer_address)
        return session

    def exchange(
        self, session_id: str, secret: str | None, body: bytes, *, peer_address: Any, request: Any, path: str
    ) -> CallResult:
        """Handle one POST to a session: a poll (held, blocks yielding up to ``hold``) or a send (answered at once).

        404 for an unknown session or a wrong secret.
        """
        codec = self.codec
        session = self.sessions.get(session_id)
        if (
            session is None
            or session.closed
            or secret is None
            or not hmac.compare_digest(session.secret.encode(), secret.encode())
        ):
            return CallResult(404, codec.encode(error_data("unknown_session", "no such session (ended, or never was)")))
        frames = split_frames(body)
        ack = _leading_ack(codec, frames)
        if ack is None:
            self.send(session, frames)
            return CallResult(200, frame_array([heartbeat_frame(codec, session.last_received)]))
        payloads = self.poll(session, ack, frames[1:], peer_address=peer_address, request=request, path=path)
        if not session.closed:
            payloads.append(heartbeat_frame(codec, session.last_received))
        return CallResult(200, frame_array(payloads))

    def send(self, session: Session, frames: list[bytes]) -> None:
        """Hand ``frames`` to ``session`` without attaching (a send, not a poll); may block (yield) for backpressure."""
        for frame in frames:
            session.frame_received(frame)
        if session.peer_disconnecting and session.link is not None:
            session.link.close("the peer disconnected")  # end the held poll: the session is over

    def poll(
        self, session: Session, ack: int, frames: list[bytes], *, peer_address: Any, request: Any, path: str
    ) -> list[bytes]:
        """Attach a poll acknowledging ``ack``, hand it ``frames``, hold it; return what it carries back.

        Blocks (yielding) until the session has something to send, a newer
        poll replaces this one, or ``hold`` seconds passed.
        """
        link = PollLink(peer_address, request, path, self.codec)
        link.owner = session
        endpoint = self.endpoint
        endpoint.detached.pop(session, None)
        endpoint.links.add(link)
        session.attach(link, ack)  # resends what the client has not acknowledged; an older poll returns
        for frame in frames:
            link.received(frame)
        link.wait_for_answer(self.hold)
        payloads = link.take()
        self._end_poll(link)
        return payloads

    def _forget(self, session: Session) -> None:
        """Close callback: the session ended; later POSTs to it get 404."""
        self.sessions.pop(session.session_id, None)

    def _end_poll(self, link: PollLink) -> None:
        """The poll is answered: its link ends (the session waits ``resume_grace`` for the next one)."""
        if not link.closed:
            link.close("poll answered")
        self.endpoint.links.discard(link)


def _is_heartbeat(codec: Any, payload: bytes) -> bool:
    """Whether ``payload`` is an encoded Heartbeat."""
    try:
        return type(parse_frame(codec, payload)) is Heartbeat
    except ProtocolError:
        return False


def _leading_ack(codec: Any, frames: list[bytes]) -> int | None:
    """Return the acknowledged id of a leading heartbeat (the body is a poll), else None (a send)."""
    if not frames:
        return None
    try:
        message = parse_frame(codec, frames[0])
    except ProtocolError:
        return None
    return message.last_message_id if type(message) is Heartbeat else None
