"""Call handles over the loopback: get, ready, result, callbacks exactly once, cancel, deadlines, interrupts."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import gevent
import pytest
from helpers.tcp import wait_until

from dispatchers import Registry, dummy_rpc_handler
from rpcengine import (
    Call,
    ConnectionLost,
    Engine,
    HandlerInterrupted,
    RequestCancelled,
    RequestException,
    RequestTimeout,
    Response,
    current_deadline,
)
from transports.memory import pair

pytestmark = pytest.mark.timeout(60)


class Service:
    """Handlers that record what became of them."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.started: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()
        self.interrupted: list[int] = []
        self.deadlines: list[float | None] = []
        registry = self.registry

        @registry.register
        def echo(request: Any) -> Any:
            return request.data

        @registry.register
        def fail(request: Any) -> Any:
            raise RequestException({"error": "nope"})

        @registry.register
        def sleep(request: Any) -> Any:
            self.started["sleep"] += 1
            self.deadlines.append(current_deadline())
            try:
                gevent.sleep(request.data)
                return request.data
            except HandlerInterrupted:
                self.interrupted.append(request.message_id)
                raise
            finally:
                self.finished["sleep"] += 1

        @registry.register
        def stubborn(request: Any) -> Any:
            """Catches every Exception, as careless handlers do."""
            self.started["stubborn"] += 1
            try:
                gevent.sleep(request.data)
            except Exception:
                return "swallowed"
            finally:
                self.finished["stubborn"] += 1
            return "slept"

        @registry.register
        def jitter(request: Any) -> Any:
            """A fast job that yields a random few times (so that workers are reused mid-flight)."""
            try:
                for _ in range(random.randrange(3)):
                    gevent.sleep(0)
                return request.data
            except HandlerInterrupted:
                self.interrupted.append(request.data)
                raise


@pytest.fixture
def wired() -> Any:
    """(client, server engine, service) over a loopback pair taking every feature."""
    service = Service()
    left, right = pair()
    client = Engine(left, dummy_rpc_handler)
    server = Engine(right, service.registry, max_concurrency=8)
    yield client, server, service
    client.close()
    server.close()


def test_a_call_handle_gives_the_answer_without_a_greenlet(wired: Any) -> None:
    client, _, _ = wired
    call = client.call("echo", {"a": 1})
    assert isinstance(call, Call) and call.message_id == 1 and call.method == "echo"
    assert not call.ready()
    with pytest.raises(RequestTimeout):
        call.result()  # not ended yet: as the seed's get_response(block=False)
    assert call.get() == {"a": 1}
    assert call.ready() and call.result() == {"a": 1} and call.exception() is None
    assert isinstance(call.outcome, Response)
    assert call.request.get_response().data == {"a": 1}  # the seed API on the same request
    assert client.pending_count == 0


def test_errors_and_timeouts_come_through_the_handle(wired: Any) -> None:
    client, _, _ = wired
    failed = client.call("fail")
    with pytest.raises(RequestException) as info:
        failed.get()
    assert info.value.data == {"error": "nope"}
    assert isinstance(failed.exception(), RequestException)
    late = client.call("sleep", 0.5, timeout=0.05)
    with pytest.raises(RequestTimeout):
        late.get()
    # A shorter wait than the call's own timeout gives up waiting, not the call.
    slow = client.call("sleep", 0.2, timeout=5)
    with pytest.raises(RequestTimeout):
        slow.get(timeout=0.02)
    assert not slow.ready()
    assert slow.get() == 0.2
    assert client.pending_count == 0


def test_two_greenlets_wait_for_one_call(wired: Any) -> None:
    client, _, _ = wired
    call = client.call("sleep", 0.05)
    waiters = [gevent.spawn(call.get) for _ in range(3)]
    gevent.joinall(waiters, timeout=5, raise_error=True)
    assert [w.value for w in waiters] == [0.05] * 3


def _ends(client: Engine, server: Engine, how: str) -> tuple[Call, type[BaseException] | None]:
    """Make a call that ends ``how``; return it and the exception its get() raises."""
    if how == "response":
        return client.call("echo", 1), None
    if how == "error":
        return client.call("fail"), RequestException
    if how == "timeout":
        return client.call("sleep", 1, timeout=0.05), RequestTimeout
    if how == "cancel":
        call = client.call("sleep", 1)
        gevent.spawn_later(0.02, call.cancel)
        return call, RequestCancelled
    call = client.call("sleep", 1)
    gevent.spawn_later(0.02, server.close)
    return call, ConnectionLost


@pytest.mark.parametrize("how", ["response", "error", "timeout", "cancel", "connection lost"])
def test_done_callbacks_run_exactly_once_in_the_hub(wired: Any, how: str) -> None:
    client, server, _ = wired
    call, raises = _ends(client, server, how)
    seen: list[tuple[str, Any]] = []

    def record(name: str) -> Any:
        def callback(done: Call) -> None:
            assert gevent.getcurrent() is gevent.get_hub(), "callbacks run in the hub"
            seen.append((name, done))

        return callback

    call.add_done_callback(record("before"))
    if raises is None:
        call.get()
    else:
        with pytest.raises(raises):
            call.get()
    call.add_done_callback(record("after"))  # added after the end: still runs, once
    wait_until(lambda: len(seen) == 2, what="both callbacks ran")
    gevent.sleep(0.05)  # a late answer (cancel, timeout) must not run them again
    assert sorted(name for name, _ in seen) == ["after", "before"]
    assert all(done is call for _, done in seen)
    assert not call.cancel(), "an ended call cannot be cancelled"
    assert client.pending_count == 0


def test_a_callback_that_raises_is_logged_and_the_others_still_run(wired: Any, caplog: Any) -> None:
    client, _, _ = wired
    call = client.call("echo", 1)
    ran: list[str] = []

    def bad(_: Call) -> None:
        raise ValueError("callback bug")

    call.add_done_callback(bad)
    call.add_done_callback(lambda _: ran.append("good"))
    call.get()
    wait_until(lambda: ran, what="the second callback ran")
    assert "callback bug" in caplog.text


def test_cancel_interrupts_the_handler_and_the_late_answer_is_dropped(wired: Any) -> None:
    client, server, service = wired
    call = client.call("sleep", 1)
    wait_until(lambda: service.started["sleep"] == 1, what="the handler runs")
    started = time.monotonic()
    assert call.cancel()
    assert call.ready()
    with pytest.raises(RequestCancelled):
        call.get()
    wait_until(lambda: service.finished["sleep"] == 1, timeout=1, what="the handler stopped")
    assert time.monotonic() - started < 0.1
    assert service.interrupted == [call.message_id]
    wait_until(lambda: server.active_handlers == 0 and not server._inbound, what="the server forgot it")
    assert client.request("echo", 2) == 2  # the 'cancelled' Error that followed was dropped


def test_a_handler_that_catches_exception_is_still_interrupted(wired: Any) -> None:
    client, server, service = wired
    call = client.call("stubborn", 1)
    wait_until(lambda: service.started["stubborn"] == 1, what="the handler runs")
    call.cancel()
    wait_until(lambda: service.finished["stubborn"] == 1, timeout=0.5, what="the handler was interrupted")
    wait_until(lambda: server.active_handlers == 0, what="its worker is free")


def test_a_cancelled_request_still_queued_never_starts(wired: Any) -> None:
    client, server, service = wired
    blockers = [client.call("sleep", 0.3) for _ in range(8)]  # every worker of the server busy
    wait_until(lambda: service.started["sleep"] == 8, what="every worker busy")
    queued = client.call("sleep", 0.01)
    # Every worker busy: it waits for one, and the Cancel behind it still reaches the engine at once.
    wait_until(lambda: queued.message_id in server._inbound, what="the ninth waits for a worker")
    waiting = server._inbound[queued.message_id]
    queued.cancel()
    wait_until(lambda: queued.message_id not in server._inbound, timeout=0.1, what="the Cancel reached it")
    assert waiting._state == 3  # answered without running
    for blocker in blockers:
        assert blocker.get() == 0.3
    wait_until(lambda: server.active_handlers == 0, what="the server is idle")
    assert service.started["sleep"] == 8, "the cancelled request never ran"


def test_a_cancel_overtakes_requests_read_ahead_while_every_worker_is_busy(wired: Any) -> None:
    client, server, service = wired
    blockers = [client.call("sleep", 0.3) for _ in range(8)]
    wait_until(lambda: service.started["sleep"] == 8, what="every worker busy")
    queued = [client.call("sleep", 0.01) for _ in range(5)]  # one waits in the engine, four are read ahead
    wait_until(lambda: len(server.transport._ahead) == 4, what="four read ahead")
    for call in queued:
        call.cancel()
    wait_until(lambda: len(server._early_cancels) == 4, timeout=0.1, what="the Cancels overtook them")
    for blocker in blockers:
        blocker.get()
    wait_until(lambda: server.active_handlers == 0 and not server._early_cancels, what="all were refused")
    assert service.started["sleep"] == 8


def test_a_queued_request_whose_deadline_passes_never_starts(wired: Any) -> None:
    client, _server, service = wired
    blockers = [client.call("sleep", 0.4) for _ in range(8)]
    wait_until(lambda: service.started["sleep"] == 8, what="every worker busy")
    # Watch the server's answer itself: the Cancel the client sends at its own timeout must not come first.
    client.transport.features = frozenset({"deadline"})
    answers: list[Any] = []
    original = client.handle_message
    client.handle_message = lambda message: (answers.append(message.to_list()), original(message))  # type: ignore[method-assign]
    late = client.call("sleep", 0.01, timeout=0.1)
    with pytest.raises(RequestTimeout):
        late.get()
    wait_until(lambda: any(a[0] == 4 and a[2] == late.message_id for a in answers), what="the server's answer")
    answer = next(a for a in answers if a[2] == late.message_id)
    assert answer[3]["error"] == "deadline_exceeded"
    for blocker in blockers:
        blocker.get()
    gevent.sleep(0.05)
    assert service.started["sleep"] == 8, "the late request never ran"


def test_a_handler_overrunning_its_deadline_is_interrupted_and_its_own_calls_get_the_time_left() -> None:
    service = Service()
    left, right = pair()
    client = Engine(left, dummy_rpc_handler)
    server = Engine(right, service.registry)
    try:
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            client.request("sleep", 1, timeout=0.1)
        wait_until(lambda: service.finished["sleep"] == 1, timeout=1, what="the handler stopped")
        assert time.monotonic() - started < 0.2
        (deadline,) = service.deadlines
        assert deadline is not None and abs(deadline - (started + 0.1)) < 0.05
        assert len(service.interrupted) == 1
    finally:
        client.close()
        server.close()


def test_a_handlers_own_call_defaults_to_the_time_its_caller_has_left() -> None:
    seen: dict[str, Any] = {}

    def client_side(request: Any) -> Any:
        seen["timeout_ms"] = request.timeout_ms
        gevent.sleep(1)

    def server_side(request: Any) -> Any:
        try:
            return request.engine.request("callback")
        except RequestTimeout as exc:
            seen["inner"] = exc
            raise

    left, right = pair()
    client = Engine(left, client_side)
    server = Engine(right, server_side)
    try:
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            client.request("outer", timeout=0.2)
        assert time.monotonic() - started < 0.3
        wait_until(lambda: "timeout_ms" in seen, what="the callback arrived")
        assert 100 < seen["timeout_ms"] <= 200
    finally:
        client.close()
        server.close()


def test_ten_thousand_fast_jobs_racing_with_cancels_interrupt_only_the_cancelled(wired: Any) -> None:
    client, server, service = wired
    rng = random.Random(7)
    calls = [client.call("jitter", n) for n in range(10_000)]
    cancelled: set[int] = set()
    for call in rng.sample(calls, 5_000):
        gevent.sleep(0) if rng.random() < 0.3 else None
        if call.cancel():
            cancelled.add(call.request.data)
    for call in calls:
        if call.request.data not in cancelled:
            assert call.get() == call.request.data
    wait_until(lambda: server.active_handlers == 0 and not server._inbound, what="the server is idle")
    assert set(service.interrupted) <= cancelled, "a job that was not cancelled was interrupted"
    assert cancelled and client.pending_count == 0


def test_a_cancel_for_an_unknown_or_finished_request_is_ignored(wired: Any, caplog: Any) -> None:
    client, server, _ = wired
    assert client.request("echo", 1) == 1
    caplog.set_level("DEBUG", logger="rpcengine.engine")
    client._send_cancel(1)  # finished
    server._cancel_inbound(0)  # never seen (below the highest id seen)
    wait_until(lambda: caplog.text.count("Cancel for unknown or finished request") == 2, what="both logged")
    assert client.request("echo", 2) == 2


def test_a_peer_without_the_features_gets_neither_cancels_nor_deadlines() -> None:
    frames: list[bytes] = []
    left, right = pair(features=frozenset())
    original = left.send_raw
    left.send_raw = lambda frame: (frames.append(frame), original(frame))[1]  # type: ignore[method-assign]
    service = Service()
    client = Engine(left, dummy_rpc_handler)
    server = Engine(right, service.registry)
    try:
        with pytest.raises(RequestTimeout):
            client.request("sleep", 0.3, timeout=0.05)
        call = client.call("sleep", 0.3)
        call.cancel()
        assert client.request("echo", 1, timeout=5) == 1
        wait_until(lambda: service.finished["sleep"] == 2, what="both ran to the end: nothing told them to stop")
        assert not service.interrupted
        decoded = [left.codec.decode(frame) for frame in frames]
        assert decoded and all(m[0] != 5 for m in decoded), "no Cancel"
        assert all(len(m) == 4 for m in decoded if m[0] == 2), "no fifth item"
    finally:
        client.close()
        server.close()


def test_connection_lost_ends_every_call_once(wired: Any) -> None:
    client, server, _ = wired
    calls = [client.call("sleep", 1, timeout=5) for _ in range(20)]
    ended: Counter[int] = Counter()
    for call in calls:
        call.add_done_callback(lambda done: ended.update([done.message_id]))
    server.close()
    for call in calls:
        with pytest.raises(ConnectionLost):
            call.get()
    wait_until(lambda: len(ended) == 20, what="every callback ran")
    assert set(ended.values()) == {1}
    assert client.pending_count == 0 and client._deadlines is not None and client._deadlines.waiting == 0


def test_a_cancel_travels_down_a_chain_of_calls() -> None:
    """A → B → C: cancelling A's call interrupts B's handler, whose own pending call to C is cancelled too."""
    c_state: dict[str, Any] = {}

    def c_handler(request: Any) -> Any:
        c_state["running"] = True
        try:
            gevent.sleep(5)
        except HandlerInterrupted as exc:
            c_state["interrupted"] = exc.reason
            raise
        return "c"

    b_to_c, c_end = pair()
    to_c = Engine(b_to_c, dummy_rpc_handler)
    c = Engine(c_end, c_handler)
    a_end, b_end = pair()
    a = Engine(a_end, dummy_rpc_handler)
    b = Engine(b_end, lambda request: to_c.request("work"))
    try:
        call = a.call("relay")
        wait_until(lambda: c_state.get("running"), what="the chain reached C")
        call.cancel()
        wait_until(lambda: "interrupted" in c_state, timeout=1, what="C was interrupted")
        assert c_state["interrupted"] == "cancelled"
        wait_until(lambda: to_c.pending_count == 0 and b.active_handlers == 0 and c.active_handlers == 0, what="idle")
    finally:
        for engine in (a, b, to_c, c):
            engine.close()


def test_cancels_for_requests_not_seen_yet_are_bounded(wired: Any) -> None:
    from rpcengine.engine import MAX_EARLY_CANCELS

    client, server, _ = wired
    assert client.request("echo", 1) == 1
    for request_id in range(10, 10 + 3 * MAX_EARLY_CANCELS):  # a peer cancelling ids it never sent
        server._cancel_inbound(request_id)
    assert len(server._early_cancels) == MAX_EARLY_CANCELS
    assert client.request("echo", 2) == 2


def test_submissions_waiting_when_the_engine_closes_fail() -> None:
    import threading

    left, right = pair()
    client = Engine(left, dummy_rpc_handler)
    server = Engine(right, lambda request: request.data)
    futures: list[Any] = []
    thread = threading.Thread(target=lambda: futures.extend(client.submit("echo", n) for n in range(3)))
    thread.start()
    thread.join(5)
    client.close()  # before the hub ran the hand-over
    gevent.sleep(0.01)
    for future in futures:
        assert isinstance(future.exception(timeout=5), ConnectionLost)
    with pytest.raises(ConnectionLost):
        client.submit("echo", 1)
    server.close()
