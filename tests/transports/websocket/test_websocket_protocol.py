"""WebSocket pieces without sockets: message assembly, UTF-8 checks, close codes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import BINARY, CONT, TEXT, Frame

from rpcengine.errors import MessageRefused
from transports.websocket.protocol import MessageAssembler, close_code_for, short_reason


def fragments(data: bytes, cuts: list[int], opcode=TEXT) -> list[Frame]:
    """Return ``data`` as a message in frames cut at ``cuts``."""
    points = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in itertools.pairwise(points)] or [b""]
    return [Frame(CONT if i else opcode, piece, fin=i == len(pieces) - 1) for i, piece in enumerate(pieces)]


@given(text=st.text(max_size=200), cuts=st.lists(st.integers(0, 800), max_size=10), binary=st.booleans())
def test_any_fragmentation_assembles_the_message(text, cuts, binary):
    data = text.encode()
    opcode = BINARY if binary else TEXT
    assembler = MessageAssembler(max_fragments=16)
    results = [assembler.feed(frame) for frame in fragments(data, cuts, opcode)]
    assert results[:-1] == [None] * (len(results) - 1)
    assert results[-1] == (opcode, data)


@given(prefix=st.text(max_size=50), cuts=st.lists(st.integers(0, 200), max_size=6))
def test_invalid_utf8_is_refused_by_the_fragment_that_makes_it_invalid(prefix, cuts):
    good = prefix.encode()
    data = good + b"\xed\xa0\x80" + b"tail"  # an encoded surrogate: never valid UTF-8
    assembler = MessageAssembler(max_fragments=16)
    start = 0
    with pytest.raises(MessageRefused) as refused:
        for frame in fragments(data, cuts):
            end = start + len(frame.data)
            assembler.feed(frame)
            start = end
    assert refused.value.code == 1007
    assert start <= len(good) + 2 < end + 1  # the refused fragment holds the bad bytes: no later one was read


def test_fragment_limit():
    assembler = MessageAssembler(max_fragments=3)
    assert assembler.feed(Frame(TEXT, b"a", fin=False)) is None
    assert assembler.feed(Frame(CONT, b"b", fin=False)) is None
    assert assembler.feed(Frame(CONT, b"c", fin=True)) == (TEXT, b"abc")
    assembler.feed(Frame(TEXT, b"a", fin=False))
    assembler.feed(Frame(CONT, b"b", fin=False))
    assembler.feed(Frame(CONT, b"c", fin=False))
    with pytest.raises(MessageRefused) as refused:
        assembler.feed(Frame(CONT, b"", fin=False))
    assert refused.value.code == 1009
    assert assembler.feed(Frame(TEXT, b"next", fin=True)) == (TEXT, b"next")  # a new message may start


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("server stopped", 1001),
        ("protocol error: bad", 1002),
        ("handshake timeout", 1008),
        ("refused: authentication failed", 1008),
        ("slow consumer: 10 messages await acknowledgement", 1008),
        ("no frame from the peer for 15 s", 1011),
        ("disconnected", 1000),
        ("closed locally", 1000),
    ],
)
def test_close_codes_for_session_reasons(reason, code):
    assert close_code_for(reason) == code


def test_close_reason_fits_a_control_frame():
    reason = short_reason("é" * 100)
    assert len(reason.encode()) <= 123
    assert reason == "é" * 61
