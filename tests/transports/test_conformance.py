"""The transport conformance suite (tests/helpers/conformance.py) on every transport.

Eight transports, the same checks: the loopback pair, TCP and the Unix-domain
socket with and without the session handshake, WebSocket with and without it,
HTTP long-poll. Servers take a
:class:`~helpers.conformance.FakeClock`, so liveness is tested on injected
time.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers.conformance import CHECKS, FakeClock, Service, TransportPair, check_transport, session_server_pair
from helpers.tcp import LOOPBACK

from dispatchers import MethodDispatcher
from rpcengine import Engine
from rpcengine.codec import default_codec
from transports import tcp, unix, websocket
from transports.http.client import connect_poll
from transports.memory import pair as memory_pair

pytestmark = pytest.mark.timeout(60)


# -- a pair
def memory(**options: Any) -> TransportPair:
    """A loopback pair; of the options only ``max_message_size`` applies (to the server's codec)."""
    service = Service()
    left, right = memory_pair()
    if "max_message_size" in options:
        codec = default_codec()
        codec.max_size = options["max_message_size"]
        right.codec = codec
    client = Engine(left, MethodDispatcher(service))
    server = Engine(right, MethodDispatcher(service))
    reader = left._reader

    def inject(*frames: bytes) -> None:
        for frame in frames:
            left.send_raw(frame)

    def vanish() -> None:
        assert reader is not None
        reader.kill()

    def close() -> None:
        service.release()
        client.close()

    return TransportPair(
        client=client,
        server=server,
        service=service,
        inject=inject,
        vanish=vanish,
        another=lambda: memory(**options),
        close=close,
    )


# -- pairs over a SessionServer
def tcp_pair(handshake: bool) -> Callable[..., TransportPair]:
    def make(**options: Any) -> TransportPair:
        service, clock = Service(), FakeClock()
        server = tcp.TcpServer((LOOPBACK, 0), MethodDispatcher(service), clock=clock, **options).start()
        return session_server_pair(
            server,
            lambda server, handler: tcp.connect(*server.address, handler, handshake=handshake),
            service,
            MethodDispatcher,
            clock=clock,
            has_liveness=handshake,  # a plain line peer has nothing to answer a probe with
        )

    return make


_unix_paths = itertools.count()


def unix_pair(handshake: bool) -> Callable[..., TransportPair]:
    def make(**options: Any) -> TransportPair:
        service, clock = Service(), FakeClock()
        path = os.path.join(tempfile.gettempdir(), f"rpcengine-conformance-{os.getpid()}-{next(_unix_paths)}.sock")
        server = unix.UnixServer(path, MethodDispatcher(service), clock=clock, **options).start()
        return session_server_pair(
            server,
            lambda server, handler: unix.connect(server.address, handler, handshake=handshake),
            service,
            MethodDispatcher,
            clock=clock,
            has_liveness=handshake,  # as over TCP: a plain line peer has nothing to answer a probe with
        )

    return make


def websocket_pair(handshake: bool) -> Callable[..., TransportPair]:
    def make(**options: Any) -> TransportPair:
        service, clock = Service(), FakeClock()
        server = websocket.WebSocketServer((LOOPBACK, 0), MethodDispatcher(service), clock=clock, **options).start()
        return session_server_pair(
            server,
            lambda server, handler: websocket.connect(server.url("/"), handler, handshake=handshake),
            service,
            MethodDispatcher,
            clock=clock,
            has_liveness=True,  # heartbeats, or pings to a plain peer
        )

    return make


def poll_pair(**options: Any) -> TransportPair:
    """A long-poll session on a WebSocket server's port (polls held 3 s of real time)."""
    service, clock = Service(), FakeClock()
    server = websocket.WebSocketServer(
        (LOOPBACK, 0), MethodDispatcher(service), clock=clock, poll_hold=3.0, **options
    ).start()
    return session_server_pair(
        server,
        lambda server, handler: connect_poll(f"http://{LOOPBACK}:{server.address[1]}/rpc", handler),
        service,
        MethodDispatcher,
        clock=clock,
        has_liveness=True,  # a silent peer's poll ends with its hold; resume_grace then ends the session
    )


# -- run the checks
TRANSPORTS = {
    "memory": memory,
    "tcp-plain": tcp_pair(handshake=False),
    "tcp-session": tcp_pair(handshake=True),
    "unix-plain": unix_pair(handshake=False),
    "unix-session": unix_pair(handshake=True),
    "websocket-plain": websocket_pair(handshake=False),
    "websocket-session": websocket_pair(handshake=True),
    "http-poll": poll_pair,
}


@pytest.fixture(params=list(TRANSPORTS))
def make_pair(request: pytest.FixtureRequest) -> Iterator[Callable[..., TransportPair]]:
    """``make_pair(**options)`` over the transport named by the param; everything made is closed after."""
    made: list[TransportPair] = []
    factory = TRANSPORTS[request.param]

    def track(pair: TransportPair) -> TransportPair:
        made.append(pair)
        another = pair.another
        pair.another = lambda: track(another())
        return pair

    def make(**options: Any) -> TransportPair:
        return track(factory(**options))

    yield make
    for pair in reversed(made):
        pair.close()


@pytest.mark.parametrize("check", CHECKS, ids=[check.__name__.removeprefix("check_") for check in CHECKS])
def test_conformance(check: Callable[[Callable[..., TransportPair]], None], make_pair: Any) -> None:
    check(make_pair)


def test_check_transport_runs_the_whole_suite_in_one_call() -> None:
    # check_transport(make_pair) is the suite in one call, for a transport's tests outside this file.
    made: list[TransportPair] = []

    def make_pair(**options: Any) -> TransportPair:
        made.append(memory(**options))
        return made[-1]

    try:
        assert check_transport(make_pair) == ["check_peer_vanishes"]  # the loopback has no liveness rule
    finally:
        for pair in made:
            pair.close()


# -- end
