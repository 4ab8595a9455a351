"""The work queue in this process: callers and workers on a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import redis

from dispatchers import Registry
from rpcengine.errors import RequestException, RequestTimeout
from tests.helpers.tcp import wait_until
from transports.redis.queue import GROUP, QueueWorker, connect_queue, queue_key

pytestmark = pytest.mark.timeout(60)


class Work:
    """A service for the workers: records what ran where."""

    def __init__(self) -> None:
        self.ran: list[Any] = []
        self.registry = Registry()
        self.registry.register(self.double)
        self.registry.register(self.nap)
        self.registry.register(self.fail)

    def double(self, request: Any) -> Any:
        self.ran.append(request.data)
        return request.data * 2

    def nap(self, request: Any) -> Any:
        self.ran.append(request.data)
        gevent.sleep(request.data)
        return "rested"

    def fail(self, request: Any) -> Any:
        raise ValueError("no")


@pytest.fixture
def raw(redis_server: Any, redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis(unix_socket_path=redis_server.path)
    yield client
    client.close()


def test_calls_are_spread_over_workers_and_answered(redis_url: str) -> None:
    works = [Work(), Work()]
    workers = [QueueWorker(redis_url, "jobs", w.registry, prefix="t", concurrency=4).start() for w in works]
    caller = connect_queue(redis_url, "jobs", prefix="t")
    try:
        calls = [caller.call("double", i, timeout=10) for i in range(200)]
        assert [c.get() for c in calls] == [i * 2 for i in range(200)]
        assert sorted(works[0].ran + works[1].ran) == list(range(200))
        assert all(w.ran for w in works), "both workers took entries"
        with pytest.raises(RequestException) as raised:
            caller.request("fail", None, timeout=10)
        assert raised.value.data["error"] == "internal_error"
    finally:
        caller.close()
        for worker in workers:
            worker.stop(1)


def test_an_entry_past_its_deadline_is_answered_without_running(redis_url: str) -> None:
    work = Work()
    caller = connect_queue(redis_url, "late", prefix="t")
    call = caller.call("double", 21, timeout=0.2)
    with pytest.raises(RequestTimeout):
        call.get()  # no worker yet: the caller's own timer
    worker = QueueWorker(redis_url, "late", work.registry, prefix="t").start()
    try:
        wait_until(lambda: worker.stats.expired == 1, 5, what="the late entry is answered deadline_exceeded")
        assert work.ran == []
        assert caller.request("double", 1, timeout=5) == 2
    finally:
        caller.close()
        worker.stop(1)


def test_an_entry_left_by_a_dead_worker_is_claimed(redis_url: str, raw: redis.Redis) -> None:
    work = Work()
    caller = connect_queue(redis_url, "claims", prefix="t")
    key = queue_key("t", "claims")
    raw.xgroup_create(key, GROUP, id="0", mkstream=True)
    call = caller.call("double", 5, timeout=20)
    # A worker that takes the entry and dies before answering: it stays pending with that consumer.
    wait_until(lambda: raw.xlen(key) == 1, 5)
    assert raw.xreadgroup(GROUP, "crashed", {key: ">"}, count=1)
    worker = QueueWorker(redis_url, "claims", work.registry, prefix="t", claim_idle=0.2).start()
    try:
        assert call.get() == 10
        assert worker.stats.claimed == 1 and work.ran == [5]
        assert raw.xpending(key, GROUP)["pending"] == 0
    finally:
        caller.close()
        worker.stop(1)


def test_an_entry_delivered_too_often_goes_to_the_dead_letter_stream(redis_url: str, raw: redis.Redis) -> None:
    work = Work()
    caller = connect_queue(redis_url, "poison", prefix="t")
    key = queue_key("t", "poison")
    raw.xgroup_create(key, GROUP, id="0", mkstream=True)
    call = caller.call("double", 7, timeout=20)
    wait_until(lambda: raw.xlen(key) == 1, 5)
    # Two workers took it and died: delivered twice.
    [[_, [(entry_id, _)]]] = raw.xreadgroup(GROUP, "crashed", {key: ">"}, count=1)
    assert raw.xclaim(key, GROUP, "crashed-again", 0, [entry_id])
    worker = QueueWorker(redis_url, "poison", work.registry, prefix="t", claim_idle=0.2, max_deliveries=2).start()
    try:
        with pytest.raises(RequestException) as raised:
            call.get()
        assert raised.value.data["error"] == "dead_letter"
        assert work.ran == [], "it did not run a third time"
        dead = raw.xrange(f"{key}:dead")
        assert len(dead) == 1 and dead[0][1][b"reason"] == b"delivered 3 times"
        assert dead[0][1][b"entry"] == entry_id and raw.xpending(key, GROUP)["pending"] == 0
        assert caller.request("double", 1, timeout=5) == 2, "the queue goes on"
    finally:
        caller.close()
        worker.stop(1)


def test_a_redis_client_is_a_target_too(redis_url: str) -> None:
    # A redis.Redis has a client() method: it must be used as the client itself, not asked for .client.
    from transports.redis import redis_client

    client = redis_client(redis_url)
    work = Work()
    worker = QueueWorker(client, "direct", work.registry, prefix="t").start()
    caller = connect_queue(client, "direct", prefix="t")
    try:
        assert caller.request("double", 21, timeout=10) == 42
    finally:
        caller.close()
        worker.stop(1.0)
        client.close()


@pytest.mark.parametrize("name", ["", "jobs:dead"])
def test_a_queue_name_that_would_share_a_stream_is_refused(redis_url: str, name: str) -> None:
    with pytest.raises(ValueError, match="queue name"):
        connect_queue(redis_url, name, prefix="t")
    with pytest.raises(ValueError, match="queue name"):
        QueueWorker(redis_url, name, Work().registry, prefix="t")
