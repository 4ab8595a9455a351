"""Streamed results on the in-memory loopback: flow control, early exit, errors, cancels, peers that cannot stream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from helpers.tcp import wait_until

from dispatchers import Registry
from rpcengine import Engine, RequestCancelled, RequestException, RequestTimeout
from rpcengine.features import CANCEL, DEADLINE, STREAM
from rpcengine.messages import InvalidMessage, Message, Request, StreamCredit, StreamItem
from rpcengine.streams import MAX_COLLECTED, is_stream
from transports.memory import pair

pytestmark = pytest.mark.timeout(60)


class Producers:
    """Generators that record how they ended."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.closed_at: list[float] = []
        self.yielded = 0

        @self.registry.register
        def numbers(request: Any) -> Iterator[int]:
            def generate() -> Iterator[int]:
                try:
                    for i in range(request.data):
                        self.yielded += 1
                        yield i
                finally:
                    self.closed_at.append(time.monotonic())

            return generate()

        @self.registry.register
        def failing(request: Any) -> Iterator[int]:
            def generate() -> Iterator[int]:
                yield 1
                yield 2
                raise RequestException({"error": "disk_full", "message": "no space left"})

            return generate()

        @self.registry.register
        def slow(request: Any) -> Iterator[int]:
            def generate() -> Iterator[int]:
                try:
                    yield 1
                    gevent.sleep(10)
                    yield 2
                finally:
                    self.closed_at.append(time.monotonic())

            return generate()

        @self.registry.register
        def mapped(request: Any) -> Any:
            return map(str, range(3))


def engines(features: frozenset[str] = frozenset({CANCEL, DEADLINE, STREAM})) -> tuple[Engine, Engine, Producers]:
    producers = Producers()
    client_side, server_side = pair(features=features)
    server = Engine(server_side, producers.registry)
    client = Engine(client_side, lambda message: None)
    return client, server, producers


def test_a_slow_consumer_bounds_what_the_producer_has_sent_ahead() -> None:
    client, server, producers = engines()
    stream = client.stream("numbers", 100_000, timeout=5, window=32)
    most_buffered = count = 0
    for item in stream:
        assert item == count
        count += 1
        most_buffered = max(most_buffered, len(stream.buffered))
        if count % 1000 == 0:
            gevent.sleep(0.001)  # a slow reader: the producer must wait for it
            producer = server._streams_out.get(stream.message_id)
            assert producer is None or producer.sent - producer.consumed <= 32
    assert count == 100_000
    assert most_buffered <= 32
    assert producers.yielded == 100_000
    assert server._streams_out == {} and client._streams_in == {}


def test_leaving_the_loop_stops_the_generator_at_once() -> None:
    client, server, producers = engines()
    for index, _ in enumerate(client.stream("numbers", 10**9, timeout=5)):
        if index == 9:
            left = time.monotonic()
            break
    wait_until(lambda: producers.closed_at, timeout=1.0, interval=0.001, what="the generator closed")
    assert producers.closed_at[0] - left < 0.1
    assert producers.yielded < 10 + 2 * 64 + 2  # never more than the window ahead
    wait_until(lambda: server.active_handlers == 0, timeout=1.0, what="the handler ended")
    assert client.pending_count == 0


def test_an_error_midway_comes_after_the_items_sent_exactly_once() -> None:
    client, _, _ = engines()
    got: list[Any] = []
    stream = iter(client.stream("failing", timeout=5))
    with pytest.raises(RequestException) as caught:
        for item in stream:
            got.append(item)
    assert got == [1, 2]
    assert caught.value.data == {"error": "disk_full", "message": "no space left"}
    assert list(stream) == []  # ended: nothing more, no second error


def test_cancel_and_the_idle_timeout_close_the_generator() -> None:
    client, server, producers = engines()
    stream = client.stream("slow", timeout=5)
    items = iter(stream)
    assert next(items) == 1
    assert stream.cancel()
    with pytest.raises(RequestCancelled):
        next(items)
    with pytest.raises(RequestTimeout):
        list(client.stream("slow", timeout=0.1))
    wait_until(lambda: len(producers.closed_at) == 2, timeout=1.0, what="both generators closed")
    assert server.active_handlers == 0


def test_a_peer_that_cannot_stream_gets_the_list_or_an_error() -> None:
    client, _, _ = engines(frozenset({CANCEL, DEADLINE}))
    stream = client.stream("numbers", 5, timeout=5)
    assert not stream.streaming
    assert list(stream) == [0, 1, 2, 3, 4]
    assert client.request("numbers", 3, timeout=5) == [0, 1, 2]  # an ordinary request: the list
    assert client.request("mapped", timeout=5) == ["0", "1", "2"]
    with pytest.raises(RequestException) as caught:
        client.request("numbers", MAX_COLLECTED + 1, timeout=5)
    assert caught.value.data["error"] == "stream_too_long"


def test_an_ordinary_request_on_a_streaming_session_gets_the_list() -> None:
    client, _, _ = engines()
    assert client.request("numbers", 4, timeout=5) == [0, 1, 2, 3]


def test_the_connection_ending_releases_a_producer_waiting_for_credit() -> None:
    client, server, producers = engines()
    stream = iter(client.stream("numbers", 10**9, timeout=5, window=4))
    assert next(stream) == 0
    producer = server._streams_out[1]
    wait_until(lambda: producer.sent - producer.consumed == 4, timeout=1.0, what="the producer filled the window")
    client.close()
    wait_until(lambda: server.active_handlers == 0, timeout=1.0, what="the waiting producer was released")
    assert producers.closed_at


def test_is_stream() -> None:
    assert is_stream(iter([1])) and is_stream(x for x in "a") and is_stream(map(str, [1]))
    assert not any(is_stream(value) for value in ([1], (1,), "ab", b"ab", {"a": 1}, None, 3))


def test_stream_messages_need_the_feature_and_a_bounded_window() -> None:
    features = frozenset({CANCEL, STREAM})
    request = Message.from_list([6, 3, "m", None, 16], features)
    assert type(request) is Request and request.window == 16
    assert request.to_list() == [6, 3, "m", None, 16]
    assert type(Message.from_list([7, 4, 3, "x"], features)) is StreamItem
    credit = Message.from_list([8, 5, 3, 10], features)
    assert type(credit) is StreamCredit and credit.consumed == 10 and credit.to_list() == [8, 5, 3, 10]
    for refused in ([6, 3, "m", None, 0], [6, 3, "m", None, 65_537], [6, 3, "m", None, True], [8, 5, 3, -1]):
        with pytest.raises(InvalidMessage):
            Message.from_list(refused, features)
    for without in ([6, 3, "m", None, 16], [7, 4, 3, "x"], [8, 5, 3, 10]):
        with pytest.raises(InvalidMessage):
            Message.from_list(without, frozenset({CANCEL, DEADLINE}))
    with pytest.raises(InvalidMessage) as caught:
        Message.from_list([6, 3, "m", None, 0], features)
    assert caught.value.request_id == 3  # answered with an Error, not a close


def test_a_bad_window_is_refused_before_sending() -> None:
    client, _, _ = engines()
    for window in (0, 65_537, 1.5):
        with pytest.raises(ValueError):
            client.stream("numbers", 1, window=window)  # type: ignore[arg-type]
    assert client.pending_count == 0
