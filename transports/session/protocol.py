"""SessionProtocol: the session rules as a state machine with no I/O and no clock of its own.

It keeps, for one peer across one or more connections:

* the **outbox**: every sent message with an id, as encoded bytes, until the
  peer acknowledges it with ``[0, last_message_id]``; after a reconnect the
  messages the peer has not seen are sent again, in order;
* **deduplication**: a message whose id is not above the last one received
  has been handled already and is dropped (counted and logged, never
  silently: the first message of a session is always taken, even with id 0,
  which mushroom peers start from);
* **acknowledgements**: ``[0, last_received]`` after every ``ack_every``
  received messages and every ``heartbeat_interval``;
* **liveness**, the one rule per connection: the peer is declared dead after
  ``heartbeat_timeout`` without a whole message (time while this side does
  not read, because its handlers are all busy, does not count). On a plain
  connection that can be probed (a WebSocket ping), a probe goes out every
  ``heartbeat_interval`` and its answer counts as a message;
* the **resume grace**: a resumable session that lost its connection waits
  that long for a new one;
* who is **leaving**: once a Disconnect was received (or sent), no new
  request goes out and a lost connection ends the session.

The driver (:class:`~transports.session.driver.Session`) feeds it messages
and the current time and does what it says: it writes what
:meth:`data_to_send` returns, delivers what :meth:`message_received` accepts,
and calls :meth:`handle_timer` at :meth:`next_deadline`. Nothing here blocks,
yields or reads a clock, so every rule can be tested by passing times in.
"""

from __future__ import annotations

import logging
from collections import deque
from enum import Enum

from rpcengine.codec import Codec
from rpcengine.messages import Disconnect, Heartbeat, Message
from rpcengine.wire import heartbeat_frame
from transports.session.budget import MemoryBudget

__all__ = ["SessionProtocol", "TimerAction"]

log = logging.getLogger(__name__)

#: The most message ids a peer may skip and send later (a peer sending over several connections at
#: once delivers out of order); an id skipped beyond this counts as a duplicate when it comes.
MAX_ID_GAP = 64


class TimerAction(Enum):
    """What :meth:`SessionProtocol.handle_timer` asks the driver to do."""

    #: Nothing beyond writing :meth:`SessionProtocol.data_to_send` (a heartbeat may be there).
    NONE = "none"
    #: Send a transport-level probe (a WebSocket ping) to a plain peer.
    PROBE = "probe"
    #: The peer is silent past ``heartbeat_timeout``: close the connection.
    PEER_DEAD = "peer dead"
    #: The resume grace passed without a new connection: end the session.
    EXPIRED = "expired"
    #: A frame was begun and not completed within ``frame_timeout``: close the connection.
    FRAME_TIMEOUT = "frame timeout"
    #: A plain session got no message for ``idle_timeout``: close the connection.
    IDLE = "idle"


class SessionProtocol:
    """The state of one session; every method takes the time it happens at as ``now`` where it matters.

    ``handshaken``: both sides did the session handshake (heartbeats and
    acknowledgements flow, silence is judged). ``resumable``: the session
    outlives its connection for ``resume_grace`` seconds and keeps an
    outbox. ``probe``: the connection can probe a plain peer (WebSocket
    pings), which then gets a liveness rule too.
    """

    # Slots, not a dict: one per connection, and 31 attributes make a 1.6 KB dict.
    __slots__ = (
        "_detached_at",
        "_last_heartbeat",
        "_partial_since",
        "_skipped",
        "_unacked_received",
        "ack_every",
        "attached",
        "budget",
        "closed",
        "codec",
        "delivering",
        "duplicates_dropped",
        "frame_timeout",
        "handshaken",
        "heartbeat_interval",
        "heartbeat_timeout",
        "idle_timeout",
        "last_received",
        "last_seen",
        "last_sent",
        "leaving",
        "local_leaving",
        "max_unacked",
        "outbox",
        "outbox_bytes",
        "output",
        "peer_acked",
        "peer_leaving",
        "probe",
        "received_any",
        "resumable",
        "resume_grace",
    )

    def __init__(
        self,
        codec: Codec,
        *,
        handshaken: bool,
        resumable: bool,
        heartbeat_interval: float | None,
        heartbeat_timeout: float | None,
        resume_grace: float | None,
        max_unacked: int,
        ack_every: int,
        now: float,
        probe: bool = False,
        frame_timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.codec = codec
        self.handshaken = handshaken
        self.resumable = resumable
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.resume_grace = resume_grace
        self.max_unacked = max_unacked
        self.ack_every = ack_every
        self.probe = probe
        self.frame_timeout = frame_timeout
        self.idle_timeout = idle_timeout
        self._partial_since: float | None = None
        #: Highest message id received from the peer (what our heartbeats acknowledge).
        self.last_received = 0
        #: Whether any message with an id has been received in this session.
        self.received_any = False
        # Ids below last_received not received yet (None: none), each still welcome once.
        self._skipped: set[int] | None = None
        #: Highest of our message ids the peer has acknowledged.
        self.peer_acked = 0
        #: Highest message id sent in this session.
        self.last_sent = 0
        self.outbox: deque[tuple[int, bytes]] = deque()
        #: Bytes the outbox holds.
        self.outbox_bytes = 0
        #: The server-wide budget the outbox counts against (None: not counted).
        self.budget: MemoryBudget | None = None
        self.duplicates_dropped = 0
        #: The peer sent Disconnect: it takes no new requests and will close.
        self.peer_leaving = False
        #: This side sent Disconnect.
        self.local_leaving = False
        #: Whether either side sent Disconnect: no new request may go out.
        self.leaving = False
        self.attached = False
        self.closed = False
        self.last_seen = now
        self._last_heartbeat = now
        self._detached_at: float | None = None
        self._unacked_received = 0
        self.delivering = 0
        #: Payloads the protocol itself wants written (heartbeats), taken by :meth:`data_to_send`.
        self.output: list[bytes] = []

    # -- connection -------------------------------------------------------

    def connection_made(self, now: float, peer_ack: int = 0) -> list[bytes]:
        """A connection is attached; return the unacknowledged payloads to send again on it, in order."""
        self.attached = True
        self._detached_at = None
        self._partial_since = None
        self.last_seen = self._last_heartbeat = now
        self.acknowledged(peer_ack)
        return [payload for _, payload in self.outbox]

    def connection_lost(self, now: float) -> bool:
        """The connection ended; return whether the session waits for a resume (else it should end)."""
        self.attached = False
        if self.closed:
            return False
        if not self.resumable or self.peer_leaving or self.local_leaving or not self.resume_grace:
            return False
        self._detached_at = now
        return True

    def restart(self) -> None:
        """Start over after the peer forgot the session: nothing sent or received counts any more."""
        self._clear_outbox()
        self.last_received = self.peer_acked = self.last_sent = 0
        self.received_any = False
        self._skipped = None

    def close(self) -> None:
        """The session is over: drop the outbox; every deadline is gone."""
        self.closed = True
        self.attached = False
        self._clear_outbox()
        self.output.clear()

    def owes_goodbye(self) -> bool:
        """Whether closing should first send Disconnect (handshaken, and neither side said it yet)."""
        return self.handshaken and not self.peer_leaving and not self.local_leaving

    # -- sending ----------------------------------------------------------

    def message_sent(self, message_id: int, payload: bytes) -> None:
        """Record an outbound message with an id (kept for resend until acknowledged, if resumable)."""
        self.last_sent = message_id
        if self.resumable:
            self.outbox.append((message_id, payload))
            size = len(payload)
            self.outbox_bytes += size
            budget = self.budget
            if budget is not None:
                budget.add(size)

    def disconnect_sent(self) -> None:
        """This side sent Disconnect."""
        self.local_leaving = self.leaving = True

    @property
    def outbox_full(self) -> bool:
        """Whether ``max_unacked`` messages wait for acknowledgement (senders that may wait, wait)."""
        return len(self.outbox) >= self.max_unacked

    def acknowledged(self, message_id: int) -> bool:
        """The peer received our messages up to ``message_id``; return whether room was made."""
        if message_id > self.last_sent:
            log.warning("peer acknowledged id %d, never sent (last %d)", message_id, self.last_sent)
            message_id = self.last_sent
        if message_id <= self.peer_acked:
            return False
        self.peer_acked = message_id
        outbox = self.outbox
        freed = 0
        while outbox and outbox[0][0] <= message_id:
            freed += len(outbox.popleft()[1])
        self._freed(freed)
        return True

    def _freed(self, size: int) -> None:
        """The outbox let go of ``size`` bytes."""
        if size:
            self.outbox_bytes -= size
            if self.budget is not None:
                self.budget.release(size)

    def _clear_outbox(self) -> None:
        """Drop every message kept for resend."""
        self.outbox.clear()
        self._freed(self.outbox_bytes)

    def peer_outbox_bound(self, max_unacked: int | None) -> None:
        """Acknowledge often enough for a peer that keeps at most ``max_unacked`` messages unacknowledged."""
        if max_unacked is not None:
            self.ack_every = max(1, min(self.ack_every, max_unacked // 4))

    def data_to_send(self) -> list[bytes]:
        """Return (and forget) the payloads the protocol itself wants written: heartbeats."""
        out, self.output = self.output, []
        return out

    # -- receiving --------------------------------------------------------

    def message_received(self, message: Message, now: float) -> bool:
        """Take one inbound message; return whether to deliver it to the engine.

        Heartbeats are consumed here; duplicates are dropped (and counted);
        a Disconnect marks the peer as leaving and is delivered. When the
        message is to be delivered, the driver calls :meth:`delivered` once
        the engine has taken it.
        """
        self.last_seen = now
        kind = type(message)
        if kind is Heartbeat:
            self.acknowledged(message.last_message_id)  # type: ignore[attr-defined]
            return False
        if kind is Disconnect:
            self.peer_leaving = self.leaving = True
            return True
        ident: int = message.message_id  # type: ignore[attr-defined]
        last = self.last_received
        if ident > last or not self.received_any:
            if self.received_any and 1 < ident - last <= MAX_ID_GAP:
                # Ids skipped: on a stream they never come, but a peer sending over several
                # connections at once (mushroom's poll client: one POST per message) may
                # deliver them late. Each may come once.
                skipped = self._skipped
                if skipped is None:
                    skipped = self._skipped = set()
                skipped.update(range(last + 1, ident))
                if len(skipped) > MAX_ID_GAP:
                    skipped.clear()  # a peer this far out of order loses them: they count as duplicates
            self.last_received = ident
            self.received_any = True
        elif self._skipped and ident in self._skipped:
            self._skipped.discard(ident)
        elif self.resumable:
            self.duplicates_dropped += 1
            log.info("dropped duplicate message id %d (last received %d)", ident, self.last_received)
            return False
        if self.handshaken:
            self._unacked_received += 1
            if self._unacked_received >= self.ack_every:
                self.heartbeat(now)
        self.delivering += 1
        return True

    def reading_paused(self) -> None:
        """This side stopped reading (its handlers are all busy): the peer's silence does not count meanwhile.

        End the pause with :meth:`delivered`.
        """
        self.delivering += 1

    def delivered(self, now: float) -> None:
        """The engine took the message :meth:`message_received` accepted (it may have blocked meanwhile)."""
        self.delivering -= 1
        self.last_seen = now

    def partial_started(self, now: float) -> None:
        """The connection began a frame it has not completed: it must be done within ``frame_timeout``."""
        if self._partial_since is None:
            self._partial_since = now

    def partial_done(self) -> None:
        """No frame is half received any more."""
        self._partial_since = None

    def activity(self, now: float) -> None:
        """The peer answered a probe (a WebSocket pong): it is alive."""
        self.last_seen = now

    def heartbeat(self, now: float) -> None:
        """Queue ``[0, last_received]`` (to :attr:`output`) now."""
        self._last_heartbeat = now
        self._unacked_received = 0
        self.output.append(heartbeat_frame(self.codec, self.last_received))

    # -- time -------------------------------------------------------------

    @property
    def _judges_silence(self) -> bool:
        """Whether this connection has a liveness rule: heartbeats flow, or a plain peer can be probed."""
        return bool(self.heartbeat_timeout) and (self.handshaken or self.probe)

    @property
    def _beats(self) -> bool:
        """Whether something goes out every ``heartbeat_interval``: a heartbeat, or a probe."""
        return bool(self.heartbeat_interval) and (self.handshaken or self.probe)

    def next_deadline(self) -> float | None:
        """Return when :meth:`handle_timer` must next run, or None if nothing is timed."""
        if self.closed:
            return None
        if not self.attached:
            if self._detached_at is None:
                return None
            return self._detached_at + (self.resume_grace or 0)
        deadline = None
        if self._beats:
            deadline = self._last_heartbeat + self.heartbeat_interval  # type: ignore[operator]
        if self._judges_silence:
            silence = self.last_seen + self.heartbeat_timeout  # type: ignore[operator]
            deadline = silence if deadline is None else min(deadline, silence)
        for extra in self._progress_deadlines():
            deadline = extra if deadline is None else min(deadline, extra)
        return deadline

    def _progress_deadlines(self) -> list[float]:
        """The deadlines that need progress from the peer: a begun frame, and a plain session's idle limit."""
        deadlines = []
        if self.frame_timeout and self._partial_since is not None:
            deadlines.append(self._partial_since + self.frame_timeout)
        if self.idle_timeout and not self.handshaken:
            deadlines.append(self.last_seen + self.idle_timeout)
        return deadlines

    def handle_timer(self, now: float) -> TimerAction:
        """Do the timed work due at ``now``; return what the driver must do beyond writing the heartbeats."""
        if self.closed:
            return TimerAction.NONE
        if not self.attached:
            if self._detached_at is not None and now - self._detached_at >= (self.resume_grace or 0):
                self._detached_at = None
                return TimerAction.EXPIRED
            return TimerAction.NONE
        if self.delivering:
            # This side is not reading (its handlers are all busy): what the peer sent waits unread.
            self.last_seen = now
        if self._judges_silence and now - self.last_seen > self.heartbeat_timeout:  # type: ignore[operator]
            return TimerAction.PEER_DEAD
        if self.frame_timeout and self._partial_since is not None and now - self._partial_since >= self.frame_timeout:
            return TimerAction.FRAME_TIMEOUT
        if self.idle_timeout and not self.handshaken and now - self.last_seen >= self.idle_timeout:
            return TimerAction.IDLE
        if self._beats and now - self._last_heartbeat >= self.heartbeat_interval:  # type: ignore[operator]
            if self.handshaken:
                self.heartbeat(now)
                return TimerAction.NONE
            self._last_heartbeat = now
            return TimerAction.PROBE
        return TimerAction.NONE
