"""Links: one live connection under a Session, with coalesced writes.

A Session survives reconnects; a Link is one socket (or WebSocket) and
dies with it. The link owns framing and the socket; the session owns
numbering, acknowledgement, liveness and resume. A link never reads or
writes session state: it reports upward only through the callbacks it was
given (:attr:`~SocketLink.receiver` for each inbound frame,
:attr:`~SocketLink.on_activity` when a probe is answered,
:attr:`~SocketLink.on_protocol_error` when the peer broke the framing,
:attr:`~SocketLink.on_lost` when it ends). :class:`SocketLink` implements the
write side for any gevent socket: payloads queued while a write is in
progress go out together in one ``sendall``. Subclasses implement
:meth:`SocketLink.frame_batch` (how payloads become bytes on the wire) and a
read loop that calls :meth:`SocketLink.received` for each inbound frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
import gevent.socket
from gevent.event import Event
from gevent.hub import Waiter

from rpcengine.errors import ConnectionLost, ProtocolError

if TYPE_CHECKING:
    from transports.session.budget import MemoryBudget

__all__ = ["DEFAULT_MAX_BUFFER", "MAX_FRAMES_PER_TURN", "SocketLink"]

log = logging.getLogger(__name__)

#: Longest a closing link spends sending its last words on a socket that cannot take them at once (TLS).
FINAL_WRITE_TIMEOUT = 1.0
#: Bytes read at once when the hub reads a socket.
HUB_RECV_SIZE = 65536
#: Bytes a link may hold queued for its socket before writers block (or a broadcast refuses).
DEFAULT_MAX_BUFFER = 4 << 20
#: Most inbound frames a link handles in one go before the hub serves the other connections once
#: (a flood of tiny frames, 10,000 pings in one read, would otherwise hold the hub for 100 ms).
MAX_FRAMES_PER_TURN = 128


def _ignore_frame(frame: bytes) -> None:
    """Receiver of a link that nobody has claimed yet: drop the frame."""
    log.debug("frame dropped: no receiver")


class SocketLink:
    """One connection's write queue and lifecycle; subclasses add framing and reading."""

    #: Whether the rest of a partial write goes out from a write watcher in the hub (plain sockets only).
    uses_write_watcher = False
    #: Whether :meth:`probe` asks the peer for an answer (a WebSocket ping); plain lines cannot.
    can_probe = False

    def __init__(self, sock: Any, peer_address: Any = None, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.sock = sock
        self.peer_address = peer_address
        self.max_buffer = max_buffer
        #: Called with each inbound frame (the raw payload bytes).
        self.receiver: Callable[[bytes], None] = _ignore_frame
        #: Called once with the reason when the link ends.
        self.on_lost: Callable[[SocketLink, str], None] | None = None
        #: Called when the peer broke the framing; the link has stopped reading and waits to be closed.
        self.on_protocol_error: Callable[[SocketLink, ProtocolError], None] | None = None
        #: Called when the peer answered a :meth:`probe`.
        self.on_activity: Callable[[], None] | None = None
        #: Called with True when a frame has begun arriving and is not complete, with False once none is.
        self.on_partial: Callable[[bool], None] | None = None
        #: Returns whether the receiver takes a frame now without blocking (None: it may always block).
        #: While it says so, a link may read in the hub, without a greenlet switch per frame.
        self.ready: Callable[[], bool] | None = None
        #: Whether a frame is half received (what :attr:`on_partial` was last told).
        self.partial = False
        #: The server-wide budget that counts the bytes this link holds for a backed-up socket (None: not counted).
        self.budget: MemoryBudget | None = None
        self._budgeted = 0
        #: Whoever took this connection over (a server marks it once the handshake chose a session).
        self.owner: Any = None
        #: False once reading stopped (after a framing error): inbound data is no longer passed on.
        self.reading = True
        self.closed = False
        self.close_reason = ""
        self._out: list[bytes] = []
        #: Bytes queued and not yet handed to the socket (read only).
        self.buffered = 0
        self._writing = False
        self._scheduled = False
        self._final: bytes | None = None
        self._rest: memoryview | None = None
        self._drained: Event | None = None
        self._closed_event: Event | None = None
        # Reading in the hub: the watcher, and the parked greenlet that owns the reading.
        self._read_watcher: Any = None
        self._owner: Waiter[Any] | None = None
        # The zero timer that goes on reading in the hub after a turn (see _pause_turn), while paused.
        self._turn: Any = None
        # What the hub saw while it read, for the read loop: the end of the stream, or a failed read.
        self._hub_eof = False
        self._hub_failed: str | None = None
        self._hub = gevent.get_hub()
        self._loop = self._hub.loop
        # The non-blocking OS socket under a plain gevent socket (None for TLS and others).
        self._raw = getattr(sock, "_sock", None) if type(sock) is gevent.socket.socket else None
        # Partial writes on a plain socket continue from a write watcher (no greenlet) if the
        # subclass asks for it; otherwise (TLS, or framing that needs a greenlet) a writer greenlet.
        self._write_watcher: Any = None
        if self.uses_write_watcher and self._raw is not None:
            self._write_watcher = self._loop.io(sock.fileno(), 2)  # type: ignore[attr-defined]

    # -- writing ----------------------------------------------------------

    def write(self, payload: bytes, block: bool = True) -> None:
        """Queue ``payload`` for the socket; blocks (yields) only while the buffer is over ``max_buffer``.

        With ``block`` false it never blocks (answers: the reader is held
        back instead, see :meth:`wait_drained`). Everything queued before the
        caller next yields goes out in one write. Raises ConnectionLost if
        the link is closed.
        """
        if self.closed:
            raise ConnectionLost(self.close_reason or "the connection is closed")
        self._out.append(payload)
        size = len(payload)
        self.buffered += size
        if self._writing:
            # The socket is backed up: what waits now is what the budget counts.
            if self.budget is not None:
                self._count(size)
        elif not self._scheduled:
            self._scheduled = True
            self._loop.run_callback(self._flush_soon)
            return
        if block and self.buffered > self.max_buffer and gevent.getcurrent() is not self._hub:
            # (The hub, reading, must never block: what it writes is bounded by the reader's own checks.)
            self._wait_drained()

    def write_many(self, payloads: list[bytes]) -> None:
        """Queue several payloads to go out together (same rules as :meth:`write`)."""
        if not payloads:
            return
        if self.closed:
            raise ConnectionLost(self.close_reason or "the connection is closed")
        self._out.extend(payloads[:-1])
        size = sum(map(len, payloads[:-1]))
        self.buffered += size
        if self._writing and self.budget is not None:
            self._count(size)
        self.write(payloads[-1])

    def write_nowait(self, payload: bytes) -> bool:
        """Queue ``payload`` without ever blocking; return False (queuing nothing) if the buffer is full.

        Raises ConnectionLost if the link is closed.
        """
        if self.closed:
            raise ConnectionLost(self.close_reason or "the connection is closed")
        if self.buffered > self.max_buffer:
            return False
        self.write(payload, block=False)
        return True

    def _take_queue(self) -> list[bytes]:
        """Take everything queued, to frame and write it (what the budget counted stays counted until sent)."""
        batch, self._out = self._out, []
        self.buffered = 0
        return batch

    def _count(self, size: int) -> None:
        """Count ``size`` queued bytes against the budget."""
        self._budgeted += size
        self.budget.add(size)  # type: ignore[union-attr]

    def _sent(self, size: int) -> None:
        """The socket took ``size`` bytes: the budget lets go of as many (framing bytes included)."""
        if self._budgeted:
            size = min(size, self._budgeted)
            self._budgeted -= size
            self.budget.release(size)  # type: ignore[union-attr]

    @property
    def held(self) -> int:
        """Bytes this link holds for its socket: queued, and framed but not yet taken (what the budget counts)."""
        return self._budgeted if self.budget is not None else self.buffered

    def wait_drained(self) -> None:
        """Block (yielding) while more than ``max_buffer`` bytes are queued; the reader calls it (backpressure).

        Raises ConnectionLost if the link closes meanwhile.
        """
        while self.buffered > self.max_buffer and not self.closed:
            self._wait_drained()
        if self.closed:
            raise ConnectionLost(self.close_reason or "the connection is closed")

    def _flush_soon(self) -> None:
        """Hand everything queued to the socket without blocking; runs as a hub callback.

        What the socket does not take at once is written by a write watcher
        (plain sockets) or a writer greenlet, which also takes whatever is
        queued meanwhile.
        """
        self._scheduled = False
        if self.closed or self._writing or not self._out:
            return
        batch, self._out = self._out, []
        self.buffered = 0
        data = self.frame_batch(batch)
        try:
            sent = self.send_nowait(data)
        except OSError as exc:
            gevent.spawn(self.close, f"write failed: {exc}")
            return
        if sent < len(data):
            # Nothing was counted while it waited here for one loop turn; what the socket did not
            # take now waits for a slow reader, and the budget counts it until it goes.
            if self.budget is not None:
                self._count(len(data) - sent)
            self._writing = True
            rest = memoryview(data)[sent:]
            watcher = self._write_watcher
            if watcher is not None:
                self._rest = rest
                watcher.start(self._writable)
            else:
                gevent.spawn(self._write_rest, rest)
        elif self._drained is not None:
            self._signal_drained()

    def _writable(self) -> None:
        """Hub callback of the write watcher: send more of what the socket did not take at once.

        Keeps a slow reader's backlog off any greenlet: the watcher fires
        when the socket can take more, sends without blocking, and stops
        once everything queued (also meanwhile) is out.
        """
        rest = self._rest
        if self.closed or rest is None:
            self._stop_write_watcher()
            return
        try:
            sent = self._raw.send(rest)  # type: ignore[union-attr]
            if self._budgeted:
                self._sent(sent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._stop_write_watcher()
            gevent.spawn(self.close, f"write failed: {exc}")
            return
        rest = rest[sent:]
        if not rest and self._out:
            batch = self._take_queue()
            rest = memoryview(self.frame_batch(batch))
        if rest:
            self._rest = rest
            return
        self._stop_write_watcher()
        self._writing = False
        self._signal_drained()

    def _stop_write_watcher(self) -> None:
        """Stop watching for writability and forget the unsent rest."""
        self._rest = None
        watcher = self._write_watcher
        if watcher is not None:
            watcher.stop()

    def _write_rest(self, data: memoryview) -> None:
        """Writer greenlet: send ``data`` and then everything queued meanwhile; ends the link on error."""
        try:
            self.send_bytes(data)
            self._sent(len(data))
            while self._out and not self.closed:
                framed = self.frame_batch(self._take_queue())
                self.send_bytes(framed)
                self._sent(len(framed))
        except (OSError, ConnectionLost) as exc:
            self.close(f"write failed: {exc}")
        finally:
            self._writing = False
            self._signal_drained()

    def _signal_drained(self) -> None:
        """Wake writers waiting for the buffer to drain."""
        drained, self._drained = self._drained, None
        if drained is not None:
            drained.set()

    def _drain_signal(self) -> Event:
        """Return the event the next drain (or close) sets, creating it on first use."""
        drained = self._drained
        if drained is None:
            drained = self._drained = Event()
        return drained

    def _wait_drained(self) -> None:
        """Block until the queue has been handed to the socket or the link closed."""
        self._drain_signal().wait()
        if self.closed:
            raise ConnectionLost(self.close_reason or "the connection is closed")

    def flush_quietly(self, timeout: float) -> bool:
        """Wait (yielding) up to ``timeout`` for queued bytes to reach the socket; return whether they did."""
        with gevent.Timeout(timeout, False):  # type: ignore[arg-type]  # False: silent (types-gevent omits it)
            while (self._writing or self._out) and not self.closed:
                drained = self._drain_signal()
                if not self._writing and not self._scheduled:
                    self._scheduled = True
                    self._loop.run_callback(self._flush_soon)
                drained.wait()
            return not self._out
        return False

    def frame_batch(self, payloads: list[bytes]) -> bytes:
        """Return the bytes that carry ``payloads`` on the wire (implemented by subclasses)."""
        raise NotImplementedError

    def send_bytes(self, data: bytes | memoryview) -> None:
        """Write ``data`` to the socket, blocking (yielding) until it is taken."""
        self.sock.sendall(data)  # type: ignore[attr-defined]

    def send_nowait(self, data: bytes) -> int:
        """Write what the socket takes at once without blocking; return the number of bytes taken.

        Plain gevent sockets are written directly (they are non-blocking
        underneath); other sockets (TLS) take nothing here and are written
        by the writer greenlet.
        """
        raw = self._raw
        if raw is None:
            return 0
        try:
            return raw.send(data)
        except (BlockingIOError, InterruptedError):
            return 0

    def write_final(self, payload: bytes) -> bool:
        """Hand whatever is queued, then ``payload``, to the socket before :meth:`close`; never blocks.

        For last words right before :meth:`close`. Best effort: returns
        False when a writer greenlet owns the socket or a plain socket did
        not take everything (see :meth:`_hand_over_queue`).
        """
        if self.closed or self._writing:
            return False
        self._out.append(payload)
        return self._hand_over_queue()

    def _hand_over_queue(self) -> bool:
        """Give everything queued to the socket now, without blocking; return whether it all went.

        A plain socket takes it at once; on a socket that cannot be written
        without blocking (TLS) it is kept, and :meth:`close` sends it from a
        helper greenlet, bounded by ``FINAL_WRITE_TIMEOUT``, before closing
        the socket.
        """
        batch = self._take_queue()
        data = self.frame_batch(batch)
        if self._raw is None:
            self._final = data
            return True
        try:
            return self.send_nowait(data) == len(data)
        except OSError:
            return False

    # -- reading and lifecycle --------------------------------------------

    def run(self) -> None:
        """Read frames and pass each to :meth:`received` until the connection ends (subclasses)."""
        raise NotImplementedError

    def start_reading(self) -> gevent.Greenlet:
        """Run :meth:`run` on a new greenlet (client side; a server reads on the connection's own)."""
        return gevent.spawn(self.run)

    # -- reading in the hub --------------------------------------------------
    #
    # A read loop (subclasses' run()) owns the reading. While the receiver takes frames without
    # blocking (ready() says so) and the socket is a plain one, the loop parks and the hub reads
    # instead, from a watcher calling the subclass's _readable(): no greenlet switch per frame.
    # Whatever may block (a busy engine, a backed-up socket, the connection's end, bad framing,
    # control frames) goes back to the owner, which _readable() wakes.

    def _hub_reading_possible(self) -> bool:
        """Whether frames can be read in the hub now: a plain socket and a receiver that will not block."""
        ready = self.ready
        return ready is not None and self._raw is not None and self.reading and not self.closed and ready()

    def _park(self) -> None:
        """Let the hub read (from a watcher) until something needs this greenlet; blocks (yielding)."""
        waiter: Waiter[Any] = Waiter()
        self._owner = waiter
        watcher = self._read_watcher
        if watcher is None:
            watcher = self._read_watcher = self._loop.io(self.sock.fileno(), 1)  # type: ignore[attr-defined]
        watcher.start(self._readable)
        try:
            waiter.get()
        finally:
            self._owner = None
            watcher.stop()
            self._stop_turn()

    def _wake_owner(self) -> None:
        """Stop reading in the hub and let the owning greenlet go on (it is parked in :meth:`_park`)."""
        watcher = self._read_watcher
        if watcher is not None:
            watcher.stop()
        self._stop_turn()
        owner, self._owner = self._owner, None
        if owner is not None:
            self._loop.run_callback(owner.switch, None)

    def _readable(self) -> None:
        """Read watcher callback (in the hub): read what came and let :meth:`_take_in_hub` deliver it.

        The end of the stream, a failed read or an unexpected error is left
        for the read loop (in ``_hub_eof`` and ``_hub_failed``), which is woken.
        """
        if self.closed or not self.reading:
            self._wake_owner()
            return
        try:
            data = self._raw.recv(HUB_RECV_SIZE)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._hub_failed = f"read failed: {exc}"
            self._wake_owner()
            return
        if not data:
            self._hub_eof = True
            self._wake_owner()
            return
        try:
            if self._take_in_hub(data):
                return
        except Exception:
            log.exception("reading from %s failed", self.peer_address)
            self._hub_failed = "internal error while reading"
        self._wake_owner()

    def _take_in_hub(self, data: bytes) -> bool:
        """Deliver what ``data`` completes if none of it can block; return False to wake the read loop.

        Implemented by subclasses that park; what is not delivered is kept for the loop. After
        :data:`MAX_FRAMES_PER_TURN` frames with more to come, a subclass calls :meth:`_pause_turn`
        and returns True: the rest goes on from :meth:`_more_in_hub` once the hub polled again.
        """
        return False

    def _more_in_hub(self) -> bool:
        """Go on delivering what an earlier read kept back (as :meth:`_take_in_hub`, without new data)."""
        return False

    # -- taking turns: a flood of frames from one read does not hold the hub ---------------

    def _pause_turn(self) -> None:
        """Hub: stop reading for now; :meth:`_more_in_hub` goes on after the hub polled every socket once more.

        A zero timer fires in the loop's next iteration, after the poll: every connection
        that became readable meanwhile is served in the same iteration.
        """
        self._read_watcher.stop()
        turn = self._turn = self._loop.timer(0.0)  # type: ignore[attr-defined]
        turn.start(self._next_in_hub)

    def _stop_turn(self) -> None:
        """Forget a pause of hub reading (the owner was woken, or the link closed)."""
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.close()

    def _next_in_hub(self) -> None:
        """Timer callback (in the hub): deliver the next turn's frames, then read the socket again."""
        self._stop_turn()
        if self._owner is None:
            return
        if self.closed or not self.reading:
            self._wake_owner()
            return
        try:
            if self._more_in_hub():
                if self._turn is None and self._read_watcher is not None:
                    self._read_watcher.start(self._readable)
                return
        except Exception:
            log.exception("reading from %s failed", self.peer_address)
            self._hub_failed = "internal error while reading"
        self._wake_owner()

    def _next_turn(self) -> None:
        """Read loop: block (yielding) until the hub polled every socket once more (see :meth:`_pause_turn`)."""
        waiter: Waiter[Any] = Waiter()
        turn = self._loop.timer(0.0)  # type: ignore[attr-defined]
        turn.start(waiter.switch, None)
        try:
            waiter.get()
        finally:
            turn.close()

    def received(self, frame: bytes) -> None:
        """Pass one inbound frame to the current receiver."""
        self.receiver(frame)

    def stop_reading(self) -> None:
        """Pass no more inbound frames on; the link stays open for writing until closed."""
        self.reading = False

    def wait_closed(self, timeout: float | None) -> bool:
        """Wait (yielding) up to ``timeout`` until the link is closed; return whether it is."""
        if not self.closed:
            if self._closed_event is None:
                self._closed_event = Event()
            self._closed_event.wait(timeout)
        return self.closed

    def detach_callbacks(self) -> None:
        """Forget every upward callback: whoever set them no longer wants to hear from this link."""
        self.receiver = _ignore_frame
        self.on_lost = self.on_protocol_error = self.on_activity = self.on_partial = None
        self.ready = None

    def report_partial(self, partial: bool) -> None:
        """Tell :attr:`on_partial` when a half-received frame begins or ends (only on a change)."""
        if partial is not self.partial:
            self.partial = partial
            callback = self.on_partial
            if callback is not None:
                callback(partial)

    def probe(self) -> None:
        """Ask the peer for a sign of life, without blocking (links that :attr:`can_probe`)."""

    def protocol_error(self, exc: ProtocolError) -> None:
        """The peer broke the framing: stop reading and report it upward (or close, if nobody listens)."""
        self.stop_reading()
        callback = self.on_protocol_error
        if callback is None:
            log.warning("closing connection from %s: %s", self.peer_address, exc)
            self.close(f"protocol error: {exc}")
        else:
            callback(self, exc)

    def close(self, reason: str = "closed locally") -> None:
        """Close the socket and report the end once; does not block.

        Messages queued before the close still go out (best effort, as
        with :meth:`write_final`), as bytes written before a FIN are read.
        """
        if self.closed:
            return
        if self._out and not self._writing and self._final is None:
            self._hand_over_queue()
        self.closed = True
        self.close_reason = reason
        self._take_queue()
        self._sent(self._budgeted)  # what is still queued or unsent is dropped (or sent last, uncounted)
        self._stop_write_watcher()
        if self._write_watcher is not None:
            self._write_watcher.close()
            self._write_watcher = None
        final, self._final = self._final, None
        if final:
            gevent.spawn(self._send_final_and_close, final)
        else:
            self._close_socket_quietly()
        self._signal_drained()
        if self._closed_event is not None:
            self._closed_event.set()
        watcher, self._read_watcher = self._read_watcher, None
        if watcher is not None:
            watcher.stop()
            watcher.close()
        self._stop_turn()
        self._wake_owner()  # a read loop parked while the hub read goes on (and sees the close)
        callback, self.on_lost = self.on_lost, None
        if callback is not None:
            callback(self, reason)

    def _close_socket_quietly(self) -> None:
        """Close the socket, logging (not raising) a failure."""
        try:
            self.close_socket()
        except (OSError, ValueError) as exc:
            log.debug("closing socket failed: %s", exc)

    def _send_final_and_close(self, data: bytes) -> None:
        """Send the last words kept by :meth:`write_final`, then close the socket (bounded)."""
        try:
            with gevent.Timeout(FINAL_WRITE_TIMEOUT, False):  # type: ignore[arg-type]  # False: silent
                self.send_bytes(data)
        except (OSError, ValueError) as exc:
            log.debug("last words not sent: %s", exc)
        finally:
            self._close_socket_quietly()

    def close_socket(self) -> None:
        """Close the underlying socket (subclasses may send a goodbye first)."""
        self.sock.close()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        state = f"closed: {self.close_reason}" if self.closed else "open"
        return f"<{type(self).__name__} {self.peer_address} {state}>"
