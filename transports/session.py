"""Session: the transport an Engine sees on TCP and WebSocket, surviving reconnects.

A session numbers nothing itself (the Engine does) but keeps, for the
current connection (its :class:`~transports.link.SocketLink`):

* the **outbox**: every sent message with an id, as encoded bytes, until
  the peer acknowledges it with ``[0, last_message_id]``; after a reconnect
  the messages the peer has not seen are sent again, in order;
* **deduplication**: a message whose id is not above the last one received
  has been handled already and is dropped;
* **heartbeats**: ``[0, last_received]`` every ``heartbeat_interval`` (a
  client uses the server's interval instead when its handshake announces a
  shorter one), and the peer declared dead after ``heartbeat_timeout``
  without a frame (not counting time when this side stopped reading because
  its handlers were all busy).

A *plain* session (a peer that skipped the handshake) has none of these:
its connection is the session. A *resumable* session outlives its
connection for ``resume_grace`` seconds; the pending requests on its engine
keep waiting meanwhile. Time comes from ``clock``, and :meth:`Session.tick`
does all timed work, so tests can drive timers without sleeping.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event

from rpcengine.errors import ConnectionLost, OutboxFull, ProtocolError
from rpcengine.messages import Disconnect, Heartbeat, Message, Notification, Request
from transports.base import Transport, error_reply_for, parse_frame
from transports.config import SessionConfig
from transports.link import SocketLink

__all__ = ["Session", "new_session_id"]

log = logging.getLogger(__name__)


def new_session_id() -> str:
    """Return a new unguessable session id."""
    return secrets.token_urlsafe(16)


class Session(Transport):
    """The Engine-facing transport of one peer, across one or more connections."""

    def __init__(
        self,
        config: SessionConfig,
        *,
        session_id: str | None = None,
        resumable: bool = True,
        handshaken: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        peer_address: Any = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.codec = config.make_codec()
        self.session_id = session_id or new_session_id()
        self.resumable = resumable
        self.clock = clock
        self.peer_address = peer_address
        self.link: SocketLink | None = None
        #: Highest message id received from the peer (what our heartbeats acknowledge).
        self.last_received = 0
        #: Highest of our message ids the peer has acknowledged.
        self.peer_acked = 0
        #: Highest message id sent in this session.
        self.last_sent = 0
        self.outbox: deque[tuple[int, bytes]] = deque()
        self.peer_disconnecting = False
        #: Whether both sides did the handshake: heartbeats flow and the peer's silence is watched.
        self.handshaken = resumable if handshaken is None else handshaken
        #: How often heartbeats go out: ``config.heartbeat_interval``, or less if the peer announced less.
        self.heartbeat_interval = config.heartbeat_interval
        #: Acknowledge after this many received messages (see :meth:`peer_outbox_bound`).
        self.ack_every = config.ack_every
        #: Called with the session when a resumable session loses its link (clients reconnect here).
        self.on_detached: Callable[[Session], None] | None = None
        self.on_closed: list[Callable[[Session], None]] = []
        self.close_reason = ""
        self.duplicates_dropped = 0
        now = clock()
        self.last_seen = now
        self._last_heartbeat = now
        self._detached_at: float | None = None
        self._unacked_received = 0
        self._delivering = 0
        self._room: Event | None = None
        self._timer: gevent.Greenlet | None = None

    # -- connection management -------------------------------------------

    def attach(self, link: SocketLink, peer_ack: int = 0) -> None:
        """Make ``link`` the current connection; resend what the peer has not acknowledged."""
        old = self.link
        if old is not None and old is not link:
            old.on_lost = None
            old.close("replaced by a resumed connection")
        self.link = link
        self._detached_at = None
        self.last_seen = self._last_heartbeat = self.clock()
        link.receiver = self.frame_received
        link.on_lost = self._link_lost
        if link.closed:
            # It ended before it was ours (a failed write of the handshake answer, say): its
            # end was reported to nobody, so report it here or the session waits on it forever.
            self._link_lost(link, link.close_reason or "the connection is closed")
            return
        self._acknowledged(peer_ack)
        if self.outbox:
            log.info("session %s resending %d unacknowledged messages", self.session_id, len(self.outbox))
            try:
                link.write_many([payload for _, payload in self.outbox])
            except ConnectionLost:
                return
        self._start_timer()

    def _link_lost(self, link: SocketLink, reason: str) -> None:
        """Called by a link when it ends: detach, or end the session if it cannot resume."""
        if link is not self.link:
            return
        self.link = None
        if self.closed:
            return
        if not self.resumable or self.peer_disconnecting or not self.config.resume_grace:
            self.close(reason)
            return
        log.info("session %s lost its connection (%s); waiting for resume", self.session_id, reason)
        self._detached_at = self.clock()
        self._wake_senders()
        if self.on_detached is not None:
            self.on_detached(self)

    def peer_outbox_bound(self, max_unacked: int | None) -> None:
        """Acknowledge often enough for a peer that keeps at most ``max_unacked`` messages unacknowledged.

        Called with the bound the peer announced in its handshake (None if it
        did not): without it, a peer whose bound is below our own
        acknowledgement interval would stall until our next heartbeat.
        """
        if max_unacked is not None:
            self.ack_every = max(1, min(self.ack_every, max_unacked // 4))

    @property
    def detached(self) -> bool:
        """Whether the session is waiting for a connection (resumable, link lost, not closed)."""
        return self.link is None and not self.closed

    # -- sending ----------------------------------------------------------

    def send(self, message: Message, **kwargs: Any) -> None:
        """Encode ``message``, keep it for resend, and write it; may block (yield) for backpressure.

        Raises ConnectionLost once the session has ended, EncodeError if the
        message cannot be encoded, and OutboxFull if the peer acknowledges
        nothing for ``outbox_timeout`` while ``max_unacked`` messages wait.

        Only messages this side starts (Requests, Notifications) wait for
        room in the outbox. Answers never do: they are bounded by the
        requests the peer may have unacknowledged, and an answer waiting for
        an acknowledgement that sits unread behind the very requests its
        worker should make room for would deadlock the connection.
        """
        if self.closed:
            raise ConnectionLost(self.close_reason or "the session is closed")
        payload = self.codec.encode(message.to_list())
        kind = type(message)
        self._send_payload(payload, getattr(message, "message_id", None), kind is Request or kind is Notification)

    def _send_payload(self, payload: bytes, ident: int | None, wait: bool = True) -> None:
        """Queue encoded ``payload`` (with message id ``ident``) and write it.

        With ``wait`` false the outbox may exceed ``max_unacked`` rather than block.
        """
        if ident is not None:
            self.last_sent = ident
            if self.resumable:
                self.outbox.append((ident, payload))
        link = self.link
        if link is not None:
            try:
                link.write(payload)
            except ConnectionLost:
                if not self.resumable:
                    raise
        elif not self.resumable:
            raise ConnectionLost(self.close_reason or "the session is closed")
        if wait and self.resumable and len(self.outbox) > self.config.max_unacked:
            self._wait_for_room()

    def send_nowait(self, payload: bytes, ident: int | None) -> None:
        """Queue encoded ``payload`` without blocking; raise OutboxFull if the peer is too slow.

        For broadcasts: one slow peer must not hold up the others.
        """
        if self.closed:
            raise ConnectionLost(self.close_reason or "the session is closed")
        if self.resumable and len(self.outbox) >= self.config.max_unacked:
            raise OutboxFull(f"{len(self.outbox)} messages await acknowledgement")
        link = self.link
        if link is not None and not link.write_nowait(payload):
            raise OutboxFull(f"{link.buffered} bytes wait for a slow reader")
        if link is None and not self.resumable:
            raise ConnectionLost(self.close_reason or "the session is closed")
        if ident is not None:
            self.last_sent = ident
            if self.resumable:
                self.outbox.append((ident, payload))

    def _wait_for_room(self) -> None:
        """Block until the outbox is below its bound, the session ends, or the timeout passes."""
        deadline = self.clock() + self.config.outbox_timeout
        while len(self.outbox) > self.config.max_unacked and not self.closed:
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise OutboxFull(f"{len(self.outbox)} messages unacknowledged for {self.config.outbox_timeout} s")
            room = self._room
            if room is None:
                room = self._room = Event()
            room.wait(remaining)
        if self.closed:
            raise ConnectionLost(self.close_reason or "the session is closed")

    def _wake_senders(self) -> None:
        """Wake senders waiting for room in the outbox."""
        room, self._room = self._room, None
        if room is not None:
            room.set()

    def _acknowledged(self, ident: int) -> None:
        """Drop outbox entries up to ``ident``, which the peer has received."""
        if ident > self.last_sent:
            log.warning(
                "session %s: peer acknowledged id %d, never sent (last %d)", self.session_id, ident, self.last_sent
            )
            ident = self.last_sent
        if ident <= self.peer_acked:
            return
        self.peer_acked = ident
        outbox = self.outbox
        while outbox and outbox[0][0] <= ident:
            outbox.popleft()
        if self._room is not None and len(outbox) <= self.config.max_unacked:
            self._wake_senders()

    def send_heartbeat(self) -> None:
        """Send ``[0, last_received]`` without blocking (dropped if the socket is backed up)."""
        self._last_heartbeat = self.clock()
        self._unacked_received = 0
        link = self.link
        if link is not None and not link.closed:
            link.write_nowait(self.codec.encode([0, self.last_received]))

    # -- receiving --------------------------------------------------------

    def frame_received(self, frame: bytes) -> None:
        """Handle one inbound frame from the current link."""
        self.last_seen = self.clock()
        try:
            message = parse_frame(self.codec, frame)
        except ProtocolError as exc:
            self.reject(exc)
            return
        kind = type(message)
        if kind is Heartbeat:
            self._acknowledged(message.last_message_id)  # type: ignore[attr-defined]
            return
        if kind is Disconnect:
            self.peer_disconnecting = True
            self.deliver(message)
            return
        ident = message.message_id  # type: ignore[attr-defined]
        if ident <= self.last_received and self.resumable:
            self.duplicates_dropped += 1
            log.info("session %s dropped duplicate message id %d", self.session_id, ident)
            return
        if ident > self.last_received:
            self.last_received = ident
        if self.handshaken:
            self._unacked_received += 1
            if self._unacked_received >= self.ack_every:
                self.send_heartbeat()
        # Delivery blocks while the engine's handlers are all busy, and meanwhile nothing is read:
        # the peer's frames wait unread, so its silence is not judged until delivery is done.
        self._delivering += 1
        try:
            self.deliver(message)
        finally:
            self._delivering -= 1
            self.last_seen = self.clock()

    def reject(self, exc: ProtocolError) -> None:
        """Answer bad input: an Error reply if its request id is known, else close the link."""
        if self.closed:
            return
        engine = self.engine
        reply = error_reply_for(engine, exc) if engine is not None else None
        if reply is not None:
            log.warning("session %s: invalid request %d: %s", self.session_id, reply.request_message_id, exc)
            # This runs on the reading greenlet, which must not wait for outbox room: only
            # reading the peer's acknowledgements makes room.
            try:
                self._send_payload(self.codec.encode(reply.to_list()), reply.message_id, wait=False)
            except ConnectionLost:
                pass
            return
        log.warning("session %s: closing connection from %s: %s", self.session_id, self.peer_address, exc)
        self.close(f"protocol error: {exc}")

    # -- timers -----------------------------------------------------------

    def _start_timer(self) -> None:
        """Start the greenlet that calls :meth:`tick`, if any timer is configured."""
        if self._timer is not None or self.closed:
            return
        config = self.config
        periods = [p for p in (self.heartbeat_interval, config.heartbeat_timeout, config.resume_grace) if p]
        if not (self.resumable or self.handshaken) or not periods:
            return
        self._timer = gevent.spawn(self._timer_loop, min(periods) / 4)

    def _timer_loop(self, period: float) -> None:
        """Call :meth:`tick` every ``period`` seconds until the session closes."""
        try:
            while not self.closed:
                gevent.sleep(period)
                self.tick(self.clock())
        finally:
            self._timer = None

    def tick(self, now: float) -> None:
        """Do the timed work due at ``now``: heartbeat, liveness check, resume deadline."""
        config = self.config
        link = self.link
        if link is not None:
            timeout, silent = config.heartbeat_timeout, now - self.last_seen
            if self.handshaken and timeout and silent > timeout and not self._delivering:
                log.warning("session %s: peer silent for %.1f s, declared dead", self.session_id, silent)
                link.close(f"no frame from the peer for {timeout} s")
            elif self.handshaken and self.heartbeat_interval and now - self._last_heartbeat >= self.heartbeat_interval:
                self.send_heartbeat()
        elif self._detached_at is not None and not self.closed:
            if now - self._detached_at >= (config.resume_grace or 0):
                self.close(f"not resumed within {config.resume_grace} s")

    # -- ending -----------------------------------------------------------

    def disconnect(self, timeout: float | None = None) -> None:
        """Send Disconnect, wait (yielding) up to ``timeout`` for in-flight handlers, then close."""
        if self.closed:
            return
        try:
            self._send_payload(self.codec.encode(Disconnect().to_list()), None)
        except ConnectionLost:
            pass
        if self.engine is not None:
            self.engine.join_handlers(timeout)
        self.close("disconnected")

    def close(self, reason: str = "closed locally") -> None:
        """End the session: close its link, fail pending requests, run close callbacks. Idempotent."""
        if self.closed:
            return
        self.close_reason = reason
        link, self.link = self.link, None
        if link is not None:
            link.on_lost = None
            if self._owes_goodbye(link):
                # Tell a handshaken peer this session is over, or its side of a resumable session
                # (engine, outbox, timer) waits ``resume_grace`` for a resume that never comes.
                link.write_final(self.codec.encode(Disconnect().to_list()))
            link.close(reason)
        self.outbox.clear()
        self._wake_senders()
        timer = self._timer
        if timer is not None and timer is not gevent.getcurrent():
            timer.kill(block=False)
        self.lost(reason)
        callbacks, self.on_closed = self.on_closed, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("session close callback %r raised", callback)

    def _owes_goodbye(self, link: SocketLink) -> bool:
        """Whether closing should first send Disconnect on ``link`` (not sent yet, peer not leaving)."""
        engine = self.engine
        return (
            self.handshaken
            and not link.closed
            and not self.peer_disconnecting
            and not (engine is not None and engine.peer_disconnecting)
        )

    def restart(self, session_id: str) -> None:
        """Start over as a new session after the peer forgot the old one (it restarted).

        Pending requests fail with ConnectionLost; unacknowledged messages are
        dropped (the peer that should have got them is gone); numbering of
        received ids starts again, so the new peer's messages are not taken
        for duplicates.
        """
        log.warning("session %s replaced by new session %s: the peer restarted", self.session_id, session_id)
        self.session_id = session_id
        self.outbox.clear()
        self.last_received = self.peer_acked = 0
        self.last_sent = 0
        self._wake_senders()
        if self.engine is not None:
            self.engine.fail_pending("the peer restarted; its session is gone")

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("detached" if self.link is None else "attached")
        return f"<Session {self.session_id} {state} peer={self.peer_address}>"
