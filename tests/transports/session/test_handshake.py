"""The handshake objects: what each side sends and what a parser accepts."""

from __future__ import annotations

import pytest

from rpcengine.errors import HandshakeError
from transports.session.handshake import client_hello, parse_client_hello, parse_server_hello, refusal, server_hello


def test_client_hello_round_trip_keeps_credentials_apart_from_protocol_fields():
    hello = parse_client_hello(client_hello("abc", 12, 500, token="s3cret"))
    assert (hello.session, hello.ack, hello.max_unacked) == ("abc", 12, 500)
    assert hello.extra == {"token": "s3cret"}


def test_server_hello_round_trip():
    hello = parse_server_hello(server_hello("abc", True, 7, 0.5, 2.0, 100))
    assert (hello.session, hello.resumed, hello.ack, hello.heartbeat, hello.timeout, hello.max_unacked) == (
        "abc", True, 7, 0.5, 2.0, 100,
    )  # fmt: skip


def test_hellos_without_max_unacked_are_accepted_from_older_peers():
    assert parse_client_hello({"rpcengine": 1, "session": None, "ack": 0}).max_unacked is None
    answer = {"rpcengine": 1, "session": "s", "resumed": False, "ack": 0, "heartbeat": 5.0, "timeout": 15.0}
    assert parse_server_hello(answer).max_unacked is None


@pytest.mark.parametrize("bound", [0, -3, 2.5, "10", True])
def test_invalid_max_unacked_is_refused(bound):
    with pytest.raises(HandshakeError):
        parse_client_hello({"rpcengine": 1, "session": None, "ack": 0, "max_unacked": bound})
    with pytest.raises(HandshakeError):
        parse_server_hello({"rpcengine": 1, "session": "s", "ack": 0, "max_unacked": bound})


def test_refusal_is_reported_as_handshake_error_with_the_reason():
    with pytest.raises(HandshakeError, match="authentication failed"):
        parse_server_hello(refusal("authentication failed"))


@pytest.mark.parametrize(
    "value",
    [[1, 2], {"session": None}, {"rpcengine": 2}, {"rpcengine": 1, "session": ""}, {"rpcengine": 1, "ack": -1}],
)
def test_malformed_client_hello_is_refused(value):
    with pytest.raises(HandshakeError):
        parse_client_hello(value)
