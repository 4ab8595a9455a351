"""Request timeouts on the engine's one timer: on time, in deadline order, and nothing left behind."""

from __future__ import annotations

import time
from typing import Any

import gevent
import pytest
from helpers.tcp import wait_until

from dispatchers import dummy_rpc_handler
from rpcengine import Engine, RequestTimeout
from transports.memory import pair

pytestmark = pytest.mark.timeout(30)

TOLERANCE = 0.1


class Sink:
    """An engine stand-in on the far end that takes every message and answers none."""

    saturated = False  # it takes every message at once

    def handle_message(self, message: Any) -> None:
        """Drop ``message``."""

    def connection_lost(self, reason: Any) -> None:
        """Nothing to clean up."""


@pytest.fixture
def silent() -> Any:
    """A client Engine whose peer never answers."""
    left, right = pair(capacity=20_000)
    client = Engine(left, dummy_rpc_handler)
    right.bind(Sink())
    right._reader = gevent.spawn(right._read_loop)
    yield client
    client.close()


def timed_call(client: Engine, timeout: float, log: list[tuple[float, float]]) -> None:
    """Make one call that cannot be answered; record (timeout, seconds until it raised)."""
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        client.request("x", timeout=timeout)
    log.append((timeout, time.monotonic() - started))


def test_mixed_timeouts_expire_on_time_and_in_deadline_order(silent: Engine) -> None:
    log: list[tuple[float, float]] = []
    # A long timeout first, then shorter ones: the timer must be brought forward for them.
    timeouts = [0.6, 0.3, 0.05, 0.3, 0.15, 0.05]
    gevent.joinall([gevent.spawn(timed_call, silent, t, log) for t in timeouts], timeout=10, raise_error=True)
    assert sorted(t for t, _ in log) == sorted(timeouts)
    for timeout, took in log:
        assert timeout <= took < timeout + TOLERANCE, (timeout, took)
    assert [t for t, _ in log] == sorted(t for t, _ in log)  # expired in deadline order
    deadlines = silent._deadlines
    assert deadlines is not None and deadlines.waiting == 0 and not deadlines._queues


def test_answered_calls_leave_no_deadline_behind() -> None:
    left, right = pair()
    server = Engine(right, lambda request: request.data)
    client = Engine(left, dummy_rpc_handler)
    for n in range(2000):
        assert client.request("echo", n, timeout=30) == n
    deadlines = client._deadlines
    assert deadlines is not None
    assert deadlines.waiting == 0 and not deadlines._queues
    # Armed for the first call's deadline, but not keeping the hub alive for nobody.
    assert deadlines._timer is not None and not deadlines._timer.ref
    client.close()
    server.close()
    assert deadlines._timer is None, "a closed engine keeps no timer"


def test_a_killed_caller_leaves_no_deadline_and_later_calls_still_time_out(silent: Engine) -> None:
    caller = gevent.spawn(silent.request, "x", None, 10)
    wait_until(lambda: silent._deadlines is not None and silent._deadlines.waiting == 1, what="the call waits")
    assert silent._deadlines is not None
    caller.kill()
    assert silent._deadlines.waiting == 0 and silent.pending_count == 0
    log: list[tuple[float, float]] = []
    timed_call(silent, 0.05, log)
    assert log[0][1] < 0.05 + TOLERANCE


def test_a_long_wait_then_a_short_one_and_the_long_one_still_expires(silent: Engine) -> None:
    log: list[tuple[float, float]] = []
    long = gevent.spawn(timed_call, silent, 0.4, log)
    gevent.sleep(0)
    timed_call(silent, 0.05, log)
    long.join(timeout=5)
    assert [t for t, _ in log] == [0.05, 0.4]
    assert 0.4 <= log[1][1] < 0.4 + TOLERANCE
