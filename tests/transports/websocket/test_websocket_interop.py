"""WebSocket interoperability: independent clients call our server; our client calls a plain websockets server.

The third-party clients and the websockets server are blocking code on
native threads (run through gevent's thread pool, see ``in_thread``), so
the gevent hub, and our side with it, keeps running meanwhile.
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import gevent
import pytest
import websocket  # websocket-client
from helpers.tcp import wait_until
from helpers.ws import in_thread, ws_server_fixture  # noqa: F401
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect as sync_connect
from websockets.sync.server import serve as sync_serve

from dispatchers import Registry
from transports.websocket import SUBPROTOCOL, connect


def registry_with(**functions: Any) -> Registry:
    """Return a Registry exposing ``functions`` under their keyword names."""
    registry = Registry()
    for name, function in functions.items():
        registry.add(name, function)
    return registry


# -- websockets' sync client calls our server -------------------------------------------


def test_websockets_sync_client_plain_messages(ws_server):
    noted: list[Any] = []
    server = ws_server(registry_with(echo=lambda r: r.data, note=lambda r: noted.append(r.data)))

    def client() -> tuple[Any, ...]:
        with sync_connect(server.url(), subprotocols=[SUBPROTOCOL], proxy=None, open_timeout=5) as ws:
            ws.send(json.dumps([2, 1, "echo", {"é": [1, 2]}]))
            answer = json.loads(ws.recv(timeout=5))
            ws.send(json.dumps([1, 2, "note", "n"]))
            ws.send(json.dumps([2, 3, "missing", None]))
            error = json.loads(ws.recv(timeout=5))
            ws.ping(b"are you there").wait(5)
            return ws.subprotocol, answer, error

    subprotocol, answer, error = in_thread(client)
    assert subprotocol == SUBPROTOCOL
    assert answer[0] == 3 and answer[2:] == [1, {"é": [1, 2]}]
    assert error[0] == 4 and error[2] == 3 and error[3]["error"] == "method_not_found"
    assert noted == ["n"]


def test_websockets_sync_client_with_session_handshake(ws_server):
    server = ws_server()

    def client() -> tuple[Any, Any]:
        with sync_connect(server.url(), proxy=None, open_timeout=5) as ws:
            ws.send(json.dumps({"rpcengine": 1, "session": None, "ack": 0}))
            hello = json.loads(ws.recv(timeout=5))
            ws.send(json.dumps([2, 1, "echo", "after hello"]))
            while True:
                message = json.loads(ws.recv(timeout=5))
                if message[0] != 0:  # skip heartbeats
                    return hello, message

    hello, answer = in_thread(client)
    assert hello["rpcengine"] == 1 and hello["resumed"] is False and hello["session"]
    assert answer[0] == 3 and answer[2:] == [1, "after hello"]


def test_websockets_sync_client_binary_frame_gets_1003(ws_server):
    server = ws_server()

    def client() -> int | None:
        with sync_connect(server.url(), proxy=None, open_timeout=5) as ws:
            ws.send(b'[2,1,"echo",1]')  # bytes: a binary frame
            try:
                ws.recv(timeout=5)
            except ConnectionClosedError as exc:
                return exc.rcvd.code if exc.rcvd is not None else None
            return None

    assert in_thread(client) == 1003


# -- websocket-client calls our server ------------------------------------------------


def test_websocket_client_library(ws_server):
    server = ws_server({"/rpc": registry_with(echo=lambda r: r.data)}, origins=["http://allowed.example"])

    def client() -> tuple[Any, Any, Any]:
        ws = websocket.create_connection(
            server.url("/rpc"), timeout=5, subprotocols=[SUBPROTOCOL], origin="http://allowed.example"
        )
        try:
            ws.send(json.dumps([2, 1, "echo", [1, "two", {"3": None}]]))
            answer = json.loads(ws.recv())
            ws.ping(b"hi")
            opcode, frame = ws.recv_data_frame(control_frame=True)
            return ws.getsubprotocol(), answer, (opcode, frame.data)
        finally:
            ws.close()

    subprotocol, answer, pong = in_thread(client)
    assert subprotocol == SUBPROTOCOL
    assert answer[0] == 3 and answer[2:] == [1, [1, "two", {"3": None}]]
    assert pong == (websocket.ABNF.OPCODE_PONG, b"hi")

    def refused() -> int:
        try:
            websocket.create_connection(server.url("/rpc"), timeout=5, origin="http://evil.example")
        except websocket.WebSocketBadStatusException as exc:
            return exc.status_code
        return 0

    assert in_thread(refused) == 403


# -- our client calls a plain websockets server ------------------------------------------


class PlainServer:
    """A websockets (sync) server on a native thread that speaks the message lists, no session handshake.

    It answers ``echo`` requests, and on the notification ``call_me`` sends
    a request ``whoami`` to the client and records the answer.
    """

    def __init__(self) -> None:
        self.answers: list[Any] = []
        self.notes: list[Any] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server = sync_serve(self._handle, "127.0.0.1", 0, ping_interval=0.2)
        self.port = self.server.socket.getsockname()[1]
        self._thread = gevent.get_hub().threadpool.spawn(self.server.serve_forever)

    def _next(self) -> int:
        with self._lock:
            return next(self._ids)

    def _handle(self, ws: Any) -> None:
        for raw in ws:
            message = json.loads(raw)
            kind = message[0]
            if kind == 2 and message[2] == "echo":
                ws.send(json.dumps([3, self._next(), message[1], message[3]]))
            elif kind == 1 and message[2] == "call_me":
                self.notes.append(message[3])
                ws.send(json.dumps([2, self._next(), "whoami", message[3]]))
            elif kind in (3, 4):
                self.answers.append(message)
            elif kind == -1:
                return

    def stop(self) -> None:
        in_thread(self.server.shutdown, timeout=10)  # it blocks until its handlers end: not on the hub's thread
        self._thread.get(timeout=10)


@pytest.fixture
def plain_server() -> Any:
    server = PlainServer()
    yield server
    server.stop()


def test_our_client_calls_a_plain_websockets_server(plain_server):
    client = connect(
        f"ws://127.0.0.1:{plain_server.port}/",
        registry_with(whoami=lambda r: ["our client", r.data]),
        handshake=False,
        subprotocols=None,
    )
    try:
        assert client.request("echo", {"deep": [1, 2, 3]}, timeout=5) == {"deep": [1, 2, 3]}
        assert [client.request("echo", n, timeout=5) for n in range(20)] == list(range(20))
        client.notify("call_me", 7)
        wait_until(lambda: plain_server.answers, what="the client's answer to the server's request")
        (answer,) = plain_server.answers
        assert answer[0] == 3 and answer[3] == ["our client", 7]
    finally:
        client.close()
