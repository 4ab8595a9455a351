"""LineDecoder, sans I/O: how a byte stream is cut into message lines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcengine.errors import DecodeError, MessageTooLarge
from transports.framing import LineDecoder, frame_line

MESSAGES = [
    b'[2,1,"echo","hi"]',
    b'[1,2,"note",{"a":[1,2,3],"b":"\xc3\xa9t\xc3\xa9"}]',
    b'{"rpcengine":1,"session":null,"ack":0}',
    b"[0,17]",
    b"[-1]",
    b'[3,4,1,"' + b"x" * 300 + b'"]',
]


def feed_in_chunks(decoder: LineDecoder, stream: bytes, cuts: list[int]) -> list[bytes]:
    """Feed ``stream`` cut at the offsets ``cuts``; return every line produced."""
    lines: list[bytes] = []
    start = 0
    for end in [*sorted(cuts), len(stream)]:
        lines.extend(decoder.feed(stream[start:end]))
        start = end
    return lines


def test_one_byte_at_a_time_yields_the_same_lines_as_one_feed():
    stream = b"".join(frame_line(m) for m in MESSAGES)
    decoder = LineDecoder()
    lines = []
    for i in range(len(stream)):
        lines.extend(decoder.feed(stream[i : i + 1]))
    assert lines == MESSAGES
    assert decoder.buffered == 0


def test_every_single_cut_point_yields_the_same_lines():
    stream = b"".join(frame_line(m) for m in MESSAGES)
    for cut in range(len(stream) + 1):
        assert feed_in_chunks(LineDecoder(), stream, [cut]) == MESSAGES, cut


@given(st.lists(st.integers(min_value=0, max_value=600), max_size=20), st.booleans())
def test_any_chunking_with_lf_or_crlf_yields_the_same_lines(cuts, crlf):
    ending = b"\r\n" if crlf else b"\n"
    stream = b"".join(m + ending for m in MESSAGES)
    cuts = [c for c in cuts if c <= len(stream)]
    assert feed_in_chunks(LineDecoder(), stream, cuts) == MESSAGES


def test_thousand_messages_in_one_feed():
    messages = [b'[1,%d,"tick",%d]' % (i, i * i) for i in range(1, 1001)]
    decoder = LineDecoder()
    assert decoder.feed(b"".join(frame_line(m) for m in messages)) == messages
    assert decoder.buffered == 0


def test_crlf_endings_and_blank_lines_are_dropped():
    decoder = LineDecoder()
    assert decoder.feed(b'\n\r\n[2,1,"echo","hi"]\r\n\n \t \r\n[0,1] \n') == [b'[2,1,"echo","hi"]', b"[0,1] "]


def test_truncated_line_is_held_until_its_newline_arrives():
    decoder = LineDecoder()
    assert decoder.feed(b'[2,1,"echo"') == []
    assert decoder.buffered == len(b'[2,1,"echo"')
    assert decoder.feed(b',"hi"]\n[0,') == [b'[2,1,"echo","hi"]']
    assert decoder.buffered == 3


def test_line_longer_than_max_raises_before_its_newline_and_buffers_at_most_max():
    decoder = LineDecoder(max_line=100)
    decoder.feed(b"[" + b"1," * 40)
    assert decoder.buffered == 81
    with pytest.raises(MessageTooLarge):
        decoder.feed(b"1," * 10)
    assert decoder.buffered == 0


def test_complete_line_longer_than_max_raises():
    decoder = LineDecoder(max_line=100)
    with pytest.raises(MessageTooLarge):
        decoder.feed(b"[0,1]\n[" + b"0" * 200 + b"]\n")


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_line_of_exactly_max_bytes_is_accepted_however_it_is_split(ending):
    line = b"[" + b"7" * 98 + b"]"
    stream = line + ending
    for cut in range(len(stream) + 1):
        assert feed_in_chunks(LineDecoder(max_line=100), stream, [cut]) == [line], cut
    with pytest.raises(MessageTooLarge):
        feed_in_chunks(LineDecoder(max_line=99), stream, [len(line)])


@pytest.mark.parametrize(
    "start",
    [b"GET / HTTP/1.1\r", b"\x16\x03\x01\x02\x00\x01", b"42", b"hello", b"  \tx"],
)
def test_partial_line_that_cannot_be_json_list_or_object_is_refused_at_once(start):
    with pytest.raises(DecodeError):
        LineDecoder().feed(start)


def test_partial_line_with_leading_whitespace_then_bracket_is_accepted():
    decoder = LineDecoder()
    assert decoder.feed(b" \t[2,1,") == []
    assert decoder.feed(b'"echo",1]\n') == [b' \t[2,1,"echo",1]']


def test_framing_errors_carry_the_whole_lines_before_them_and_reset_the_decoder():
    decoder = LineDecoder(max_line=20)
    with pytest.raises(DecodeError) as refused:
        decoder.feed(b"[0,1]\n[0,2]\r\nGET / HTTP/1.1")
    assert refused.value.lines == [b"[0,1]", b"[0,2]"]
    assert decoder.buffered == 0
    decoder = LineDecoder(max_line=20)
    assert decoder.feed(b"[0,") == []
    with pytest.raises(MessageTooLarge) as too_long:
        decoder.feed(b"3]\n[" + b"1" * 30)
    assert too_long.value.lines == [b"[0,3]"]
    assert decoder.buffered == 0
    with pytest.raises(MessageTooLarge) as too_long:
        LineDecoder(max_line=20).feed(b"[0,1]\n[" + b"1" * 30 + b"]\n[0,2]\n")
    assert too_long.value.lines == [b"[0,1]"]
    with pytest.raises(MessageTooLarge) as too_long:
        LineDecoder(max_line=20).feed(b"[" * 30)
    assert too_long.value.lines == []


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b"  \t", b"\n"], []),  # a held line of blanks, then its newline
        ([b"  \r", b"\n[0,1]\n"], [b"[0,1]"]),  # blanks and half a CRLF
        ([b" ", b" ", b"\r\n"], []),
        ([b"  ", b" [0,1]\n"], [b"   [0,1]"]),  # blanks held, the frame in the chunk with the newline
        ([b"[0,1]\r", b"\n"], [b"[0,1]"]),  # the CR held, the LF in the next chunk
        ([b"[0,", b"1]\r", b"\n[0,2]\r\n"], [b"[0,1]", b"[0,2]"]),
        ([b"[0,1", b"]\n\n \n[0,2", b"]\n"], [b"[0,1]", b"[0,2]"]),
    ],
)
def test_a_held_line_ends_as_in_one_feed(chunks, lines):
    decoder = LineDecoder()
    assert [line for chunk in chunks for line in decoder.feed(chunk)] == lines
    assert LineDecoder().feed(b"".join(chunks)) == lines
    assert decoder.buffered == 0


def test_a_long_blank_held_line_is_skipped_even_past_the_limit_once_complete():
    decoder = LineDecoder(max_line=10)
    assert decoder.feed(b" " * 10) == []
    assert decoder.feed(b"  \n[0,1]\n") == [b"[0,1]"]
    assert LineDecoder(max_line=10).feed(b" " * 12 + b"\n[0,1]\n") == [b"[0,1]"]
