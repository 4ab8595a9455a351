"""Streamed results over real TCP sessions: flow control end to end, early exit, and peers without the feature."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.socket
import pytest
from helpers.tcp import HELLO, wait_until

from dispatchers import Registry
from transports.tcp import TcpServer, connect

pytestmark = pytest.mark.timeout(60)


class Numbers:
    def __init__(self) -> None:
        self.registry = Registry()
        self.closed_at: list[float] = []
        self.producers: list[Any] = []

        @self.registry.register
        def numbers(request: Any) -> Iterator[int]:
            def generate() -> Iterator[int]:
                try:
                    yield from range(request.data)
                finally:
                    self.closed_at.append(time.monotonic())

            return generate()

        @self.registry.register
        def upto(request: Any) -> Iterator[int]:
            return iter(range(request.data[0]))

        @self.registry.register
        def progress(request: Any) -> Iterator[dict[str, Any]]:
            """The documented way to report progress: items that say how far, then the result."""
            for percent in (25, 50, 75, 100):
                yield {"progress": percent}
            yield {"result": "done"}


@pytest.fixture
def numbers() -> Numbers:
    return Numbers()


@pytest.fixture
def server(numbers: Numbers) -> Iterator[TcpServer]:
    with TcpServer(("127.0.0.1", 0), numbers.registry) as server:
        yield server


def test_a_slow_reader_over_tcp_keeps_the_server_within_the_window(server: TcpServer) -> None:
    client = connect(*server.address)
    try:
        assert "stream" in client.transport.features
        [session] = list(server.sessions)
        stream = client.stream("numbers", 100_000, timeout=10, window=64)
        peak = count = 0
        for item in stream:
            assert item == count
            count += 1
            if count % 500 == 0:
                gevent.sleep(0.002)
                engine = session.engine
                assert engine is not None
                for producer in engine._streams_out.values():
                    peak = max(peak, producer.peak)
        assert count == 100_000
        assert 0 < peak <= 64
    finally:
        client.close()


def test_leaving_the_loop_over_tcp_stops_the_generator_within_100_ms(server: TcpServer, numbers: Numbers) -> None:
    client = connect(*server.address)
    try:
        for index, _ in enumerate(client.stream("numbers", 10**9, timeout=5)):
            if index == 9:
                left = time.monotonic()
                break
        wait_until(lambda: numbers.closed_at, timeout=1.0)
        assert numbers.closed_at[0] - left < 0.1
        assert client.request("numbers", 2, timeout=5) == [0, 1]  # the session goes on
    finally:
        client.close()


def test_progress_items_then_the_result(server: TcpServer) -> None:
    client = connect(*server.address)
    try:
        items = list(client.stream("progress", timeout=5))
        assert items[:-1] == [{"progress": p} for p in (25, 50, 75, 100)]
        assert items[-1] == {"result": "done"}
    finally:
        client.close()


def test_plain_and_featureless_peers_never_see_stream_messages(server: TcpServer) -> None:
    featureless = connect(*server.address, features=frozenset())
    try:
        assert list(featureless.stream("numbers", 3, timeout=5)) == [0, 1, 2]
    finally:
        featureless.close()
    for first in (HELLO, b""):  # a handshake without features, and a plain peer
        sock = gevent.socket.create_connection(server.address, timeout=5)
        try:
            reader = sock.makefile("rb")
            if first:
                sock.sendall(first)
                assert "features" not in json.loads(reader.readline())
            sock.sendall(b'[2, 1, "numbers", 3]\n')
            line = json.loads(reader.readline())
            while line[0] == 0:  # heartbeats
                line = json.loads(reader.readline())
            assert line[0] == 3 and line[2] == 1 and line[3] == [0, 1, 2]
        finally:
            sock.close()


def test_a_json_rpc_client_gets_the_collected_list(server: TcpServer) -> None:
    sock = gevent.socket.create_connection(server.address, timeout=5)
    try:
        sock.sendall(b'{"jsonrpc": "2.0", "method": "upto", "params": [3], "id": 1}\n')
        assert json.loads(sock.makefile("rb").readline()) == {"jsonrpc": "2.0", "id": 1, "result": [0, 1, 2]}
    finally:
        sock.close()
