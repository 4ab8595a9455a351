"""Fuzz targets for the frame parser and the message parser, shared by atheris and the fallback.

Each target takes raw bytes and raises (a crash) only for behaviour outside
the contract: the documented errors are ``rpcengine.ProtocolError``
subclasses (DecodeError, MessageTooLarge, InvalidMessage, HandshakeError);
anything else, or a broken invariant (an AssertionError), is a finding.
Imported inside ``atheris.instrument_imports()`` by ``run_atheris.py``.
"""

from __future__ import annotations

from rpcengine.codec import OrjsonCodec, UjsonCodec
from rpcengine.errors import DecodeError, HandshakeError, InvalidMessage, MessageTooLarge, ProtocolError
from rpcengine.messages import MAX_MESSAGE_ID, Message
from transports.framing import LineDecoder
from transports.session.handshake import is_handshake_frame, parse_client_hello, parse_server_hello

CODECS = (UjsonCodec(max_size=1 << 16), OrjsonCodec(max_size=1 << 16))


def _chunks(data: bytes) -> tuple[int, list[bytes]]:
    """Split fuzz input into a line limit (first byte) and chunks (sizes from the next bytes)."""
    if not data:
        return 1, []
    max_line = 1 + data[0] % 200
    sizes, rest = data[1:4], data[4:]
    chunks: list[bytes] = []
    index = 0
    while rest:
        size = 1 + (sizes[index % len(sizes)] if sizes else len(rest)) % 97
        chunks.append(rest[:size])
        rest = rest[size:]
        index += 1
    return max_line, chunks


def frames(data: bytes) -> None:
    """LineDecoder.feed over any bytes in any chunking: lines or a documented error, consistently."""
    max_line, chunks = _chunks(data)
    decoder = LineDecoder(max_line)
    lines: list[bytes] = []
    failed = False
    for chunk in chunks:
        try:
            got = decoder.feed(chunk)
        except (DecodeError, MessageTooLarge):
            failed = True
            break
        for line in got:
            assert b"\n" not in line, line
            assert 0 < len(line) <= max_line, (len(line), max_line)
        lines.extend(got)
        assert decoder.buffered <= max_line + 1, (decoder.buffered, max_line)
    whole_data = b"".join(chunks)
    try:
        whole = LineDecoder(max_line).feed(whole_data)
    except (DecodeError, MessageTooLarge):
        assert failed, "a single feed refused what a chunked feed accepted"
        return
    if not failed:
        assert lines == whole, (lines, whole)


def messages(data: bytes) -> None:
    """codec.decode then Message.from_list (or the handshake parsers): a value or a documented error."""
    for codec in CODECS:
        try:
            value = codec.decode(data)
        except (DecodeError, MessageTooLarge):
            continue
        if is_handshake_frame(data):
            for parse in (parse_client_hello, parse_server_hello):
                try:
                    parse(value)
                except HandshakeError:
                    pass
            continue
        try:
            message = Message.from_list(value)
        except InvalidMessage as exc:
            rid = exc.request_id
            assert rid is None or (type(rid) is int and 0 <= rid <= MAX_MESSAGE_ID), rid
            continue
        try:
            again = Message.from_list(codec.decode(codec.encode(message.to_list())))
        except ProtocolError as exc:  # pragma: no cover - a finding
            raise AssertionError(f"{codec.name}: a parsed message does not survive a round trip: {exc}") from exc
        assert again == message, (again, message)


TARGETS = {"frames": frames, "messages": messages}
