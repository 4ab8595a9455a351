"""Fixes found against real peers: each behaviour below was wrong before the session core became sans-I/O.

* a valid request followed in the same read by a malformed frame is still answered before the close;
* on a handshaken session a first message with id 0 (mushroom numbers from 0) is handled, not dropped;
* a peer that sends Disconnect ``[-1]`` gets its in-flight answers, then the server closes the connection;
* ``MessageRefused`` is part of the exception tree.
"""

from __future__ import annotations

import gevent
import pytest
from helpers.tcp import echo_registry
from helpers.ws import OP_BINARY, RawWebSocket, frame_bytes, start_ws_server

from rpcengine import errors
from rpcengine.errors import MessageRefused, ProtocolError

pytestmark = pytest.mark.timeout(30)


def read_until_eof(raw, timeout: float = 5.0) -> list:
    """Every message the server sends before it closes the connection."""
    messages = []
    with gevent.Timeout(timeout, AssertionError("the server did not close the connection")):
        while True:
            try:
                messages.append(raw.read_message(timeout=timeout, skip_heartbeats=False))
            except EOFError:
                return messages


def test_tcp_request_then_malformed_line_in_one_write_is_answered_before_the_close(tcp_server, tcp_raw):
    server = tcp_server(drain_timeout=2.0)
    raw = tcp_raw(server.address)
    raw.send(b'[2,1,"sleep",0.05]\n[2,2,"echo","hi"]\n\x00\x01 not a frame\n')
    messages = read_until_eof(raw)
    answers = sorted(m[2:] for m in messages if m[0] == 3)
    assert answers == [[1, 0.05], [2, "hi"]]


def test_tcp_request_then_overlong_partial_line_is_answered_before_the_close(tcp_server, tcp_raw):
    server = tcp_server(max_message_size=1024)
    raw = tcp_raw(server.address)
    raw.send(b'[2,1,"echo","first"]\n[' + b"1," * 2000)
    messages = read_until_eof(raw)
    assert [m for m in messages if m[0] == 3] == [[3, messages[0][1], 1, "first"]]


def test_websocket_request_then_bad_frame_in_one_write_is_answered_before_the_close():
    server = start_ws_server({"/rpc": echo_registry()})
    try:
        raw = RawWebSocket(server.url("/rpc"))
        raw.send(frame_bytes(1, b'[2,1,"sleep",0.05]') + frame_bytes(OP_BINARY, b"\x00binary"))
        answer = raw.read_message()
        assert answer[0] == 3 and answer[2:] == [1, 0.05]
        code, _reason, _elapsed = raw.wait_close()
        assert code == 1003
    finally:
        server.stop(timeout=1)


def test_handshaken_session_takes_a_first_message_with_id_0(tcp_server, tcp_raw):
    server = tcp_server()
    raw = tcp_raw(server.address)
    assert raw.handshake()["resumed"] is False
    raw.send_message([2, 0, "echo", "from zero"])
    answer = raw.read_message()
    assert answer[0] == 3 and answer[2:] == [0, "from zero"]
    raw.send_message([2, 1, "echo", "next"])
    assert raw.read_message()[2:] == [1, "next"]
    # A real duplicate is still dropped (and counted), never handled twice.
    raw.send_message([2, 1, "echo", "again"])
    raw.send_message([2, 2, "echo", "after"])
    assert raw.read_message()[2:] == [2, "after"]
    (session,) = list(server.sessions)
    assert session.duplicates_dropped == 1


@pytest.mark.parametrize("handshake", [False, True], ids=["plain", "handshaken"])
def test_tcp_peer_disconnect_is_answered_then_closed_by_the_server(tcp_server, tcp_raw, handshake):
    server = tcp_server()
    raw = tcp_raw(server.address)
    if handshake:
        raw.handshake()
    raw.send(b'[2,1,"sleep",0.1]\n[-1]\n')
    messages = read_until_eof(raw)
    answers = [m for m in messages if m[0] == 3]
    assert len(answers) == 1 and answers[0][2:] == [1, 0.1]
    with gevent.Timeout(5):
        while len(server.sessions):
            gevent.sleep(0.01)


def test_websocket_peer_disconnect_is_answered_then_closed_by_the_server():
    server = start_ws_server({"/rpc": echo_registry()})
    try:
        raw = RawWebSocket(server.url("/rpc"))
        raw.send(frame_bytes(1, b'[2,1,"sleep",0.1]') + frame_bytes(1, b"[-1]"))
        answer = raw.read_message()
        assert answer[2:] == [1, 0.1]
        code, _reason, _elapsed = raw.wait_close()
        assert code == 1000
    finally:
        server.stop(timeout=1)


def test_message_refused_is_in_the_exception_tree():
    assert issubclass(MessageRefused, ProtocolError)
    assert "MessageRefused" in errors.__doc__
    assert MessageRefused("binary", 1003).code == 1003
