"""Limits under load over TCP: slow consumers, many connections, handler concurrency and backpressure."""

from __future__ import annotations

import resource
import socket
import time
from typing import Any

import gevent
import pytest
from gevent.event import Event
from helpers.tcp import LOOPBACK, call_quietly, wait_until

from transports.tcp import connect

pytestmark = pytest.mark.timeout(60)


class LatencyProbe:
    """Calls ``echo`` on ``engine`` in a loop, recording each round trip and any wrong answer."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.latencies: list[float] = []
        self.wrong: list[Any] = []
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        i = 0
        while True:
            i += 1
            started = time.monotonic()
            answer = call_quietly(self.engine.request, "echo", i, timeout=10)
            self.latencies.append(time.monotonic() - started)
            if answer != i:
                self.wrong.append(answer)
            gevent.sleep(0.01)

    def stop(self) -> None:
        self._greenlet.kill()


@pytest.mark.parametrize("handshake", [False, True], ids=["plain-slow-reader", "handshaken-slow-reader"])
def test_broadcast_of_100000_to_a_client_that_stops_reading_stays_bounded(tcp_raw, tcp_server, tcp_connect, handshake):
    """Bound on what the server holds for the slow client: its link queues at most max_buffer + one message
    of bytes (the socket buffers of the kernel aside), its outbox at most max_unacked messages; once either
    is full the next broadcast closes it as a slow consumer. The other client gets every notification and
    answers within 1 s throughout. The broadcast goes at up to 100 notifications per millisecond: a pace a
    healthy client keeps up with (one that falls max_unacked behind is a slow consumer too)."""
    max_buffer, max_unacked, total = 256 * 1024, 2000, 100_000
    server = tcp_server(max_buffer=max_buffer, max_unacked=max_unacked)
    received = [0]

    def count(notification: Any) -> None:
        received[0] += 1

    good = tcp_connect(server, rpc_handler=count)
    slow = tcp_raw(server.address, rcvbuf=8192)
    if handshake:
        slow.handshake()
    else:
        slow.send(b'[2,1,"echo","here"]\n')
        assert slow.read_message() == [3, 1, 1, "here"]
    wait_until(lambda: len(server.sessions) == 2)
    (slow_session,) = [s for s in server.sessions if s.peer_address == slow.local_address]
    probe = LatencyProbe(good)
    padding = "p" * 200
    message_size = len(b'[1,100000,"tick",[100000,"%s"]]' % padding.encode())
    peak_buffered = peak_outbox = 0
    try:
        for i in range(total):
            server.sessions.notify("tick", [i, padding])
            link = slow_session.link
            if link is not None:
                peak_buffered = max(peak_buffered, link.buffered)
            peak_outbox = max(peak_outbox, len(slow_session.outbox))
            if i % 100 == 0:
                gevent.sleep(0.001)
        wait_until(lambda: received[0] == total, timeout=30, what="every notification at the good client")
    finally:
        probe.stop()
        slow.close()
    assert slow_session.closed and "slow consumer" in slow_session.close_reason
    assert peak_buffered <= max_buffer + message_size
    assert peak_outbox <= max_unacked
    assert not probe.wrong and len(probe.latencies) >= 10
    assert max(probe.latencies) < 1.0, f"slowest answer took {max(probe.latencies):.3f} s"
    assert good.request("echo", "after", timeout=5) == "after"


@pytest.mark.timeout(120)
def test_thousand_concurrent_connections_ten_calls_each_without_error(tcp_server_process):
    clients, calls_each = 1000, 10
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * clients + 256  # the child process inherits the limit: it holds the other end of each connection
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {need} descriptors needed")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need) if soft != resource.RLIM_INFINITY else soft, hard))
    try:
        server = tcp_server_process()
        all_connected = Event()
        connected = [0]
        seen_by_server: list[int] = []

        def one_client(i: int) -> None:
            engine = connect(LOOPBACK, server.port, connect_timeout=30, handshake_timeout=30)
            try:
                connected[0] += 1
                if connected[0] == clients:
                    all_connected.set()
                assert all_connected.wait(timeout=60), "not all clients connected"
                if i == 0:
                    seen_by_server.append(engine.request("connections", timeout=30))
                for j in range(calls_each):
                    assert engine.request("echo", [i, j], timeout=30) == [i, j]
            finally:
                engine.close()

        greenlets = [gevent.spawn(call_quietly, one_client, i) for i in range(clients)]
        gevent.joinall(greenlets, timeout=90)
        errors = [g.value if g.ready() else "unfinished" for g in greenlets if not g.ready() or g.value is not None]
        assert errors == []
        assert seen_by_server == [clients]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_handlers_beyond_max_concurrency_wait_and_the_server_stops_reading(tcp_raw, tcp_server):
    """At most max_concurrency (4) handlers run at once. Past that the server reads ahead (so that a peer's end
    is seen at once) up to ``max_buffer`` bytes of requests not yet handled, then stops reading: the bytes the
    client manages to send are bounded by that, one read (64 KiB), the 4 requests being handled, and the two
    socket buffers in the kernel; the client's writes then block."""
    opened = Event()
    running = [0]
    peak = [0]
    handled = [0]

    def work(request: Any) -> Any:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        try:
            opened.wait()
        finally:
            running[0] -= 1
        handled[0] += 1
        return request.data[0]

    server = tcp_server(work, max_concurrency=4)
    raw = tcp_raw(server.address, sndbuf=64 * 1024)
    count, padding = 4096, "x" * 8000
    lines = [b'[2,%d,"work",[%d,"%s"]]\n' % (i, i, padding.encode()) for i in range(1, count + 1)]
    total = sum(map(len, lines))
    sent = [0]

    def writer() -> None:
        for line in lines:
            raw.send(line)
            sent[0] += len(line)

    writing = gevent.spawn(writer)
    try:
        wait_until(lambda: running[0] == 4)
        stalled_for, last = 0, -1
        deadline = time.monotonic() + 15
        while stalled_for < 10:  # the writer made no progress for 10 polls in a row: it is blocked
            assert time.monotonic() < deadline, "the client kept sending: the server never stopped reading"
            stalled_for = stalled_for + 1 if sent[0] == last else 0
            last = sent[0]
            gevent.sleep(0.02)
        assert peak[0] == 4 and handled[0] == 0
        (session,) = server.sessions
        kernel = session.link.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        kernel += raw.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        read_ahead = server.config.max_buffer + len(lines[0])
        assert sent[0] <= read_ahead + 64 * 1024 + 4 * len(lines[0]) + kernel < total
    finally:
        opened.set()
    writing.get(timeout=20)
    replies = [raw.read_message(timeout=20) for _ in range(count)]
    assert sorted(reply[2] for reply in replies) == list(range(1, count + 1))
    assert all(reply[0] == 3 and reply[2] == reply[3] for reply in replies)
    assert peak[0] == 4 and handled[0] == count
    raw.close()


def test_backpressure_longer_than_the_heartbeat_timeout_is_not_mistaken_for_a_dead_peer(tcp_server, tcp_connect):
    timers = {"heartbeat_interval": 0.05, "heartbeat_timeout": 0.3}

    def slow(request: Any) -> Any:
        gevent.sleep(0.5)
        return request.data

    server = tcp_server(slow, max_concurrency=1, **timers)
    client = tcp_connect(server, **timers)
    (session,) = server.sessions
    link = session.link
    calls = [gevent.spawn(call_quietly, client.request, "slow", i, timeout=10) for i in range(3)]
    gevent.joinall(calls, timeout=10)
    assert [call.value for call in calls] == [0, 1, 2]
    assert session.link is link and not link.closed


@pytest.mark.parametrize("reconnect", [False, True], ids=["handshaken", "resumable"])
def test_twenty_thousand_requests_at_once_on_one_connection_all_answered(tcp_server, tcp_connect, reconnect):
    """More requests than both outboxes hold: answers never wait for room, so nothing deadlocks.

    Before answers were exempt, the server's workers waited for acknowledgements that sat
    unread behind the requests its blocked reader could not hand them: a 30 s stall, then
    about half the requests failed with OutboxFull.
    """
    server = tcp_server(max_unacked=2_000)
    client = tcp_connect(server, reconnect=reconnect, max_unacked=2_000)
    started = time.monotonic()
    calls = [gevent.spawn(call_quietly, client.request, "echo", i, timeout=20) for i in range(20_000)]
    gevent.joinall(calls, timeout=30)
    answers = [call.value for call in calls]
    assert answers == list(range(20_000))
    assert time.monotonic() - started < 15
    (session,) = server.sessions
    assert len(session.outbox) <= 2 * 2_000 + server.config.max_concurrency
