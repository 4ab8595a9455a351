"""The frame layer: splits, batches, truncation and oversize lines, sans-I/O and through real sockets.

Raw sockets on 127.0.0.1 speak to a real TcpServer; a healthy client on
the same server keeps getting answers throughout, and every bad input gets
an Error line or a closed connection within 100 ms (measured).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import gevent
import pytest

from rpcengine import DecodeError, MessageTooLarge, ProtocolError
from rpcengine.codec import UjsonCodec
from rpcengine.wire import parse_frame
from transports.framing import LineDecoder

from .conftest import Figures
from .support import BUDGET, Baseline, HealthyClient, LineReader, TcpWorld, raw_tcp, wait_until

#: Valid messages of every kind, with the line endings and spacing a hand-typing user produces.
VALID_LINES: list[bytes] = [
    b'[2,1,"echo","plain"]',
    b'[2,2,"echo",{"nested":[1,2.5,-3e-2,true,false,null,{"k":"v"}]}]',
    b'[2,3,"echo","\\u00e9\\ud83d\\ude00\\n\\"quoted\\"\\\\"]',
    '[2,4,"echo","\u00e9\u4e2d\U0001f600 raw UTF-8"]'.encode(),
    b' [ 2 , 5 , "echo" , [ ] ] ',
    b'\t[2,6,"echo",{}]\t',
    b'[1,7,"echo","a notification"]',
    b"[0,0]",
    b'[2,8,"echo",' + json.dumps("x" * 3000).encode() + b"]",
    b'[2,9,"echo",[[[[[[[[[[1]]]]]]]]]]]',
]
REQUESTS = {json.loads(line)[1]: json.loads(line)[3] for line in VALID_LINES if json.loads(line)[0] == 2}


def stream(crlf: bool) -> bytes:
    """Return every valid line framed with LF (or CRLF), with blank lines between some."""
    end = b"\r\n" if crlf else b"\n"
    return end.join(VALID_LINES[:5]) + end + end + end.join(VALID_LINES[5:]) + end


@pytest.fixture
def tcp_world(quiet_logs: None) -> Iterator[TcpWorld]:
    """A TcpServer allowing 4 KiB frames, and a healthy client checking answers throughout."""
    made = TcpWorld(max_message_size=4096).start()
    healthy = HealthyClient(made.connect())
    made.healthy = healthy  # type: ignore[attr-defined]
    try:
        yield made
    finally:
        stats = healthy.stop()
        made.stop()
    assert not stats.failures, stats.failures
    assert stats.calls > 0


def read_answers(reader: LineReader, count: int, timeout: float = 5.0) -> dict[int, object]:
    """Read ``count`` answer lines; return request id -> data."""
    answers: dict[int, object] = {}
    for _ in range(count):
        line = reader.readline(timeout)
        assert line is not None, f"connection closed after {len(answers)} answers"
        kind, _, request_id, data = json.loads(line)
        assert kind == 3, line
        answers[request_id] = data
    return answers


def closed_within(sock: socket.socket, reader: LineReader, timeout: float) -> tuple[str, float]:
    """Wait for an Error line or EOF; return ('error' | 'close', seconds)."""
    start = time.perf_counter()
    line = reader.readline(timeout)
    if line == b"[-1]":  # a handshaken session says Disconnect before it closes
        line = reader.readline(timeout)
    elapsed = time.perf_counter() - start
    if line is None:
        return "close", elapsed
    message = json.loads(line)
    if message[0] == 4:
        return "error", elapsed
    return f"unexpected {line[:60]!r}", elapsed


# -- sans-I/O ----------------------------------------------------------------


def test_every_split_sans_io(figures: Figures) -> None:
    """Every split point of a stream of valid messages, and 1 byte per feed, gives the same lines."""
    tried = 0
    for crlf in (False, True):
        data = stream(crlf)
        whole = LineDecoder(4096).feed(data)
        assert [line.strip(b" \t") for line in whole] == [line.strip(b" \t") for line in VALID_LINES]
        for cut in range(len(data) + 1):
            decoder = LineDecoder(4096)
            assert decoder.feed(data[:cut]) + decoder.feed(data[cut:]) == whole, cut
            assert decoder.buffered == 0
            tried += 1
        decoder = LineDecoder(4096)
        assert [line for i in range(len(data)) for line in decoder.feed(data[i : i + 1])] == whole
        tried += 1
    figures.add("frames", "split_points", tried)


def test_thousand_messages_in_one_feed(figures: Figures) -> None:
    """1,000 messages in one feed come out as 1,000 lines, each parsing to its message."""
    data = b"".join(b'[2,%d,"echo",%d]\n' % (i, i) for i in range(1, 1001))
    lines = LineDecoder().feed(data)
    assert len(lines) == 1000
    codec = UjsonCodec()
    assert [parse_frame(codec, line).data for line in lines] == list(range(1, 1001))  # type: ignore[attr-defined]
    figures.add("frames", "messages_in_one_feed", 1000)


def test_truncation_sans_io(figures: Figures) -> None:
    """A valid message cut at every offset: the framer waits or refuses, the parser refuses, nothing else."""
    codec = UjsonCodec()
    tried = 0
    for line in VALID_LINES:
        for cut in range(1, len(line)):
            part = line[:cut]
            try:
                assert LineDecoder(4096).feed(part) == []
            except DecodeError:
                pass
            if part.strip(b" \t") not in (b"", line.strip(b" \t")):
                with pytest.raises(ProtocolError):
                    parse_frame(codec, part)
            tried += 1
    figures.add("frames", "truncations_sans_io", tried)


def test_oversize_sans_io() -> None:
    """A line over the limit raises MessageTooLarge as soon as it is too long, never buffering more."""
    decoder = LineDecoder(100)
    assert decoder.feed(b"[" + b"1" * 99) == []
    with pytest.raises(MessageTooLarge):
        decoder.feed(b"2")
    decoder = LineDecoder(100)
    with pytest.raises(MessageTooLarge):
        for _ in range(10_000):
            decoder.feed(b"[" * 7)
            assert decoder.buffered <= 101
    with pytest.raises(MessageTooLarge):
        LineDecoder(100).feed(b"[" * 101 + b"\n")
    assert LineDecoder(100).feed(b"[" * 100 + b"\n") == [b"[" * 100]


# -- through a real socket ------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_one_byte_per_read_through_a_socket(
    tcp_world: TcpWorld, monkeypatch: pytest.MonkeyPatch, figures: Figures, crlf: bool
) -> None:
    """The server (and the healthy client) read 1 byte per recv: every split point is crossed."""
    import transports.tcp

    monkeypatch.setattr(transports.tcp, "_RECV_SIZE", 1)
    data = stream(crlf)
    for handshake in (False, True):
        sock = raw_tcp(tcp_world.address)
        reader = LineReader(sock)
        try:
            if handshake:
                sock.sendall(b'{"rpcengine":1,"session":null,"ack":0}\n')
                assert json.loads(reader.readline(5) or b"null")["resumed"] is False
            sock.sendall(data)
            answers = read_answers(reader, len(REQUESTS))
        finally:
            sock.close()
        assert answers == REQUESTS
    figures.add("frames", "bytes_read_one_at_a_time", 2 * len(data))


def test_thousand_messages_in_one_read(tcp_world: TcpWorld, figures: Figures) -> None:
    """1,000 requests sent in one write (one read on the server) are all answered correctly."""
    sock = raw_tcp(tcp_world.address)
    reader = LineReader(sock)
    try:
        sock.sendall(b"".join(b'[2,%d,"echo",[%d,"x"]]\n' % (i, i) for i in range(1, 1001)))
        answers = read_answers(reader, 1000, timeout=10)
    finally:
        sock.close()
    assert answers == {i: [i, "x"] for i in range(1, 1001)}
    figures.add("frames", "messages_in_one_read", 1000)


@pytest.mark.timeout(120)
def test_truncation_at_every_offset(tcp_world: TcpWorld, baseline: Baseline, figures: Figures) -> None:
    """A request cut at every offset, then a newline or EOF: closed within 100 ms, never answered."""
    line = b'[2,77,"echo",{"k":["v",1,2.5,true,null],"e":"\\u00e9"}]'
    worst = 0.0
    tried = 0
    for cut in range(1, len(line)):
        for ending in ("newline", "eof", "handshaken"):
            sock = raw_tcp(tcp_world.address)
            reader = LineReader(sock)
            try:
                if ending == "handshaken":
                    sock.sendall(b'{"rpcengine":1}\n')
                    assert reader.readline(5) is not None
                sock.sendall(line[:cut] + (b"" if ending == "eof" else b"\n"))
                if ending == "eof":
                    sock.shutdown(socket.SHUT_WR)
                outcome, elapsed = closed_within(sock, reader, 2)
            finally:
                sock.close()
            assert outcome == "close", (cut, ending, outcome)
            assert elapsed < BUDGET, (cut, ending, elapsed)
            worst = max(worst, elapsed)
            tried += 1
    wait_until(lambda: len(tcp_world.server.links) == 1, 5, "truncated connections closed on the server")
    figures.add("frames", "truncations_through_socket", tried)
    figures.worst("frames", "worst_ms", worst * 1000)


@pytest.mark.timeout(60)
def test_oversize_lines(tcp_world: TcpWorld, figures: Figures) -> None:
    """Lines over max_message_size close the connection within 100 ms, without waiting for a newline."""
    limit = 4096
    exact = b'[2,5,"echo","' + b"a" * (limit - 15) + b'"]'
    assert len(exact) == limit
    cases = {
        "limit + 1, then newline": b"[" + b"1" * limit + b"\n",
        "limit + 1, no newline": b"[" + b"1" * limit,
        "spaces only, over the limit": b" " * (limit + 10),
        "handshake object over the limit": b'{"rpcengine":1,"pad":"' + b"p" * limit + b'"}\n',
        "valid line then an oversize one": exact + b"\n" + b"[" * (limit + 1),
    }
    worst = 0.0
    for label, payload in cases.items():
        sock = raw_tcp(tcp_world.address)
        reader = LineReader(sock)
        try:
            sock.sendall(payload)
            start = time.perf_counter()
            lines = []
            while (line := reader.readline(2)) is not None:
                if line != b"[-1]":
                    lines.append(line)
            elapsed = time.perf_counter() - start
        finally:
            sock.close()
        if label.startswith("valid line"):
            # Complete lines in the same read as a fatal framing error are dropped with it
            # (at most once: the client sees ConnectionLost); in an earlier read they are answered.
            assert len(lines) <= 1 and all(json.loads(x)[:3] == [3, 1, 5] for x in lines), lines
        else:
            assert lines == [], (label, lines)
        assert elapsed < BUDGET, (label, elapsed)
        worst = max(worst, elapsed)
    # A line of exactly the limit is fine, also with CRLF.
    for ending in (b"\n", b"\r\n"):
        sock = raw_tcp(tcp_world.address)
        try:
            sock.sendall(exact + ending)
            assert read_answers(LineReader(sock), 1) == {5: "a" * (limit - 15)}
        finally:
            sock.close()
    # A flood of 10 MiB without a newline: closed once past the limit, the rest refused.
    sock = raw_tcp(tcp_world.address)
    start = time.perf_counter()
    sent = 0
    chunk = b"[" + b"9" * 65535
    try:
        with gevent.Timeout(5):
            while sent < 10 << 20:
                sock.sendall(chunk)
                sent += len(chunk)
    except OSError:
        pass
    reader = LineReader(sock)
    assert reader.readline(2) is None
    flood_elapsed = time.perf_counter() - start
    sock.close()
    assert sent < 10 << 20, "the server read a 10 MiB line to the end"
    # Blank lines are skipped however many: 100,000 of them, then a request, answered.
    sock = raw_tcp(tcp_world.address)
    try:
        sock.sendall(b"\n" * 100_000 + b'[2,1,"echo","after blanks"]\n')
        assert read_answers(LineReader(sock), 1) == {1: "after blanks"}
    finally:
        sock.close()
    figures.add("frames", "oversize_inputs", len(cases) + 4)
    figures.worst("frames", "worst_ms", worst * 1000)
    figures.worst("frames", "flood_10MiB_closed_ms", flood_elapsed * 1000)
