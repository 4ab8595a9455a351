"""WebSocketLink: one WebSocket connection under a Session, on a gevent socket.

The WebSocket protocol itself (framing, masking, control frames, the close
handshake, size limits) is done by the sans-I/O core of the ``websockets``
library; this module only moves bytes between it and the socket. One JSON
message travels per text frame. The link refuses binary data (close code
1003), text that is not UTF-8 (1007), messages over ``max_message_size`` or
in more than ``max_fragments`` fragments (1009); ``websockets`` itself fails
the connection with 1002 for a protocol error (an unmasked client frame, a
reserved bit or opcode, a bad control frame).

Writes go through :class:`~transports.link.SocketLink`'s coalescing queue
while the link is open; the frames the protocol produces on its own (a pong,
the echo of a close frame) are flushed through the same queue, so nothing
interleaves on the socket. After :meth:`~transports.link.SocketLink.close`,
the read loop stays on to finish the closing handshake, bounded by
``close_timeout``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from typing import Any

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from websockets.frames import BINARY, CLOSE, CONT, PING, PONG, TEXT, CloseCode, Frame
from websockets.protocol import CLOSED, CONNECTING, OPEN, Protocol

from rpcengine.errors import ConnectionLost, ProtocolError
from transports.link import MAX_FRAMES_PER_TURN, SocketLink
from transports.session.config import SessionConfig
from transports.websocket.protocol import (
    DEFAULT_MAX_FRAGMENTS,
    MessageAssembler,
    MessageRefused,
    close_code_for,
    send_protocol_data,
    short_reason,
)

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "WebSocketLink"]

log = logging.getLogger(__name__)

#: Seconds the closing handshake may take before the socket is closed regardless.
DEFAULT_CLOSE_TIMEOUT = 2.0

_RECV_SIZE = 65536
#: Bytes handed to the protocol's parser at once: what one read brought is parsed in pieces this big,
#: so that a turn (see MAX_FRAMES_PER_TURN) ends after about as many frames even when they are tiny.
FEED_SIZE = 4096


class _Flush(bytes):
    """Type of the sentinel payload that only flushes what the protocol has queued."""


#: Queued by the reader (or the pinger) to get the protocol's own frames written.
_FLUSH = _Flush()


class WebSocketLink(SocketLink):
    """One open WebSocket connection carrying one JSON message per text frame.

    ``protocol`` is a ``websockets`` ServerProtocol or ClientProtocol whose
    opening handshake is done (or about to be: the server sends its answer
    right after creating the link); ``pending`` holds frames it parsed
    already. The link judges no liveness itself: its session asks it to
    :meth:`probe` (a ping) a plain peer, and hears of every pong or ping
    through :attr:`~transports.link.SocketLink.on_activity`. Read the
    connection with :meth:`run`.
    """

    can_probe = True

    #: Whether binary messages are passed to :meth:`binary_received` (else refused with 1003).
    accepts_binary = False

    def __init__(
        self,
        sock: Any,
        peer_address: Any,
        protocol: Protocol,
        config: SessionConfig,
        *,
        pending: Iterable[Any] = (),
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        super().__init__(sock, peer_address, config.max_buffer)
        self.protocol = protocol
        self.close_timeout = close_timeout
        #: The close code this side sent (or is about to send), once closing.
        self.close_code: int | None = None
        #: The HTTP upgrade request (server side), for hooks that want its headers.
        self.request: Any = None
        #: The path the client asked for (server side).
        self.path: str | None = None
        #: What the peer speaks: ``"rpcengine"``, or ``"jsonrpc"`` (a ``/jsonrpc`` path, or that subprotocol).
        self.dialect = "rpcengine"
        self._pending = list(pending)
        # What was read and not yet given to the parser (fed FEED_SIZE bytes at a time), and the
        # frames the read loop handled since it last let the hub serve others.
        self._unfed = b""
        self._frames_this_turn = 0
        self._assembler = MessageAssembler(max_fragments)
        self._send_eof = False
        self._held: list[bytes] | None = None
        self._idle = Event()
        self._idle.set()
        self._direct = Semaphore()
        self._abort_timer: gevent.Greenlet | None = None

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, if any."""
        return self.protocol.subprotocol

    # -- writing ----------------------------------------------------------

    def frame_batch(self, payloads: list[bytes]) -> bytes:
        """Return the payloads as text frames, after whatever frames the protocol queued itself."""
        self._frame(payloads)
        chunks = self.protocol.data_to_send()
        if chunks and not chunks[-1]:
            self._send_eof = True
        return b"".join(chunks)

    def _frame(self, payloads: list[bytes]) -> None:
        """Hand payloads to the protocol as frames.

        Payloads written while the WebSocket closes are dropped (the reader
        is about to close the link), except answers to the messages that
        arrived before the peer's close frame or a protocol error: those go
        out ahead of the closing frame, held back meanwhile.
        """
        protocol = self.protocol
        state = protocol.state
        if state is not OPEN:
            if self._held is None:
                return
            protocol.state = OPEN
        try:
            frame = self.frame_payload
            for payload in payloads:
                if payload is not _FLUSH:
                    frame(payload)
        finally:
            protocol.state = state

    def frame_payload(self, payload: bytes) -> None:
        """Queue one payload in the protocol as a text frame (subclasses may send other kinds)."""
        self.protocol.send_text(payload)

    def send_nowait(self, data: bytes) -> int:
        """Write what the socket takes at once; half-close if all went and the protocol asked for it."""
        sent = super().send_nowait(data)
        if sent < len(data):
            self._idle.clear()  # a frame is cut: nothing else may be written until the writer sends the rest
        elif self._send_eof:
            self._send_eof = False
            self.sock.shutdown(socket.SHUT_WR)
        return sent

    def write_final(self, payload: bytes) -> bool:
        """Queue ``payload`` to go out right before the close frame; never blocks.

        Unlike a raw socket, a WebSocket cannot be cut in the middle of a
        frame, so nothing is written here: :meth:`close` frames what is
        queued, and the closing handshake sends it whole.
        """
        if self.closed:
            return False
        if not self.write_nowait(payload):
            self._out.append(payload)  # over max_buffer: a last small message goes anyway
        return True

    def send_bytes(self, data: bytes | memoryview) -> None:
        """Write ``data`` (blocking, yielding); half-close afterwards if the protocol asked for it.

        While this runs (and after :meth:`send_nowait` cut a frame) ``_idle``
        is clear: the closing handshake waits for it before writing.
        """
        eof, self._send_eof = self._send_eof, False
        self._idle.clear()
        try:
            if data:
                self.sock.sendall(data)
            if eof:
                self.sock.shutdown(socket.SHUT_WR)
        finally:
            self._idle.set()

    def _pump(self) -> None:
        """Get the frames the protocol queued on its own written, in order with everything else."""
        if not self.protocol.writes:
            return
        if not self.closed:
            try:
                self.write_nowait(_FLUSH)
                return
            except ConnectionLost:
                pass
        self._send_direct()

    def _send_direct(self) -> None:
        """Write the protocol's queued frames once the link is closed (the write queue is gone)."""
        with self._direct:
            if not self._idle.wait(self.close_timeout):
                self._abort()
                return
            held, self._held = self._held, None
            try:
                send_protocol_data(self.sock, self.protocol, held)
            except OSError as exc:
                log.debug("closing handshake with %s: %s", self.peer_address, exc)

    # -- reading ----------------------------------------------------------

    def run(self) -> None:
        """Read frames and pass text messages on until the connection ends (blocks, yielding).

        While the receiver cannot block, the loop parks and the hub reads
        the socket instead (see :meth:`_readable`).
        """
        protocol = self.protocol
        try:
            while protocol.state is not CLOSED:
                # Frames parsed already: with the HTTP upgrade, or by the hub before it handed over.
                events, self._pending = self._pending, []
                if events or protocol.parser_exc is not None:
                    self._process(events)
                    if protocol.state is CLOSED:
                        break
                failed, self._hub_failed = self._hub_failed, None
                if failed is not None:
                    self.close(failed)
                    return
                if self._unfed:
                    if self._frames_this_turn >= MAX_FRAMES_PER_TURN:
                        self._frames_this_turn = 0
                        self._next_turn()
                        continue
                    data = self._next_piece()
                elif self._hub_eof:
                    data = b""
                elif protocol.state is OPEN and self._hub_reading_possible():
                    self._frames_this_turn = 0
                    self._park()
                    continue
                else:
                    try:
                        data = self.sock.recv(_RECV_SIZE)
                    except OSError as exc:
                        self.close(f"read failed: {exc}")
                        return
                    if len(data) > FEED_SIZE:
                        self._unfed = data
                        continue
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
                events = protocol.events_received()
                # A frame, or a fragmented message, is half received: it must complete in time.
                self.report_partial(self._half_received(data, events))
                self._frames_this_turn += len(events)
                self._process(events)
                if not data:
                    break
            self.close("the peer closed the connection")
        except Exception as exc:
            log.exception("WebSocket connection from %s failed", self.peer_address)
            self.close(f"internal error: {exc}", CloseCode.INTERNAL_ERROR)
        finally:
            self._finish()

    def _next_piece(self) -> bytes:
        """Take the next piece (``FEED_SIZE`` bytes at most) of what was read and not yet parsed."""
        unfed = self._unfed
        if len(unfed) <= FEED_SIZE:
            self._unfed = b""
            return unfed
        self._unfed = unfed[FEED_SIZE:]
        return unfed[:FEED_SIZE]

    def _take_in_hub(self, data: bytes) -> bool:
        """Hub: parse ``data``; deliver whole text messages while the receiver cannot block.

        Anything else (control frames, a frame the protocol answers
        itself, a parser error, a busy receiver) is handed to the read loop
        with the frames not yet delivered (and the bytes not yet parsed).
        More than ``FEED_SIZE`` bytes are parsed in pieces, and after
        :data:`~transports.link.MAX_FRAMES_PER_TURN` frames the rest waits
        until the hub served the other connections once.
        """
        self._frames_this_turn = 0
        if len(data) <= FEED_SIZE:
            return self._parse_in_hub(data)
        self._unfed = data
        return self._more_in_hub()

    def _more_in_hub(self) -> bool:
        """Hub: parse and deliver what was read and not yet parsed, a turn's worth at most."""
        while self._unfed:
            if self._frames_this_turn >= MAX_FRAMES_PER_TURN:
                self._frames_this_turn = 0
                self._pause_turn()
                return True
            if not self._parse_in_hub(self._next_piece()):
                return False
        return True

    def _parse_in_hub(self, data: bytes) -> bool:
        """Hub: parse one piece of data and deliver the whole text messages it completes (see :meth:`_take_in_hub`)."""
        protocol = self.protocol
        protocol.receive_data(data)
        events: list[Any] = protocol.events_received()  # frames, once the handshake is done
        self._frames_this_turn += len(events)
        self.report_partial(self._half_received(data, events))
        if protocol.state is not OPEN or protocol.parser_exc is not None or protocol.writes:
            self._pending = events
            return False
        for index, frame in enumerate(events):
            opcode = frame.opcode
            ready = self.ready
            if (opcode is not TEXT and opcode is not CONT) or ready is None or not ready():
                self._pending = events[index:]
                return False
            self._data_frame(frame)
            if self.closed or not self.reading:
                self._pending = events[index + 1 :]
                return False
        return True

    def _half_received(self, data: bytes, events: list[Any]) -> bool:
        """Whether a frame or a message is begun and not complete once ``events`` (parsed from ``data``) are handled.

        Bytes that made no frame are a frame begun; a last data frame
        without FIN is a message begun (its fragments may each be whole,
        but the message must still be done within ``frame_timeout``).
        Control frames between fragments change nothing.
        """
        if not events:
            return bool(data) or self._assembler.in_progress
        last = events[-1]
        if last.opcode is TEXT:  # the common case: one whole text frame
            return not last.fin
        for frame in reversed(events):
            opcode = frame.opcode
            if opcode is TEXT or opcode is BINARY or opcode is CONT:
                return not frame.fin
        return self._assembler.in_progress

    def _process(self, events: list[Any]) -> None:
        """Act on what the protocol made of the latest data: frames, its own answers, an error."""
        protocol = self.protocol
        if protocol.state is not OPEN and not self.closed:
            # The peer's close frame (or a protocol error) came, and the protocol queued its
            # closing frame already: hold that back so that answers to the earlier messages,
            # queued and not yet written or about to be, go out first.
            self._hold(protocol.data_to_send())
        if events:
            self._handle(events)
        self._pump()
        if protocol.parser_exc is not None and not self.closed and self.reading:
            self._parser_failed(protocol.parser_exc)

    def _hold(self, chunks: list[bytes]) -> None:
        """Keep the protocol's closing bytes back until the answers queued before them are out."""
        if self._held is None:
            self._held = chunks
        else:
            self._held.extend(chunks)

    def _handle(self, events: list[Any]) -> None:
        """Act on the frames the protocol parsed."""
        for frame in events:
            opcode = frame.opcode
            if opcode is TEXT or opcode is BINARY or opcode is CONT:
                if not self.closed and self.reading:
                    self._data_frame(frame)
            elif opcode is PONG or opcode is PING:
                # A whole control frame from the peer: it is alive (the protocol answers pings itself).
                if self.on_activity is not None:
                    self.on_activity()
            elif opcode is CLOSE:
                received = self.protocol.close_rcvd
                detail = f" ({received.code} {received.reason})".rstrip() if received is not None else ""
                self.close(f"the peer closed the connection{detail}")

    def _data_frame(self, frame: Frame) -> None:
        """Collect a text or binary frame; deliver the message once it is complete."""
        if frame.opcode is BINARY and not self.accepts_binary:
            self.protocol_error(ProtocolError("binary frames are not supported"), CloseCode.UNSUPPORTED_DATA)
            return
        try:
            message = self._assembler.feed(frame)
        except MessageRefused as exc:
            self.protocol_error(exc, exc.code)
            return
        if message is not None:
            opcode, data = message
            if opcode is TEXT:
                self.received(data)
            else:
                self.binary_received(data)

    def binary_received(self, data: bytes) -> None:
        """Handle a whole binary message (only called when :attr:`accepts_binary`)."""
        raise NotImplementedError

    def _parser_failed(self, exc: Exception) -> None:
        """Handle the error that stopped the protocol's parser (it has sent its close frame)."""
        if isinstance(exc, EOFError):
            self.close("the peer closed the connection")
        else:
            self.protocol_error(ProtocolError(str(exc) or type(exc).__name__), self.protocol.close_sent)

    def protocol_error(self, exc: ProtocolError, code: Any = CloseCode.PROTOCOL_ERROR) -> None:  # type: ignore[override]
        """The peer broke the WebSocket protocol: stop reading, report upward; close with ``code`` later.

        The close frame is held back so that answers to the messages that
        came before the error go out ahead of it.
        """
        number = getattr(code, "code", code)  # a Close (from the protocol) or a close code
        protocol = self.protocol
        if protocol.state is OPEN:
            protocol.fail(number, short_reason(str(exc)))
        self._hold(protocol.data_to_send())
        self.close_code = number
        super().protocol_error(exc)

    def probe(self) -> None:
        """Send a ping (the peer's pong reaches :attr:`on_activity`); does not block."""
        if self.protocol.state is OPEN and not self.closed:
            self.protocol.send_ping(b"")
            self._pump()

    # -- closing ----------------------------------------------------------

    def close(self, reason: str = "closed locally", code: int | None = None) -> None:
        """Start the closing handshake with ``code`` (default: one fitting ``reason``); does not block.

        Messages still queued go out before the close frame.
        """
        if self.closed:
            return
        if code is not None:
            self.close_code = code
        if self._out:
            self._frame(self._take_queue())  # the closing handshake sends them, whole frames first
        super().close(reason)

    def close_socket(self) -> None:
        """Send a close frame; the read loop finishes the handshake, a timer bounds it."""
        protocol = self.protocol
        if protocol.state is CONNECTING:
            self._abort()
            return
        if protocol.state is OPEN:
            code = self.close_code or close_code_for(self.close_reason)
            self.close_code = code
            protocol.send_close(code, short_reason(self.close_reason))
        if self._abort_timer is None and protocol.state is not CLOSED:
            self._abort_timer = gevent.spawn_later(self.close_timeout, self._abort)
        if protocol.writes or self._held:
            gevent.spawn(self._send_direct)

    def _abort(self) -> None:
        """Close the socket now (the read loop, if any, then ends)."""
        try:
            self.sock.close()
        except OSError as exc:
            log.debug("closing socket failed: %s", exc)

    def _finish(self) -> None:
        """After the read loop: stop the timers and close the socket for good."""
        timer = self._abort_timer
        if timer is not None and timer is not gevent.getcurrent():
            timer.kill(block=False)
        self._abort()
