"""Fixtures of the broker tests: a real redis-server per test module, a hub-block monitor per test."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import gevent
import gevent.events
import pytest
from gevent._monitor import MonitorWarning

from tests.helpers.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server on a Unix socket in a temporary folder (started by the tests, persistence off)."""
    server = RedisServer(Path(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The server's URL, its data flushed before each test."""
    import redis

    client = redis.Redis(unix_socket_path=redis_server.path)
    client.flushall()
    client.close()
    yield redis_server.url


class Blocks:
    """What gevent's hub-block monitor reported during one test."""

    def __init__(self) -> None:
        self.events: list[gevent.events.EventLoopBlocked] = []


@pytest.fixture(autouse=True)
def hub_blocks() -> Iterator[Blocks]:
    """Run gevent's monitor thread (0.1 s) on this thread's hub; fail the test if it reports a block."""
    blocks = Blocks()

    def subscriber(event: object) -> None:
        if isinstance(event, gevent.events.EventLoopBlocked):
            blocks.events.append(event)

    previous = gevent.config.monitor_thread, gevent.config.max_blocking_time
    gevent.config.monitor_thread = True
    gevent.config.max_blocking_time = 0.1
    hub = gevent.get_hub()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MonitorWarning)  # "install psutil": memory is not what is watched here
        monitor = hub.start_periodic_monitoring_thread()
    assert monitor is not None, "gevent's monitor thread did not start"
    gevent.events.subscribers.append(subscriber)
    try:
        yield blocks
    finally:
        gevent.events.subscribers.remove(subscriber)
        monitor.kill()
        hub.periodic_monitoring_thread = None
        gevent.config.monitor_thread, gevent.config.max_blocking_time = previous
    assert not blocks.events, ["".join(event.info) for event in blocks.events]
