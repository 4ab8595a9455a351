"""WebSocket transport: bad input gets the right close code, quickly and with bounded memory.

Most cases use :class:`RawWebSocket`, which upgrades properly and then puts
hand-made frames on the wire; the Autobahn TestSuite (tests/transports/websocket/autobahn)
covers the rest of RFC 6455. Close codes: 1002 protocol error, 1003
unsupported data, 1007 invalid payload (not UTF-8), 1008 policy violation,
1009 message too big.
"""

from __future__ import annotations

import itertools
import json
import socket
import struct
import time
import tracemalloc
from typing import Any

import gevent
import gevent.event
import gevent.select
import gevent.socket
import pytest
from gevent.server import StreamServer
from helpers.tcp import wait_until
from helpers.ws import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    RawWebSocket,
    frame_bytes,
    start_ws_server,
    ws_server_fixture,  # noqa: F401
)
from helpers.ws_echo import CONFIG, EchoLink, EchoServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.protocol import State

from rpcengine.errors import ConnectionLost
from transports.websocket import connect, open_websocket
from transports.websocket.protocol import ServerProtocol, receive_handshake, send_protocol_data

PROTOCOL_ERROR, UNSUPPORTED_DATA, INVALID_DATA, POLICY_VIOLATION, MESSAGE_TOO_BIG = 1002, 1003, 1007, 1008, 1009


def assert_closed_with(raw: RawWebSocket, code: int, timeout: float = 5.0) -> str:
    """Assert that the server closes with ``code`` within ``timeout``; return the reason it gave."""
    received, reason, _ = raw.wait_close(timeout)
    assert received == code, (received, reason)
    return reason


# -- close codes ------------------------------------------------------------------


def test_binary_frame_is_refused_with_1003(ws_server):
    raw = RawWebSocket(ws_server().url())
    raw.send(frame_bytes(OP_BINARY, b'[2,1,"echo",1]'))
    assert "binary" in assert_closed_with(raw, UNSUPPORTED_DATA)


def test_oversize_message_is_refused_with_1009(ws_server):
    raw = RawWebSocket(ws_server(max_message_size=1024).url())
    raw.send_message([2, 1, "echo", "x" * 1000])
    assert raw.read_message() == [3, 1, 1, "x" * 1000]
    raw.send_message([2, 2, "echo", "x" * 1100])
    assert_closed_with(raw, MESSAGE_TOO_BIG)


def test_invalid_utf8_text_is_refused_with_1007(ws_server):
    raw = RawWebSocket(ws_server().url())
    raw.send_text(b'[2,1,"echo","\xff\xfe"]')
    assert "UTF-8" in assert_closed_with(raw, INVALID_DATA)


def test_invalid_utf8_is_refused_at_the_first_bad_fragment(ws_server):
    raw = RawWebSocket(ws_server().url())
    raw.send(frame_bytes(OP_TEXT, b'[2,1,"echo","\xce\xba', fin=False))  # valid so far: a code point split in two
    raw.send(frame_bytes(OP_CONT, b"\xe1\xbd", fin=False))
    raw.send(frame_bytes(OP_CONT, b"\xf4\x90\x80\x80", fin=False))  # above U+10FFFF: invalid at once
    assert_closed_with(raw, INVALID_DATA)  # the message's last fragment was never sent


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(frame_bytes(OP_TEXT, b'[1,1,"n",1]', rsv=4), id="reserved-bit"),
        pytest.param(frame_bytes(0x3, b"x"), id="reserved-opcode"),
        pytest.param(frame_bytes(0xB, b""), id="reserved-control-opcode"),
        pytest.param(frame_bytes(OP_PING, b"x" * 126), id="control-frame-too-long"),
        pytest.param(frame_bytes(OP_PING, b"x", fin=False), id="fragmented-control-frame"),
        pytest.param(frame_bytes(OP_CONT, b"x"), id="continuation-without-start"),
        pytest.param(frame_bytes(OP_TEXT, b"[", fin=False) + frame_bytes(OP_TEXT, b"]"), id="new-message-mid-message"),
        pytest.param(frame_bytes(0x8, b"\x03"), id="close-payload-of-one-byte"),
        pytest.param(frame_bytes(0x8, struct.pack("!H", 1005)), id="close-code-1005-on-the-wire"),
        pytest.param(frame_bytes(OP_TEXT, b'[1,1,"n",1]', mask=False), id="unmasked-client-frame"),
    ],
)
def test_protocol_errors_are_refused_with_1002(ws_server, frame):
    raw = RawWebSocket(ws_server().url())
    raw.send(frame)
    assert_closed_with(raw, PROTOCOL_ERROR)


def test_bad_handshake_object_is_refused_with_1008(ws_server):
    raw = RawWebSocket(ws_server().url())
    raw.send_message({"not": "a handshake"})
    assert raw.read_message()["error"].startswith("handshake lacks")
    assert "refused" in assert_closed_with(raw, POLICY_VIOLATION)


def test_text_that_is_not_a_message_list_closes_with_1002(ws_server):
    gone = gevent.event.AsyncResult()
    raw = RawWebSocket(ws_server(on_disconnect=gone.set).url())
    raw.send_message([1, 1, "echo", "a plain session"])
    raw.send_text(b"[7, 7]")
    assert "protocol error" in assert_closed_with(raw, PROTOCOL_ERROR)
    assert "protocol error" in gone.get(timeout=5).close_reason


# -- limits -------------------------------------------------------------------------


def test_declared_length_of_2_63_minus_1_is_refused_without_waiting_for_it(ws_server):
    raw = RawWebSocket(ws_server().url())
    tracemalloc.start()
    try:
        raw.send(frame_bytes(OP_TEXT, b"[", length=2**63 - 1)[:14])  # the header and mask only
        code, _, took = raw.wait_close(5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == MESSAGE_TOO_BIG
    assert took < 2  # refused on the header: no payload was awaited
    assert peak < 1 << 20  # nor allocated


def test_declared_length_with_the_top_bit_set_is_refused(ws_server):
    raw = RawWebSocket(ws_server().url())
    raw.send(struct.pack("!BBQ", 0x81, 0xFF, 2**64 - 1) + b"\x00\x00\x00\x00")
    code, _, _ = raw.wait_close(5)
    assert code in (PROTOCOL_ERROR, MESSAGE_TOO_BIG)


def test_too_many_fragments_are_refused_with_1009(ws_server):
    raw = RawWebSocket(ws_server(max_fragments=8).url())
    pieces = [b'[2,1,"echo",', b'"', b"a", b"b", b"c", b"d", b'"', b"]"]  # eight fragments: fine
    raw.send(b"".join(frame_bytes(OP_CONT if i else OP_TEXT, p, fin=i == 7) for i, p in enumerate(pieces)))
    assert raw.read_message() == [3, 1, 1, "abcd"]
    raw.send(frame_bytes(OP_TEXT, b"[", fin=False) + frame_bytes(OP_CONT, b"", fin=False) * 20)
    assert "fragments" in assert_closed_with(raw, MESSAGE_TOO_BIG)


def test_oversize_message_across_fragments_is_refused_with_1009(ws_server):
    raw = RawWebSocket(ws_server(max_message_size=4096).url())
    raw.send(frame_bytes(OP_TEXT, b'["', fin=False))
    for _ in range(4):
        raw.send(frame_bytes(OP_CONT, b"x" * 1000, fin=False))  # each fragment is small; the sum is not
    raw.send(frame_bytes(OP_CONT, b"x" * 1000, fin=False))
    assert_closed_with(raw, MESSAGE_TOO_BIG)


def test_slow_handshake_is_closed_at_the_deadline(ws_server):
    server = ws_server(handshake_timeout=0.5)
    host, port = server.address[:2]
    request = (
        f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    sock = gevent.socket.create_connection((host, port), timeout=5)
    started = time.monotonic()
    closed_after = None
    for byte in request:  # one byte every 50 ms: the whole request would take > 8 s
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            closed_after = time.monotonic() - started
            break
        readable = gevent.select.select([sock], [], [], 0.05)[0]
        if readable:
            try:
                data = sock.recv(1024)
            except OSError:
                data = b""
            if not data:
                closed_after = time.monotonic() - started
                break
    sock.close()
    assert closed_after is not None, "the server waited for the whole trickled handshake"
    assert 0.4 <= closed_after < 2.0


def test_upgrade_without_session_handshake_is_closed_at_the_deadline(ws_server):
    raw = RawWebSocket(ws_server(handshake_timeout=0.3).url())
    code, reason, took = raw.wait_close(5)
    assert (code, reason) == (POLICY_VIOLATION, "handshake timeout")
    assert took < 2


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, None, id="tls-client-hello"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", b"400", id="no-key"
        ),
        pytest.param(b"GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", b"505", id="http-1.0"),
        pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"405", id="post"),
    ],
)
def test_bad_http_is_answered_and_closed(ws_server, request_bytes, status):
    server = ws_server(handshake_timeout=1)  # what never becomes an HTTP request is closed at the deadline
    sock = gevent.socket.create_connection(server.address[:2], timeout=5)
    sock.sendall(request_bytes)
    data = b""
    with gevent.Timeout(5):
        while chunk := sock.recv(65536):
            data += chunk
    sock.close()
    if status is None:
        assert data == b""
    else:
        assert data.split(b" ")[1] == status, data


# -- answers still go out when the close comes in the same read --------------------------


@pytest.mark.parametrize("trailer", [frame_bytes(0x8, struct.pack("!H", 1000)), frame_bytes(0x3, b"")])
def test_answers_to_messages_read_with_a_close_or_an_error_go_out_first(trailer):
    server = EchoServer(("127.0.0.1", 0)).start()
    try:
        raw = RawWebSocket(server.url())
        raw.send(frame_bytes(OP_TEXT, b"first") + frame_bytes(OP_TEXT, b"second") + trailer)  # one read
        frames = []
        while not any(frame.opcode == 0x8 for frame in frames):
            frames += raw.events()
        assert [(int(f.opcode), bytes(f.data)) for f in frames[:2]] == [(1, b"first"), (1, b"second")]
        raw.close()
    finally:
        server.stop(timeout=1)


def test_client_answers_before_echoing_the_servers_close():
    received: list[bytes] = []
    server = serve_once(
        frame_bytes(OP_TEXT, b"ping?", mask=False) + frame_bytes(0x8, b"\x03\xe8", mask=False), received
    )
    try:
        link = open_websocket(
            f"ws://127.0.0.1:{server.address[1]}/", CONFIG, subprotocols=None, link_class=EchoLink, close_timeout=0.5
        )
        link.run()
        protocol = ServerProtocol(state=State.OPEN)
        protocol.receive_data(b"".join(received))
        assert [(int(f.opcode), bytes(f.data)) for f in protocol.events_received()] == [(1, b"ping?"), (8, b"\x03\xe8")]
    finally:
        server.stop(timeout=0)


# -- our client refuses bad servers ---------------------------------------------------


def serve_once(send_after_upgrade: bytes, received: list[bytes]) -> StreamServer:
    """Start a raw server that upgrades, sends ``send_after_upgrade``, and records what comes back."""

    def handle(sock: Any, _address: Any) -> None:
        protocol = ServerProtocol()
        request, _ = receive_handshake(sock, protocol)
        protocol.send_response(protocol.accept(request))
        send_protocol_data(sock, protocol)
        sock.sendall(send_after_upgrade)
        sock.settimeout(5)
        try:
            while data := sock.recv(65536):
                received.append(data)
        except TimeoutError:
            pass  # the test is over (its server.stop does not end handlers): stop recording, quietly

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    return server


def close_code_in(data: bytes) -> int:
    """Return the close code of the (masked, client-sent) close frame at the start of ``data``."""
    protocol = ServerProtocol(state=State.OPEN)
    protocol.receive_data(data)
    (frame,) = [event for event in protocol.events_received() if event.opcode == 0x8]
    return struct.unpack("!H", frame.data[:2])[0]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(frame_bytes(OP_TEXT, b'[1,1,"n",1]', mask=True), PROTOCOL_ERROR, id="masked-server-frame"),
        pytest.param(frame_bytes(OP_BINARY, b"\x00", mask=False), UNSUPPORTED_DATA, id="binary-from-server"),
        pytest.param(frame_bytes(OP_TEXT, b"\xff", mask=False), INVALID_DATA, id="invalid-utf8-from-server"),
        pytest.param(frame_bytes(OP_TEXT, b"x", mask=False, length=2**40), MESSAGE_TOO_BIG, id="huge-from-server"),
    ],
)
def test_client_refuses_bad_frames_from_the_server(frame, code):
    received: list[bytes] = []
    server = serve_once(frame, received)
    try:
        client = connect(f"ws://127.0.0.1:{server.address[1]}/", handshake=False)
        ended = gevent.event.Event()
        client.on_close(lambda _engine: ended.set())
        assert ended.wait(5)
        wait_until(lambda: received, what="the client's close frame")
        assert close_code_in(b"".join(received)) == code
        with pytest.raises(ConnectionLost):
            client.request("echo", 1, timeout=1)
    finally:
        server.stop(timeout=0)


# -- fragmentation and chopping, any way the bytes arrive -----------------------------

_SERVER: dict[str, Any] = {}


def shared_server() -> Any:
    """One server for every hypothesis example (started lazily, stopped at exit of the module)."""
    if "server" not in _SERVER:
        _SERVER["server"] = start_ws_server()
    return _SERVER["server"]


def teardown_module() -> None:
    server = _SERVER.pop("server", None)
    if server is not None:
        server.stop(timeout=1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(min_size=0, max_size=300),
    fragment_cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
    chop_cuts=st.lists(st.integers(min_value=0, max_value=800), max_size=8),
    ping_between=st.booleans(),
)
def test_fragmented_and_chopped_messages_arrive_whole(text, fragment_cuts, chop_cuts, ping_between):
    payload = b'[2,1,"echo",%s]' % json.dumps(text).encode()
    cuts = sorted({min(c, len(payload)) for c in fragment_cuts} | {0, len(payload)})
    pieces = [payload[a:b] for a, b in itertools.pairwise(cuts)] or [b""]
    frames = []
    for i, piece in enumerate(pieces):
        frames.append(frame_bytes(OP_CONT if i else OP_TEXT, piece, fin=i == len(pieces) - 1))
        if ping_between and i < len(pieces) - 1:
            frames.append(frame_bytes(OP_PING, b"p"))
    stream = b"".join(frames)
    raw = RawWebSocket(shared_server().url())
    try:
        raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = 0
        for end in [*sorted(min(c, len(stream)) for c in chop_cuts), len(stream)]:
            if end > start:
                raw.send(stream[start:end])
                start = end
        assert raw.read_message() == [3, 1, 1, text]
    finally:
        raw.close()
