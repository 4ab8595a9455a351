"""Server lifecycle over TCP: graceful stop, hooks, authentication, heartbeats, the outbox bound."""

from __future__ import annotations

import socket
import time
from typing import Any

import gevent
import pytest
from gevent.event import Event
from helpers.tcp import LOOPBACK, RawClient, call_quietly, wait_until

from dispatchers import Registry
from rpcengine.errors import ConnectionLost, HandshakeError, OutboxFull
from transports.tcp import connect

pytestmark = pytest.mark.timeout(30)


class Gate:
    """A dispatcher whose ``work`` calls block until :meth:`open`; counts the calls running."""

    def __init__(self) -> None:
        self.opened = Event()
        self.running = 0
        self.registry = Registry()
        self.registry.add("work", self.work)
        self.registry.add("echo", lambda request: request.data)

    def work(self, request: Any) -> Any:
        self.running += 1
        try:
            self.opened.wait()
        finally:
            self.running -= 1
        return request.data


# -- stop ---------------------------------------------------------------


def test_stop_lets_inflight_handlers_answer_sends_disconnect_and_refuses_new_connections(
    tcp_raw, tcp_server, tcp_connect
):
    gate = Gate()
    server = tcp_server(gate.registry)
    raw = tcp_raw(server.address)
    raw.send(b'[2,1,"work","a"]\n[2,2,"work","b"]\n')
    client = tcp_connect(server)
    calls = [gevent.spawn(call_quietly, client.request, "work", i, timeout=10) for i in range(3)]
    wait_until(lambda: gate.running == 5)
    stopper = gevent.spawn(server.stop, 10)
    try:
        assert raw.read_message() == [-1]
        wait_until(lambda: client.peer_disconnecting)
        with pytest.raises(ConnectionRefusedError):
            connect(LOOPBACK, server.address[1], connect_timeout=2)
        with pytest.raises(ConnectionLost):
            client.request("echo", "too late", timeout=2)
        assert not stopper.ready()
    finally:
        gate.opened.set()
    _, replies = raw.wait_closed(timeout=5)
    assert sorted(reply[2:] for reply in replies) == [[1, "a"], [2, "b"]]
    assert all(reply[0] == 3 for reply in replies)
    gevent.joinall(calls, timeout=5)
    assert [call.value for call in calls] == [0, 1, 2]
    stopper.get(timeout=5)
    wait_until(lambda: client.closed)


def test_stop_does_not_wait_past_its_timeout_for_handlers_that_never_finish(tcp_server, tcp_connect):
    gate = Gate()
    server = tcp_server(gate.registry)
    clients = [tcp_connect(server) for _ in range(3)]
    calls = [gevent.spawn(call_quietly, c.request, "work", 1, timeout=20) for c in clients]
    wait_until(lambda: gate.running == 3)
    started = time.monotonic()
    try:
        server.stop(timeout=0.3)
        elapsed = time.monotonic() - started
    finally:
        gate.opened.set()
    assert 0.3 <= elapsed < 1.0
    gevent.joinall(calls, timeout=5)
    assert all(isinstance(call.value, ConnectionLost) for call in calls)


def test_stop_is_bounded_when_several_clients_do_not_read_their_answers(tcp_raw, tcp_server):
    """Answers stuck behind full socket buffers are given 0.5 s in all, not 0.5 s per client."""
    server = tcp_server(max_buffer=64 * 1024)
    big = b"x" * (512 * 1024)
    raws = [tcp_raw(server.address, rcvbuf=4096) for _ in range(4)]
    for raw in raws:
        raw.send(b"".join(b'[2,%d,"echo","%s"]\n' % (i, big) for i in range(1, 17)))
    # Answers never block their handlers: they pile up in the links (and the server stops reading instead).
    wait_until(
        lambda: (
            len(server.sessions) == 4
            and all(s.link is not None and s.link.held > server.config.max_buffer for s in server.sessions)
        )
    )
    started = time.monotonic()
    server.stop(timeout=0.2)
    elapsed = time.monotonic() - started
    for raw in raws:
        raw.close()
    assert elapsed < 0.2 + 0.5 + 0.3, f"stop took {elapsed:.2f} s"


# -- hooks and authentication ----------------------------------------------


def test_on_connect_and_on_disconnect_run_once_per_plain_session(tcp_server, tcp_connect):
    connected: list[Any] = []
    disconnected: list[Any] = []
    server = tcp_server(on_connect=connected.append, on_disconnect=disconnected.append)
    client = tcp_connect(server, handshake=False)
    # A plain client is known to the server from its first message on.
    assert client.request("echo", 1, timeout=5) == 1
    assert len(connected) == 1
    assert connected[0].peer_address[0] == LOOPBACK and connected[0].engine is not None
    client.close()
    wait_until(lambda: len(disconnected) == 1)
    assert disconnected == connected


def test_resumable_session_lost_without_goodbye_ends_only_after_the_resume_grace(tcp_server, tcp_connect):
    disconnected: list[float] = []
    server = tcp_server(resume_grace=0.5, on_disconnect=lambda session: disconnected.append(time.monotonic()))
    client = tcp_connect(server)
    (session,) = server.sessions
    client.transport.link.sock.shutdown(socket.SHUT_RDWR)
    wait_until(lambda: session.detached)
    lost_at = time.monotonic()
    assert not disconnected
    wait_until(lambda: disconnected, timeout=3)
    assert disconnected[0] - lost_at >= 0.4
    assert len(server.sessions) == 0


def test_client_that_closes_ends_its_resumable_session_at_once(tcp_server, tcp_connect):
    disconnected: list[Any] = []
    server = tcp_server(resume_grace=30, on_disconnect=disconnected.append)
    client = tcp_connect(server)
    client.close()
    wait_until(lambda: disconnected, timeout=3, what="on_disconnect long before the 30 s grace")
    assert len(server.sessions) == 0


def test_authenticate_hook_receives_hello_extra_and_peer_address(tcp_server, tcp_connect):
    seen: list[Any] = []

    def authenticate(hello: Any, peer: Any) -> bool:
        seen.append((None if hello is None else hello.extra, peer))
        return hello is not None and hello.extra.get("token") == "s3cret"

    server = tcp_server(authenticate=authenticate)
    client = tcp_connect(server, hello_extra={"token": "s3cret", "user": "ann"})
    assert client.request("echo", "in", timeout=5) == "in"
    assert seen[0][0] == {"token": "s3cret", "user": "ann"} and seen[0][1][0] == LOOPBACK
    with pytest.raises(HandshakeError, match="authentication failed"):
        connect(LOOPBACK, server.address[1], hello_extra={"token": "guess"})
    assert len(server.sessions) == 1


def test_refused_handshake_gets_the_refusal_object_then_a_close(tcp_raw, tcp_server):
    server = tcp_server(authenticate=lambda hello, peer: False)
    raw = tcp_raw(server.address)
    raw.send(b'{"rpcengine":1,"session":null,"ack":0,"token":"x"}\n')
    _, replies = raw.wait_closed(timeout=2)
    assert replies == [{"rpcengine": 1, "error": "authentication failed"}]
    plain = tcp_raw(server.address)
    plain.send(b'[2,1,"echo","hi"]\n')
    _, replies = plain.wait_closed(timeout=2)
    assert replies == [{"rpcengine": 1, "error": "authentication failed"}]
    assert len(server.sessions) == 0


def test_authenticate_hook_that_raises_refuses_and_logs(tcp_server, caplog):
    def authenticate(hello: Any, peer: Any) -> bool:
        raise RuntimeError("database down")

    server = tcp_server(authenticate=authenticate)
    with pytest.raises(HandshakeError):
        connect(LOOPBACK, server.address[1])
    assert any("authenticate hook raised" in r.getMessage() for r in caplog.records)


def test_max_connections_closes_the_extra_connection_until_one_leaves(tcp_server, tcp_connect):
    server = tcp_server(max_connections=2)
    first = tcp_connect(server)
    tcp_connect(server)
    with pytest.raises(HandshakeError, match="server full: 2 connections"):
        connect(LOOPBACK, server.address[1], handshake_timeout=2)
    assert server.refused_connections == 1
    first.close()
    wait_until(lambda: len(server.links) == 1)
    assert tcp_connect(server).request("echo", "room again", timeout=5) == "room again"


# -- heartbeats and the outbox ---------------------------------------------


def count_heartbeats(link: Any) -> list[int]:
    """Count the heartbeat frames ``link`` receives from now on; return the one-item counter."""
    counter = [0]
    receiver = link.receiver

    def counting(frame: bytes) -> None:
        if frame.startswith(b"[0,"):
            counter[0] += 1
        receiver(frame)

    link.receiver = counting
    return counter


def test_idle_handshaken_connection_stays_up_across_several_heartbeat_timeouts(tcp_server, tcp_connect):
    timers = {"heartbeat_interval": 0.05, "heartbeat_timeout": 0.25}
    server = tcp_server(**timers)
    client = tcp_connect(server, **timers)
    (session,) = server.sessions
    client_link, server_link = client.transport.link, session.link
    to_client, to_server = count_heartbeats(client_link), count_heartbeats(server_link)
    started = time.monotonic()
    wait_until(lambda: min(to_client[0], to_server[0]) >= 16, timeout=5, what="heartbeats both ways")
    assert time.monotonic() - started > 3 * timers["heartbeat_timeout"]
    assert client.transport.link is client_link and session.link is server_link
    assert not client_link.closed and not server_link.closed
    assert client.request("echo", "awake", timeout=5) == "awake"


def test_client_heartbeats_as_often_as_the_server_announces(tcp_server, tcp_connect):
    server = tcp_server(heartbeat_interval=0.05, heartbeat_timeout=0.25)
    client = tcp_connect(server)  # its own interval is the default 5 s
    (session,) = server.sessions
    server_link = session.link
    to_server = count_heartbeats(server_link)
    wait_until(lambda: to_server[0] >= 16, timeout=5, what="client heartbeats")
    assert session.link is server_link and not server_link.closed
    assert client.request("echo", "alive", timeout=5) == "alive"


def test_silent_handshaken_peer_is_declared_dead_after_the_heartbeat_timeout(tcp_raw, tcp_server):
    server = tcp_server(heartbeat_interval=0.05, heartbeat_timeout=0.3, resume_grace=30)
    raw = tcp_raw(server.address)
    raw.handshake()
    started = time.monotonic()
    _, replies = raw.wait_closed(timeout=3)
    assert 0.25 <= time.monotonic() - started < 1.0
    assert replies and all(reply[0] == 0 for reply in replies), "expected only heartbeats before the close"
    (session,) = server.sessions
    assert session.detached


def test_sender_gets_outbox_full_when_the_peer_reads_but_never_acknowledges(tcp_raw, tcp_server):
    sessions: list[Any] = []
    server = tcp_server(
        on_connect=sessions.append, max_unacked=5, outbox_timeout=0.3, heartbeat_interval=0.05, heartbeat_timeout=None
    )

    def reader(raw: RawClient, ack: bool) -> None:
        while True:
            message = raw.read_message(timeout=30)
            if ack and message[0] == 1:
                raw.send_message([0, message[1]])

    silent, acking = tcp_raw(server.address), tcp_raw(server.address)
    readers = []
    for raw, ack in ((silent, False), (acking, True)):
        raw.handshake()
        readers.append(gevent.spawn(call_quietly, reader, raw, ack))
    wait_until(lambda: len(sessions) == 2)
    try:
        for i in range(50):  # the acknowledging peer keeps room in the outbox
            sessions[1].engine.notify("tick", i)
        for i in range(5):
            sessions[0].engine.notify("tick", i)
        started = time.monotonic()
        with pytest.raises(OutboxFull):
            sessions[0].engine.notify("tick", 5)
        assert 0.25 <= time.monotonic() - started < 1.5
    finally:
        gevent.killall(readers)


@pytest.mark.parametrize("small_side", ["server", "client"])
def test_peer_acknowledges_often_enough_for_a_small_max_unacked_on_the_other_side(tcp_server, tcp_connect, small_side):
    """A sender keeping at most 40 messages unacknowledged must not stall until the receiver's next
    heartbeat (5 s by default): the handshake tells the receiver to acknowledge every 10 messages."""
    small = {"max_unacked": 40, "outbox_timeout": 30.0}
    server = tcp_server(**(small if small_side == "server" else {}))
    received: list[int] = []
    client_options = small if small_side == "client" else {}
    client = tcp_connect(server, reconnect=True, rpc_handler=lambda n: received.append(n.data), **client_options)
    (session,) = server.sessions
    sender = session.engine if small_side == "server" else client
    with gevent.Timeout(3, AssertionError("the sender stalled waiting for acknowledgements")):
        for i in range(2000):
            sender.notify("tick", i)
    if small_side == "server":
        wait_until(lambda: len(received) == 2000)


def test_a_detached_session_and_its_lost_connection_take_one_slot(tcp_server):
    server = tcp_server(max_connections=4)
    raw = RawClient(server.address)
    raw.handshake()
    raw.send(b'[2,1,"echo","unread"]\n')
    wait_until(lambda: any(len(s.outbox) for s in server.sessions), what="the answer waits in the outbox")
    (session,) = server.sessions
    # The link ends on another greenlet than its reader (as a timer or a shed does): the reader
    # has not seen it yet, and the session now waits for a resume. One connection, one slot.
    session.link.close("cut by the test")
    assert len(server.detached) == 1
    assert len(server.links) + len(server.detached) == 1
    raw.close()
