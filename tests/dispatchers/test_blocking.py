"""@blocking handlers run in a bounded thread pool: the hub stays free, and the bound holds."""

from __future__ import annotations

import threading
import time
from typing import Any

import gevent
import pytest

from dispatchers import MethodDispatcher, Registry, blocking, blocking_pool
from dispatchers.blocking import DEFAULT_BLOCKING_THREADS

pytestmark = pytest.mark.timeout(30)


class Service:
    """One handler that blocks its thread, one that does not."""

    def __init__(self) -> None:
        self.threads: set[str] = set()
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    @blocking
    def rpc_crunch(self, request: Any) -> Any:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.threads.add(threading.current_thread().name)
        time.sleep(request.data)  # blocks the OS thread, as C code or a CPU loop would
        with self.lock:
            self.running -= 1
        return threading.get_ident() != MAIN

    def rpc_echo(self, request: Any) -> Any:
        return request.data


MAIN = threading.get_ident()


def test_a_blocking_handler_leaves_the_hub_free(loopback: Any) -> None:
    client, _ = loopback(MethodDispatcher(Service()))
    slow = gevent.spawn(client.request, "crunch", 0.3)
    gevent.sleep(0.02)
    started = time.monotonic()
    assert client.request("echo", 1) == 1
    assert time.monotonic() - started < 0.05, "the hub answered while the handler blocked its thread"
    assert slow.get(timeout=5) is True, "it ran in another thread"


def test_the_pool_bounds_the_threads(loopback: Any) -> None:
    service = Service()
    client, _ = loopback(MethodDispatcher(service))
    pool = blocking_pool(2)
    try:
        started = time.monotonic()
        calls = [client.call("crunch", 0.1) for _ in range(4)]
        assert all(call.get(timeout=5) for call in calls)
        assert service.most == 2
        assert time.monotonic() - started >= 0.2, "two rounds of two"
    finally:
        pool.maxsize = DEFAULT_BLOCKING_THREADS


def test_blocking_works_with_params_and_introspection(loopback: Any) -> None:
    registry = Registry(unpack_params=True)

    @registry.register
    @blocking
    def digest(text: str, times: int = 1) -> str:
        return text * times

    client, _ = loopback(registry)
    assert client.request("digest", ["ab", 2]) == "abab"
    (described,) = [m for m in client.request("rpcengine.describe") if m["name"] == "digest"]
    assert [p["name"] for p in described["params"]] == ["text", "times"]


def test_blocking_above_register_is_refused_rather_than_ignored() -> None:
    registry = Registry()
    with pytest.raises(TypeError, match=r"below @registry\.register"):

        @blocking
        @registry.register
        def late(request: Any) -> Any:
            return None
