"""The sans-I/O JSON-RPC 2.0 layer: items, the error map, batches, limits, cancels, detection."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from rpcengine import (
    DecodeError,
    EncodeError,
    InvalidMessage,
    MessageTooLarge,
    MethodNotFound,
    OutboxFull,
    RequestCancelled,
    RequestException,
    RequestTimeout,
    TooManyPendingRequests,
    default_codec,
    error_data,
    jsonrpc,
)
from rpcengine.jsonrpc import (
    CANCELLED,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_BATCH,
    METHOD_NOT_FOUND,
    NO_ID,
    OVERLOADED,
    PARSE_ERROR,
    SERVER_ERROR,
    TIMEOUT,
    TOO_LARGE,
    Call,
    Document,
    Invalid,
    Reply,
    answer_document,
    cancel_target,
    error_from_data,
    error_from_exception,
    is_jsonrpc_document,
    is_jsonrpc_frame,
    notification_object,
    parse_document,
    parse_frame,
    parse_item,
    request_object,
    respond,
    respond_frame,
)


def test_the_codes_are_the_documented_ones() -> None:
    assert (PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR) == (
        -32700,
        -32600,
        -32601,
        -32602,
        -32603,
    )
    assert (SERVER_ERROR, TIMEOUT, OVERLOADED, TOO_LARGE, CANCELLED) == (-32000, -32001, -32002, -32003, -32800)
    assert MAX_BATCH == 1000


# -- items


def call(**members: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "m", **members}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (call(params=[1, 2], id=1), Call("m", [1, 2], 1)),
        (call(params={"a": 1}, id="x"), Call("m", {"a": 1}, "x")),
        (call(id=None), Call("m", None, None)),
        (call(id=2.5), Call("m", None, 2.5)),
        (call(), Call("m", None, NO_ID)),
        (call(params=[]), Call("m", [], NO_ID)),
        (call(id=1, extra={"x": 1}), Call("m", None, 1)),
    ],
)
def test_a_valid_item_is_a_call_with_its_params_as_data(value: Any, expected: Call) -> None:
    assert parse_item(value) == expected


def test_a_notification_has_no_id_unlike_id_null() -> None:
    assert parse_item(call()).is_notification  # type: ignore[union-attr]
    assert not parse_item(call(id=None)).is_notification  # type: ignore[union-attr]
    assert repr(NO_ID) == "NO_ID" and not NO_ID


@pytest.mark.parametrize(
    ("value", "echoed"),
    [
        (1, None),
        ([call(id=1)], None),
        (call(id=[]), None),
        (call(id={}), None),
        (call(id=True), None),
        ({"id": 3, "method": "m"}, 3),
        (call(id=4, jsonrpc="1.0"), 4),
        (call(id=5, jsonrpc=2.0), 5),
        (call(id=6, method=1), 6),
        (call(id=7, method=None), 7),
        (call(id=8, params=3), 8),
        (call(id=9, params="x"), 9),
        (call(id=10, params=None), 10),
        (call(id=11, params=True), 11),
        ({"jsonrpc": "2.0", "id": 12}, 12),
        ({"jsonrpc": "2.0", "id": 13, "result": 1, "error": {"code": 1, "message": "m"}}, 13),
        ({"jsonrpc": "2.0", "id": 14, "error": "bad"}, 14),
    ],
)
def test_an_invalid_item_is_answered_invalid_request_with_the_id_when_readable(value: Any, echoed: Any) -> None:
    item = parse_item(value)
    assert type(item) is Invalid
    assert item.id == echoed
    response = item.response()
    assert response["jsonrpc"] == "2.0" and response["id"] == echoed
    assert response["error"]["code"] == INVALID_REQUEST
    assert response["error"]["data"]["error"] == "invalid_message"


def test_a_response_object_is_a_reply() -> None:
    assert parse_item({"jsonrpc": "2.0", "id": 1, "result": None}) == Reply(1, None)
    error = {"code": -32601, "message": "no"}
    assert parse_item({"jsonrpc": "2.0", "id": 2, "error": error}) == Reply(2, None, error)


# -- documents and batches


def test_a_single_object_is_not_a_batch() -> None:
    document = parse_document(call(id=1))
    assert document == Document((Call("m", None, 1),), False)


def test_an_empty_batch_is_one_error_object() -> None:
    answer = answer_document(parse_document([]), [])
    assert answer["id"] is None and answer["error"]["code"] == INVALID_REQUEST


def test_a_batch_of_max_batch_items_is_taken_one_more_is_refused() -> None:
    document = parse_document([call(id=n) for n in range(MAX_BATCH)])
    assert len(document.items) == MAX_BATCH and document.error is None
    refused = parse_document([call() for _ in range(MAX_BATCH + 1)])
    assert refused.items == () and refused.error is not None
    assert refused.error["code"] == INVALID_REQUEST and "batch too large" in refused.error["message"]


def test_answers_a_batch_with_the_answers_of_its_requests_only() -> None:
    document = parse_document([call(id=1), call(), 5])
    answers = respond(document, lambda method, data: "ok")
    assert answers == [
        {"jsonrpc": "2.0", "id": 1, "result": "ok"},
        document.items[2].response(),  # type: ignore[union-attr]
    ]


def test_only_notifications_give_nothing_to_send() -> None:
    assert respond(parse_document([call(), call()]), lambda method, data: 1) is None
    assert respond(parse_document(call()), lambda method, data: 1) is None
    assert respond_frame(default_codec(), b'{"jsonrpc":"2.0","method":"nope"}', _not_found) is None


def _not_found(method: str, data: Any) -> Any:
    raise MethodNotFound(method)


def test_parse_frame_maps_bad_json_and_oversize_documents() -> None:
    assert parse_frame(default_codec(), b"{").error["code"] == PARSE_ERROR  # type: ignore[index]
    small = type(default_codec())(max_size=10)
    assert parse_frame(small, b'{"jsonrpc": "2.0", "method": "m"}').error["code"] == TOO_LARGE  # type: ignore[index]


def test_ids_are_echoed_verbatim() -> None:
    codec = default_codec()
    for ident in ("1", 1, 1.5, None, "", -3, 2**60):
        frame = codec.encode(call(id=ident))
        answer = json.loads(respond_frame(codec, frame, lambda method, data: 0))  # type: ignore[arg-type]
        assert answer["id"] == ident and type(answer["id"]) is type(ident)


def test_reserved_rpc_methods_are_not_found_and_not_called() -> None:
    called = []
    answer = respond(parse_document(call(method="rpc.discover", id=1)), lambda method, data: called.append(method))
    assert answer["error"]["code"] == METHOD_NOT_FOUND and called == []


# -- the error map


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("invalid_message", INVALID_REQUEST),
        ("method_not_found", METHOD_NOT_FOUND),
        ("invalid_params", INVALID_PARAMS),
        ("internal_error", INTERNAL_ERROR),
        ("unencodable_result", INTERNAL_ERROR),
        ("invalid_json", PARSE_ERROR),
        ("cancelled", CANCELLED),
        ("deadline_exceeded", TIMEOUT),
        ("timeout", TIMEOUT),
        ("overloaded", OVERLOADED),
        ("unavailable", OVERLOADED),
        ("too_large", TOO_LARGE),
        ("out_of_stock", SERVER_ERROR),
    ],
)
def test_native_error_data_maps_by_its_kind(kind: str, code: int) -> None:
    data = error_data(kind, f"text for {kind}", extra=[1])
    assert error_from_data(data) == {"code": code, "message": f"text for {kind}", "data": data}


def test_the_dispatchers_invalid_params_data_is_invalid_params() -> None:
    data = error_data(
        "invalid_params", "add() takes 2 arguments, got 3", method="add", expected="(a, b)", got=[1, 2, 3]
    )
    assert error_from_exception(RequestException(data)) == {
        "code": INVALID_PARAMS,
        "message": data["message"],
        "data": data,
    }


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"code": 7, "message": "seven"}, {"code": 7, "message": "seven"}),
        ({"code": 7, "message": "seven", "data": [1], "other": 2}, {"code": 7, "message": "seven", "data": [1]}),
        (
            {"code": True, "message": "m"},
            {"code": SERVER_ERROR, "message": "m", "data": {"code": True, "message": "m"}},
        ),
        ({"code": "7", "message": "m"}, {"code": SERVER_ERROR, "message": "m", "data": {"code": "7", "message": "m"}}),
        ({"error": "weird"}, {"code": SERVER_ERROR, "message": "weird", "data": {"error": "weird"}}),
        ({"error": 3}, {"code": SERVER_ERROR, "message": "server error", "data": {"error": 3}}),
        ("just text", {"code": SERVER_ERROR, "message": "server error", "data": "just text"}),
        (None, {"code": SERVER_ERROR, "message": "server error", "data": None}),
    ],
)
def test_error_data_with_a_code_and_message_passes_through_anything_else_is_server_error(
    data: Any, expected: dict[str, Any]
) -> None:
    assert error_from_data(data) == expected


@pytest.mark.parametrize(
    ("exc", "code", "kind"),
    [
        (DecodeError("bad byte at 3"), PARSE_ERROR, "invalid_json"),
        (MessageTooLarge("1234567 > 1048576"), TOO_LARGE, "too_large"),
        (InvalidMessage("nope", 3), INVALID_REQUEST, "invalid_message"),
        (RequestTimeout("no answer within 5 s"), TIMEOUT, "timeout"),
        (RequestCancelled("cancelled by the user"), CANCELLED, "cancelled"),
        (TooManyPendingRequests("1024 pending"), OVERLOADED, "overloaded"),
        (OutboxFull("10000 unacked"), OVERLOADED, "overloaded"),
        (EncodeError("set at data[3]"), INTERNAL_ERROR, "unencodable_result"),
        (MethodNotFound("sub"), METHOD_NOT_FOUND, "method_not_found"),
        (ValueError("secret"), INTERNAL_ERROR, "internal_error"),
        (KeyError("secret"), INTERNAL_ERROR, "internal_error"),
    ],
)
def test_local_exceptions_map_by_type_with_fixed_messages(exc: BaseException, code: int, kind: str) -> None:
    error = error_from_exception(exc)
    assert error["code"] == code and error["data"]["error"] == kind
    assert error["data"]["message"] == error["message"]
    if not isinstance(exc, MethodNotFound):
        assert str(exc) not in json.dumps(error)


def test_no_traceback_or_exception_text_reaches_the_peer(caplog: pytest.LogCaptureFixture) -> None:
    def crash(method: str, data: Any) -> Any:
        raise RuntimeError("password=hunter2")

    codec = default_codec()
    with caplog.at_level(logging.ERROR, logger="rpcengine.jsonrpc"):
        answer = respond_frame(codec, b'[{"jsonrpc":"2.0","method":"m","id":1},{"jsonrpc":"2.0","method":"m"}]', crash)
    assert answer is not None
    assert b"hunter2" not in answer and b"Traceback" not in answer and b"RuntimeError" not in answer
    assert json.loads(answer) == [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "error": {
                "code": INTERNAL_ERROR,
                "message": "internal error",
                "data": {"error": "internal_error", "message": "internal error"},
            },
        }
    ]
    assert "hunter2" in caplog.text  # the details stay in the server's log


def test_an_unencodable_result_fails_its_own_call_only() -> None:
    codec = default_codec()
    frame = b'[{"jsonrpc":"2.0","method":"bad","id":1},{"jsonrpc":"2.0","method":"good","id":2}]'
    answer = json.loads(respond_frame(codec, frame, lambda method, data: {1} if method == "bad" else 2))  # type: ignore[arg-type]
    assert answer[0]["id"] == 1 and answer[0]["error"]["code"] == INTERNAL_ERROR
    assert answer[0]["error"]["data"]["error"] == "unencodable_result"
    assert answer[1] == {"jsonrpc": "2.0", "id": 2, "result": 2}
    single = respond_frame(codec, b'{"jsonrpc":"2.0","method":"bad","id":3}', lambda method, data: {1})
    assert json.loads(single)["error"]["code"] == INTERNAL_ERROR  # type: ignore[arg-type]


# -- cancel notifications


@pytest.mark.parametrize(
    ("value", "target"),
    [
        ({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 4}}, 4),
        ({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "x"}}, "x"),
        ({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5, "reason": "r"}}, 5),
        ({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"id": 5}}, NO_ID),
        ({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": None}}, NO_ID),
        ({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": [1]}}, NO_ID),
        ({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": [4]}, NO_ID),
        ({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 4}, "id": 1}, NO_ID),
        ({"jsonrpc": "2.0", "method": "cancel", "params": {"id": 4}}, NO_ID),
    ],
)
def test_cancel_notifications_name_the_id_to_cancel(value: Any, target: Any) -> None:
    item = parse_item(value)
    assert type(item) is Call
    assert cancel_target(item) == target and type(cancel_target(item)) is type(target)


# -- detection of the first frame


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b'{"jsonrpc":"2.0","method":"m"}', True),
        (b'  \r\n {"method":"m","params":[0,0,0],"jsonrpc":"2.0"}', True),
        (b'[{"jsonrpc":"2.0","method":"m"}]', True),
        (b"[ \n {}]", True),
        (b'[2,1,"add",[1,2]]', False),
        (b'[[2,1,"add",[1,2]]]', False),
        (b'{"rpcengine": 1, "session": null, "ack": 0}', False),
        (b"[]", False),
        (b"", False),
        (b"GET / HTTP/1.1", False),
        (b" " * 1000 + b'{"jsonrpc":"2.0"}', False),
    ],
)
def test_is_jsonrpc_frame(frame: bytes, expected: bool) -> None:
    assert is_jsonrpc_frame(frame) is expected


def test_is_jsonrpc_document() -> None:
    assert is_jsonrpc_document({"jsonrpc": "2.0"}) and is_jsonrpc_document([{}])
    assert not is_jsonrpc_document({"rpcengine": 1}) and not is_jsonrpc_document([2, 1, "m", None])
    assert not is_jsonrpc_document([]) and not is_jsonrpc_document("x")


# -- outbound calls


def test_outbound_objects_carry_the_engines_id_and_structured_params() -> None:
    assert request_object(7, "m", [1]) == {"jsonrpc": "2.0", "id": 7, "method": "m", "params": [1]}
    assert request_object(8, "m", None) == {"jsonrpc": "2.0", "id": 8, "method": "m"}
    assert request_object(9, "m", 5)["params"] == [5]
    assert notification_object("n", {"a": 1}) == {"jsonrpc": "2.0", "method": "n", "params": {"a": 1}}
    assert parse_item(request_object(7, "m", {"a": 1})) == Call("m", {"a": 1}, 7)


def test_the_module_is_sans_io() -> None:
    source = open(jsonrpc.__file__, encoding="utf-8").read()
    for name in ("gevent", "socket", "transports", "dispatchers", "threading", "asyncio"):
        assert f"import {name}" not in source and f"from {name}" not in source


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b'{"rpcengine": 1, "session": null, "ack": 0, "token": "jsonrpc"}', False),
        (b'{"rpcengine": 1, "jsonrpc": "2.0"}', True),  # a member wins: it claims JSON-RPC
        (b'{"method": "jsonrpc", "id": 1}', True),  # neither member: answered as JSON-RPC (-32600)
        (b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]', True),  # broken: a parse error
        (b'{"rpcengine": 1}', False),
    ],
)
def test_is_jsonrpc_frame_with_a_codec_tells_a_member_from_a_value(frame: bytes, expected: bool) -> None:
    assert is_jsonrpc_frame(frame, default_codec()) is expected
