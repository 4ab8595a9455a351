"""RedisBroker with two nodes in this process (each its own broker and TCP server), on a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import redis

from dispatchers import Registry
from rpcengine import Engine
from rpcengine.errors import ConnectionLost, RequestCancelled, RequestException, RequestTimeout
from tests.helpers.tcp import wait_until
from transports.redis import RedisBroker, node_of
from transports.tcp import TcpServer, connect

pytestmark = pytest.mark.timeout(60)


class Client:
    """A client of one node: records the notifications it receives, answers calls from servers."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.started: list[Any] = []
        self.registry = Registry()
        self.registry.register(self.whoami)
        self.registry.register(self.slow)
        self.registry.register(self.tick)
        self.engine: Engine | None = None

    def whoami(self, request: Any) -> Any:
        return {"asked": request.data}

    def slow(self, request: Any) -> Any:
        self.started.append(request.data)
        gevent.sleep(request.data)
        return "done"

    def tick(self, notification: Any) -> None:
        self.received.append(notification.data)


class Node:
    """One node: a broker and a TCP server on it."""

    def __init__(self, url: str, prefix: str) -> None:
        self.broker = RedisBroker(url, prefix, probe_interval=0.2, probe_timeout=0.5).start()
        self.server = TcpServer(("127.0.0.1", 0), Registry(), broker=self.broker)
        self.server.start()

    def connect(self) -> tuple[Client, str]:
        """Connect one client; return it and its session id here."""
        client = Client()
        client.engine = connect("127.0.0.1", self.server.address[1], client.registry)
        session_id = client.engine.transport.session_id  # type: ignore[attr-defined]
        return client, session_id

    def stop(self) -> None:
        self.server.stop(timeout=1)
        self.broker.stop()


@pytest.fixture
def nodes(redis_url: str) -> Iterator[list[Node]]:
    made = [Node(redis_url, "t"), Node(redis_url, "t")]
    for node in made:
        assert node.broker.wait_subscribed(5)
    yield made
    for node in made:
        node.stop()


def test_session_ids_name_their_node(nodes: list[Node]) -> None:
    _, session_id = nodes[0].connect()
    assert node_of(session_id) == nodes[0].broker.node_id


def test_a_broadcast_reaches_every_node_once_and_says_what_it_reached(nodes: list[Node]) -> None:
    clients = [nodes[i % 2].connect()[0] for i in range(6)]
    result = nodes[0].server.sessions.notify("tick", 1)
    assert result.delivered == 3 and result.nodes == 1 and not result.dropped
    # Redis delivers a channel's messages in publish order: once the marker is in, a duplicate would be too.
    nodes[0].server.sessions.notify("tick", "marker")
    wait_until(lambda: all(c.received[-1:] == ["marker"] for c in clients), 5)
    assert [c.received for c in clients] == [[1, "marker"]] * 6
    assert nodes[1].broker.stats.broadcasts_received == 2


def test_a_call_to_a_client_of_another_node_is_answered(nodes: list[Node]) -> None:
    _, session_id = nodes[1].connect()
    assert nodes[0].server.sessions.request(session_id, "whoami", "x", timeout=5) == {"asked": "x"}
    assert nodes[1].broker.stats.calls_relayed == 1


def test_an_error_timeout_and_cancel_cross_the_broker(nodes: list[Node]) -> None:
    client, session_id = nodes[1].connect()
    sessions = nodes[0].server.sessions
    with pytest.raises(RequestException) as raised:
        sessions.request(session_id, "nonexistent", None, timeout=5)
    assert raised.value.data["error"] == "method_not_found"
    with pytest.raises(RequestTimeout):
        sessions.request(session_id, "slow", 3, timeout=0.3)
    call = sessions.call(session_id, "slow", 3, timeout=10)
    wait_until(lambda: len(client.started) == 2, 5)
    call.cancel()
    with pytest.raises(RequestCancelled):
        call.get()
    # The cancel reached the client: its handler was interrupted, it keeps serving.
    assert sessions.request(session_id, "whoami", 2, timeout=5) == {"asked": 2}


def test_a_session_that_closed_fails_at_once(nodes: list[Node]) -> None:
    client, session_id = nodes[1].connect()
    assert client.engine is not None
    client.engine.close()
    wait_until(lambda: nodes[1].server.sessions.get(session_id) is None, 5)
    with pytest.raises(ConnectionLost):
        nodes[0].server.sessions.request(session_id, "whoami", None, timeout=5)


def test_a_session_on_a_stopped_node_fails_at_once(nodes: list[Node]) -> None:
    _, session_id = nodes[1].connect()
    nodes[1].broker.stop()
    started = gevent.get_hub().loop.now()
    with pytest.raises(ConnectionLost):
        nodes[0].server.sessions.request(session_id, "whoami", None, timeout=5)
    assert gevent.get_hub().loop.now() - started < 0.2


def test_garbage_on_the_channels_is_dropped_and_logged(nodes: list[Node], redis_server: Any, caplog: Any) -> None:
    raw = redis.Redis(unix_socket_path=redis_server.path)
    garbage = [
        b"not json",
        b"\xff\xfe",
        b"[1,2,3]",
        b'{"v":1,"t":"b"}',
        b'{"v":1,"t":"s","n":"x","s":"y","m":[99]}',
        b'{"v":2,"t":"b","n":"x","m":"tick","d":1}',
        b'{"v":1,"t":"b","n":"x","m":"tick","d":"' + b"x" * (2 * 1024 * 1024) + b'"}',
    ]
    client, _ = nodes[0].connect()
    for payload in garbage:
        raw.publish("t:broadcast", payload)
        raw.publish(f"t:node:{nodes[0].broker.node_id}", payload)
    raw.close()
    wait_until(lambda: nodes[0].broker.stats.garbage_dropped == 2 * len(garbage), 5)
    assert "dropped a payload" in caplog.text or "dropped a session message" in caplog.text
    assert client.received == []
    nodes[1].server.sessions.notify("tick", "after")
    wait_until(lambda: client.received == ["after"], 5)


def test_redis_commands_yield_to_the_hub_without_monkey_patching(redis_url: str) -> None:
    import gevent.monkey

    from transports.redis import redis_client

    assert not gevent.monkey.is_module_patched("socket")
    client = redis_client(redis_url)
    ticks: list[float] = []

    def tick() -> None:
        for _ in range(20):
            ticks.append(gevent.get_hub().loop.now())
            gevent.sleep(0.02)

    ticker = gevent.spawn(tick)
    assert client.blpop(["never-filled"], timeout=0.5) is None  # a 0.5 s wait inside Redis
    ticker.join(5)
    client.close()
    assert len(ticks) >= 15, "the hub ran other greenlets while the command waited"


def test_connections_speak_resp2_with_the_pure_python_parser(redis_url: str) -> None:
    from redis._parsers import _RESP2Parser

    from transports.redis import redis_client

    client = redis_client(redis_url)
    try:
        assert client.client_info()["resp"] == "2"  # what the server says this connection speaks
        connection = client.connection_pool.get_connection()
        try:
            assert isinstance(connection._parser, _RESP2Parser)
        finally:
            client.connection_pool.release(connection)
    finally:
        client.close()


def test_a_killed_subscription_is_rebuilt_and_broadcasts_flow_again(nodes: list[Node], redis_server: Any) -> None:
    client, _ = nodes[1].connect()
    raw = redis.Redis(unix_socket_path=redis_server.path)
    assert raw.client_kill_filter(_type="pubsub") >= 2
    raw.close()

    def flows() -> bool:
        nodes[0].server.sessions.notify("tick", "again")
        return "again" in client.received

    wait_until(flows, 5, what="a broadcast reaches node 1 again")
    assert nodes[1].broker.stats.reconnects >= 1


def test_a_hung_redis_is_detected_by_the_probe_and_service_resumes(tmp_path: Any) -> None:
    import os
    import signal

    from tests.helpers.redis_server import RedisServer

    server = RedisServer(tmp_path / "hung").start()
    made = [Node(server.url, "h"), Node(server.url, "h")]
    try:
        for node in made:
            assert node.broker.wait_subscribed(5)
        client, _ = made[1].connect()
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)  # the sockets stay open; nothing answers
        try:
            wait_until(lambda: not made[1].broker.subscribed, 5, what="the probe notices the hung subscription")
            local, _ = made[0].connect()
            result = made[0].server.sessions.notify("tick", "while hung")  # bounded by the command timeout
            assert result.dropped and int(result) == 1
            wait_until(lambda: local.received == ["while hung"], 5)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)

        def flows() -> bool:
            made[0].server.sessions.notify("tick", "resumed")
            return "resumed" in client.received

        wait_until(flows, 5, what="broadcasts flow again once Redis answers")
    finally:
        for node in made:
            node.stop()
        server.stop()


def test_liveness_keys_are_refreshed_listed_and_removed(redis_url: str, redis_server: Any) -> None:
    import json

    raw = redis.Redis(unix_socket_path=redis_server.path)
    broker = RedisBroker(redis_url, "live", liveness_interval=0.1, liveness_ttl=0.5).start()
    other = RedisBroker(redis_url, "live").start()
    try:
        key = f"live:alive:{broker.node_id}"
        wait_until(lambda: raw.exists(key), 5)
        info = json.loads(raw.get(key))
        assert info["node"] == broker.node_id and isinstance(info["pid"], int)
        assert 0 < raw.pttl(key) <= 500
        first = raw.pttl(key)
        wait_until(lambda: raw.pttl(key) > first, 5, what="the key is refreshed before it expires")
        assert sorted(broker.nodes()) == sorted([broker.node_id, other.node_id])
    finally:
        broker.stop()
        other.stop()
    assert not raw.exists(key), "a stopped node removes its key"
    raw.close()


def test_what_goes_over_redis_is_json_in_the_documented_shape(nodes: list[Node], redis_server: Any) -> None:
    import json

    from transports.redis import redis_client

    raw = redis_client(redis_server.url)  # a gevent socket: the waits below yield
    pubsub = raw.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("t:broadcast")
    wait_until(lambda: raw.pubsub_numsub("t:broadcast")[0][1] == 3, 5)
    nodes[0].server.sessions.notify("tick", {"n": 1})
    message = None
    with gevent.Timeout(5):
        while message is None:  # None also stands for the subscription's own confirmation, ignored
            message = pubsub.get_message(timeout=1)
    assert json.loads(message["data"]) == {"v": 1, "t": "b", "n": nodes[0].broker.node_id, "m": "tick", "d": {"n": 1}}
    pubsub.close()
    raw.close()
