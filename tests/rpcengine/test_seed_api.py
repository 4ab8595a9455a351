"""Every name of the mushroom.rpc API page exists here with the same signature and codes."""

from __future__ import annotations

import inspect

import pytest

import rpcengine
from dispatchers import MethodDispatcher, dummy_rpc_handler
from rpcengine import (
    Disconnect,
    Engine,
    Error,
    Heartbeat,
    Message,
    MethodNotFound,
    Notification,
    Request,
    RequestException,
    RequestTimeout,
    Response,
    RpcError,
)


def params(func: object) -> list[tuple[str, object]]:
    """Return (name, default) of each parameter, ``self`` excluded."""
    return [
        (p.name, p.default)
        for p in inspect.signature(func).parameters.values()  # type: ignore[arg-type]
        if p.name != "self"
    ]


EMPTY = inspect.Parameter.empty


def test_engine_signatures() -> None:
    assert params(Engine)[:2] == [("transport", EMPTY), ("rpc_handler", EMPTY)]
    assert params(Engine.handle_message) == [("message", EMPTY)]
    assert params(Engine.next_message_id) == []
    assert params(Engine.notify) == [("method", EMPTY), ("data", None), ("kwargs", EMPTY)]
    assert params(Engine.request) == [("method", EMPTY), ("data", None), ("timeout", None), ("kwargs", EMPTY)]
    assert params(Engine.send) == [("message", EMPTY), ("kwargs", EMPTY)]


def test_dispatcher_signatures() -> None:
    assert params(MethodDispatcher)[:3] == [("obj", EMPTY), ("prefix", "rpc_"), ("suffix", "")]
    assert params(MethodDispatcher.__call__) == [("request", EMPTY)]
    assert params(dummy_rpc_handler) == [("request", EMPTY)]
    with pytest.raises(MethodNotFound):
        dummy_rpc_handler(Request(1, "anything"))


def test_exception_signatures_and_tree() -> None:
    assert params(RpcError) == [("message", "")]
    assert params(MethodNotFound) == [("method_name", EMPTY)]
    assert params(RequestException) == [("data", EMPTY)]
    assert params(RequestTimeout) == [("message", "")]
    for exc in (MethodNotFound, RequestException, RequestTimeout):
        assert issubclass(exc, RpcError)
    assert issubclass(RequestTimeout, TimeoutError)
    assert MethodNotFound("x").method_name == "x"
    assert RequestException({"a": 1}).data == {"a": 1}
    assert isinstance(rpcengine.ConnectionLost("gone"), ConnectionError)


@pytest.mark.parametrize(
    ("cls", "code", "args", "as_list"),
    [
        (Heartbeat, 0, (7,), [0, 7]),
        (Notification, 1, (3, "m", {"k": 1}), [1, 3, "m", {"k": 1}]),
        (Request, 2, (4, "m", [1]), [2, 4, "m", [1]]),
        (Response, 3, (5, 4, "ok"), [3, 5, 4, "ok"]),
        (Error, 4, (6, 4, "bad"), [4, 6, 4, "bad"]),
        (Disconnect, -1, (), [-1]),
    ],
)
def test_message_classes(cls: type, code: int, args: tuple, as_list: list) -> None:
    message = cls(*args)
    assert cls.code == code
    assert message.to_list() == as_list
    assert cls.from_list(as_list) == message
    assert Message.from_list(as_list) == message
    assert isinstance(message, Message)


def test_message_constructor_signatures() -> None:
    assert params(Heartbeat) == [("last_message_id", EMPTY)]
    assert params(Notification) == [("message_id", EMPTY), ("method", EMPTY), ("data", None)]
    assert params(Request) == [("message_id", EMPTY), ("method", EMPTY), ("data", None)]
    assert params(Response) == [("message_id", EMPTY), ("request_message_id", EMPTY), ("data", None)]
    assert params(Error) == [("message_id", EMPTY), ("request_message_id", EMPTY), ("data", None)]
    assert params(Disconnect) == []
    assert params(Request.get_response) == [("block", True), ("timeout", None)]
    assert params(Response.for_request) == [("message_id", EMPTY), ("request", EMPTY), ("data", None)]
    assert params(Error.for_request) == [("message_id", EMPTY), ("request", EMPTY), ("data", None)]


def test_for_request_and_get_response() -> None:
    request = Request(10, "m")
    assert request.response is None
    response = Response.for_request(11, request, "result")
    assert (response.message_id, response.request_message_id, response.data) == (11, 10, "result")
    error = Error.for_request(12, request, "failure")
    assert error.to_list() == [4, 12, 10, "failure"]
    with pytest.raises(RequestTimeout):
        request.get_response(block=False)
    with pytest.raises(RequestTimeout):
        request.get_response(timeout=0.01)
    assert request.set_response(response)
    assert not request.set_response(error), "a request completes once"
    assert request.get_response() is response
    assert request.response is response
