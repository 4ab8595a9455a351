"""JsonRpcAdapter: JSON-RPC documents to native messages and back, with no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rpcengine import default_codec, error_data
from rpcengine.errors import EncodeError
from rpcengine.jsonrpc import error_from_data
from rpcengine.jsonrpc_adapter import JsonRpcAdapter, native_error_data
from rpcengine.messages import Cancel, Disconnect, Error, Heartbeat, Notification, Request, Response


def adapter() -> JsonRpcAdapter:
    return JsonRpcAdapter(default_codec())


def frame(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_a_request_becomes_a_native_request_and_its_answer_echoes_the_id_verbatim() -> None:
    rpc = adapter()
    for peer_id in ["7", 7, 1.5, None, ""]:
        received = rpc.receive(frame({"jsonrpc": "2.0", "method": "add", "params": [2, 3], "id": peer_id}))
        assert received.replies == []
        [request] = received.messages
        assert type(request) is Request and request.method == "add" and request.data == [2, 3]
        answer = rpc.encode(Response(100, request.message_id, 5))
        assert answer is not None
        assert json.loads(answer) == {"jsonrpc": "2.0", "id": peer_id, "result": 5}
        assert type(json.loads(answer)["id"]) is type(peer_id)
    assert rpc.awaiting == 0


def test_native_ids_rise_whatever_the_peer_ids_are() -> None:
    rpc = adapter()
    ids = []
    for peer_id in [9, 9, "a", None]:
        [message] = rpc.receive(frame({"jsonrpc": "2.0", "method": "m", "id": peer_id})).messages
        ids.append(message.message_id)  # type: ignore[attr-defined]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert rpc.awaiting == 4


def test_params_absent_is_none_and_no_id_is_a_notification() -> None:
    rpc = adapter()
    [notification] = rpc.receive(frame({"jsonrpc": "2.0", "method": "tick"})).messages
    assert type(notification) is Notification and notification.data is None
    [request] = rpc.receive(frame({"jsonrpc": "2.0", "method": "get", "params": {"k": 1}, "id": 1})).messages
    assert request.data == {"k": 1}  # type: ignore[attr-defined]


def test_an_error_answer_goes_through_the_error_map() -> None:
    rpc = adapter()
    [request] = rpc.receive(frame({"jsonrpc": "2.0", "method": "m", "id": "x"})).messages
    answer = rpc.encode(Error(5, request.message_id, error_data("method_not_found", "method not found: m")))  # type: ignore[attr-defined]
    assert answer is not None
    assert json.loads(answer)["error"]["code"] == -32601
    assert json.loads(answer)["id"] == "x"


def test_a_batch_is_answered_once_all_its_items_are_done_in_item_order() -> None:
    rpc = adapter()
    batch = [
        {"jsonrpc": "2.0", "method": "a", "id": 1},
        {"jsonrpc": "2.0", "method": "note"},
        7,
        {"jsonrpc": "2.0", "method": "b", "id": 2},
    ]
    received = rpc.receive(frame(batch))
    assert received.replies == []  # the invalid item waits for the others
    first, note, second = received.messages
    assert type(note) is Notification
    assert rpc.encode(Response(10, second.message_id, "B")) is None  # type: ignore[attr-defined]
    answer = rpc.encode(Response(11, first.message_id, "A"))  # type: ignore[attr-defined]
    assert answer is not None
    items = json.loads(answer)
    assert [item.get("result") for item in items] == ["A", None, "B"]
    assert items[1]["error"]["code"] == -32600
    assert rpc.awaiting == 0


def test_a_batch_of_invalid_items_only_is_answered_at_once_and_one_of_notifications_not_at_all() -> None:
    rpc = adapter()
    received = rpc.receive(b"[1,2,3]")
    assert received.messages == []
    [reply] = received.replies
    assert [item["error"]["code"] for item in json.loads(reply)] == [-32600] * 3
    received = rpc.receive(frame([{"jsonrpc": "2.0", "method": "n"}, {"jsonrpc": "2.0", "method": "n"}]))
    assert received.replies == [] and len(received.messages) == 2


@pytest.mark.parametrize(
    ("document", "code"),
    [(b"[]", -32600), (b"{", -32700), (b"\xff\xfe", -32700), (b"42", -32600), (b"[" + b"{}," * 1000 + b"{}]", -32600)],
)
def test_a_document_answered_by_one_error(document: bytes, code: int) -> None:
    received = adapter().receive(document)
    assert received.messages == []
    [reply] = received.replies
    answer = json.loads(reply)
    assert answer["id"] is None and answer["error"]["code"] == code


def test_reserved_methods_are_answered_not_found_without_a_handler() -> None:
    rpc = adapter()
    received = rpc.receive(frame({"jsonrpc": "2.0", "method": "rpc.x", "id": 3}))
    assert received.messages == []
    assert json.loads(received.replies[0])["error"]["code"] == -32601
    assert rpc.receive(frame({"jsonrpc": "2.0", "method": "rpc.x"})).messages == []


@pytest.mark.parametrize(("method", "member"), [("$/cancelRequest", "id"), ("notifications/cancelled", "requestId")])
def test_a_cancel_notification_cancels_the_running_request(method: str, member: str) -> None:
    rpc = adapter()
    [request] = rpc.receive(frame({"jsonrpc": "2.0", "method": "slow", "id": "job"})).messages
    [cancel] = rpc.receive(frame({"jsonrpc": "2.0", "method": method, "params": {member: "job"}})).messages
    assert type(cancel) is Cancel and cancel.request_message_id == request.message_id  # type: ignore[attr-defined]
    rpc.encode(Error(9, request.message_id, error_data("cancelled", "the caller cancelled the request")))  # type: ignore[attr-defined]
    # Answered: a second cancel names nothing running.
    assert rpc.receive(frame({"jsonrpc": "2.0", "method": method, "params": {member: "job"}})).messages == []


def test_a_cancel_for_an_id_never_seen_is_ignored() -> None:
    received = adapter().receive(frame({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}}))
    assert received.messages == [] and received.replies == []


def test_the_answer_to_a_call_this_side_made_is_a_native_response_or_error() -> None:
    rpc = adapter()
    outbound = rpc.encode(Request(4, "double", [21]))
    assert outbound is not None
    assert json.loads(outbound) == {"jsonrpc": "2.0", "id": 4, "method": "double", "params": [21]}
    [response] = rpc.receive(frame({"jsonrpc": "2.0", "id": 4, "result": 42})).messages
    assert type(response) is Response and response.request_message_id == 4 and response.data == 42
    error = {"code": -32001, "message": "too slow", "data": {"waited": 5}}
    [failed] = rpc.receive(frame({"jsonrpc": "2.0", "id": 5, "error": error})).messages
    assert type(failed) is Error and failed.request_message_id == 5
    assert failed.data == {"error": "deadline_exceeded", "message": "too slow", "code": -32001, "data": {"waited": 5}}
    assert error_from_data(failed.data) == error  # a proxy passes the peer's error on unchanged
    assert rpc.receive(frame({"jsonrpc": "2.0", "id": "s", "result": 1})).messages == []  # not an id of ours


def test_native_error_data_of_an_unknown_code() -> None:
    assert native_error_data({"code": 7, "message": "m"}) == {"error": "jsonrpc_error", "message": "m", "code": 7}


def test_notifications_cancels_heartbeats_and_goodbyes_outbound() -> None:
    rpc = adapter()
    assert json.loads(rpc.encode(Notification(1, "news", {"a": 1})) or b"") == {
        "jsonrpc": "2.0",
        "method": "news",
        "params": {"a": 1},
    }
    assert json.loads(rpc.encode(Notification(2, "tick", None)) or b"") == {"jsonrpc": "2.0", "method": "tick"}
    assert json.loads(rpc.encode(Notification(3, "one", 5)) or b"")["params"] == [5]
    assert json.loads(rpc.encode(Cancel(4, 3)) or b"") == {
        "jsonrpc": "2.0",
        "method": "$/cancelRequest",
        "params": {"id": 3},
    }
    assert rpc.encode(Heartbeat(3)) is None
    assert rpc.encode(Disconnect()) is None


def test_an_unencodable_result_keeps_the_place_for_the_error_that_follows() -> None:
    rpc = adapter()
    [request] = rpc.receive(frame({"jsonrpc": "2.0", "method": "m", "id": 1})).messages
    with pytest.raises(EncodeError):
        rpc.encode(Response(2, request.message_id, {1, 2}))  # type: ignore[attr-defined]
    answer = rpc.encode(Error(2, request.message_id, error_data("unencodable_result", "no")))  # type: ignore[attr-defined]
    assert answer is not None and json.loads(answer)["error"]["code"] == -32603


def test_an_answer_nobody_waits_for_is_dropped() -> None:
    assert adapter().encode(Response(1, 99, "late")) is None


def test_expire_answers_what_is_still_waiting_with_a_timeout() -> None:
    rpc = adapter()
    received = rpc.receive(
        frame([{"jsonrpc": "2.0", "method": "a", "id": 1}, {"jsonrpc": "2.0", "method": "b", "id": 2}])
    )
    first, second = received.messages
    assert rpc.encode(Response(3, first.message_id, "A")) is None  # type: ignore[attr-defined]
    [payload] = rpc.expire("no answer within 1 s")
    items = {item["id"]: item for item in json.loads(payload)}
    assert items[1]["result"] == "A"
    assert items[2]["error"]["code"] == -32001 and items[2]["error"]["message"] == "no answer within 1 s"
    assert rpc.awaiting == 0
    assert rpc.encode(Response(4, second.message_id, "late")) is None  # type: ignore[attr-defined]
