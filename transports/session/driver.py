"""Session: the gevent driver around :class:`~transports.session.protocol.SessionProtocol`.

A Session is the transport an Engine sees on TCP and WebSocket. It
survives reconnects; each connection is a :class:`~transports.link.SocketLink`
that reports upward only through the callbacks the session gives it (a
frame arrived, a probe was answered, the peer broke the framing, the link
ended). The rules (outbox, acknowledgements, deduplication, liveness,
resume grace) live in the protocol; this driver moves bytes between it, the
link and the Engine, owns the one timer that fires at the protocol's next
deadline, and makes senders wait for outbox room.

A *plain* session (a peer that skipped the handshake) keeps no outbox and
sends no heartbeats: its connection is the session. A *resumable* session
outlives its connection for ``resume_grace`` seconds; the pending requests
on its engine keep waiting meanwhile. Time comes from ``clock``;
:meth:`Session.handle_timer` does the timed work due now, so tests can
drive every timer without sleeping.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event

from rpcengine.errors import ConnectionLost, OutboxFull, ProtocolError
from rpcengine.messages import Cancel, Disconnect, Message, Notification, Request, StreamCredit
from rpcengine.wire import bad_frame_reply, disconnect_frame, has_request_id, parse_frame
from transports.base import Transport
from transports.link import SocketLink
from transports.session.config import SessionConfig
from transports.session.protocol import SessionProtocol, TimerAction

__all__ = ["BACKLOG_MESSAGES", "Session", "new_session_id"]

log = logging.getLogger(__name__)

#: Messages read ahead while every handler is busy (also bounded by ``max_buffer`` bytes) before the reader waits.
BACKLOG_MESSAGES = 1024


def new_session_id() -> str:
    """Return a new unguessable session id."""
    return secrets.token_urlsafe(16)


class Session(Transport):
    """The Engine-facing transport of one peer, across one or more connections."""

    #: What the peer's frames are: rpcengine's message lists (a JSON-RPC 2.0 session says ``"jsonrpc"``).
    dialect = "rpcengine"

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
        #: What a client must present with ``session_id`` to resume (a server makes it; a client is told it).
        self.secret = new_session_id()
        self.clock = clock
        self.peer_address = peer_address
        self.link: SocketLink | None = None
        self.protocol = SessionProtocol(
            self.codec,
            handshaken=resumable if handshaken is None else handshaken,
            resumable=resumable,
            heartbeat_interval=config.heartbeat_interval,
            heartbeat_timeout=config.heartbeat_timeout,
            resume_grace=config.resume_grace,
            max_unacked=config.max_unacked,
            ack_every=config.ack_every,
            now=clock(),
            frame_timeout=config.frame_timeout,
            idle_timeout=config.idle_timeout,
        )
        #: Called with the session and the link it lost when a resumable session detaches (clients reconnect here).
        self.on_detached: Callable[[Session, SocketLink], None] | None = None
        self.on_closed: list[Callable[[Session], None]] = []
        self.close_reason = ""
        self._room: Event | None = None
        self._timer: Any = None
        # Messages read while every handler was busy, in order (see frame_received).
        self._backlog: list[tuple[Message, int]] = []  # (a list: an empty deque costs 760 bytes)
        self._backlog_bytes = 0
        self._backlog_room: Event | None = None
        self._deliverer: gevent.Greenlet | None = None
        self._max_buffer = config.max_buffer

    # -- what the protocol knows ------------------------------------------

    @property
    def resumable(self) -> bool:
        """Whether the session outlives its connection (for ``resume_grace``)."""
        return self.protocol.resumable

    @property
    def handshaken(self) -> bool:
        """Whether both sides did the handshake: heartbeats flow and the peer's silence is watched."""
        return self.protocol.handshaken

    @property
    def heartbeat_interval(self) -> float | None:
        """How often heartbeats go out: the configured interval, or less if the peer announced less."""
        return self.protocol.heartbeat_interval

    @heartbeat_interval.setter
    def heartbeat_interval(self, interval: float | None) -> None:
        self.protocol.heartbeat_interval = interval

    @property
    def last_received(self) -> int:
        """Highest message id received from the peer."""
        return self.protocol.last_received

    @property
    def peer_acked(self) -> int:
        """Highest of our message ids the peer has acknowledged."""
        return self.protocol.peer_acked

    @property
    def last_sent(self) -> int:
        """Highest message id sent in this session."""
        return self.protocol.last_sent

    @property
    def outbox(self) -> Any:
        """The sent messages awaiting acknowledgement, as ``(message_id, payload)`` pairs (read only)."""
        return self.protocol.outbox

    @property
    def duplicates_dropped(self) -> int:
        """How many received messages were dropped as already handled."""
        return self.protocol.duplicates_dropped

    @property
    def peer_disconnecting(self) -> bool:
        """Whether the peer sent Disconnect."""
        return self.protocol.peer_leaving

    @property
    def leaving(self) -> bool:
        """Whether either side sent Disconnect: new requests fail with ConnectionLost."""
        return self.protocol.leaving

    @property
    def backlog_bytes(self) -> int:
        """Bytes of messages read while every handler was busy, not yet handed to the engine."""
        return self._backlog_bytes

    @property
    def detached(self) -> bool:
        """Whether the session is waiting for a connection (resumable, link lost, not closed)."""
        return self.link is None and not self.closed

    def peer_outbox_bound(self, max_unacked: int | None) -> None:
        """Acknowledge often enough for a peer that announced it keeps at most ``max_unacked`` unacknowledged."""
        self.protocol.peer_outbox_bound(max_unacked)

    # -- connection management -------------------------------------------

    def attach(self, link: SocketLink, peer_ack: int = 0) -> None:
        """Make ``link`` the current connection; resend what the peer has not acknowledged."""
        old = self.link
        if old is not None and old is not link:
            old.detach_callbacks()
            old.close("replaced by a resumed connection")
        self.link = link
        link.receiver = self.frame_received
        link.on_lost = self._link_lost
        link.on_protocol_error = self._link_protocol_error
        link.on_activity = self._activity
        link.on_partial = self._partial
        link.ready = self._ready
        budget = self.protocol.budget
        if budget is not None and link.budget is None:
            link.budget = budget
        protocol = self.protocol
        protocol.probe = link.can_probe and not protocol.handshaken
        if link.closed:
            # It ended before it was ours (a failed write of the handshake answer, say): its
            # end was reported to nobody, so report it here or the session waits on it forever.
            protocol.attached = True
            self._link_lost(link, link.close_reason or "the connection is closed")
            return
        resend = protocol.connection_made(self.clock(), peer_ack)
        if resend:
            log.info("session resending %d unacknowledged messages to %s", len(resend), self.peer_address)
            try:
                link.write_many(resend)
            except ConnectionLost:
                return
        self._arm_timer()

    def _link_lost(self, link: SocketLink, reason: str) -> None:
        """Link callback: the connection ended; detach, or end the session if it cannot resume."""
        if link is not self.link:
            return
        self.link = None
        if self.closed:
            return
        if self._ending is not None or not self.protocol.connection_lost(self.clock()):
            self.close(self._ending or reason)
            return
        log.info("session lost its connection from %s (%s); waiting for resume", self.peer_address, reason)
        self._wake_senders()
        self._arm_timer()
        if self.on_detached is not None:
            self.on_detached(self, link)

    def _link_protocol_error(self, link: SocketLink, exc: ProtocolError) -> None:
        """Link callback: the peer broke the framing and the link stopped reading; answer what came, then close."""
        if link is self.link:
            log.warning("closing connection from %s: %s", self.peer_address, exc)
            self.finish(f"protocol error: {exc}", answers_may_come=False)

    def _ready(self) -> bool:
        """Link callback: whether :meth:`frame_received` would take a frame now without blocking.

        True unless the socket holds more than ``max_buffer`` for the peer,
        messages wait in the backlog, or every handler is busy: then the
        link reads on its greenlet, where the waiting is done.
        """
        link = self.link
        engine = self.engine
        return (
            link is not None
            and link.buffered <= self._max_buffer
            and not self._backlog
            and engine is not None
            and not engine.saturated
        )

    def _activity(self) -> None:
        """Link callback: the peer answered a probe."""
        self.protocol.activity(self.clock())

    def _partial(self, started: bool) -> None:
        """Link callback: a frame was begun (it must complete within ``frame_timeout``), or none is half done."""
        if started:
            self.protocol.partial_started(self.clock())
            self._arm_timer()
        else:
            self.protocol.partial_done()

    # -- sending ----------------------------------------------------------

    def send(self, message: Message, **kwargs: Any) -> None:
        """Encode ``message``, keep it for resend, and write it; may block (yield) for backpressure.

        Raises ConnectionLost once the session has ended (and for a new
        Request once either side sent Disconnect), EncodeError if the message
        cannot be encoded, and OutboxFull if the peer acknowledges nothing for
        ``outbox_timeout`` while ``max_unacked`` messages wait.

        Only messages this side starts (Requests, Notifications) wait for
        room in the outbox. Answers never do: they are bounded by the
        requests the peer may have unacknowledged, and an answer waiting for
        an acknowledgement that sits unread behind the very requests its
        worker should make room for would deadlock the connection.
        """
        if self.closed:
            raise ConnectionLost(self.close_reason or "the session is closed")
        kind = type(message)
        protocol = self.protocol
        if kind is Request and protocol.leaving:
            raise ConnectionLost("the session is closing (Disconnect sent or received)")
        payload = self.codec.encode(message.to_list())
        self._send_payload(payload, getattr(message, "message_id", None), kind is Request or kind is Notification)

    def _send_payload(self, payload: bytes, ident: int | None, wait: bool = True) -> None:
        """Record encoded ``payload`` (with message id ``ident``) and write it.

        With ``wait`` false the outbox may exceed ``max_unacked`` rather than block.
        """
        protocol = self.protocol
        if ident is not None:
            protocol.message_sent(ident, payload)
        link = self.link
        if link is not None:
            try:
                # A writer (an answer's handler too) waits while the socket buffer is over max_buffer:
                # so a reader that does not read costs max_buffer plus one answer per running handler.
                link.write(payload)
            except ConnectionLost:
                if not protocol.resumable:
                    raise
        elif not protocol.resumable:
            raise ConnectionLost(self.close_reason or "the session is closed")
        if wait and protocol.resumable and len(protocol.outbox) > protocol.max_unacked:
            self._wait_for_room()

    def send_nowait(self, payload: bytes, ident: int | None) -> None:
        """Queue encoded ``payload`` without blocking; raise OutboxFull if the peer is too slow.

        For broadcasts: one slow peer must not hold up the others.
        """
        if self.closed:
            raise ConnectionLost(self.close_reason or "the session is closed")
        protocol = self.protocol
        if protocol.resumable and protocol.outbox_full:
            raise OutboxFull(f"{len(protocol.outbox)} messages await acknowledgement")
        link = self.link
        if link is not None and not link.write_nowait(payload):
            raise OutboxFull(f"{link.buffered} bytes wait for a slow reader")
        if link is None and not protocol.resumable:
            raise ConnectionLost(self.close_reason or "the session is closed")
        if ident is not None:
            protocol.message_sent(ident, payload)

    @property
    def congested(self) -> bool:
        """Whether ``max_unacked`` messages await acknowledgement: a new Request or Notification must wait."""
        protocol = self.protocol
        return protocol.resumable and len(protocol.outbox) >= protocol.max_unacked

    def wait_for_room(self, timeout: float | None = None) -> None:
        """Block (yielding) until the outbox has room for one more message.

        Raises OutboxFull if the peer acknowledges nothing for ``timeout``
        (default ``outbox_timeout``), ConnectionLost if the session ends meanwhile.
        """
        self._wait_for_room(room_for_one=True, timeout=timeout)

    def _wait_for_room(self, room_for_one: bool = False, timeout: float | None = None) -> None:
        """Block until the outbox is below its bound (or has room for one more), the session ends, or time is up."""
        protocol = self.protocol
        limit = self.config.outbox_timeout if timeout is None else timeout
        deadline = self.clock() + limit
        bound = protocol.max_unacked - 1 if room_for_one else protocol.max_unacked
        while len(protocol.outbox) > bound and not self.closed:
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise OutboxFull(f"{len(protocol.outbox)} messages unacknowledged for {limit} s")
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

    def _write_protocol_data(self) -> None:
        """Write what the protocol queued itself (heartbeats) without blocking; dropped if the socket is backed up."""
        payloads = self.protocol.data_to_send()
        link = self.link
        if link is not None and not link.closed:
            for payload in payloads:
                link.write_nowait(payload)

    # -- receiving --------------------------------------------------------

    def frame_received(self, frame: bytes) -> None:
        """Link callback: handle one inbound frame.

        Blocks (yielding) while the link holds more than ``max_buffer`` bytes
        for a peer that does not read: its next requests wait unread.
        """
        link = self.link
        if link is not None and link.buffered > self._max_buffer and not self._wait_drained(link):
            return
        try:
            message = parse_frame(self.codec, frame, self.features)
        except ProtocolError as exc:
            self.reject(exc)
            return
        self.message_received(message, len(frame))

    def _wait_drained(self, link: SocketLink) -> bool:
        """Block (yielding) until the peer has read what ``link`` holds; False if the link ended meanwhile."""
        self.protocol.reading_paused()
        try:
            link.wait_drained()
        except ConnectionLost:
            return False
        finally:
            self.protocol.delivered(self.clock())
        return True

    def message_received(self, message: Message, size: int) -> None:
        """Handle one parsed inbound message of ``size`` bytes: acknowledge, queue or deliver it.

        Blocks (yielding) while the backlog of messages read ahead is full.
        """
        protocol = self.protocol
        clock = self.clock
        if not protocol.message_received(message, clock()):
            # A heartbeat (or a duplicate): an acknowledgement may have made room for waiting senders.
            if self._room is not None and len(protocol.outbox) <= protocol.max_unacked:
                self._wake_senders()
            return
        if protocol.output:
            self._write_protocol_data()
        kind = type(message)
        work = kind is Request or kind is Notification  # goes to a handler (answers and Disconnect do not)
        if work and self._ending is not None:
            protocol.delivered(clock())
            log.debug("dropped %r from %s: the session is ending", message, self.peer_address)
            return
        engine = self.engine
        if (self._backlog and kind is not Cancel and kind is not StreamCredit) or (
            work and engine is not None and engine.saturated
        ):
            # (A Cancel never waits behind the work it cancels, nor a StreamCredit behind the work
            # that waits for it: the engine takes them at once.)
            # Every handler is busy: keep reading (so that the peer's end is seen at once), and
            # queue what comes, in order, up to a bound; past it the reader waits (see _queue).
            protocol.delivered(clock())
            self._queue(message, size)
            return
        if engine is None:
            raise RuntimeError("no engine bound to this transport")
        try:
            engine.handle_message(message)
        finally:
            protocol.delivered(clock())
        if kind is Disconnect:
            self.finish("the peer disconnected")

    def _queue(self, message: Message, size: int) -> None:
        """Add ``message`` to the backlog; block the reader (yielding) while the backlog is over its bound."""
        self._backlog.append((message, size))
        self._backlog_bytes += size
        budget = self.protocol.budget
        if budget is not None:
            budget.add(size)
        if self._deliverer is None:
            self._deliverer = gevent.spawn(self._deliver_backlog)
        config = self.config
        protocol = self.protocol
        while (len(self._backlog) >= BACKLOG_MESSAGES or self._backlog_bytes > config.max_buffer) and not self.closed:
            room = self._backlog_room
            if room is None:
                room = self._backlog_room = Event()
            protocol.reading_paused()
            try:
                room.wait()
            finally:
                protocol.delivered(self.clock())

    def _deliver_backlog(self) -> None:
        """Deliver the backlog in order (blocking, yielding, while handlers are busy) until it is empty."""
        try:
            while self._backlog and not self.closed:
                message, size = self._backlog.pop(0)
                self._backlog_bytes -= size
                if self.protocol.budget is not None:
                    self.protocol.budget.release(size)
                room = self._backlog_room
                if room is not None and len(self._backlog) < BACKLOG_MESSAGES // 2:
                    self._backlog_room = None
                    room.set()
                self.deliver(message)
                if type(message) is Disconnect:
                    self.finish("the peer disconnected")
        finally:
            self._deliverer = None
            if self._backlog and not self.closed:
                self._deliverer = gevent.spawn(self._deliver_backlog)

    def reject(self, exc: ProtocolError) -> None:
        """Answer bad input: an Error reply if its request id is known, else close after answering what came."""
        if self.closed:
            return
        engine = self.engine
        reply = bad_frame_reply(exc, engine.next_message_id()) if engine is not None and has_request_id(exc) else None
        if reply is not None:
            log.warning("invalid request %d from %s: %s", reply.request_message_id, self.peer_address, exc)
            # This runs on the reading greenlet, which must not wait for outbox room: only
            # reading the peer's acknowledgements makes room.
            try:
                self._send_payload(self.codec.encode(reply.to_list()), reply.message_id, wait=False)
            except ConnectionLost:
                log.debug("error reply to %s not sent: the connection is gone", self.peer_address)
            return
        log.warning("closing connection from %s: %s", self.peer_address, exc)
        link = self.link
        if link is not None:
            link.stop_reading()
        self.finish(f"protocol error: {exc}", answers_may_come=False)

    # -- timers -----------------------------------------------------------

    def _arm_timer(self) -> None:
        """(Re)start the one timer at the protocol's next deadline (none if nothing is timed)."""
        timer = self._timer
        if timer is not None:
            timer.stop()
            self._timer = None
        deadline = self.protocol.next_deadline()
        if deadline is None or self.closed:
            return
        timer = self._timer = gevent.get_hub().loop.timer(max(0.0, deadline - self.clock()))
        timer.start(self._timer_fired)

    def _timer_fired(self) -> None:
        """Hub callback of the timer: do the work due now; a close (which runs hooks) goes to a greenlet."""
        self._timer = None
        action = self.protocol.handle_timer(self.clock())
        if action is not TimerAction.NONE and action is not TimerAction.PROBE:
            gevent.spawn(self._act, action)
        else:
            self._act(action)

    def handle_timer(self, now: float) -> TimerAction:
        """Do the timed work due at ``now`` (heartbeat, probe, liveness, resume deadline); return what it was.

        The session's own timer calls this at each deadline; tests that
        drive time themselves call it directly. Does not block.
        """
        action = self.protocol.handle_timer(now)
        self._act(action)
        return action

    def _act(self, action: TimerAction) -> None:
        """Do what the protocol's timer asked for, then set the timer for the next deadline."""
        if action is TimerAction.PEER_DEAD:
            link = self.link
            timeout = self.config.heartbeat_timeout
            log.warning("peer %s silent for %s s, declared dead", self.peer_address, timeout)
            if link is not None:
                link.close(f"no frame from the peer for {timeout} s")
        elif action is TimerAction.EXPIRED:
            self.close(f"not resumed within {self.config.resume_grace} s")
        elif action is TimerAction.FRAME_TIMEOUT or action is TimerAction.IDLE:
            link = self.link
            if action is TimerAction.FRAME_TIMEOUT:
                reason = f"a frame was not completed within {self.config.frame_timeout} s"
            else:
                reason = f"no message for {self.config.idle_timeout} s"
            log.warning("closing connection from %s: %s", self.peer_address, reason)
            if link is not None:
                link.close(reason)
        elif action is TimerAction.PROBE:
            link = self.link
            if link is not None:
                link.probe()
        elif self.protocol.output:
            self._write_protocol_data()
        self._arm_timer()

    #: The seed-era name of :meth:`handle_timer`.
    tick = handle_timer

    def send_heartbeat(self) -> None:
        """Send ``[0, last_received]`` now, without blocking (dropped if the socket is backed up)."""
        self.protocol.heartbeat(self.clock())
        self._write_protocol_data()

    # -- ending -----------------------------------------------------------

    def finish(self, reason: str, timeout: float | None = None, *, answers_may_come: bool = True) -> None:
        """Close once in-flight work is done (see :meth:`Transport.finish`); waits up to ``drain_timeout``."""
        limit = self.config.drain_timeout if timeout is None else timeout
        super().finish(reason, limit, answers_may_come=answers_may_come)

    def flush(self, timeout: float) -> None:
        """Wait (yielding) up to ``timeout`` for the link's queue to reach the socket."""
        link = self.link
        if link is not None:
            link.flush_quietly(timeout)

    def end(self, reason: str) -> None:
        """Close the session for ``reason``."""
        self.close(reason)

    def disconnect(self, timeout: float | None = None) -> None:
        """Send Disconnect, wait (yielding) up to ``timeout`` for in-flight handlers, then close."""
        if self.closed:
            return
        self.say_goodbye()
        if self.engine is not None:
            self.engine.join_handlers(timeout)
        self.close("disconnected")

    def say_goodbye(self) -> bool:
        """Send Disconnect without blocking; new requests fail from now on. Return whether it was queued."""
        if self.closed:
            return False
        self.protocol.disconnect_sent()
        try:
            self.send_nowait(disconnect_frame(self.codec), None)
        except (ConnectionLost, OutboxFull) as exc:
            log.debug("no Disconnect for %s: %s", self.peer_address, exc)
            return False
        return True

    def close(self, reason: str = "closed locally") -> None:
        """End the session: close its link, fail pending requests, run close callbacks. Idempotent."""
        if self.closed:
            return
        self.close_reason = reason
        protocol = self.protocol
        owes_goodbye = protocol.owes_goodbye()
        protocol.close()
        link, self.link = self.link, None
        if link is not None:
            link.detach_callbacks()
            if owes_goodbye and not link.closed:
                # Tell a handshaken peer this session is over, or its side of a resumable session
                # (engine, outbox, timer) waits ``resume_grace`` for a resume that never comes.
                link.write_final(disconnect_frame(self.codec))
            link.close(reason)
        self._wake_senders()
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.stop()
        if self._backlog:
            # Their connection is gone for good: requests among them could not be answered.
            log.info("dropping %d messages from %s not yet handled", len(self._backlog), self.peer_address)
            self._backlog.clear()
            if self.protocol.budget is not None:
                self.protocol.budget.release(self._backlog_bytes)
            self._backlog_bytes = 0
        room, self._backlog_room = self._backlog_room, None
        if room is not None:
            room.set()
        self.lost(reason)
        callbacks, self.on_closed = self.on_closed, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("session close callback %r raised", callback)

    def restart(self, session_id: str) -> None:
        """Start over as a new session after the peer forgot the old one (it restarted).

        Pending requests fail with ConnectionLost; unacknowledged messages are
        dropped (the peer that should have got them is gone); numbering of
        received ids starts again, so the new peer's messages are not taken
        for duplicates.
        """
        log.warning("session replaced by a new one: the peer %s restarted", self.peer_address)
        self.session_id = session_id
        self.protocol.restart()
        self._wake_senders()
        if self.engine is not None:
            self.engine.fail_pending("the peer restarted; its session is gone")

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("detached" if self.link is None else "attached")
        return f"<Session {state} peer={self.peer_address}>"
