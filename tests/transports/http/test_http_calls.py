"""One-shot calls over HTTP on the WebSocket port: curl, batches, notifications, timeouts, hooks."""

from __future__ import annotations

from typing import Any

import gevent
import pytest
import ujson
from gevent.event import Event
from helpers.http import HttpClient, curl, http
from helpers.ws import start_ws_server

from dispatchers import MethodDispatcher
from transports.websocket import connect

pytestmark = pytest.mark.timeout(60)


class Calculator:
    def __init__(self) -> None:
        self.gate = Event()
        self.notes: list[Any] = []
        self.noted = Event()

    def rpc_add(self, request: Any) -> int:
        a, b = request.data
        return a + b

    def rpc_note(self, request: Any) -> None:
        self.notes.append(request.data)
        self.noted.set()

    def rpc_wait(self, request: Any) -> str:
        self.gate.wait(20)
        return "released"


@pytest.fixture
def service() -> Calculator:
    return Calculator()


@pytest.fixture
def server(service):
    server = start_ws_server(MethodDispatcher(service), http_call_timeout=2.0)
    yield server
    service.gate.set()
    server.stop(timeout=1)


def test_the_curl_one_liner_prints_the_answer_byte_for_byte(server):
    port = server.address[1]
    assert curl("-sd", '[2,1,"add",[2,3]]', f"http://127.0.0.1:{port}/rpc") == b"[3,1,1,5]"


def test_a_batch_gets_its_answers_in_order(server):
    body = b'[[2,1,"add",[2,3]],[1,2,"note","x"],[2,3,"add",[1,1]],[2,4,"nowhere",null]]'
    answer = http(server.address, "POST", "/rpc", body)
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    replies = ujson.loads(answer.body)
    assert [reply[0] for reply in replies] == [3, 3, 4]
    assert [reply[2] for reply in replies] == [1, 3, 4]
    assert [replies[0][3], replies[1][3]] == [5, 2]
    assert replies[2][3]["error"] == "method_not_found"


def test_notifications_only_get_204(server, service):
    answer = http(server.address, "POST", "/rpc", b'[1,1,"note","hello"]')
    assert (answer.status, answer.body) == (204, b"")
    assert service.noted.wait(5)
    assert service.notes == ["hello"]


def test_an_invalid_message_with_an_id_is_answered_with_an_error(server):
    answer = http(server.address, "POST", "/rpc", b"[2,7,42]")
    assert answer.status == 200
    reply = ujson.loads(answer.body)
    assert reply[0] == 4 and reply[2] == 7 and reply[3]["error"] == "invalid_message"


def test_keep_alive_carries_several_calls(server):
    client = HttpClient(server.address)
    try:
        for n in range(3):
            answer = client.request("POST", "/rpc", b'[2,1,"add",[%d,1]]' % n)
            assert ujson.loads(answer.body)[3] == n + 1
    finally:
        client.close()


def test_the_wait_is_bounded_by_the_timeout_parameter_and_the_server_cap(server):
    started = gevent.get_hub().loop.now()
    answer = http(server.address, "POST", "/rpc?timeout=0.2", b'[2,1,"wait",null]')
    reply = ujson.loads(answer.body)
    assert answer.status == 200 and reply[0] == 4 and reply[3]["error"] == "timeout"
    answer = http(server.address, "POST", "/rpc?timeout=1000", b'[2,1,"wait",null]')  # capped at 2 s
    assert ujson.loads(answer.body)[3]["error"] == "timeout"
    assert gevent.get_hub().loop.now() - started < 8
    assert http(server.address, "POST", "/rpc?timeout=soon", b'[2,1,"add",[1,1]]').status == 400


def test_each_websocket_path_has_its_http_twin():
    server = start_ws_server({"/": MethodDispatcher(Calculator()), "/chat/": MethodDispatcher(Calculator())})
    try:
        for path in ("/rpc", "/chat/rpc"):
            answer = http(server.address, "POST", path, b'[2,1,"add",[2,3]]')
            assert answer.body == b"[3,1,1,5]", path
        assert http(server.address, "POST", "/elsewhere", b"[]").status == 404
    finally:
        server.stop(timeout=1)


def test_hooks_and_authenticate_see_the_http_call():
    seen: dict[str, Any] = {}

    def authenticate(hello, peer):
        seen["hello"], seen["peer"] = hello, peer
        return True

    def on_connect(session):
        seen["path"] = session.link.path
        seen["agent"] = session.link.request.headers.get("User-Agent")

    closed = Event()
    server = start_ws_server(
        MethodDispatcher(Calculator()),
        authenticate=authenticate,
        on_connect=on_connect,
        on_disconnect=lambda session: closed.set(),
    )
    try:
        answer = http(server.address, "POST", "/rpc", b'[2,1,"add",[2,3]]', headers=[("User-Agent", "probe/1")])
        assert answer.body == b"[3,1,1,5]"
        assert seen["hello"] is None and seen["peer"][0] == "127.0.0.1"
        assert (seen["path"], seen["agent"]) == ("/", "probe/1")
        assert closed.wait(5)
    finally:
        server.stop(timeout=1)


def test_a_refused_authentication_gets_403():
    server = start_ws_server(MethodDispatcher(Calculator()), authenticate=lambda hello, peer: False)
    try:
        answer = http(server.address, "POST", "/rpc", b'[2,1,"add",[2,3]]')
        assert answer.status == 403
        assert ujson.loads(answer.body)["error"] == "refused"
    finally:
        server.stop(timeout=1)


def test_websocket_and_the_script_still_work_on_the_same_port(server):
    assert http(server.address, "POST", "/rpc", b'[2,1,"add",[2,3]]').status == 200
    client = connect(server.url("/"))
    try:
        assert client.request("add", [20, 22], timeout=5) == 42
    finally:
        client.close()
    assert http(server.address, "GET", "/rpcengine.js").status in (200, 404)


def test_a_failing_hook_or_a_bad_handshake_does_not_stop_the_server(server):
    def broken_connect(session):
        raise RuntimeError("hook bug")

    server_with_hook = start_ws_server(MethodDispatcher(Calculator()), on_connect=broken_connect)
    try:
        answer = http(server_with_hook.address, "POST", "/rpc", b'[2,1,"add",[2,3]]')
        assert answer.body == b"[3,1,1,5]"  # a hook that raises is logged, as on every transport
    finally:
        server_with_hook.stop(timeout=1)
    bad = http(server.address, "POST", "/rpc/session", b'{"rpcengine": 1, "session": null, "ack": -5}')
    assert bad.status == 400
    assert http(server.address, "POST", "/rpc", b'[2,1,"add",[2,3]]').body == b"[3,1,1,5]"
