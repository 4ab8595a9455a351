"""JSON-RPC 2.0 sessions on a real TCP server: batches, cancels, broadcasts, reverse calls, bad framing, limits."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.socket
import pytest
from gevent.event import Event
from helpers.tcp import HELLO, wait_until

from dispatchers import Registry
from rpcengine import HandlerInterrupted, RequestException
from transports.session.driver import BACKLOG_MESSAGES
from transports.session.jsonrpc import JsonRpcSession
from transports.tcp import TcpServer, connect

pytestmark = pytest.mark.timeout(60)


class Work:
    """Handlers that count what ran, and a rendezvous that only concurrent calls can pass."""

    def __init__(self, party: int = 10) -> None:
        self.registry = Registry()
        self.party = party
        self.arrived = 0
        self.everyone = Event()
        self.interrupted: list[Any] = []
        self.started = 0
        self.finished = 0
        self.connected: list[Any] = []
        self.answers_from_client: list[Any] = []

        @self.registry.register
        def echo(request: Any) -> Any:
            return request.data

        @self.registry.register
        def meet(request: Any) -> Any:
            """Return only once ``party`` calls are in here at the same time (2 s at most)."""
            self.arrived += 1
            if self.arrived >= self.party:
                self.everyone.set()
            return self.everyone.wait(2.0)

        @self.registry.register
        def sleep(request: Any) -> Any:
            self.started += 1
            try:
                gevent.sleep(request.data[0])
                return "slept"
            except HandlerInterrupted as exc:
                self.interrupted.append(exc.reason)
                raise
            finally:
                self.finished += 1

        @self.registry.register
        def ask_client(request: Any) -> Any:
            try:
                return request.engine.request("double", request.data, timeout=5)
            except RequestException as exc:
                self.answers_from_client.append(exc.data)
                return {"client_failed": exc.data.get("code")}


@pytest.fixture
def work() -> Work:
    return Work()


@pytest.fixture
def server(work: Work) -> Iterator[TcpServer]:
    with TcpServer(("127.0.0.1", 0), work.registry, on_connect=work.connected.append, max_message_size=4096) as server:
        yield server


class Peer:
    """A raw JSON-RPC client: one JSON document per line."""

    def __init__(self, address: Any) -> None:
        self.sock = gevent.socket.create_connection(address, timeout=10)
        self.file = self.sock.makefile("rwb")

    def send(self, value: Any) -> None:
        self.file.write((value if isinstance(value, bytes) else json.dumps(value).encode()) + b"\n")
        self.file.flush()

    def receive(self) -> Any:
        line = self.file.readline()
        assert line, "the server closed the connection"
        return json.loads(line)

    def call(self, value: Any) -> Any:
        self.send(value)
        return self.receive()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def peer(server: TcpServer) -> Iterator[Peer]:
    peer = Peer(server.address)
    yield peer
    peer.close()


def request(method: str, params: Any, ident: Any) -> dict[str, Any]:
    """Return a request object (no ``params`` member for None: ``"params": null`` is invalid)."""
    value = {"jsonrpc": "2.0", "method": method, "id": ident}
    if params is not None:
        value["params"] = params
    return value


def test_the_first_line_makes_the_connection_json_rpc_and_hooks_see_it(
    server: TcpServer, work: Work, peer: Peer
) -> None:
    assert peer.call(request("echo", [1], 1)) == {"jsonrpc": "2.0", "id": 1, "result": [1]}
    [session] = work.connected
    assert isinstance(session, JsonRpcSession) and session in server.sessions
    # A native client on the same port is unaffected.
    engine = connect(*server.address)
    try:
        assert engine.request("echo", [2], timeout=5) == [2]
    finally:
        engine.close()


def test_batch_items_run_concurrently_and_the_array_comes_when_all_are_done(peer: Peer, work: Work) -> None:
    started = time.monotonic()
    answer = peer.call([request("meet", None, i) for i in range(work.party)])
    assert time.monotonic() - started < 1.5  # they met: each ran while the others waited
    assert sorted(item["id"] for item in answer) == list(range(work.party))
    assert all(item["result"] is True for item in answer)


@pytest.mark.parametrize(("method", "member"), [("$/cancelRequest", "id"), ("notifications/cancelled", "requestId")])
def test_a_cancel_notification_interrupts_the_handler(peer: Peer, work: Work, method: str, member: str) -> None:
    peer.send(request("sleep", [10], "long"))
    wait_until(lambda: work.started == 1, what="the handler started")
    started = time.monotonic()
    peer.send({"jsonrpc": "2.0", "method": method, "params": {member: "long"}})
    answer = peer.receive()
    assert time.monotonic() - started < 1.0
    assert answer["id"] == "long" and answer["error"]["code"] == -32800
    wait_until(lambda: work.finished == 1, what="the handler's finally ran")
    assert work.interrupted == ["cancelled"]


def test_a_broadcast_reaches_native_and_json_rpc_peers(server: TcpServer, peer: Peer) -> None:
    peer.call(request("echo", None, 0))
    got: list[Any] = []
    native = connect(*server.address, lambda notification: got.append(notification.data))
    try:
        native.request("echo", None, timeout=5)
        assert server.sessions.notify("news", {"n": 1}) == 2
        assert peer.receive() == {"jsonrpc": "2.0", "method": "news", "params": {"n": 1}}
        wait_until(lambda: got == [{"n": 1}])
    finally:
        native.close()


def test_the_server_calls_the_client_with_its_own_ids(peer: Peer, work: Work) -> None:
    peer.send(request("ask_client", [21], "q"))
    call = peer.receive()
    assert call["method"] == "double" and call["params"] == [21] and type(call["id"]) is int
    peer.send({"jsonrpc": "2.0", "id": call["id"], "result": 42})
    assert peer.receive() == {"jsonrpc": "2.0", "id": "q", "result": 42}
    # An error answer reaches the handler as a RequestException with the code.
    peer.send(request("ask_client", [1], "r"))
    call = peer.receive()
    peer.send({"jsonrpc": "2.0", "id": call["id"], "error": {"code": -32601, "message": "no double here"}})
    assert peer.receive()["result"] == {"client_failed": -32601}
    assert work.answers_from_client == [{"error": "method_not_found", "message": "no double here", "code": -32601}]


def test_bad_json_is_answered_and_the_connection_goes_on(peer: Peer) -> None:
    peer.call(request("echo", None, 0))
    for bad in [b'{"jsonrpc": "2.0", "method": ', b'{"jsonrpc": "2.0", "x": "\xff"}', b"[1,2,3]", b"[]", b"hello"]:
        answer = peer.call(bad)
        codes = [item["error"]["code"] for item in answer] if isinstance(answer, list) else [answer["error"]["code"]]
        assert set(codes) <= {-32700, -32600}
    assert peer.call(request("echo", ["still here"], 1))["result"] == ["still here"]


def test_a_line_over_the_limit_is_answered_then_closed(server: TcpServer, peer: Peer) -> None:
    peer.call(request("echo", None, 0))
    peer.send(b"x" * 5000)
    answer = peer.receive()
    assert answer["id"] is None and answer["error"]["code"] == -32003
    assert peer.file.readline() == b""  # then a clean close
    other = Peer(server.address)
    try:
        assert other.call(request("echo", [1], 1))["result"] == [1]
    finally:
        other.close()


def test_stopping_the_server_sends_no_native_disconnect(work: Work) -> None:
    server = TcpServer(("127.0.0.1", 0), work.registry).start()
    peer = Peer(server.address)
    try:
        peer.call(request("echo", None, 0))
        server.stop()
        assert peer.file.readline() == b""
    finally:
        peer.close()
        server.stop()


def test_a_native_handshake_still_works_beside(server: TcpServer) -> None:
    raw = Peer(server.address)
    try:
        raw.send(HELLO.strip())
        assert raw.receive()["rpcengine"] == 1
    finally:
        raw.close()


def test_a_flood_of_batches_that_is_not_read_stays_bounded(work: Work) -> None:
    with TcpServer(("127.0.0.1", 0), work.registry, max_concurrency=8) as server:
        flood = Peer(server.address)
        try:
            batch = json.dumps([request("sleep", [0.2], i) for i in range(900)]).encode()
            for _ in range(4):
                flood.send(batch)  # 3,600 requests, never read
            wait_until(lambda: len(server.sessions) == 1)
            [session] = list(server.sessions)
            assert isinstance(session, JsonRpcSession)
            engine = session.engine
            assert engine is not None
            peak_backlog = peak_active = 0
            deadline = time.monotonic() + 1.0
            native = connect(*server.address)
            try:
                while time.monotonic() < deadline:
                    peak_backlog = max(peak_backlog, len(session._backlog))
                    peak_active = max(peak_active, engine.active_handlers)
                    gevent.sleep(0.01)
                # (Every worker of the flooded session is busy; another connection has its own.)
                assert native.request("echo", "ok", timeout=2) == "ok"
            finally:
                native.close()
            assert 0 < peak_backlog <= BACKLOG_MESSAGES
            assert peak_active <= 8
            assert session.adapter.awaiting <= BACKLOG_MESSAGES + 900 + 8
        finally:
            flood.close()


def test_params_unpacked_by_position_or_name_and_a_signature_mismatch_is_invalid_params() -> None:
    registry = Registry(unpack_params=True)

    @registry.register
    def subtract(minuend: int, subtrahend: int) -> int:
        return minuend - subtrahend

    with TcpServer(("127.0.0.1", 0), registry) as server:
        peer = Peer(server.address)
        try:
            assert peer.call(request("subtract", [42, 23], 1))["result"] == 19
            assert peer.call(request("subtract", {"subtrahend": 23, "minuend": 42}, 2))["result"] == 19
            for params in ([1], [1, 2, 3], {"minuend": 1}, {"minuend": 1, "subtrahend": 2, "x": 3}, ["a", 1]):
                error = peer.call(request("subtract", params, 3))["error"]
                assert error["code"] == -32602, (params, error)
                assert error["data"]["error"] == "invalid_params"
            methods = peer.call(request("rpc.discover", None, 4))["error"]
            assert methods["code"] == -32601
        finally:
            peer.close()


def test_a_handshake_holding_the_word_jsonrpc_as_a_value_is_still_a_handshake(server: TcpServer) -> None:
    raw = Peer(server.address)
    try:
        raw.send(b'{"rpcengine": 1, "session": null, "ack": 0, "token": "jsonrpc"}')
        answer = raw.receive()
        assert answer["rpcengine"] == 1 and "error" not in answer
    finally:
        raw.close()
    broken = Peer(server.address)
    try:
        broken.send(b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
        assert broken.receive()["error"]["code"] == -32700
    finally:
        broken.close()
