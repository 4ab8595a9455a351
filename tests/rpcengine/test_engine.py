"""Engine outcomes over the loopback transport: every pending request ends exactly once."""

from __future__ import annotations

import logging
import time

import gevent
import gevent.event
import pytest

from dispatchers import MethodDispatcher, dummy_rpc_handler
from rpcengine import (
    ConnectionLost,
    EncodeError,
    Engine,
    Error,
    Request,
    RequestException,
    RequestTimeout,
    Response,
    TooManyPendingRequests,
)
from transports.memory import pair


class Service:
    """A service with one method per outcome."""

    def __init__(self) -> None:
        self.notified: list[object] = []
        self.release = gevent.event.Event()
        self.running = 0
        self.max_running = 0

    def rpc_echo(self, request: Request) -> object:
        return request.data

    def rpc_fail(self, request: Request) -> None:
        raise RequestException({"error": "custom", "detail": request.data})

    def rpc_crash(self, request: Request) -> None:
        raise ZeroDivisionError("secret detail")

    def rpc_give_set(self, request: Request) -> object:
        return {1, 2}

    def rpc_give_nan(self, request: Request) -> object:
        return float("nan")

    def rpc_give_bytes(self, request: Request) -> object:
        return b"raw"

    def rpc_wait(self, request: Request) -> str:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            self.release.wait(request.data)
        finally:
            self.running -= 1
        return "released"

    def rpc_note(self, request: Request) -> None:
        self.notified.append(request.data)

    def rpc_call_back(self, request: Request) -> object:
        assert request.engine is not None
        return request.engine.request("double", request.data, timeout=5)


class ClientService:
    """What the client exposes to the server."""

    def rpc_double(self, request: Request) -> object:
        return request.data * 2


@pytest.fixture
def engines() -> tuple[Engine, Engine, Service]:
    service = Service()
    left, right = pair()
    client = Engine(left, MethodDispatcher(ClientService()))
    server = Engine(right, MethodDispatcher(service))
    yield client, server, service
    service.release.set()
    client.close()
    server.close()


def wait_until(condition: object, timeout: float = 5.0) -> None:
    """Yield to other greenlets until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        gevent.sleep(0.001)


def test_response_returns_data(engines: tuple[Engine, Engine, Service]) -> None:
    client, _, _ = engines
    assert client.request("echo", {"a": [1, "x", None]}) == {"a": [1, "x", None]}
    assert client.request("echo") is None
    assert client.pending_count == 0


def test_error_raises_request_exception_with_data(engines: tuple[Engine, Engine, Service]) -> None:
    client, _, _ = engines
    with pytest.raises(RequestException) as caught:
        client.request("fail", 7)
    assert caught.value.data == {"error": "custom", "detail": 7}


def test_unknown_method_names_the_method(engines: tuple[Engine, Engine, Service]) -> None:
    client, _, _ = engines
    with pytest.raises(RequestException) as caught:
        client.request("nope")
    assert caught.value.data["error"] == "method_not_found"
    assert caught.value.data["method"] == "nope"


def test_handler_exception_gives_generic_error_and_logs_traceback(
    engines: tuple[Engine, Engine, Service], caplog: pytest.LogCaptureFixture
) -> None:
    client, _, _ = engines
    with caplog.at_level(logging.ERROR, logger="rpcengine.engine"):
        with pytest.raises(RequestException) as caught:
            client.request("crash")
    assert caught.value.data == {"error": "internal_error", "message": "internal error"}
    assert "secret detail" not in repr(caught.value.data), "no traceback on the wire"
    assert any("ZeroDivisionError" in (r.exc_text or "") for r in caplog.records)


@pytest.mark.parametrize("method", ["give_set", "give_nan", "give_bytes", "crash"])
def test_bad_results_give_error_and_engine_keeps_serving(engines: tuple[Engine, Engine, Service], method: str) -> None:
    client, _, _ = engines
    for _ in range(3):
        with pytest.raises(RequestException) as caught:
            client.request(method, timeout=5)
        assert caught.value.data["error"] in ("unencodable_result", "internal_error")
        assert client.request("echo", "still here", timeout=5) == "still here"


def test_unencodable_argument_raises_locally_and_leaves_nothing_pending(
    engines: tuple[Engine, Engine, Service],
) -> None:
    client, _, _ = engines
    with pytest.raises(EncodeError):
        client.request("echo", {1, 2})
    assert client.pending_count == 0
    assert client.request("echo", 1) == 1


def test_timeout_raises_builtin_timeout_and_removes_entry(engines: tuple[Engine, Engine, Service]) -> None:
    client, _, _ = engines
    started = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        client.request("wait", 10, timeout=0.05)
    assert isinstance(caught.value, RequestTimeout)
    assert 0.04 <= time.monotonic() - started < 1.0
    assert client.pending_count == 0


@pytest.mark.timeout(60)
def test_ten_thousand_timeouts_leave_zero_pending(engines: tuple[Engine, Engine, Service]) -> None:
    client, _, service = engines
    outcomes: list[str] = []

    def call() -> None:
        try:
            client.request("nope-never-answered", timeout=0.2)
        except RequestTimeout:
            outcomes.append("timeout")
        except RequestException:
            outcomes.append("answered")

    # A peer that never answers: the server side drops every request.
    left, right = pair(capacity=20_000)
    silent_client = Engine(left, dummy_rpc_handler)
    right.bind(
        type(
            "Sink",
            (),
            {"saturated": False, "handle_message": lambda self, m: None, "connection_lost": lambda self, r: None},
        )()
    )
    right._reader = gevent.spawn(right._read_loop)

    def silent_call() -> None:
        try:
            silent_client.request("x", timeout=0.2)
        except RequestTimeout:
            outcomes.append("timeout")

    greenlets = [gevent.spawn(silent_call) for _ in range(10_000)]
    gevent.joinall(greenlets, timeout=30, raise_error=True)
    assert outcomes.count("timeout") == 10_000
    assert silent_client.pending_count == 0
    assert len(silent_client._pending) == 0
    silent_client.close()
    del call, service


def test_close_with_100_pending_fails_all_within_100ms(engines: tuple[Engine, Engine, Service]) -> None:
    client, _server, service = engines
    results: list[BaseException] = []

    def call() -> None:
        try:
            client.request("wait", 30)
        except ConnectionLost as exc:
            results.append(exc)

    greenlets = [gevent.spawn(call) for _ in range(100)]
    wait_until(lambda: client.pending_count == 100 and service.running == 64)
    started = time.monotonic()
    client.transport.close()
    gevent.joinall(greenlets, timeout=1)
    elapsed = time.monotonic() - started
    assert len(results) == 100
    assert elapsed < 0.1
    assert client.pending_count == 0
    with pytest.raises(ConnectionLost):
        client.request("echo", 1)
    with pytest.raises(ConnectionLost):
        client.notify("note", 1)


def test_peer_close_fails_pending_on_the_other_side(engines: tuple[Engine, Engine, Service]) -> None:
    client, server, _ = engines

    def call() -> BaseException | None:
        try:
            client.request("wait", 30)
        except ConnectionLost as exc:
            return exc
        return None

    waiter = gevent.spawn(call)
    wait_until(lambda: client.pending_count == 1)
    server.close()
    assert isinstance(waiter.get(timeout=1), ConnectionLost)


def test_late_response_is_logged_and_dropped(
    engines: tuple[Engine, Engine, Service], caplog: pytest.LogCaptureFixture
) -> None:
    client, _, _service = engines
    with pytest.raises(RequestTimeout):
        client.request("wait", 0.2, timeout=0.01)
    with caplog.at_level(logging.INFO, logger="rpcengine.engine"):
        wait_until(lambda: any("unknown or expired" in r.getMessage() for r in caplog.records))
    client.handle_message(Response(999, 12345, "stray"))
    client.handle_message(Error(1000, 12346, "stray"))
    assert client.pending_count == 0
    assert client.request("echo", "ok") == "ok"


def test_default_timeout_per_engine() -> None:
    left, right = pair()
    client = Engine(left, dummy_rpc_handler, default_timeout=0.05)
    service = Service()
    Engine(right, MethodDispatcher(service))
    with pytest.raises(RequestTimeout):
        client.request("wait", 5)
    assert client.request("wait", 0, timeout=2) == "released"
    client.close()


def test_pending_bound_fails_fast() -> None:
    left, right = pair()
    client = Engine(left, dummy_rpc_handler, max_pending=5)
    service = Service()
    Engine(right, MethodDispatcher(service))
    greenlets = [gevent.spawn(client.request, "wait", 10) for _ in range(5)]
    wait_until(lambda: client.pending_count == 5)
    started = time.monotonic()
    with pytest.raises(TooManyPendingRequests):
        client.request("echo", 1)
    assert time.monotonic() - started < 0.05
    service.release.set()
    assert [g.get(timeout=5) for g in greenlets] == ["released"] * 5
    assert client.request("echo", 1) == 1
    client.close()


def test_inbound_handlers_are_bounded_per_engine() -> None:
    left, right = pair()
    client = Engine(left, dummy_rpc_handler)
    service = Service()
    server = Engine(right, MethodDispatcher(service), max_concurrency=4)
    greenlets = [gevent.spawn(client.request, "wait", 10) for _ in range(20)]
    wait_until(lambda: service.running == 4)
    gevent.sleep(0.05)  # give the reader a chance to overrun the bound: it must not
    assert service.max_running == 4
    assert server.active_handlers == 4
    service.release.set()
    assert all(g.get(timeout=5) == "released" for g in greenlets)
    assert service.max_running == 4
    client.close()


def test_notifications_run_handlers_without_reply(engines: tuple[Engine, Engine, Service]) -> None:
    client, _, service = engines
    for i in range(10):
        client.notify("note", i)
    client.notify("no-such-method", 1)
    wait_until(lambda: len(service.notified) == 10)
    assert sorted(service.notified) == list(range(10))  # type: ignore[type-var]
    assert client.request("echo", "after") == "after"


def test_server_calls_client_back_over_same_connection(engines: tuple[Engine, Engine, Service]) -> None:
    client, _, _ = engines
    assert client.request("call_back", 21, timeout=5) == 42


def test_message_ids_increase_from_one() -> None:
    left, _ = pair()
    engine = Engine(left, dummy_rpc_handler)
    assert [engine.next_message_id() for _ in range(3)] == [1, 2, 3]
    engine.close()


def test_disconnect_refuses_new_requests(engines: tuple[Engine, Engine, Service]) -> None:
    from rpcengine import Disconnect

    client, server, _ = engines
    server.send(Disconnect())
    with gevent.Timeout(5):
        while not client.peer_disconnecting:
            gevent.sleep(0.001)
    with pytest.raises(ConnectionLost):
        client.request("echo", 1)


def test_on_close_callback_runs_once(engines: tuple[Engine, Engine, Service]) -> None:
    client, _, _ = engines
    calls: list[Engine] = []
    client.on_close(calls.append)
    client.close()
    client.close()
    assert calls == [client]
    client.on_close(calls.append)
    assert calls == [client, client], "registered after close: called at once"


def test_bad_frames_on_loopback_get_error_or_close(
    engines: tuple[Engine, Engine, Service], caplog: pytest.LogCaptureFixture
) -> None:
    client, _, _ = engines
    replies: list[object] = []
    original = client.handle_message

    def spy(message: object) -> None:
        replies.append(message)
        original(message)  # type: ignore[arg-type]

    client.handle_message = spy  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        client.transport.send_raw(b'[2, 77, "", null]')
        assert client.request("echo", "fine", timeout=5) == "fine"
        errors = [m for m in replies if isinstance(m, Error)]
        assert [e.request_message_id for e in errors] == [77]
        assert errors[0].data["error"] == "invalid_message"
        # Garbage without a request id ends the pair, as it closes a socket (the same rule everywhere).
        client.transport.send_raw(b"not json")
        with gevent.Timeout(5):
            while not client.closed:
                gevent.sleep(0.001)
    assert "closing on bad input" in caplog.text
    with pytest.raises(ConnectionLost):
        client.request("echo", "too late", timeout=5)


def test_answer_that_cannot_be_queued_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    from rpcengine import OutboxFull

    left, right = pair()
    client = Engine(left, dummy_rpc_handler)
    server = Engine(right, MethodDispatcher(Service()))
    original = right.send

    def refuse(message: object, **kwargs: object) -> None:
        if isinstance(message, Response):
            raise OutboxFull("peer acknowledges nothing")
        original(message, **kwargs)  # type: ignore[arg-type]

    right.send = refuse  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="rpcengine.engine"):
        with pytest.raises(RequestTimeout):
            client.request("echo", 1, timeout=0.2)
    assert any("not sent" in r.getMessage() and "acknowledges nothing" in r.getMessage() for r in caplog.records)
    right.send = original  # type: ignore[method-assign]
    assert client.request("echo", 2, timeout=5) == 2, "the engine keeps serving"
    client.close()
    server.close()


def test_notification_sent_right_before_close_is_still_handled() -> None:
    left, right = pair()
    client = Engine(left, dummy_rpc_handler)
    service = Service()
    server = Engine(right, MethodDispatcher(service))
    for i in range(3):
        client.notify("note", i)
    client.close()
    wait_until(lambda: server.closed)
    wait_until(lambda: len(service.notified) == 3)
    assert service.notified == [0, 1, 2]
