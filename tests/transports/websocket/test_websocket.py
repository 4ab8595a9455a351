"""WebSocket transport: calls both ways, broadcast, paths, origins, subprotocols, static file, limits, TLS."""

from __future__ import annotations

import socket
import time
from typing import Any

import gevent
import gevent.event
import gevent.socket
import pytest
from gevent.server import StreamServer
from helpers.tcp import Recorder, ipv6_loopback_available, make_tls_contexts, wait_until
from helpers.ws import RawWebSocket, start_ws_server, ws_connect_fixture, ws_server_fixture  # noqa: F401
from websockets.frames import PING, TEXT
from websockets.protocol import State

import transports.websocket.server
from dispatchers import Registry
from rpcengine.errors import HandshakeError, RequestException
from transports.websocket import DEFAULT_CLOSE_TIMEOUT, SUBPROTOCOL, WebSocketServer, connect
from transports.websocket.protocol import ServerProtocol, receive_handshake, send_protocol_data


def registry_with(**functions: Any) -> Registry:
    """Return a Registry exposing ``functions`` under their keyword names."""
    registry = Registry()
    for name, function in functions.items():
        registry.add(name, function)
    return registry


def http_get(server: WebSocketServer, path: str, headers: str = "") -> tuple[int, dict[str, str], bytes]:
    """Send a plain HTTP GET; return the status, headers (lower-case names) and body."""
    host, port = server.address[:2]
    sock = gevent.socket.create_connection((host, port), timeout=5)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{headers}\r\n".encode())
        data = b""
        with gevent.Timeout(5):
            while chunk := sock.recv(65536):
                data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return status, {name.lower(): value for name, value in fields.items()}, body


# -- calls ----------------------------------------------------------------------


def test_request_notify_and_errors(ws_server, ws_connect):
    noted = gevent.event.AsyncResult()
    server = ws_server(
        registry_with(echo=lambda r: r.data, note=lambda r: noted.set(r.data), fail=lambda r: 1 / 0),
    )
    client = ws_connect(server)
    assert client.request("echo", {"x": [1, "é", None]}, timeout=5) == {"x": [1, "é", None]}
    client.notify("note", 42)
    assert noted.get(timeout=5) == 42
    with pytest.raises(RequestException) as failed:
        client.request("fail", timeout=5)
    assert failed.value.data["error"] == "internal_error"
    with pytest.raises(RequestException):
        client.request("missing", timeout=5)


def test_server_calls_client_over_the_same_connection(ws_server, ws_connect):
    def relay(request: Any) -> Any:
        return request.engine.request("shout", request.data, timeout=5)

    server = ws_server(registry_with(relay=relay))
    client = ws_connect(server, rpc_handler=registry_with(shout=lambda r: r.data.upper()))
    assert client.request("relay", "hello", timeout=5) == "HELLO"


def test_plain_client_without_handshake(ws_server, ws_connect):
    server = ws_server()
    client = ws_connect(server, handshake=False)
    assert client.request("echo", "plain", timeout=5) == "plain"
    (session,) = server.sessions
    assert not session.resumable


def test_broadcast_reaches_every_client(ws_server, ws_connect):
    server = ws_server()
    received: list[tuple[str, Any]] = []

    def on_news(request: Any) -> None:
        received.append((request.method, request.data))

    for handshake in (True, False):
        client = ws_connect(server, rpc_handler=registry_with(news=on_news), handshake=handshake)
        client.request("echo", "a plain client has a session once it sent something", timeout=5)
    wait_until(lambda: len(server.sessions) == 2, what="two sessions")
    assert server.sessions.notify("news", {"n": 1}) == 2
    wait_until(lambda: len(received) == 2, what="both clients notified")
    assert received == [("news", {"n": 1})] * 2


def test_several_paths_with_different_handlers_on_one_port(ws_server, ws_connect):
    server = ws_server({"/a": registry_with(who=lambda r: "a"), "/b/c": registry_with(who=lambda r: "b")})
    got: dict[str, list[Any]] = {"a": [], "b": []}
    client_a = ws_connect(server, "/a", rpc_handler=registry_with(news=lambda r: got["a"].append(r.data)))
    client_b = ws_connect(server, "/b/c?token=1", rpc_handler=registry_with(news=lambda r: got["b"].append(r.data)))
    assert client_a.request("who", timeout=5) == "a"
    assert client_b.request("who", timeout=5) == "b"
    assert len(server.sessions) == 2
    assert len(server.endpoints["/a"].sessions) == 1
    assert server.endpoints["/b/c"].sessions.notify("news", "only b") == 1
    assert server.sessions.notify("news", "everyone") == 2
    wait_until(lambda: len(got["a"]) == 1 and len(got["b"]) == 2, what="notifications")
    assert got == {"a": ["everyone"], "b": ["only b", "everyone"]}
    with pytest.raises(HandshakeError, match="404"):
        connect(server.url("/elsewhere"))


def test_session_lookup_and_hooks(ws_server, ws_connect):
    connected, disconnected = [], []
    server = ws_server(on_connect=connected.append, on_disconnect=disconnected.append)
    client = ws_connect(server)
    client.request("echo", 1, timeout=5)
    (session,) = connected
    assert server.sessions.get(session.session_id) is session
    assert session in server.sessions
    assert session.link.path == "/"
    assert session.link.request.headers["Sec-WebSocket-Protocol"] == SUBPROTOCOL
    client.transport.disconnect(timeout=1)
    wait_until(lambda: disconnected == [session], what="disconnect hook")


def test_authenticate_hook_sees_hello_extra(ws_server, ws_connect):
    server = ws_server(authenticate=lambda hello, peer: hello is not None and hello.extra.get("token") == "good")
    client = ws_connect(server, hello_extra={"token": "good"})
    assert client.request("echo", "in", timeout=5) == "in"
    with pytest.raises(HandshakeError, match="authentication failed"):
        connect(server.url(), hello_extra={"token": "bad"})


# -- origin, subprotocol, HTTP ------------------------------------------------------


def test_origin_allowlist(ws_server, ws_connect):
    server = ws_server(origins=["https://app.example"])
    assert ws_connect(server, origin="https://app.example").request("echo", 1, timeout=5) == 1
    for origin in ("https://evil.example", None):
        with pytest.raises(HandshakeError, match="403"):
            connect(server.url(), origin=origin)


def test_origin_allowlist_may_admit_clients_without_origin(ws_server, ws_connect):
    server = ws_server(origins=["https://app.example", None])
    assert ws_connect(server).request("echo", 1, timeout=5) == 1
    with pytest.raises(HandshakeError, match="403"):
        connect(server.url(), origin="http://localhost:8000")


def test_subprotocol_negotiation(ws_server):
    server = ws_server()
    for offered, selected in (([SUBPROTOCOL], SUBPROTOCOL), (["other", SUBPROTOCOL], SUBPROTOCOL), (None, None)):
        raw = RawWebSocket(server.url(), subprotocols=offered)
        assert raw.protocol.subprotocol == selected
        raw.close()
    with pytest.raises(HandshakeError, match="400"):
        connect(server.url(), subprotocols=["rpcengine.v999"])

    strict = ws_server(require_subprotocol=True)
    with pytest.raises(HandshakeError, match="400"):
        connect(strict.url(), subprotocols=None)
    client = connect(strict.url())
    assert client.transport.link.subprotocol == SUBPROTOCOL
    client.close()

    none = ws_server(subprotocol=None)
    client = connect(none.url())
    assert client.transport.link.subprotocol is None
    assert client.request("echo", 1, timeout=5) == 1
    client.close()


def test_browser_client_script_is_served(ws_server, tmp_path, monkeypatch):
    server = ws_server()
    status, headers, body = http_get(server, "/rpcengine.js")
    assert status == 200
    assert headers["content-type"].startswith("application/javascript")
    assert body == (transports.websocket.server.STATIC_DIR / "rpcengine.js").read_bytes()
    monkeypatch.setattr(transports.websocket.server, "STATIC_DIR", tmp_path)
    assert http_get(server, "/rpcengine.js")[0] == 404
    assert http_get(ws_server(serve_static=False), "/rpcengine.js")[0] == 404


def test_plain_http_requests_get_errors(ws_server):
    server = ws_server({"/rpc": registry_with()})
    status, headers, _ = http_get(server, "/rpc")
    assert status == 426 and headers["upgrade"] == "websocket"
    assert http_get(server, "/")[0] == 404
    assert http_get(server, "/other")[0] == 404


# -- limits and lifecycle -----------------------------------------------------------


def test_max_connections_counts_every_path(ws_server, ws_connect):
    server = ws_server({"/a": registry_with(), "/b": registry_with()}, max_connections=1)
    ws_connect(server, "/a")
    with pytest.raises(HandshakeError, match="503"):
        connect(server.url("/b"))
    assert server.refused_connections == 1


def test_stop_sends_disconnect_and_closes_clients(ws_server, ws_connect):
    disconnected = []
    server = ws_server(on_disconnect=disconnected.append)
    clients = [ws_connect(server, handshake=handshake) for handshake in (True, False)]
    for client in clients:
        client.request("echo", 0, timeout=5)
    ended = [gevent.event.Event() for _ in clients]
    for client, event in zip(clients, ended, strict=True):
        client.on_close(lambda _engine, event=event: event.set())
    server.stop(timeout=1)
    for event in ended:
        assert event.wait(5)
    assert len(disconnected) == 2
    with pytest.raises(OSError):
        connect(server.url(), connect_timeout=2)


@pytest.mark.parametrize("closing_side", ["client", "server"])
def test_closing_handshake_completes_without_waiting_for_the_timeout(ws_server, ws_connect, closing_side):
    server = ws_server()
    client = ws_connect(server, handshake=False)
    client.request("echo", 1, timeout=5)
    client_link = client.transport.link
    (server_link,) = server.links
    started = time.monotonic()
    if closing_side == "client":
        client.close()
    else:
        server.stop(timeout=1)
    wait_until(lambda: client_link.protocol.state is State.CLOSED, timeout=5, what="client side closed")
    wait_until(lambda: server_link.protocol.state is State.CLOSED and not server.links, timeout=5, what="server side")
    assert time.monotonic() - started < DEFAULT_CLOSE_TIMEOUT / 2  # a clean close handshake, not the timer
    expected = 1000 if closing_side == "client" else 1001
    assert server_link.protocol.close_code == client_link.protocol.close_code == expected  # as received by each


def test_connect_argument_errors():
    with pytest.raises(ValueError):
        connect("http://127.0.0.1:1/")
    with pytest.raises(ValueError):
        connect("ws://127.0.0.1:1/", ssl_context=object())  # type: ignore[arg-type]
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(OSError):
        connect(f"ws://127.0.0.1:{port}/", connect_timeout=2)


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
def test_ipv6_literal_url(ws_connect):
    server = start_ws_server(host="::1")
    try:
        url = server.url()
        assert url.startswith("ws://[::1]:")
        assert ws_connect(url).request("echo", "v6", timeout=5) == "v6"
    finally:
        server.stop(timeout=1)


def test_tls(ws_server, ws_connect, tmp_path):
    server_context, client_context = make_tls_contexts(tmp_path)
    server = ws_server(ssl_context=server_context)
    assert server.url().startswith("wss://")
    client = ws_connect(server, ssl_context=client_context)
    assert client.request("echo", "secret", timeout=5) == "secret"
    assert server.sessions.notify("n", 1) == 1
    with pytest.raises(OSError):  # the system's CAs do not trust our self-signed certificate
        connect(server.url(), connect_timeout=5)


# -- keepalive, liveness, resume ----------------------------------------------------


def test_server_pings_keep_an_idle_plain_connection_alive(ws_server):
    server = ws_server(heartbeat_interval=0.05, heartbeat_timeout=0.3)
    raw = RawWebSocket(server.url())
    raw.send_message([2, 1, "echo", "before"])
    assert raw.read_message() == [3, 1, 1, "before"]
    assert raw.count_pings(12) == 12  # 0.6 s, twice the timeout: answered pings keep it open
    raw.send_message([2, 2, "echo", "after"])
    assert raw.read_message() == [3, 2, 2, "after"]
    raw.close()


def test_server_drops_a_frozen_peer(ws_server):
    gone = gevent.event.AsyncResult()
    server = ws_server(heartbeat_interval=0.05, heartbeat_timeout=0.3, on_disconnect=gone.set)
    raw = RawWebSocket(server.url())
    raw.send_message([1, 1, "echo", "hi"])  # a plain session, then silence: pings go unanswered
    session = gone.get(timeout=5)
    assert "no frame from the peer" in session.close_reason
    raw.close()


def test_a_handshaken_session_is_judged_by_its_heartbeats_and_never_pinged(ws_server):
    # One liveness rule per connection: where session heartbeats flow, the link sends no pings.
    server = ws_server(heartbeat_interval=0.05, heartbeat_timeout=5.0)
    raw = RawWebSocket(server.url())
    raw.send_text(b'{"rpcengine": 1, "session": null, "ack": 0}')
    assert raw.read_message()["resumed"] is False
    heartbeats, pings = 0, 0
    while heartbeats < 6:  # 0.3 s: six heartbeat intervals
        for frame in raw.events():
            if frame.opcode is PING:
                pings += 1
            elif frame.opcode is TEXT and bytes(frame.data).startswith(b"[0,"):
                heartbeats += 1
    assert pings == 0
    (session,) = list(server.sessions)
    assert not session.protocol.probe
    raw.close()


def test_backpressure_is_not_mistaken_for_a_silent_peer(ws_server, ws_connect):
    def slow(request: Any) -> Any:
        gevent.sleep(0.2)
        return request.data

    # One handler at a time: the reader waits ~0.6 s to hand over the later requests, twice the
    # timeout, and must not count that as the peer's silence.
    server = ws_server(registry_with(slow=slow), max_concurrency=1, heartbeat_interval=0.05, heartbeat_timeout=0.3)
    client = ws_connect(server, handshake=False)
    calls = [gevent.spawn(client.request, "slow", n, timeout=10) for n in range(4)]
    assert [call.get(timeout=10) for call in calls] == [0, 1, 2, 3]


def test_client_drops_a_frozen_server():
    def frozen(sock: Any, _address: Any) -> None:
        protocol = ServerProtocol()
        protocol.send_response(protocol.accept(receive_handshake(sock, protocol)[0]))
        send_protocol_data(sock, protocol)
        gevent.sleep(10)  # the server process hangs: it reads and answers nothing

    listener = StreamServer(("127.0.0.1", 0), frozen)
    listener.start()
    try:
        client = connect(
            f"ws://127.0.0.1:{listener.address[1]}/", handshake=False, heartbeat_interval=0.05, heartbeat_timeout=0.3
        )
        ended = gevent.event.Event()
        client.on_close(lambda _engine: ended.set())
        assert ended.wait(5)
        assert "no frame from the peer" in client.transport.close_reason
    finally:
        listener.stop(timeout=0)


def test_server_closing_a_session_says_goodbye_before_the_close_frame(ws_server):
    server = ws_server()
    client = connect(server.url(), reconnect=True)
    try:
        client.request("echo", 1, timeout=5)
        ended = gevent.event.Event()
        client.on_close(lambda _engine: ended.set())
        (session,) = server.sessions
        session.close("bye")  # a Disconnect goes out first: the client must not try to resume
        assert ended.wait(5)
        assert client.transport.peer_disconnecting
    finally:
        client.close()


@pytest.mark.timeout(60)
def test_reconnect_and_resume_handle_each_message_once(ws_server):
    recorder = Recorder(delay=lambda: 0.01)
    server = ws_server(recorder)
    client = connect(server.url(), reconnect=True)
    try:
        first_link = client.transport.link
        calls = [gevent.spawn(client.request, "echo", n, timeout=20) for n in range(40)]
        for n in range(40):
            client.notify("note", n)
        wait_until(lambda: recorder.total("echo") >= 5, what="some calls handled")
        first_link.sock.shutdown(socket.SHUT_RDWR)  # cut the connection under everything in flight
        assert [call.get(timeout=30) for call in calls] == list(range(40))
        wait_until(lambda: recorder.total("note") == 40, what="every notification")
        assert client.transport.link is not first_link
        assert len(server.sessions) == 1
        assert all(count == 1 for count in recorder.counts.values()), recorder.counts
    finally:
        client.close()
