"""Dispatchers resolve only plain public names, never evaluate properties, never call non-callables."""

from __future__ import annotations

import logging

import pytest

from dispatchers import (
    DESCRIBE_METHOD,
    CallStatistics,
    MethodDispatcher,
    Registry,
    SlowCallLogger,
    dummy_rpc_handler,
    with_middleware,
)
from rpcengine import MethodNotFound, Notification, Request, RequestException


class Service:
    """A service with traps a dispatcher must not fall into."""

    rpc_constant = 42
    evaluated = False

    def rpc_add(self, request: Request) -> int:
        """Return the sum of two numbers.

        More text that is not part of the summary.
        """
        return request.data[0] + request.data[1]

    @property
    def rpc_prop(self) -> str:
        Service.evaluated = True
        return "evaluated"

    def _rpc_hidden(self, request: Request) -> str:
        return "hidden"

    def rpc__private(self, request: Request) -> str:
        return "private"

    def secret(self, request: Request) -> str:
        return "secret"

    @staticmethod
    def rpc_static(request: Request) -> str:
        return "static"

    @classmethod
    def rpc_klass(cls, request: Request) -> str:
        return cls.__name__

    def rpc_x_v2(self, request: Request) -> str:
        return "suffixed"


def call(dispatcher: object, method: str, data: object = None) -> object:
    return dispatcher(Request(1, method, data))  # type: ignore[operator]


def test_calls_prefixed_methods() -> None:
    dispatcher = MethodDispatcher(Service())
    assert call(dispatcher, "add", [2, 3]) == 5
    assert call(dispatcher, "static") == "static"
    assert call(dispatcher, "klass") == "Service"
    assert dispatcher(Notification(1, "add", [1, 1])) == 2


@pytest.mark.parametrize(
    "name",
    [
        "__class__",
        "__init__",
        "__dict__",
        "__del__",
        "_private",
        "_rpc_hidden",
        "constant",
        "prop",
        "secret",
        "missing",
        "add.real",
        "add ",
        "1add",
        "",
        "x" * 10_000,
        "class",
        "ädd",
        "add\x00",
    ],
)
def test_refuses_unsafe_or_missing_names(name: str) -> None:
    Service.evaluated = False
    dispatcher = MethodDispatcher(Service())
    with pytest.raises(MethodNotFound) as caught:
        call(dispatcher, name)
    assert caught.value.method_name == name
    assert not Service.evaluated, "a property must not be evaluated"


def test_empty_prefix_needs_explicit_opt_in() -> None:
    with pytest.raises(ValueError, match="allow_empty_prefix"):
        MethodDispatcher(Service(), prefix="")
    dispatcher = MethodDispatcher(Service(), prefix="", allow_empty_prefix=True)
    assert call(dispatcher, "secret") == "secret"
    for name in ("__class__", "_rpc_hidden", "__init__"):
        with pytest.raises(MethodNotFound):
            call(dispatcher, name)


def test_suffix() -> None:
    dispatcher = MethodDispatcher(Service(), prefix="rpc_", suffix="_v2")
    assert call(dispatcher, "x") == "suffixed"
    with pytest.raises(MethodNotFound):
        call(dispatcher, "add")


def test_describe_lists_exposed_methods_only() -> None:
    described = call(MethodDispatcher(Service()), DESCRIBE_METHOD)
    names = [entry["name"] for entry in described]  # type: ignore[union-attr]
    assert names == ["add", "klass", "static", "x_v2"]
    add = described[0]  # type: ignore[index]
    assert add["doc"] == "Return the sum of two numbers."
    assert add["signature"] == "(request: 'Request') -> 'int'"
    with pytest.raises(MethodNotFound):
        call(MethodDispatcher(Service(), introspection=False), DESCRIBE_METHOD)


def test_dummy_handler_refuses_everything() -> None:
    for name in ("add", "anything"):
        with pytest.raises(MethodNotFound):
            dummy_rpc_handler(Request(1, name))


def test_registry_decorator_forms() -> None:
    registry = Registry()

    @registry.register
    def add(request: Request) -> int:
        """Add two numbers."""
        return request.data[0] + request.data[1]

    @registry.register("math.mul")
    def multiply(request: Request) -> int:
        return request.data[0] * request.data[1]

    assert add(Request(1, "add", [1, 2])) == 3, "the decorator returns the function unchanged"
    assert call(registry, "add", [2, 2]) == 4
    assert call(registry, "math.mul", [2, 5]) == 10
    assert registry.names() == ["add", "math.mul"]
    assert [d["name"] for d in call(registry, DESCRIBE_METHOD)] == ["add", "math.mul"]  # type: ignore[union-attr]
    for name in ("multiply", "__init__", "nope"):
        with pytest.raises(MethodNotFound):
            call(registry, name)
    with pytest.raises(ValueError):
        registry.add("add", add)
    for bad in ("_x", "a..b", "", "a b", DESCRIBE_METHOD):
        with pytest.raises(ValueError):
            registry.add(bad, add)


def test_middleware_order_statistics_and_slow_log(caplog: pytest.LogCaptureFixture) -> None:
    order: list[str] = []

    def outer(request: Request, call_next: object) -> object:
        order.append("outer")
        return call_next(request)  # type: ignore[operator]

    def inner(request: Request, call_next: object) -> object:
        order.append("inner")
        return call_next(request)  # type: ignore[operator]

    ticks = iter([0.0, 2.0, 10.0, 10.5, 20.0, 20.1, 30.0, 30.0, 40.0, 40.0])
    clock = lambda: next(ticks)  # noqa: E731
    stats = CallStatistics(clock=lambda: 0.0)
    slow = SlowCallLogger(threshold=1.0, clock=clock)

    def fail(request: Request) -> None:
        raise RequestException("bad")

    registry = Registry()
    registry.add("ok", lambda request: "ok")
    registry.add("fail", fail)
    handler = with_middleware(registry, outer, slow, stats, inner)
    with caplog.at_level(logging.WARNING, logger="rpcengine.slow"):
        assert call(handler, "ok") == "ok"
        assert call(handler, "ok") == "ok"
        with pytest.raises(RequestException):
            call(handler, "fail")
        for _ in range(2):
            with pytest.raises(MethodNotFound):
                call(handler, "random-name")
    assert order[:2] == ["outer", "inner"]
    slow_records = [r for r in caplog.records if "slow call" in r.getMessage()]
    assert len(slow_records) == 1 and "'ok'" in slow_records[0].getMessage()
    snapshot = stats.snapshot()
    assert snapshot["ok"]["calls"] == 2
    assert snapshot["fail"]["errors"] == 1
    assert snapshot[CallStatistics.NOT_FOUND]["not_found"] == 2
    assert "random-name" not in snapshot
