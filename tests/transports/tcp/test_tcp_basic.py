"""TCP transport, the everyday paths: calls both ways, broadcast, plain and raw clients, IPv6, TLS."""

from __future__ import annotations

import json
import random
import socket
import ssl
from typing import Any

import gevent
import pytest
from helpers.tcp import (
    LOOPBACK,
    Recorder,
    call_quietly,
    echo_registry,
    ipv6_loopback_available,
    make_tls_contexts,
    wait_until,
)

from dispatchers import Registry
from rpcengine.errors import ConnectionLost, HandshakeError, RequestException
from transports.session.config import SessionConfig
from transports.tcp import TcpLink, TcpServer, connect

pytestmark = pytest.mark.timeout(30)


def test_request_returns_the_server_handlers_result(tcp_server, tcp_connect):
    client = tcp_connect(tcp_server())
    assert client.request("echo", {"a": [1, 2.5, None, "é"]}, timeout=5) == {"a": [1, 2.5, None, "é"]}


def test_unknown_method_raises_request_exception_naming_it(tcp_server, tcp_connect):
    client = tcp_connect(tcp_server())
    with pytest.raises(RequestException) as caught:
        client.request("nope", timeout=5)
    assert caught.value.data["error"] == "method_not_found" and caught.value.data["method"] == "nope"


def test_notification_reaches_the_server_handler(tcp_server, tcp_connect):
    recorder = Recorder()
    client = tcp_connect(tcp_server(recorder))
    client.notify("note", "hello")
    wait_until(lambda: recorder.counts[("note", "hello")] == 1)


def test_broadcast_reaches_every_connected_client(tcp_server, tcp_connect):
    server = tcp_server()
    received: list[list[Any]] = [[], [], []]

    def receiver(box: list[Any]) -> Any:
        return lambda notification: box.append((notification.method, notification.data))

    clients = [tcp_connect(server, rpc_handler=receiver(box)) for box in received]
    wait_until(lambda: len(server.sessions) == 3)
    assert server.sessions.notify("news", {"n": 1}) == 3
    wait_until(lambda: all(box for box in received))
    assert received == [[("news", {"n": 1})]] * 3
    assert all(client.request("echo", 1, timeout=5) == 1 for client in clients)


def test_server_handler_calls_the_client_back_over_the_same_connection(tcp_server, tcp_connect):
    registry = Registry()

    @registry.register
    def ask_client(request: Any) -> Any:
        return request.engine.request("whoami", request.data, timeout=5)

    client_registry = Registry()

    @client_registry.register
    def whoami(request: Any) -> Any:
        return f"client-{request.data}"

    client = tcp_connect(tcp_server(registry), rpc_handler=client_registry)
    assert client.request("ask_client", 7, timeout=5) == "client-7"


def test_server_requests_a_client_found_through_its_session(tcp_server, tcp_connect):
    server = tcp_server()
    client_registry = Registry()

    @client_registry.register
    def add(request: Any) -> Any:
        return request.data[0] + request.data[1]

    tcp_connect(server, rpc_handler=client_registry)
    wait_until(lambda: len(server.sessions) == 1)
    (session,) = server.sessions
    assert session.engine.request("add", [2, 3], timeout=5) == 5


@pytest.mark.parametrize("reconnect", [False, True], ids=["plain-session", "resumable-session"])
def test_hundred_requests_in_flight_on_one_connection_all_get_their_own_answer(tcp_server, tcp_connect, reconnect):
    rng = random.Random(7)
    recorder = Recorder(delay=lambda: rng.random() * 0.05)
    server = tcp_server(recorder, max_concurrency=200)
    client = tcp_connect(server, reconnect=reconnect)
    calls = [gevent.spawn(call_quietly, client.request, "work", i, timeout=10) for i in range(100)]
    wait_until(lambda: recorder.total("work") > 0)
    assert client.pending_count > 50, "the requests were not in flight together"
    gevent.joinall(calls, timeout=15)
    assert [call.value for call in calls] == list(range(100))
    assert set(recorder.counts.values()) == {1}


def test_plain_client_without_handshake_calls_and_is_called(tcp_server, tcp_connect):
    server = tcp_server()
    client = tcp_connect(server, handshake=False, rpc_handler=lambda request: request.data * 2)
    assert client.request("echo", "plain", timeout=5) == "plain"
    (session,) = server.sessions
    assert not session.resumable and not session.handshaken
    assert session.engine.request("double", 21, timeout=5) == 42


def test_raw_socket_line_gets_exactly_the_documented_reply(tcp_raw, tcp_server):
    raw = tcp_raw(tcp_server().address)
    raw.send(b'[2,1,"echo","hi"]\n')
    assert raw.read_line() == b'[3,1,1,"hi"]'
    raw.close()


def test_raw_socket_crlf_lines_and_blank_lines_are_accepted(tcp_raw, tcp_server):
    raw = tcp_raw(tcp_server().address)
    raw.send(b'\r\n\n  \r\n[2,1,"echo","a"]\r\n\r\n[2,2,"echo","b"]\n\t\n[2,3,"echo","c"]\r\n')
    assert [raw.read_message() for _ in range(3)] == [[3, 1, 1, "a"], [3, 2, 2, "b"], [3, 3, 3, "c"]]
    raw.close()


def test_raw_socket_message_split_across_many_packets(tcp_raw, tcp_server):
    raw = tcp_raw(tcp_server().address)
    for byte in b'[2,5,"echo",[1,2,3]]\n':
        raw.send(bytes([byte]))
    assert raw.read_message() == [3, 1, 5, [1, 2, 3]]
    raw.close()


@pytest.mark.skipif(not ipv6_loopback_available(), reason="this machine cannot listen on the IPv6 loopback ::1")
def test_ipv6_loopback_server_and_client(tcp_raw, tcp_connect):
    server = TcpServer(("::1", 0), echo_registry()).start()
    try:
        assert server.address[0] == "::1"
        client = tcp_connect(server)
        assert client.request("echo", "six", timeout=5) == "six"
        raw = tcp_raw(("::1", server.address[1]))
        raw.send(b'[2,1,"echo","v6"]\n')
        assert raw.read_line() == b'[3,1,1,"v6"]'
        raw.close()
    finally:
        server.stop(timeout=1)


@pytest.fixture
def tls(tmp_path):
    return make_tls_contexts(tmp_path)


def test_tls_with_stdlib_ssl_contexts(tcp_server, tcp_connect, tls):
    server_context, client_context = tls
    server = tcp_server(ssl_context=server_context)
    client = tcp_connect(server, ssl_context=client_context)
    assert client.request("echo", "secret", timeout=5) == "secret"
    (session,) = server.sessions
    assert session.link.sock.version().startswith("TLS")
    calls = [gevent.spawn(call_quietly, client.request, "sleep", 0.01, timeout=10) for _ in range(50)]
    gevent.joinall(calls, timeout=15)
    assert [call.value for call in calls] == [0.01] * 50


def test_tls_connection_cut_under_its_reader_resumes_cleanly(tcp_server, tcp_connect, tls):
    server_context, client_context = tls
    server = tcp_server(ssl_context=server_context)
    client = tcp_connect(server, ssl_context=client_context, reconnect=True)
    assert client.request("echo", "before", timeout=5) == "before"
    cut = client.transport.link
    cut.sock.shutdown(socket.SHUT_RDWR)  # the reading greenlet is waiting in recv on this TLS socket
    wait_until(lambda: client.transport.link not in (None, cut))
    assert cut.closed
    assert client.request("echo", "after", timeout=5) == "after"


def test_tls_client_close_ends_its_server_session_at_once(tcp_server, tls):
    """The goodbye ``[-1]`` also crosses TLS, so the server does not keep the session for resume_grace."""
    server_context, client_context = tls
    server = tcp_server(ssl_context=server_context, resume_grace=60)
    client = connect(LOOPBACK, server.address[1], ssl_context=client_context, reconnect=True)
    assert client.request("echo", "hi", timeout=5) == "hi"
    (session,) = server.sessions
    client.close()
    wait_until(lambda: session.closed, timeout=2, what="the server session closed after the client's goodbye")
    assert len(server.sessions) == 0


def test_tls_client_refuses_a_certificate_it_does_not_trust(tcp_server, tls):
    server_context, _ = tls
    server = tcp_server(ssl_context=server_context)
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(LOOPBACK, server.address[1], ssl_context=ssl.create_default_context(), connect_timeout=5)


def test_tls_client_refused_by_authenticate_gets_the_reason(tcp_server, tls):
    server_context, client_context = tls
    server = tcp_server(ssl_context=server_context, authenticate=lambda hello, peer: False)
    with pytest.raises(HandshakeError, match="authentication failed"):
        connect(LOOPBACK, server.address[1], ssl_context=client_context, handshake_timeout=3)


def test_plain_client_speaking_to_a_tls_server_is_closed(tcp_server, tls):
    server_context, _ = tls
    server = tcp_server(ssl_context=server_context, handshake_timeout=2)
    with pytest.raises((ConnectionLost, OSError)):
        connect(LOOPBACK, server.address[1], handshake_timeout=3)


class _ShutTlsSocket:
    """What a reader sees from gevent's SSLSocket that another greenlet shut down as the reader woke."""

    def __init__(self) -> None:
        self.closed = False

    def recv(self, size: int) -> bytes:
        raise ValueError("Read on closed or unwrapped SSL socket.")

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_read_loop_ends_cleanly_when_its_tls_socket_is_shut_under_it():
    link = TcpLink(_ShutTlsSocket(), (LOOPBACK, 1), SessionConfig())
    ended: list[str] = []
    link.on_lost = lambda _link, reason: ended.append(reason)
    link.run()
    assert link.closed and link.sock.closed
    assert ended and "read failed" in ended[0]


def test_plain_client_notifications_sent_right_before_close_are_delivered(tcp_server):
    """Queued messages go out when a link closes, with or without the handshake's goodbye."""
    seen: list[Any] = []
    registry = Registry()
    registry.add("note", lambda request: seen.append(request.data))
    server = tcp_server(registry)
    client = connect(LOOPBACK, server.address[1], handshake=False)
    for i in range(3):
        client.notify("note", i)
    client.close()
    wait_until(lambda: len(seen) == 3, timeout=5, what="the three notifications handled")
    assert seen == [0, 1, 2]


def test_lines_read_one_at_a_time_take_the_same_rules_in_every_shape(tcp_server, tcp_raw) -> None:
    """The hub delivers a read holding one whole line without the decoder; every other shape goes through it.

    Each line is sent alone and answered before the next, so that each is one read:
    plain, CR LF, leading blanks, blank lines, a line cut in two reads, and lines of
    exactly ``max_message_size`` bytes and one byte more.
    """
    limit = 1024
    server = tcp_server(max_message_size=limit)
    client = tcp_raw(server.address)

    def request(ident: int, data: object) -> bytes:
        return b'[2,%d,"echo",%s]' % (ident, json.dumps(data).encode())

    def answered(ident: int, data: object) -> None:
        assert client.read_message()[2:] == [ident, data]

    client.send(request(1, 1) + b"\n")
    answered(1, 1)
    client.send(request(2, 2) + b"\r\n")
    answered(2, 2)
    client.send(b"  " + request(3, 3) + b"\n")
    answered(3, 3)
    client.send(b"\n")
    client.send(b" \t\r\n")
    client.send(request(4, 4) + b"\n")
    answered(4, 4)
    line = request(5, "cut in two")
    client.send(line[:7])
    gevent.sleep(0.05)  # (two reads: the server must see the first half alone)
    client.send(line[7:] + b"\n")
    answered(5, "cut in two")
    filler = "x" * (limit - len(request(6, "")))
    assert len(request(6, filler)) == limit
    client.send(request(6, filler) + b"\n")
    answered(6, filler)
    client.send(request(7, filler + "y") + b"\n")
    _elapsed, messages = client.wait_closed(5)
    assert not any(isinstance(m, list) and m[:1] == [3] for m in messages), messages
