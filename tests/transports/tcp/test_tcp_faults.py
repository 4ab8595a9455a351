"""A server process that dies, freezes or restarts under a client with requests pending."""

from __future__ import annotations

import signal
import time

import gevent
import pytest
from helpers.tcp import call_quietly, wait_until

from rpcengine.errors import ConnectionLost
from transports.session.client import ReconnectPolicy

pytestmark = pytest.mark.timeout(40)

INTERVAL, TIMEOUT = 0.2, 1.0
FAST_HEARTBEATS = {"heartbeat_interval": INTERVAL, "heartbeat_timeout": TIMEOUT}


def hang_requests(client, count: int) -> list[gevent.Greenlet]:
    """Send ``count`` requests the server never answers; return once the server has read them all."""
    calls = [gevent.spawn(call_quietly, client.request, "hang", i, timeout=60) for i in range(count)]
    # The server reads in order: once a later request is answered, it holds all of these.
    assert client.request("echo", "read them all", timeout=10) == "read them all"
    assert client.pending_count == count
    return calls


def wait_all_lost(calls: list[gevent.Greenlet], within: float) -> float:
    """Wait until every call has failed; assert each failed with ConnectionLost; return the time taken."""
    started = time.monotonic()
    gevent.joinall(calls, timeout=within + 5)
    elapsed = time.monotonic() - started
    outcomes = [call.value if call.ready() else "still pending" for call in calls]
    assert all(isinstance(outcome, ConnectionLost) for outcome in outcomes), outcomes[:3]
    return elapsed


def test_killed_server_fails_every_pending_request_with_connection_lost(tcp_server_process, tcp_connect):
    server = tcp_server_process(max_concurrency=256, **FAST_HEARTBEATS)
    client = tcp_connect(server.address, **FAST_HEARTBEATS)
    calls = hang_requests(client, 100)
    server.signal(signal.SIGKILL)
    elapsed = wait_all_lost(calls, within=TIMEOUT + 1)
    assert elapsed <= TIMEOUT + 1
    with pytest.raises(ConnectionLost):
        client.request("echo", "after", timeout=5)


def test_frozen_server_is_detected_by_heartbeat_timeout_and_pending_requests_fail(tcp_server_process, tcp_connect):
    server = tcp_server_process(max_concurrency=256, **FAST_HEARTBEATS)
    client = tcp_connect(server.address, **FAST_HEARTBEATS)
    calls = hang_requests(client, 20)
    server.signal(signal.SIGSTOP)
    try:
        elapsed = wait_all_lost(calls, within=INTERVAL + TIMEOUT + 1)
    finally:
        server.kill()
    assert elapsed <= INTERVAL + TIMEOUT + 1
    # Not an end-of-file: the socket stayed open, only the silence gave the server away.
    assert elapsed >= TIMEOUT - INTERVAL
    assert "no frame from the peer" in client.transport.close_reason


def test_restarted_server_fails_old_requests_and_serves_new_ones_in_a_new_session(tcp_server_process, tcp_connect):
    first = tcp_server_process(max_concurrency=256)
    policy = ReconnectPolicy(initial_delay=0.02, max_delay=0.1, give_up_after=20)
    client = tcp_connect(first.address, reconnect=policy)
    for i in range(50):  # the client has now received ids 1..50+ from the first server
        assert client.request("echo", i, timeout=5) == i
    old_session = client.transport.session_id
    assert client.transport.last_received >= 50
    calls = hang_requests(client, 20)
    first.kill()
    second = tcp_server_process(port=first.port, max_concurrency=256)
    wait_all_lost(calls, within=10)
    assert "restarted" in str(calls[0].value)
    wait_until(lambda: client.transport.link is not None, timeout=10)
    assert client.transport.session_id != old_session
    # The new server numbers its messages from 1 again: they must not be dropped as duplicates.
    for i in range(60):
        assert client.request("echo", i, timeout=5) == i
    assert client.transport.duplicates_dropped == 0
    assert second.proc.poll() is None
