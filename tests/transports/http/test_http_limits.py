"""The HTTP layer's limits and refusals: 413, 431, 403, 405, 415, 400, and a slowloris that stops nobody."""

from __future__ import annotations

import gevent
import gevent.socket
import pytest
import ujson
from helpers.http import EXCHANGE_LIMIT, CountingConnection, http, raw_exchange
from helpers.ws import start_ws_server

from dispatchers import MethodDispatcher
from transports.http.connection import RECV_SIZE

pytestmark = pytest.mark.timeout(60)

MIB = 1 << 20


class Calculator:
    def rpc_add(self, request):
        a, b = request.data
        return a + b


@pytest.fixture
def server():
    server = start_ws_server(MethodDispatcher(Calculator()), origins=["https://app.example", None])
    yield server
    server.stop(timeout=1)


def status_line(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(server):
    head = b"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % (MIB + 1)
    data = raw_exchange(server.address, head)
    assert status_line(data) == 413
    assert b'"payload_too_large"' in data


def test_a_streamed_body_over_the_limit_is_refused_while_it_is_read(server, monkeypatch):
    monkeypatch.setattr(server.http, "connection_class", CountingConnection)
    CountingConnection.reads.clear()
    sock = gevent.socket.create_connection(server.address, timeout=EXCHANGE_LIMIT)
    answer = b""
    try:
        sock.sendall(b"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (16384, b" " * 16384)
        with gevent.Timeout(EXCHANGE_LIMIT):
            try:
                for _ in range(2 * MIB // 16384):  # twice the limit, if the server read it all
                    sock.sendall(chunk)
            except OSError:
                pass  # the server closed after refusing
            while part := sock.recv(65536):
                answer += part
    except OSError:
        pass
    finally:
        sock.close()
    assert status_line(answer) == 413
    [read] = CountingConnection.reads
    assert read <= MIB + RECV_SIZE + 200  # the limit, one read buffer, the request head


def test_a_header_over_16_kib_gets_431(server):
    head = b"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    filler = b"a" * (16 * 1024 + 1 - len(head) - 4)
    data = raw_exchange(server.address, head + filler + b"\r\n\r\n")
    assert status_line(data) == 431


def test_origins_outside_the_allowlist_get_403_and_allowed_ones_cors(server):
    body = b'[2,1,"add",[2,3]]'
    evil = http(server.address, "POST", "/rpc", body, headers=[("Origin", "https://evil.example")])
    assert evil.status == 403 and "access-control-allow-origin" not in evil.headers
    good = http(server.address, "POST", "/rpc", body, headers=[("Origin", "https://app.example")])
    assert good.status == 200 and good.headers["access-control-allow-origin"] == "https://app.example"
    preflight = http(
        server.address,
        "OPTIONS",
        "/rpc",
        headers=[("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST")],
    )
    assert preflight.status == 204
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert http(server.address, "OPTIONS", "/rpc", headers=[("Origin", "https://evil.example")]).status == 403


def test_wrong_methods_get_405_with_allow(server):
    answer = http(server.address, "PUT", "/rpc", b"[]")
    assert answer.status == 405 and answer.headers["allow"] == "POST, OPTIONS"
    answer = http(server.address, "DELETE", "/")
    assert answer.status == 405 and answer.headers["allow"] == "GET"


def test_a_body_that_is_not_json_gets_415_or_400(server):
    answer = http(server.address, "POST", "/rpc", b"<add/>", headers=[("Content-Type", "application/xml")])
    assert answer.status == 415
    answer = http(server.address, "POST", "/rpc", b'[2,1,"add",')
    assert answer.status == 400
    assert answer.headers["content-type"] == "application/json"
    assert ujson.loads(answer.body)["error"] == "invalid_json"
    answer = http(server.address, "POST", "/rpc", b'{"not": "a message"}')
    assert answer.status == 400 and ujson.loads(answer.body)["error"] == "invalid_message"


def test_garbage_gets_400_and_the_server_goes_on(server):
    data = raw_exchange(server.address, b"POST /rpc HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n")
    assert status_line(data) == 400
    assert http(server.address, "POST", "/rpc", b'[2,1,"add",[2,3]]').body == b"[3,1,1,5]"


@pytest.mark.timeout(90)
def test_slowloris_does_not_stop_a_healthy_client():
    server = start_ws_server(MethodDispatcher(Calculator()), handshake_timeout=30)
    socks: list[gevent.socket.socket] = []
    try:
        for _ in range(500):
            socks.append(gevent.socket.create_connection(server.address, timeout=EXCHANGE_LIMIT))
        head = b"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100

        def trickle(sock: gevent.socket.socket, offset: int) -> None:
            for byte in head[offset:]:
                sock.sendall(bytes([byte]))
                gevent.sleep(1.0)  # the attack itself: one byte a second

        trickles = [gevent.spawn(trickle, sock, 0) for sock in socks]
        gevent.sleep(0)
        loop = gevent.get_hub().loop
        for n in range(5):
            loop.update_now()
            started = loop.now()
            answer = http(server.address, "POST", "/rpc", b'[2,1,"add",[%d,1]]' % n)
            loop.update_now()
            assert ujson.loads(answer.body)[3] == n + 1
            assert loop.now() - started < 1.0
            gevent.sleep(0.5)  # spread the healthy calls over the attack
        gevent.killall(trickles)
    finally:
        for sock in socks:
            sock.close()
        server.stop(timeout=1)
