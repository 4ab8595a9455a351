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


def _check_start(partial: bytes) -> None:
    """Raise DecodeError at once if a line being received cannot be a JSON list or object.

    Every frame starts with ``[`` or ``{``; rejecting anything else early
    closes an HTTP request, a TLS ClientHello or random bytes without
    waiting for a newline that may never come.
    """
    head = partial.lstrip(_WHITESPACE)[:1]
    if head and head not in (b"[", b"{"):
        raise DecodeError(f"a frame must start with '[' or '{{', got {head!r}")


class LineDecoder:
    """Split a byte stream into lines of at most ``max_line`` bytes."""

    def __init__(self, max_line: int = DEFAULT_MAX_SIZE) -> None:
        self.max_line = max_line
        self._buffer = b""

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of a whole line."""
        return len(self._buffer)

    def _too_long(self, partial: bytes) -> bool:
        """Return whether a line still waiting for its newline is already over the limit.

        The limit excludes the line ending, so a final ``\\r`` (half of a
        CRLF) may stand one byte past it: however the stream is split, a
        line of ``max_line`` bytes is accepted.
        """
        excess = len(partial) - self.max_line
        return excess > 1 or (excess == 1 and partial[-1:] != b"\r")

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
            self._buffer = b""
            if not hasattr(exc, "lines"):
                exc.lines = []  # type: ignore[union-attr]
            raise

    def _feed(self, data: bytes) -> list[bytes]:
        """Split ``data`` (after what is buffered) into whole lines; raise at a framing error."""
        buffer = self._buffer + data if self._buffer else data
        if b"\n" not in data:
            if self._too_long(buffer):
                raise MessageTooLarge(f"line exceeds {self.max_line} bytes")
            self._buffer = buffer
            _check_start(buffer)
            return []
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        result: list[bytes] = []
        max_line = self.max_line
        for line in lines:
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line or (line[0] in _BLANK and not line.strip(_WHITESPACE)):
                continue
            if len(line) > max_line:
                raise _with_lines(MessageTooLarge(f"line exceeds {max_line} bytes"), result)
            result.append(line)
        if self._too_long(self._buffer):
            raise _with_lines(MessageTooLarge(f"line exceeds {self.max_line} bytes"), result)
        if self._buffer:
            try:
                _check_start(self._buffer)
            except DecodeError as exc:
                raise _with_lines(exc, result) from None
        return result


def _with_lines(exc: DecodeError | MessageTooLarge, lines: list[bytes]) -> DecodeError | MessageTooLarge:
    """Attach the whole lines found before a framing error, to be handled before the error is."""
    exc.lines = lines  # type: ignore[union-attr]
    return exc
