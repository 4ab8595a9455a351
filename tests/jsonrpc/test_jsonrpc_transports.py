"""JSON-RPC 2.0 on the real transports: the corpus over HTTP, WebSocket and TCP, bad input, independent clients.

* every transcript of ``corpus/`` is replayed over ``POST /jsonrpc``, a
  WebSocket at ``/jsonrpc`` and a raw TCP connection, against a real
  dispatcher (a :class:`~dispatchers.Registry` of the corpus's service);
* every bad input of the corpus is answered within 100 ms on each transport
  while a native client on the same server keeps calling;
* independent clients: ``jsonrpcclient`` with ``requests``, ``websocket-client``
  (at ``/jsonrpc`` and with the ``jsonrpc`` subprotocol), Node.js's ``fetch``;
* the server calls a JSON-RPC client (its own integer ids) in the middle of a call.

A request with no answer in a transcript is checked on HTTP by the 204; on a
stream (WebSocket, TCP) by sending a sentinel request right after it, whose
answer must be the next thing to come. The blocking third-party clients run
on native threads (``in_thread``), so the gevent hub, and the server with it,
keeps running meanwhile.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.subprocess
import pytest
import requests
import websocket  # websocket-client
from helpers.http import HttpClient
from helpers.tcp import RawClient, wait_until
from helpers.ws import RawWebSocket, in_thread, ws_server_fixture  # noqa: F401
from jsonrpc_corpus import CORPUS, TRANSCRIPTS, Exchange, Service, assert_answer, bad_inputs, parse_transcript
from jsonrpcclient import Error, Ok, notification, parse, request
from websockets.frames import CLOSE, TEXT

from dispatchers import Registry
from rpcengine import Engine
from transports.tcp import TcpServer
from transports.tcp import connect as tcp_connect
from transports.websocket import WebSocketServer
from transports.websocket import connect as ws_connect

pytestmark = pytest.mark.timeout(60)

#: The bound on the answer to each bad input (issue #15).
ANSWER_LIMIT = 0.1
#: The bound on the worst latency of the native client's calls meanwhile.
NATIVE_LIMIT = 0.25
#: How many times the whole set of bad inputs is sent on each transport.
ROUNDS = 3
JSON_HEADERS = [("Content-Type", "application/json")]

#: A valid first line: it makes a TCP connection a JSON-RPC one (the dialect is chosen by the first line).
OPENER = b'{"jsonrpc": "2.0", "method": "subtract", "params": [1, 1], "id": "hello"}'
OPENER_ANSWER = {"jsonrpc": "2.0", "id": "hello", "result": 0}
#: Sent after a request that must not be answered: its answer must be the next to come.
SENTINEL = b'{"jsonrpc": "2.0", "method": "subtract", "params": [3, 1], "id": "sentinel"}'
SENTINEL_ANSWER = {"jsonrpc": "2.0", "id": "sentinel", "result": 2}


# -- the peers: one request at a time, its answer (or None) back ------------------------------------


class HttpPeer:
    """POSTs each document to ``/jsonrpc`` on one keep-alive connection."""

    name = "http"

    def __init__(self, server: WebSocketServer) -> None:
        self.client = HttpClient(server.address[:2])

    def ask(self, document: bytes, answered: bool) -> bytes | None:
        """Return the body of a 200 (application/json); None for a 204 with an empty body."""
        answer = self.client.request("POST", "/jsonrpc", document, headers=JSON_HEADERS)
        if answer.status == 204:
            assert answer.body == b"", f"a 204 with a body: {answer.body[:200]!r}"
            return None
        assert answer.status == 200, f"status {answer.status}: {answer.body[:200]!r}"
        assert answer.headers.get("content-type", "").startswith("application/json"), answer.headers
        return answer.body

    def close(self) -> None:
        self.client.close()


class StreamPeer:
    """A stream connection (WebSocket or TCP): an unanswered document is checked with :data:`SENTINEL`."""

    name = "stream"

    def send(self, document: bytes) -> None:
        raise NotImplementedError

    def receive(self, timeout: float = 5.0) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def ask(self, document: bytes, answered: bool) -> bytes | None:
        """Send ``document``; return the next answer, or None if the sentinel's answer came first."""
        self.send(document)
        if answered:
            return self.receive()
        self.send(SENTINEL)
        first = self.receive()
        return None if json.loads(first) == SENTINEL_ANSWER else first


class WebSocketPeer(StreamPeer):
    """A WebSocket at ``/jsonrpc``, one text frame per document."""

    name = "websocket"

    def __init__(self, server: WebSocketServer) -> None:
        self.ws = RawWebSocket(server.url("/jsonrpc"))

    def send(self, document: bytes) -> None:
        self.ws.send_text(document)

    def receive(self, timeout: float = 5.0) -> bytes:
        """Return the next text frame's payload."""
        deadline = time.monotonic() + timeout
        while True:
            frames = self.ws.events(max(0.01, deadline - time.monotonic()))
            while frames:
                frame = frames.pop(0)
                if frame.opcode is TEXT:
                    self.ws.pending = frames + self.ws.pending
                    return bytes(frame.data)
                assert frame.opcode is not CLOSE, f"the server closed: {bytes(frame.data)!r}"
            assert not self.ws.closed_by_peer, "the server closed the connection"

    def close(self) -> None:
        self.ws.close()


class TcpPeer(StreamPeer):
    """A raw TCP connection, one line per document, opened by :data:`OPENER`."""

    name = "tcp"

    def __init__(self, server: TcpServer) -> None:
        self.raw = RawClient(server.address[:2])
        self.send(OPENER)
        assert json.loads(self.receive()) == OPENER_ANSWER

    def send(self, document: bytes) -> None:
        self.raw.send(document + b"\n")

    def receive(self, timeout: float = 5.0) -> bytes:
        return self.raw.read_line(timeout)

    def close(self) -> None:
        self.raw.close()


Peer = HttpPeer | WebSocketPeer | TcpPeer


def replay(peer: Peer, where: str, exchanges: list[Exchange]) -> None:
    """Send each request of a transcript and check its answer (or that there is none)."""
    for number, document, expected in exchanges:
        at = f"{peer.name} {where}:{number}"
        answer = peer.ask(document, expected is not None)
        if expected is None:
            assert answer is None, f"{at}: expected no answer, got {answer[:500]!r}"
        else:
            assert answer is not None, f"{at}: expected {expected[:200]}, got no answer"
            assert_answer(at, answer, expected)


# -- servers --------------------------------------------------------------------------------------


@dataclass
class Served:
    """The corpus's service behind a WebSocketServer (HTTP and WebSocket) and a TcpServer, on loopback."""

    service: Service
    registry: Registry
    ws: WebSocketServer
    tcp: TcpServer

    def peer(self, transport: str) -> Peer:
        if transport == "http":
            return HttpPeer(self.ws)
        if transport == "websocket":
            return WebSocketPeer(self.ws)
        return TcpPeer(self.tcp)

    def native(self, transport: str) -> Engine:
        """A native client on the port ``transport`` is served on (rpcengine's own protocol, with a handshake)."""
        if transport == "tcp":
            return tcp_connect(*self.tcp.address[:2])
        return ws_connect(self.ws.url())


@pytest.fixture
def served(ws_server: Callable[..., WebSocketServer], tcp_server: Callable[..., TcpServer]) -> Served:
    service = Service()
    registry = service.registry()
    registry.add("echo", lambda request: request.data)
    return Served(service, registry, ws_server(registry), tcp_server(registry))


TRANSPORTS = ["http", "websocket", "tcp"]
#: The two ways a WebSocket speaks JSON-RPC: the ``/jsonrpc`` path, or the ``jsonrpc`` subprotocol on ``/``.
JSONRPC_WEBSOCKETS = [("/jsonrpc", None), ("/", ["jsonrpc"])]


# -- the corpus over every transport ----------------------------------------------------------------


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda path: path.stem)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_corpus_replay(served: Served, transport: str, path: Path) -> None:
    exchanges = parse_transcript(path)
    assert exchanges
    peer = served.peer(transport)  # one connection per transcript (HTTP: one keep-alive connection)
    try:
        replay(peer, path.name, exchanges)
    finally:
        peer.close()


def test_corpus_notifications_reach_the_dispatcher(served: Served) -> None:
    peer = served.peer("http")
    try:
        replay(peer, "spec-examples.txt", parse_transcript(CORPUS / "spec-examples.txt"))
    finally:
        peer.close()
    notified = served.service.notified
    wait_until(lambda: notified.count(("notify_hello", [7])) >= 2, what="the batch's notifications")
    assert ("update", [1, 2, 3, 4, 5]) in notified
    assert ("notify_sum", [1, 2, 4]) in notified


# -- bad input: answered at once while a native client keeps calling -------------------------------


@dataclass
class NativeLoad:
    """A native client calling ``echo`` back to back in a greenlet; records each call's latency."""

    engine: Engine
    latencies: list[float] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    stopping: bool = False

    def __post_init__(self) -> None:
        self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        number = 0
        while not self.stopping:
            number += 1
            started = time.monotonic()
            try:
                result = self.engine.request("echo", number, timeout=5)
            except Exception as exc:
                self.failures.append(exc)
                return
            self.latencies.append(time.monotonic() - started)
            if result != number:
                self.failures.append(AssertionError(f"echo {number} answered {result!r}"))
                return

    def stop(self) -> None:
        self.stopping = True
        self.greenlet.join(timeout=10)
        assert self.greenlet.dead, "the native client's loop did not stop"


BAD_INPUTS = bad_inputs()


def test_the_corpus_has_every_kind_of_bad_input() -> None:
    documents = {document for _, document, _ in BAD_INPUTS}
    assert {b"[]", b"[1,2,3]", b"[1]", b"42"} <= documents
    text = b"\n".join(documents)
    for sample in (
        b'"method": "foobar, "params"',  # parse error
        b'"method": 1,',  # invalid request
        b'"id": []',  # bad id
        b'"params": 3,',  # params neither array nor object
        b'"jsonrpc": "1.0"',
        b'"method": "foobar", "id": "1"',  # unknown method
        b'"params": [5], "id": 6',  # invalid params
    ):
        assert sample in text, sample
    assert any(document.count(b'"notify_hello"') == 1001 for document in documents), "the 1,001-item batch"


def answer_bad_inputs(peer: Peer, transport: str, load: NativeLoad) -> tuple[str, float]:
    """Send every bad input :data:`ROUNDS` times, checking each answer and its time; return the slowest."""
    worst = ("", 0.0)
    for _ in range(ROUNDS):
        before = len(load.latencies)
        for where, document, expected in BAD_INPUTS:
            at = f"{transport} {where}"
            started = time.monotonic()
            answer = peer.ask(document, True)
            elapsed = time.monotonic() - started
            assert answer is not None, f"{at}: no answer"
            assert_answer(at, answer, expected)
            assert elapsed < ANSWER_LIMIT, f"{at}: answered in {elapsed * 1000:.1f} ms"
            worst = max(worst, (where, elapsed), key=lambda pair: pair[1])
        # the native client made calls during this round too, and all of them succeeded
        assert len(load.latencies) > before, f"{transport}: no native call succeeded during a round"
        assert not load.failures, load.failures
    return worst


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_input_answered_within_100_ms_while_native_client_works(served: Served, transport: str) -> None:
    native = served.native(transport)
    try:
        load = NativeLoad(native)
        peer = served.peer(transport)
        try:
            wait_until(lambda: len(load.latencies) >= 10, what="the native client's first calls")
            worst = answer_bad_inputs(peer, transport, load)
        finally:
            load.stop()
            peer.close()
        assert not load.failures, load.failures
        slowest = max(load.latencies)
        assert slowest < NATIVE_LIMIT, f"{transport}: native worst latency {slowest * 1000:.1f} ms"
        assert native.request("echo", "still here", timeout=5) == "still here"
        fresh = served.native(transport)  # a new native client on the same port is unaffected
        try:
            assert fresh.request("echo", "fresh", timeout=5) == "fresh"
        finally:
            fresh.close()
    finally:
        native.close()
    print(
        f"\n{transport}: worst bad-input answer {worst[1] * 1000:.1f} ms ({worst[0]}); "
        f"native client {len(load.latencies)} calls, worst {slowest * 1000:.1f} ms"
    )


# -- independent clients ------------------------------------------------------------------------------


def test_jsonrpcclient_with_requests_over_http(served: Served) -> None:
    url = f"http://127.0.0.1:{served.ws.address[1]}/jsonrpc"

    def client() -> dict[str, Any]:
        out: dict[str, Any] = {}
        with requests.Session() as session:

            def post(document: Any) -> requests.Response:
                return session.post(url, json=document, timeout=5)

            answer = post(request("subtract", params=(42, 23)))
            out["type"] = answer.headers["Content-Type"]
            out["ok"] = parse(answer.json())
            out["named"] = parse(post(request("subtract", params={"minuend": 5, "subtrahend": 3})).json())
            out["invalid_params"] = parse(post(request("subtract", params=(5,))).json())
            out["not_found"] = parse(post(request("no_such_method")).json())
            out["app_error"] = parse(post(request("app_error")).json())
            batch = [request("sum", params=(1, 2, 4)), request("get_data"), request("foobar")]
            out["batch"] = list(parse(post([*batch, notification("notify_sum", params=(3,))]).json()))
            out["batch_ids"] = [item["id"] for item in batch]
            silent = post(notification("notify_hello", params=(8,)))
            out["notification"] = (silent.status_code, silent.content)
        return out

    out = in_thread(client)
    assert out["type"].startswith("application/json")
    assert isinstance(out["ok"], Ok) and out["ok"].result == 19
    assert isinstance(out["named"], Ok) and out["named"].result == 2
    invalid = out["invalid_params"]
    assert isinstance(invalid, Error), invalid
    assert (invalid.code, invalid.message) == (-32602, "subtract takes 2 arguments")
    assert invalid.data == {"error": "invalid_params", "message": "subtract takes 2 arguments"}
    not_found = out["not_found"]
    assert isinstance(not_found, Error) and not_found.code == -32601, not_found
    app_error = out["app_error"]
    assert isinstance(app_error, Error) and (app_error.code, app_error.message) == (-32000, "out of stock")
    by_id = {answer.id: answer for answer in out["batch"]}
    sum_id, data_id, foobar_id = out["batch_ids"]
    assert len(out["batch"]) == 3 and set(by_id) == {sum_id, data_id, foobar_id}
    assert by_id[sum_id] == Ok(7, sum_id) and by_id[data_id] == Ok(["hello", 5], data_id)
    assert isinstance(by_id[foobar_id], Error) and by_id[foobar_id].code == -32601
    assert out["notification"] == (204, b"")
    wait_until(lambda: ("notify_hello", [8]) in served.service.notified, what="the notification handled")
    assert ("notify_sum", [3]) in served.service.notified


def websocket_client_session(url: str, subprotocols: list[str] | None) -> dict[str, Any]:
    """Talk JSON-RPC with websocket-client at ``url`` (in a thread): a call, an error, a notification, a batch."""
    ws = websocket.create_connection(url, timeout=5, subprotocols=subprotocols)
    try:
        out: dict[str, Any] = {"subprotocol": ws.getsubprotocol()}
        ws.send(json.dumps({"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": "a"}))
        out["call"] = json.loads(ws.recv())
        ws.send(json.dumps({"jsonrpc": "2.0", "method": "crash", "id": 2}))
        out["error"] = json.loads(ws.recv())
        ws.send(json.dumps({"jsonrpc": "2.0", "method": "notify_hello", "params": ["ws"]}))
        ws.send(SENTINEL.decode())
        out["after_notification"] = json.loads(ws.recv())
        sums = [
            {"jsonrpc": "2.0", "method": "sum", "params": params, "id": n} for n, params in ((3, [1, 2]), (4, [3, 4]))
        ]
        ws.send(json.dumps(sums))
        out["batch"] = json.loads(ws.recv())
        return out
    finally:
        ws.close()


@pytest.mark.parametrize(("path", "subprotocols"), JSONRPC_WEBSOCKETS, ids=["path", "subprotocol"])
def test_websocket_client_library(served: Served, path: str, subprotocols: list[str] | None) -> None:
    out = in_thread(websocket_client_session, served.ws.url(path), subprotocols)
    assert out["subprotocol"] == (subprotocols[0] if subprotocols else None)
    assert out["call"] == {"jsonrpc": "2.0", "id": "a", "result": 19}
    internal = {
        "code": -32603,
        "message": "internal error",
        "data": {"error": "internal_error", "message": "internal error"},
    }
    assert out["error"] == {"jsonrpc": "2.0", "id": 2, "error": internal}
    assert out["after_notification"] == SENTINEL_ANSWER
    assert sorted(out["batch"], key=lambda item: item["id"]) == [
        {"jsonrpc": "2.0", "id": 3, "result": 3},
        {"jsonrpc": "2.0", "id": 4, "result": 7},
    ]
    assert ("notify_hello", ["ws"]) in served.service.notified


NODE_CLIENT = """
const url = process.argv[2];
async function post(body) {
  const headers = {"Content-Type": "application/json"};
  const answer = await fetch(url, {method: "POST", headers, body: JSON.stringify(body)});
  const text = await answer.text();
  return {status: answer.status, type: answer.headers.get("content-type"), body: text ? JSON.parse(text) : null};
}
(async () => {
  const out = {
    call: await post({jsonrpc: "2.0", method: "subtract", params: {minuend: 42, subtrahend: 23}, id: 1}),
    error: await post({jsonrpc: "2.0", method: "missing", id: "e"}),
    batch: await post([
      {jsonrpc: "2.0", method: "sum", params: [1, 2, 4], id: "s"},
      {jsonrpc: "2.0", method: "get_data", id: 9},
    ]),
    notification: await post({jsonrpc: "2.0", method: "notify_hello", params: ["node"]}),
  };
  console.log(JSON.stringify(out));
})().catch((error) => { console.error(error); process.exit(1); });
"""


def test_nodejs_fetch_client(served: Served, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js (node) is not installed on this machine")
    script = tmp_path / "client.mjs"
    script.write_text(NODE_CLIENT, encoding="utf-8")
    url = f"http://127.0.0.1:{served.ws.address[1]}/jsonrpc"
    result = gevent.subprocess.run([node, str(script), url], capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    out = json.loads(result.stdout)
    assert out["call"]["status"] == 200 and out["call"]["type"].startswith("application/json")
    assert out["call"]["body"] == {"jsonrpc": "2.0", "id": 1, "result": 19}
    assert out["error"]["status"] == 200 and out["error"]["body"]["id"] == "e"
    assert out["error"]["body"]["error"]["code"] == -32601
    assert out["batch"]["status"] == 200
    assert sorted(out["batch"]["body"], key=lambda item: str(item["id"])) == [
        {"jsonrpc": "2.0", "id": 9, "result": ["hello", 5]},
        {"jsonrpc": "2.0", "id": "s", "result": 7},
    ]
    assert out["notification"] == {"status": 204, "type": None, "body": None}
    wait_until(lambda: ("notify_hello", ["node"]) in served.service.notified, what="node's notification handled")


# -- the server calls the client ------------------------------------------------------------------------


def add_ask_double(registry: Registry) -> None:
    """``ask_double [x]``: the handler calls the client's ``double [x]`` and answers with its result."""

    def ask_double(call: Any) -> Any:
        return {"doubled": call.engine.request("double", [call.data[0]], timeout=5)}

    registry.add("ask_double", ask_double)


def answer_the_server(ws: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ask for ``ask_double [21]`` on websocket-client ``ws``, answer the server's call; return (call, answer)."""
    ws.send(json.dumps({"jsonrpc": "2.0", "method": "ask_double", "params": [21], "id": "outer"}))
    call = json.loads(ws.recv())
    ws.send(json.dumps({"jsonrpc": "2.0", "id": call["id"], "result": call["params"][0] * 2}))
    return call, json.loads(ws.recv())


@pytest.mark.parametrize(("path", "subprotocols"), JSONRPC_WEBSOCKETS, ids=["path", "subprotocol"])
def test_websocket_server_calls_the_client(served: Served, path: str, subprotocols: list[str] | None) -> None:
    add_ask_double(served.registry)

    def client() -> tuple[dict[str, Any], dict[str, Any]]:
        ws = websocket.create_connection(served.ws.url(path), timeout=5, subprotocols=subprotocols)
        try:
            return answer_the_server(ws)
        finally:
            ws.close()

    call, answer = in_thread(client)
    assert call["jsonrpc"] == "2.0" and call["method"] == "double" and call["params"] == [21]
    assert type(call["id"]) is int  # the engine's own id
    assert answer == {"jsonrpc": "2.0", "id": "outer", "result": {"doubled": 42}}


def test_tcp_server_calls_the_client(served: Served) -> None:
    add_ask_double(served.registry)
    raw = RawClient(served.tcp.address[:2])
    try:
        raw.send(b'{"jsonrpc": "2.0", "method": "ask_double", "params": [4], "id": 1}\n')  # also the first line
        call = json.loads(raw.read_line())
        assert call["method"] == "double" and call["params"] == [4] and type(call["id"]) is int
        raw.send(json.dumps({"jsonrpc": "2.0", "id": call["id"], "result": 8}).encode() + b"\n")
        assert json.loads(raw.read_line()) == {"jsonrpc": "2.0", "id": 1, "result": {"doubled": 8}}
    finally:
        raw.close()
