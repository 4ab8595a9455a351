"""Cancel and the Request's fifth item: parsed only where negotiated, refused strictly everywhere else."""

from __future__ import annotations

from typing import Any

import pytest

from rpcengine import ALL_FEATURES, Cancel, InvalidMessage, Message, Request
from rpcengine.features import MAX_TIMEOUT_MS, negotiate
from transports.session.handshake import client_hello, parse_client_hello, parse_server_hello, server_hello


def test_cancel_round_trips_with_the_feature() -> None:
    cancel = Message.from_list([5, 9, 4], ALL_FEATURES)
    assert type(cancel) is Cancel and (cancel.message_id, cancel.request_message_id) == (9, 4)
    assert cancel.to_list() == [5, 9, 4] and Cancel(9, 4) == cancel


def test_a_request_with_a_deadline_round_trips_with_the_feature() -> None:
    request = Message.from_list([2, 3, "m", [1], 250], ALL_FEATURES)
    assert type(request) is Request and request.timeout_ms == 250 and request.deadline is not None
    assert request.to_list() == [2, 3, "m", [1], 250]
    assert Message.from_list([2, 3, "m", [1]], ALL_FEATURES).to_list() == [2, 3, "m", [1]]  # the fifth is optional


@pytest.mark.parametrize("value", [[5, 9, 4], [2, 3, "m", None, 100]])
def test_without_the_features_the_parser_refuses_them(value: list[Any]) -> None:
    with pytest.raises(InvalidMessage) as info:
        Message.from_list(value)
    if value[0] == 2:
        assert info.value.request_id == 3, "a five-item request still gets an Error reply"
    with pytest.raises(InvalidMessage):
        Message.from_list(value, frozenset({"cancel"} if value[0] == 2 else {"deadline"}))


@pytest.mark.parametrize(
    "bad", [[5, 1], [5, 1, 2, 3], [5, -1, 2], [5, 1, "2"], [5, True, 2], [5, 1, 2.0], [5, 1, None]]
)
def test_a_malformed_cancel_is_refused(bad: list[Any]) -> None:
    with pytest.raises(InvalidMessage):
        Message.from_list(bad, ALL_FEATURES)


@pytest.mark.parametrize("timeout_ms", [-1, MAX_TIMEOUT_MS + 1, 1.5, True, "100", None, [100]])
def test_a_bad_deadline_is_refused_naming_the_request(timeout_ms: Any) -> None:
    with pytest.raises(InvalidMessage) as info:
        Message.from_list([2, 7, "m", None, timeout_ms], ALL_FEATURES)
    assert info.value.request_id == 7


def test_the_timeout_sent_is_whole_milliseconds_within_eight_digits() -> None:
    from rpcengine.engine import _timeout_ms

    assert [_timeout_ms(t) for t in (0.0, 0.0001, 0.1, 1.2345, 10**9)] == [1, 1, 100, 1235, MAX_TIMEOUT_MS]


def test_features_are_negotiated_in_the_handshake() -> None:
    hello = client_hello(None, 0, features=ALL_FEATURES)
    assert hello["features"] == ["cancel", "deadline", "stream"]
    assert "features" not in client_hello(None, 0), "no features: no key (as a plain or older client)"
    parsed = parse_client_hello({**hello, "features": ["deadline", "teleport", 5]})
    assert parsed.features == frozenset({"deadline"}) and "features" not in parsed.extra
    assert parse_client_hello({"rpcengine": 1, "session": None}).features == frozenset()
    assert parse_client_hello({**hello, "features": "cancel"}).features == frozenset(), "not a list: none"
    answer = server_hello("s", False, 0, 5.0, 15.0, features=frozenset({"cancel"}))
    assert parse_server_hello(answer).features == frozenset({"cancel"})
    assert negotiate(["cancel"] * 65, ALL_FEATURES) == frozenset(), "a huge list names none"
