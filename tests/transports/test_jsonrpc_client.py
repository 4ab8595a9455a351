"""transports.jsonrpc_client against real servers on 127.0.0.1: TCP, WebSocket (path and subprotocol), HTTP POST."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
from gevent.event import Event

from rpcengine import Engine, HandlerInterrupted, MethodNotFound, RequestException, RequestTimeout
from rpcengine.errors import ProtocolError
from transports.jsonrpc_client import call_http, connect_tcp, connect_websocket, notify_http
from transports.tcp import TcpServer
from transports.websocket import WebSocketServer

pytestmark = pytest.mark.timeout(30)


class Service:
    """The server's handler: plain calls, a call back to the client, a slow call that records its interruption."""

    def __init__(self) -> None:
        self.started = Event()
        self.interrupted = Event()
        self.interrupt_reason = ""
        self.notified = Event()
        self.notes: list[Any] = []

    def __call__(self, request: Any) -> Any:
        method = request.method
        if method == "add":
            return sum(request.data)
        if method == "twice_by_client":  # a server-to-client call over the same connection
            return request.engine.request("double", request.data, timeout=5)
        if method == "slow":
            self.started.set()
            try:
                gevent.sleep(10)
            except HandlerInterrupted as exc:
                self.interrupt_reason = exc.reason
                self.interrupted.set()
                raise
            return "finished"
        if method == "note":
            self.notes.append(request.data)
            self.notified.set()
            return None
        raise MethodNotFound(method)


def doubling_client(calls: list[Any]) -> Callable[[Any], Any]:
    """The client's rpc handler: ``double`` returns the first param doubled (and is recorded)."""

    def handler(request: Any) -> Any:
        if request.method != "double":
            raise MethodNotFound(request.method)
        calls.append(request.data)
        return request.data[0] * 2

    return handler


@pytest.fixture
def service() -> Service:
    return Service()


@pytest.fixture
def servers(service: Service) -> Iterator[tuple[int, int]]:
    """A TCP and a WebSocket server of ``service`` on free ports: ``(tcp port, ws port)``."""
    with TcpServer(("127.0.0.1", 0), service) as tcp, WebSocketServer(("127.0.0.1", 0), service) as ws:
        yield tcp.address[1], ws.address[1]


Connect = Callable[..., Engine]


def connectors(ports: tuple[int, int]) -> dict[str, Connect]:
    """The three ways to a JSON-RPC connection: TCP, WebSocket at /jsonrpc, WebSocket / with the subprotocol."""
    tcp, ws = ports
    return {
        "tcp": lambda handler=None: connect_tcp("127.0.0.1", tcp, handler, connect_timeout=5),
        "ws-path": lambda handler=None: connect_websocket(f"ws://127.0.0.1:{ws}/jsonrpc", handler, connect_timeout=5),
        "ws-subprotocol": lambda handler=None: connect_websocket(f"ws://127.0.0.1:{ws}/", handler, connect_timeout=5),
    }


WAYS = ["tcp", "ws-path", "ws-subprotocol"]


@pytest.mark.parametrize("way", WAYS)
def test_a_call_returns_the_result_and_an_error_raises_its_jsonrpc_data(servers: tuple[int, int], way: str) -> None:
    engine = connectors(servers)[way]()
    try:
        assert type(engine.transport).__name__ == "JsonRpcSession"
        assert engine.request("add", [2, 3, 4], timeout=5) == 9
        with pytest.raises(RequestException) as caught:
            engine.request("nowhere", {"x": 1}, timeout=5)
        data = caught.value.data
        assert data["error"] == "method_not_found" and data["code"] == -32601
        assert data["message"] == "method not found: nowhere" and data["data"]["method"] == "nowhere"
    finally:
        engine.close()


@pytest.mark.parametrize("way", WAYS)
def test_the_server_calls_the_client_and_gets_its_answer(servers: tuple[int, int], way: str) -> None:
    calls: list[Any] = []
    engine = connectors(servers)[way](doubling_client(calls))
    try:
        assert engine.request("twice_by_client", [21], timeout=5) == 42
        assert calls == [[21]]
    finally:
        engine.close()


@pytest.mark.parametrize("way", ["tcp", "ws-path"])
def test_a_call_that_times_out_cancels_the_server_handler(servers: tuple[int, int], service: Service, way: str) -> None:
    engine = connectors(servers)[way]()
    try:
        with pytest.raises(RequestTimeout):
            engine.request("slow", None, timeout=0.3)
        assert service.started.is_set()
        # Without $/cancelRequest the handler would sleep its 10 s out.
        assert service.interrupted.wait(5), "the server handler was not interrupted"
        assert service.interrupt_reason == "cancelled"
        assert engine.request("add", [1, 1], timeout=5) == 2  # the connection goes on
    finally:
        engine.close()


def test_a_notification_reaches_the_server(servers: tuple[int, int], service: Service) -> None:
    engine = connectors(servers)["tcp"]()
    try:
        engine.notify("note", {"text": "hi"})
        assert service.notified.wait(5)
        assert service.notes == [{"text": "hi"}]
    finally:
        engine.close()


def test_http_call_returns_the_result_and_raises_the_error(servers: tuple[int, int]) -> None:
    url = f"http://127.0.0.1:{servers[1]}/jsonrpc"
    seen: list[tuple[bool, bytes]] = []
    assert call_http(url, "add", [3, 4], timeout=5, request_id=7, observe=lambda *item: seen.append(item)) == 7
    assert [sent for sent, _ in seen] == [True, False]
    assert b'"id":7' in seen[0][1] and b'"result":7' in seen[1][1]
    with pytest.raises(RequestException) as caught:
        call_http(url, "nowhere", None, timeout=5)
    assert caught.value.data["code"] == -32601 and caught.value.data["error"] == "method_not_found"


def test_http_notification_is_taken_with_no_answer(servers: tuple[int, int], service: Service) -> None:
    assert notify_http(f"http://127.0.0.1:{servers[1]}/jsonrpc", "note", [1], timeout=5) is None
    assert service.notified.wait(5) and service.notes == [[1]]


def test_http_call_the_server_cannot_answer_in_time_raises_request_timeout(servers: tuple[int, int]) -> None:
    with pytest.raises(RequestTimeout):
        call_http(f"http://127.0.0.1:{servers[1]}/jsonrpc", "slow", None, timeout=0.3)


def test_http_path_not_served_raises_protocol_error_naming_the_status(servers: tuple[int, int]) -> None:
    with pytest.raises(ProtocolError, match="HTTP 404"):
        call_http(f"http://127.0.0.1:{servers[1]}/nothere/jsonrpc", "add", [1], timeout=5)


def test_nothing_listening_raises_os_error() -> None:
    with TcpServer(("127.0.0.1", 0), Service()) as server:
        port = server.address[1]
    with pytest.raises(OSError):
        connect_tcp("127.0.0.1", port, connect_timeout=5)
    with pytest.raises(OSError):
        connect_websocket(f"ws://127.0.0.1:{port}/jsonrpc", connect_timeout=5)
    with pytest.raises(OSError):
        call_http(f"http://127.0.0.1:{port}/jsonrpc", "add", [1], timeout=5)
