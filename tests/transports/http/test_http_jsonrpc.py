"""JSON-RPC 2.0 over HTTP: POST /jsonrpc on the WebSocket port, its status codes, waits, hooks and curl."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from gevent.event import Event
from helpers.http import HttpClient, curl, http
from helpers.tcp import wait_until
from helpers.ws import start_ws_server

from dispatchers import MethodDispatcher
from rpcengine import HandlerInterrupted

pytestmark = pytest.mark.timeout(60)

ADD = json.dumps({"jsonrpc": "2.0", "method": "add", "params": [2, 3], "id": 1}).encode()


class Calculator:
    def __init__(self) -> None:
        self.gate = Event()
        self.notes: list[Any] = []
        self.ended: list[str] = []

    def rpc_add(self, request: Any) -> int:
        a, b = request.data
        return a + b  # type: ignore[no-any-return]

    def rpc_note(self, request: Any) -> None:
        self.notes.append(request.data)

    def rpc_wait(self, request: Any) -> str:
        try:
            self.gate.wait(20)
            return "released"
        except HandlerInterrupted:
            self.ended.append("interrupted")
            raise

    def rpc_call_client(self, request: Any) -> Any:
        return request.engine.request("anything", timeout=5)


@pytest.fixture
def service() -> Calculator:
    return Calculator()


@pytest.fixture
def server(service: Calculator) -> Any:
    server = start_ws_server(
        {"/": MethodDispatcher(service), "/admin": MethodDispatcher(service)},
        http_call_timeout=2.0,
        max_message_size=10_000,
    )
    yield server
    service.gate.set()
    server.stop(timeout=1)


def test_a_call_is_200_with_application_json(server: Any) -> None:
    answer = http(server.address, "POST", "/jsonrpc", ADD, headers=[("Content-Type", "application/json")])
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert json.loads(answer.body) == {"jsonrpc": "2.0", "id": 1, "result": 5}


def test_every_path_has_its_jsonrpc_twin(server: Any) -> None:
    assert json.loads(http(server.address, "POST", "/admin/jsonrpc", ADD).body)["result"] == 5


def test_an_error_is_200_too_and_only_notifications_are_204(server: Any, service: Calculator) -> None:
    answer = http(server.address, "POST", "/jsonrpc", b'{"jsonrpc": "2.0", "method": "nope", "id": 2}')
    assert answer.status == 200 and json.loads(answer.body)["error"]["code"] == -32601
    notes = [{"jsonrpc": "2.0", "method": "note", "params": [i]} for i in range(3)]
    answer = http(server.address, "POST", "/jsonrpc", json.dumps(notes).encode())
    assert answer.status == 204 and answer.body == b""
    wait_until(lambda: sorted(service.notes) == [[0], [1], [2]])
    answer = http(server.address, "POST", "/jsonrpc", b"{broken")
    assert answer.status == 200 and json.loads(answer.body)["error"]["code"] == -32700


def test_refusals_as_for_rpc(server: Any) -> None:
    assert http(server.address, "PUT", "/jsonrpc", ADD).status == 405
    assert http(server.address, "POST", "/jsonrpc", b"[" + b" " * 20_000 + b"]").status == 413
    assert http(server.address, "POST", "/jsonrpc", ADD, headers=[("Content-Type", "image/png")]).status == 415
    assert http(server.address, "POST", "/nothing/jsonrpc", ADD).status == 404


def test_an_unanswered_request_gets_a_timeout_error_in_the_reply(server: Any, service: Calculator) -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "wait", "id": "w"},
        {"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": "a"},
    ]
    started = time.monotonic()
    answer = http(server.address, "POST", "/jsonrpc?timeout=0.3", json.dumps(batch).encode())
    assert 0.25 < time.monotonic() - started < 1.5
    assert answer.status == 200
    items = {item["id"]: item for item in json.loads(answer.body)}
    assert items["a"]["result"] == 2
    assert items["w"]["error"]["code"] == -32001


def test_the_server_cannot_call_an_http_client(server: Any) -> None:
    started = time.monotonic()
    body = b'{"jsonrpc": "2.0", "method": "call_client", "id": 1}'
    answer = json.loads(http(server.address, "POST", "/jsonrpc", body).body)
    assert time.monotonic() - started < 1.0  # at once, not at the call's timeout
    assert answer["error"]["code"] == -32603


def test_keep_alive_carries_many_documents(server: Any) -> None:
    client = HttpClient(server.address)
    try:
        for i in range(20):
            body = json.dumps({"jsonrpc": "2.0", "method": "add", "params": [i, 1], "id": i}).encode()
            assert json.loads(client.request("POST", "/jsonrpc", body).body)["result"] == i + 1
    finally:
        client.close()


def test_hooks_see_each_post_as_a_connection() -> None:
    seen: list[Any] = []
    ended: list[Any] = []

    def authenticate(hello: Any, address: Any) -> bool:
        seen.append(hello)
        return len(seen) == 1

    server = start_ws_server(MethodDispatcher(Calculator()), authenticate=authenticate, on_disconnect=ended.append)
    try:
        assert http(server.address, "POST", "/jsonrpc", ADD).status == 200
        refused = http(server.address, "POST", "/jsonrpc", ADD)
        assert refused.status == 403 and json.loads(refused.body)["error"]["message"] == "authentication failed"
        assert seen == [None, None]
        wait_until(lambda: len(ended) == 1)
        assert ended[0].dialect == "jsonrpc"
    finally:
        server.stop(timeout=1)


def test_curl(server: Any) -> None:
    host, port = server.address
    out = curl("-s", f"http://{host}:{port}/jsonrpc", "-H", "Content-Type: application/json", "-d", ADD.decode())
    assert json.loads(out) == {"jsonrpc": "2.0", "id": 1, "result": 5}
