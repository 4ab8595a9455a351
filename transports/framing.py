"""Line framing for byte streams: one JSON message per ``\\n``-terminated line.

:class:`LineDecoder` is sans-I/O: feed it bytes as they arrive, get whole
lines back. A line longer than ``max_line`` (not counting its line ending) raises
:class:`~rpcengine.errors.MessageTooLarge` as soon as that many bytes have
arrived without a newline, so an overlong line is never buffered whole.
A ``\\r`` before the ``\\n`` is dropped and blank lines (empty, or only
spaces and tabs) are skipped, so ``nc`` and ``socat`` users can type
messages by hand.
"""

from __future__ import annotations

from rpcengine.codec import DEFAULT_MAX_SIZE
from rpcengine.errors import DecodeError, MessageTooLarge

__all__ = ["LineDecoder", "frame_line"]


def frame_line(payload: bytes) -> bytes:
    """Return ``payload`` framed as one line (the codec never emits a raw newline)."""
    return payload + b"\n"


_WHITESPACE = b" \t\r"
_BLANK = frozenset(_WHITESPACE)
_CR = 0x0D
_NEWLINE = 0x0A


def _check_start(chunk: bytes) -> bool:
    """Return whether ``chunk`` holds the first byte of a line that is not a blank; check that byte.

    Every frame starts with ``[`` or ``{``; anything else raises
    DecodeError at once, so an HTTP request, a TLS ClientHello or random
    bytes are refused without waiting for a newline that may never come.
    Called only while the line so far is blank, so each byte is looked at
    once at most.
    """
    if chunk[0] in _BLANK:
        chunk = chunk.lstrip(_WHITESPACE)
        if not chunk:
            return False
    head = chunk[:1]
    if head not in (b"[", b"{"):
        raise DecodeError(f"a frame must start with '[' or '{{', got {head!r}")
    return True


class LineDecoder:
    """Split a byte stream into lines of at most ``max_line`` bytes, in time linear in the bytes fed.

    However the stream is cut, each byte is copied and scanned a few times
    at most: a line still waiting for its newline grows in a bytearray (no
    copy of what came before, about an eighth of slack) and becomes bytes
    once, when its newline comes; whether it can start a JSON document is
    decided once, at its first byte that is not a blank.
    """

    def __init__(self, max_line: int = DEFAULT_MAX_SIZE) -> None:
        self.max_line = max_line
        self._partial = bytearray()  # the line still waiting for its newline
        self._started = False  # _partial holds a byte that is not a blank (and it was checked)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of a whole line."""
        return len(self._partial)

    def _hold(self, chunk: bytes) -> None:
        """Add ``chunk`` (not empty, no newline) to the line waiting for its newline; raise at a framing error.

        The limit excludes the line ending, so a final ``\\r`` (half of a
        CRLF) may stand one byte past it: however the stream is split, a
        line of ``max_line`` bytes is accepted.
        """
        excess = len(self._partial) + len(chunk) - self.max_line
        if excess > 0 and (excess > 1 or chunk[-1] != _CR):
            raise MessageTooLarge(f"line exceeds {self.max_line} bytes")
        if not self._started:
            self._started = _check_start(chunk)
        self._partial += chunk

    def _reset(self) -> None:
        """Forget the line waiting for its newline (and the memory it held)."""
        self._partial = bytearray()
        self._started = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data`` and return the whole lines it completes, without their newline.

        Raises MessageTooLarge once a line exceeds ``max_line`` and
        DecodeError for a line that cannot start a JSON document; the
        decoder is then unusable (the stream has lost its framing). The
        error's ``lines`` attribute holds the whole lines that came before
        the break, to be handled (and answered) before the connection ends.
        """
        try:
            return self._feed(data)
        except (DecodeError, MessageTooLarge) as exc:
            self._reset()
            if not hasattr(exc, "lines"):
                exc.lines = []  # type: ignore[union-attr]
            raise

    def _complete(self, head: bytes, result: list[bytes]) -> None:
        """End the held line with ``head`` (what came before its newline); add it to ``result`` unless blank.

        The held bytes are copied once, and not scanned again: the line is
        blank only if they were all blanks and ``head`` is too.
        """
        partial, started = self._partial, self._started
        self._reset()
        if head[-1:] == b"\r":
            head = head[:-1]
        elif not head and partial[-1] == _CR:
            del partial[-1]
        if not started and not head.strip(_WHITESPACE):
            return
        if len(partial) + len(head) > self.max_line:
            raise MessageTooLarge(f"line exceeds {self.max_line} bytes")
        result.append(b"".join((partial, head)))

    def _feed(self, data: bytes) -> list[bytes]:
        """Split ``data`` (after what is held) into whole lines; raise at a framing error."""
        if _NEWLINE not in data:  # (an int: `in` with a bytes needle costs a raised and cleared TypeError)
            if data:
                self._hold(data)
            return []
        lines = data.split(b"\n")
        rest = lines.pop()
        result: list[bytes] = []
        if self._partial:
            self._complete(lines.pop(0), result)
        max_line = self.max_line
        for line in lines:
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line or (line[0] in _BLANK and not line.strip(_WHITESPACE)):
                continue
            if len(line) > max_line:
                raise _with_lines(MessageTooLarge(f"line exceeds {max_line} bytes"), result)
            result.append(line)
        if rest:
            try:
                self._hold(rest)
            except (DecodeError, MessageTooLarge) as exc:
                raise _with_lines(exc, result) from None
        return result


def _with_lines(exc: DecodeError | MessageTooLarge, lines: list[bytes]) -> DecodeError | MessageTooLarge:
    """Attach the whole lines found before a framing error, to be handled before the error is."""
    exc.lines = lines  # type: ignore[union-attr]
    return exc
