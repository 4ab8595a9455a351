"""Many server processes through one real redis-server: broadcasts, calls across nodes, node death, restarts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from tests.helpers.redis_server import RedisServer
from tests.helpers.tcp import wait_until
from tests.transports.broker.processes import LIVENESS_TTL, Listener, NodeProcess

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def three_nodes(redis_url: str) -> Iterator[list[NodeProcess]]:
    nodes = [NodeProcess(redis_url, "p") for _ in range(3)]
    yield nodes
    for node in nodes:
        node.stop()
    assert all(node.process.returncode is not None for node in nodes)


def _no_blocks(nodes: list[NodeProcess]) -> None:
    """Every live node's hub-block monitor reported nothing."""
    for node in nodes:
        if node.process.poll() is None:
            stats = node.rpc("stats")
            assert stats["blocks"] == [], stats["blocks"]


def test_a_broadcast_from_one_of_three_nodes_reaches_30_clients_once_within_a_second(
    three_nodes: list[NodeProcess],
) -> None:
    clients = [Listener(node.port) for node in three_nodes for _ in range(10)]
    started = time.monotonic()
    result = three_nodes[0].rpc("broadcast", {"method": "tick", "data": "first"})
    wait_until(lambda: all(c.received for c in clients), 1.0, what="30/30 clients got the broadcast within 1 s")
    took = time.monotonic() - started
    assert result == {"delivered": 11, "nodes": 2, "dropped": False}  # its 10 clients and the control session
    # Redis keeps a channel's publish order: once a later broadcast is in, a duplicate of the first would be too.
    three_nodes[0].rpc("broadcast", {"method": "tick", "data": "marker"})
    wait_until(lambda: all(c.received[-1:] == ["marker"] for c in clients), 5)
    assert [c.received for c in clients] == [["first", "marker"]] * 30, f"took {took:.3f} s"
    _no_blocks(three_nodes)


def test_a_thousand_broadcasts_from_three_nodes_arrive_without_loss_or_duplicate(
    three_nodes: list[NodeProcess],
) -> None:
    clients = [Listener(node.port) for node in three_nodes for _ in range(10)]
    counts = [334, 333, 333]
    workers = [
        gevent.spawn(node.rpc, "broadcast_many", {"method": "tick", "count": n, "origin": i}, 60)
        for i, (node, n) in enumerate(zip(three_nodes, counts, strict=True))
    ]
    gevent.joinall(workers, timeout=60, raise_error=True)
    assert [w.value["dropped"] for w in workers] == [0, 0, 0]
    wait_until(lambda: all(len(c.received) >= 1000 for c in clients), 30, what="every client got 1,000")
    for i, _ in enumerate(three_nodes):
        three_nodes[i].rpc("broadcast", {"method": "tick", "data": ["marker", i]})
    wait_until(lambda: all(len(c.received) >= 1003 for c in clients), 10)
    expected = {(origin, seq) for origin, n in enumerate(counts) for seq in range(n)}
    for client in clients:
        got = [tuple(item) for item in client.received if item[0] != "marker"]
        assert len(got) == 1000 and set(got) == expected, "0 duplicates and 0 losses"
        for origin in range(3):  # each origin's broadcasts arrive in the order they were made
            seqs = [seq for o, seq in got if o == origin]
            assert seqs == sorted(seqs)
    _no_blocks(three_nodes)


def test_a_call_from_node_a_reaches_a_client_of_node_c_and_a_killed_node_fails_calls_within_200_ms(
    three_nodes: list[NodeProcess],
) -> None:
    a, _, c = three_nodes
    client = Listener(c.port)
    assert client.session_id.startswith(c.node + ".")
    answer = a.rpc("call_session", {"session": client.session_id, "method": "echo", "data": [1, "x"], "timeout": 10})
    assert answer["answer"] == [1, "x"]
    # A call in flight when C dies, and one made after.
    in_flight = gevent.spawn(
        a.rpc, "call_session", {"session": client.session_id, "method": "slow", "data": 30, "timeout": 60}
    )
    wait_until(lambda: client.started == 1, 10, what="the slow call reached the client")
    killed_at = time.time()
    c.kill()
    failed = in_flight.get(timeout=10)
    assert failed["error"] == "ConnectionLost", failed
    lag = failed["ended"] - killed_at
    assert lag < 0.2, f"the call in flight failed {lag:.3f} s after the kill"
    after = a.rpc("call_session", {"session": client.session_id, "method": "echo", "data": 1, "timeout": 10})
    assert after["error"] == "ConnectionLost" and after["took"] < 0.2, after
    _no_blocks(three_nodes)


def test_calls_to_a_frozen_node_fail_once_its_liveness_key_expires(three_nodes: list[NodeProcess]) -> None:
    """SIGSTOP keeps the frozen node's sockets open, so its subscription stays: only its liveness key tells.

    The call in flight fails with ConnectionLost within two ``liveness_ttl``
    (the key's expiry, then as long again) of the freeze, not at Redis's
    TCP keepalive (300 s) nor at the call's own 60 s timeout.
    """
    a, _, c = three_nodes
    client = Listener(c.port)
    in_flight = gevent.spawn(
        a.rpc, "call_session", {"session": client.session_id, "method": "slow", "data": 30, "timeout": 60}, 60
    )
    wait_until(lambda: client.started == 1, 10, what="the slow call reached the client")
    frozen_at = time.time()
    c.freeze()
    try:
        failed = in_flight.get(timeout=20)
    finally:
        c.thaw()
    assert failed["error"] == "ConnectionLost", failed
    lag = failed["ended"] - frozen_at
    assert lag <= 2 * LIVENESS_TTL + 0.5, f"the call in flight failed {lag:.3f} s after the freeze"


def test_broadcasts_flow_again_within_5_s_after_redis_restarts(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "own-redis").start()
    nodes = [NodeProcess(redis.url, "r") for _ in range(2)]
    try:
        local, remote = Listener(nodes[0].port), Listener(nodes[1].port)
        nodes[0].rpc("broadcast", {"method": "tick", "data": "before"})
        wait_until(lambda: remote.received == ["before"], 5)
        redis.stop()
        # Down: counted as dropped, delivered locally, nothing crashes.
        down = nodes[0].rpc("broadcast", {"method": "tick", "data": "down"})
        assert down["dropped"] is True and down["delivered"] == 2  # its client and the control session
        wait_until(lambda: local.received == ["before", "down"], 5)
        redis.start()
        restarted = time.monotonic()

        def flows() -> bool:
            nodes[0].rpc("broadcast", {"method": "tick", "data": "after"})
            return "after" in remote.received

        wait_until(flows, 5, what="broadcasts flow again within 5 s of the restart")
        took = time.monotonic() - restarted
        assert took < 5
        assert all(node.process.poll() is None for node in nodes), "no process restarted"
        assert nodes[1].rpc("stats")["reconnects"] >= 1
        _no_blocks(nodes)
    finally:
        for node in nodes:
            node.stop()
        redis.stop()
