"""Strict parsing of message lists: any malformed value raises InvalidMessage only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcengine import InvalidMessage, Message, Request
from rpcengine.codec import UjsonCodec
from rpcengine.messages import MAX_MESSAGE_ID

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=20,
)
ids = st.integers(0, MAX_MESSAGE_ID)
methods = st.text(min_size=1)
messages = st.one_of(
    st.builds(lambda i: [0, i], ids),
    st.builds(lambda i, m, d: [1, i, m, d], ids, methods, json_values),
    st.builds(lambda i, m, d: [2, i, m, d], ids, methods, json_values),
    st.builds(lambda i, r, d: [3, i, r, d], ids, ids, json_values),
    st.builds(lambda i, r, d: [4, i, r, d], ids, ids, json_values),
    st.just([-1]),
)


@given(messages)
def test_every_message_kind_round_trips_through_the_codec(as_list: list) -> None:
    codec = UjsonCodec()
    message = Message.from_list(codec.decode(codec.encode(as_list)))
    assert message.to_list() == as_list
    assert Message.from_list(codec.decode(codec.encode(message.to_list()))) == message


@given(json_values)
def test_from_list_on_any_json_value_raises_only_invalid_message(value: object) -> None:
    try:
        message = Message.from_list(value)
    except InvalidMessage:
        return
    assert message.to_list() == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        {},
        "[2,1,'m',null]",
        [],
        [True, 1],
        [False],
        [5, 1],
        [-2],
        [0.0, 1],
        ["2", 1, "m", None],
        [0],
        [0, 1, 2],
        [0, -1],
        [0, True],
        [0, 2**53],
        [0, 1.0],
        [1, 1, "m"],
        [1, 1, "m", None, None],
        [1, 1, "", None],
        [1, 1, None, None],
        [1, 1, 7, None],
        [2, 1, "m"],
        [2, "1", "m", None],
        [2, 1, ["m"], None],
        [3, 1, None, None],
        [3, 1, 2],
        [3, False, 2, None],
        [4, 1, -5, None],
        [4, 1, 2, None, 1],
        [-1, 0],
        [-1, None],
    ],
)
def test_malformed_lists_raise_invalid_message(value: object) -> None:
    with pytest.raises(InvalidMessage):
        Message.from_list(value)


def test_invalid_request_keeps_its_id_for_the_error_reply() -> None:
    with pytest.raises(InvalidMessage) as caught:
        Message.from_list([2, 41, "", None])
    assert caught.value.request_id == 41
    with pytest.raises(InvalidMessage) as caught:
        Message.from_list([2, 42, "m"])
    assert caught.value.request_id == 42
    with pytest.raises(InvalidMessage) as caught:
        Message.from_list([1, 43, "", None])
    assert caught.value.request_id is None, "a notification gets no reply"


def test_largest_id_accepted() -> None:
    assert Message.from_list([2, MAX_MESSAGE_ID, "m", None]) == Request(MAX_MESSAGE_ID, "m")
