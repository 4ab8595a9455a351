"""Shared fixtures: every test must end with zero errors reported to the gevent hub."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import gevent
import gevent.hub
import pytest

from rpcengine import Engine
from transports.memory import pair

#: gevent reads each of its settings from the environment once, when first asked, and keeps it. Ask now, so
#: that a test that sets GEVENT_* variables for the commands it starts (tests/cli/test_broker_cli.py) cannot
#: turn gevent's hub-block monitor on in this process for every test that follows.
MONITOR_AT_START = (gevent.config.monitor_thread, gevent.config.max_blocking_time)


class HubErrors:
    """Errors the gevent hub reported (a greenlet died with an exception) during one test."""

    def __init__(self) -> None:
        self.errors: list[tuple[object, type, BaseException]] = []

    def __len__(self) -> int:
        return len(self.errors)

    def clear(self) -> None:
        """Forget errors a test provoked on purpose and has checked."""
        self.errors.clear()


@pytest.fixture(autouse=True)
def hub_errors(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubErrors]:
    """Record hub errors during the test and fail it if any remain at the end."""
    record = HubErrors()
    hub = gevent.get_hub()
    original = hub.handle_error

    def handle_error(context: object, kind: type, value: BaseException, tb: object) -> None:
        if kind is not None and not issubclass(kind, (gevent.GreenletExit, KeyboardInterrupt, SystemExit)):
            record.errors.append((context, kind, value))
        original(context, kind, value, tb)

    monkeypatch.setattr(hub, "handle_error", handle_error)
    yield record
    assert not record.errors, f"errors reported to the gevent hub: {record.errors!r}"


@pytest.fixture
def loopback() -> Iterator[tuple[Engine, Engine]]:
    """Yield a function making (client, server) engines over a loopback pair; closes them after."""
    made: list[Engine] = []

    def make(server_handler: object, client_handler: object = None, **options: object) -> tuple[Engine, Engine]:
        from dispatchers import dummy_rpc_handler

        left, right = pair()
        client = Engine(left, client_handler or dummy_rpc_handler, **options)  # type: ignore[arg-type]
        server = Engine(right, server_handler, **options)  # type: ignore[arg-type]
        made.extend((client, server))
        return client, server

    yield make  # type: ignore[misc]
    for engine in made:
        engine.close()


# -- TCP transport tests: tcp_server, tcp_connect, tcp_raw, tcp_server_process, tcp_proxy (see tests/helpers/tcp.py)
from helpers.tcp import tcp_connect, tcp_proxy, tcp_raw, tcp_server, tcp_server_process  # noqa: E402, F401


def pytest_collection_finish(session: pytest.Session) -> None:
    """Refuse a run in which collecting the tests turned gevent's hub-block monitor on for this process.

    Helper scripts that run as processes of their own (``tests/helpers/broker_node.py``)
    turn it on when imported; a test module that imported one would make every later
    test run under the monitor, whose reports cost time and fill the output.
    """
    if gevent.config.monitor_thread and not MONITOR_AT_START[0]:
        raise pytest.UsageError("collecting the tests turned gevent.config.monitor_thread on (a helper was imported)")
    freeze_the_collected_heap()


def freeze_the_collected_heap() -> None:
    """Move every object that exists once the tests are collected out of the garbage collector's sight.

    The servers most tests measure run inside this process, so a full collection here walks
    pytest's own heap too: the modules, the 1,500-odd test items and their keywords, some
    110,000 objects that live until the run ends. One full collection of them took 35-45 ms
    alone and 100-250 ms in a loaded run, and CPython starts one every second or two there;
    so a single one could fail a test's 100 ms latency bound (seen in CI on the JSON-RPC
    bad-input test, with the native client's call stalled for the same 160 ms). Frozen
    (``gc.freeze()``), they are never walked again; what the tests make is collected as before.
    """
    gc.collect()
    gc.freeze()
