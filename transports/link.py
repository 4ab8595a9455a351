"""Links: one live connection under a Session, with coalesced writes.

A Session survives reconnects; a Link is one socket (or WebSocket) and
dies with it. The link owns framing and the socket; the session owns
numbering, acknowledgement and resume. :class:`SocketLink` implements the
write side for any gevent socket: payloads queued while a write is in
progress go out together in one ``sendall``. Subclasses implement
:meth:`SocketLink.frame_batch` (how payloads become bytes on the wire) and a
read loop that calls :meth:`SocketLink.received` for each inbound frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event

from rpcengine.errors import ConnectionLost

__all__ = ["DEFAULT_MAX_BUFFER", "SocketLink"]

log = logging.getLogger(__name__)

#: Bytes a link may hold queued for its socket before writers block (or a broadcast refuses).
DEFAULT_MAX_BUFFER = 4 << 20


def _ignore_frame(frame: bytes) -> None:
    """Receiver of a link that nobody has claimed yet: drop the frame."""
    log.debug("frame dropped: no receiver")


class SocketLink:
    """One connection's write queue and lifecycle; subclasses add framing and reading."""

    def __init__(self, sock: object, peer_address: object = None, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.sock = sock
        self.peer_address = peer_address
        self.max_buffer = max_buffer
        #: Called with each inbound frame (the raw payload bytes).
        self.receiver: Callable[[bytes], None] = _ignore_frame
        #: Called once with the reason when the link ends.
        self.on_lost: Callable[[SocketLink, str], None] | None = None
        #: The session this link carries, once the handshake (or first message) chose one.
        self.session: Any = None
        self.closed = False
        self.close_reason = ""
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._writing = False
        self._drained: Event | None = None
        self._flusher: gevent.Greenlet | None = None

    # -- writing ----------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes queued and not yet handed to the socket."""
        return self._out_bytes

    def write(self, payload: bytes) -> None:
        """Queue ``payload`` and flush; blocks (yields) while the socket is slow and the buffer full.

        Raises ConnectionLost if the link is closed.
        """
        if self.closed:
            raise ConnectionLost(self.close_reason or "the connection is closed")
        self._out.append(payload)
        self._out_bytes += len(payload)
        if not self._writing:
            self._flush()
        elif self._out_bytes > self.max_buffer:
            self._wait_drained()

    def write_many(self, payloads: list[bytes]) -> None:
        """Queue several payloads and flush them together (same rules as :meth:`write`)."""
        if not payloads:
            return
        if self.closed:
            raise ConnectionLost(self.close_reason or "the connection is closed")
        self._out.extend(payloads)
        self._out_bytes += sum(map(len, payloads))
        if not self._writing:
            self._flush()
        elif self._out_bytes > self.max_buffer:
            self._wait_drained()

    def write_nowait(self, payload: bytes) -> bool:
        """Queue ``payload`` without blocking; return False (queuing nothing) if the buffer is full.

        A background greenlet does the writing. Raises ConnectionLost if closed.
        """
        if self.closed:
            raise ConnectionLost(self.close_reason or "the connection is closed")
        if self._out_bytes > self.max_buffer:
            return False
        self._out.append(payload)
        self._out_bytes += len(payload)
        if not self._writing and self._flusher is None:
            self._flusher = gevent.spawn(self._background_flush)
        return True

    def _background_flush(self) -> None:
        """Flush from a helper greenlet (for writers that must not block)."""
        try:
            if not self._writing:
                self._flush()
        finally:
            self._flusher = None

    def _flush(self) -> None:
        """Write everything queued, batching what arrives meanwhile; ends the link on error."""
        self._writing = True
        try:
            while self._out and not self.closed:
                batch, self._out = self._out, []
                self._out_bytes = 0
                self.send_bytes(self.frame_batch(batch))
        except (OSError, ConnectionLost) as exc:
            self.close(f"write failed: {exc}")
        finally:
            self._writing = False
            if self._drained is not None:
                self._drained.set()
                self._drained = None

    def _wait_drained(self) -> None:
        """Block until the current writer has emptied the queue or the link closed."""
        drained = self._drained
        if drained is None:
            drained = self._drained = Event()
        drained.wait()
        if self.closed:
            raise ConnectionLost(self.close_reason or "the connection is closed")

    def flush_quietly(self, timeout: float) -> bool:
        """Wait (yielding) up to ``timeout`` for queued bytes to reach the socket; return whether they did."""
        with gevent.Timeout(timeout, False):
            while (self._writing or self._out) and not self.closed:
                if not self._writing:
                    self._flush()
                    continue
                drained = self._drained
                if drained is None:
                    drained = self._drained = Event()
                drained.wait()
            return not self._out
        return False

    def frame_batch(self, payloads: list[bytes]) -> bytes:
        """Return the bytes that carry ``payloads`` on the wire (implemented by subclasses)."""
        raise NotImplementedError

    def send_bytes(self, data: bytes) -> None:
        """Write ``data`` to the socket, blocking (yielding) until it is taken."""
        self.sock.sendall(data)  # type: ignore[attr-defined]

    # -- reading and lifecycle --------------------------------------------

    def received(self, frame: bytes) -> None:
        """Pass one inbound frame to the current receiver."""
        self.receiver(frame)

    def close(self, reason: str = "closed locally") -> None:
        """Close the socket and report the end once; does not block."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._out = []
        self._out_bytes = 0
        try:
            self.close_socket()
        except OSError as exc:
            log.debug("closing socket failed: %s", exc)
        if self._drained is not None:
            self._drained.set()
            self._drained = None
        callback, self.on_lost = self.on_lost, None
        if callback is not None:
            callback(self, reason)

    def close_socket(self) -> None:
        """Close the underlying socket (subclasses may send a goodbye first)."""
        self.sock.close()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        state = f"closed: {self.close_reason}" if self.closed else "open"
        return f"<{type(self).__name__} {self.peer_address} {state}>"
