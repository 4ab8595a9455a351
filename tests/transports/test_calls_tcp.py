"""Cancellation and deadlines on the wire, over real TCP sessions (and their absence on peers without the features)."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import gevent
import pytest
from helpers.tcp import HELLO, wait_until

from dispatchers import Registry
from rpcengine import HandlerInterrupted, RequestCancelled, RequestTimeout
from transports.tcp import TcpServer

pytestmark = pytest.mark.timeout(60)

FEATURES_HELLO = b'{"rpcengine": 1, "session": null, "ack": 0, "features": ["cancel", "deadline"]}\n'


class Work:
    """A server's handlers, counting starts, ends and interrupts."""

    def __init__(self) -> None:
        self.started: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()
        self.interrupted = 0
        self.stopped_at: list[float] = []
        self.registry = Registry()

        @self.registry.register
        def echo(request: Any) -> Any:
            self.started["echo"] += 1
            return request.data

        @self.registry.register
        def sleep(request: Any) -> Any:
            self.started["sleep"] += 1
            try:
                gevent.sleep(request.data)
                return request.data
            except HandlerInterrupted:
                self.interrupted += 1
                raise
            finally:
                self.finished["sleep"] += 1
                self.stopped_at.append(time.monotonic())

        @self.registry.register
        def call_back(request: Any) -> Any:
            """Call the client with a short timeout, then cancel a second call: a client that has no
            features must see neither."""
            engine = request.engine
            try:
                engine.request("ping", timeout=0.05)
            except RequestTimeout:
                pass
            call = engine.call("ping", timeout=5)
            call.cancel()
            return "done"


def server_engines(server: TcpServer) -> list[Any]:
    """The engines of a server's live sessions."""
    return [session.engine for session in server.sessions if session.engine is not None]


def idle(server: TcpServer) -> bool:
    """Whether no handler runs or waits on the server, and no inbound request is tracked."""
    return all(e.active_handlers == 0 and not e._inbound for e in server_engines(server))


def test_features_are_negotiated_and_a_server_may_offer_none(tcp_server: Any, tcp_connect: Any) -> None:
    work = Work()
    client = tcp_connect(tcp_server(work.registry))
    assert client.transport.features == frozenset({"cancel", "deadline", "stream"})
    plain = tcp_connect(tcp_server(work.registry, features=frozenset()))
    assert plain.transport.features == frozenset()
    partial = tcp_connect(tcp_server(work.registry), features=frozenset({"cancel"}))
    assert partial.transport.features == frozenset({"cancel"})


def test_a_request_timeout_at_100_ms_stops_the_server_handler_within_20_ms(tcp_server: Any, tcp_connect: Any) -> None:
    work = Work()
    server = tcp_server(work.registry)
    client = tcp_connect(server)
    assert client.request("echo", 1) == 1
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        client.request("sleep", 1, timeout=0.1)
    raised = time.monotonic()
    assert 0.08 <= raised - started <= 0.12, raised - started
    wait_until(lambda: work.finished["sleep"] == 1, timeout=1, what="the server handler stopped")
    assert work.stopped_at[0] - raised <= 0.02, work.stopped_at[0] - raised
    assert work.interrupted == 1
    wait_until(lambda: idle(server), what="the server is idle")


def test_a_thousand_calls_cancelled_at_random_end_once_and_leave_nothing(tcp_server: Any, tcp_connect: Any) -> None:
    work = Work()
    server = tcp_server(work.registry)
    client = tcp_connect(server)
    rng = random.Random(1)
    calls = [client.call("sleep", 1) for _ in range(1000)]
    cancellers = [gevent.spawn_later(rng.uniform(0, 0.05), call.cancel) for call in calls]
    gevent.joinall(cancellers, timeout=5, raise_error=True)
    last_cancel = time.monotonic()
    assert all(c.value is True for c in cancellers)
    outcomes = Counter()
    for call in calls:
        with pytest.raises(RequestCancelled):
            call.get()
        outcomes[type(call.outcome).__name__] += 1
    assert outcomes == {"RequestCancelled": 1000}
    wait_until(lambda: idle(server), timeout=0.1, what="active handlers 0 within 100 ms")
    assert time.monotonic() - last_cancel < 0.1
    assert work.started["sleep"] == work.finished["sleep"], "every started handler's finally ran"
    assert work.started["sleep"] >= 1 and work.interrupted == work.started["sleep"]
    assert client.pending_count == 0
    for engine in server_engines(server):
        assert engine.pending_count == 0 and not engine._early_cancels
    assert client.request("echo", "after", timeout=5) == "after"


def test_a_queued_request_past_its_deadline_never_starts_and_an_overrun_is_interrupted(
    tcp_server: Any, tcp_raw: Any
) -> None:
    work = Work()
    server = tcp_server(work.registry, max_concurrency=2)
    raw = tcp_raw(server.address)
    raw.send(FEATURES_HELLO)
    assert raw.read_message()["features"] == ["cancel", "deadline"]
    raw.send_message([2, 1, "sleep", 0.4])
    raw.send_message([2, 2, "sleep", 0.4])  # both workers busy for 0.4 s
    wait_until(lambda: work.started["sleep"] == 2, what="both workers busy")
    sent = time.monotonic()
    raw.send_message([2, 3, "echo", "late", 100])  # waits for a worker; its caller waits 100 ms
    answer = raw.read_message()
    assert answer[0] == 4 and answer[2] == 3 and answer[3]["error"] == "deadline_exceeded", answer
    assert 0.09 <= time.monotonic() - sent < 0.2
    answers = {raw.read_message()[2] for _ in range(2)}
    assert answers == {1, 2}
    assert work.started["echo"] == 0, "the late request never ran"
    raw.send_message([2, 4, "sleep", 1, 100])  # a free worker: it starts, and overruns
    answer = raw.read_message()
    assert answer[2] == 4 and answer[3]["error"] == "deadline_exceeded"
    assert work.interrupted == 1
    raw.send_message([2, 5, "sleep", 1])
    wait_until(lambda: work.started["sleep"] == 4, what="the fifth runs")
    raw.send_message([5, 6, 5])
    answer = raw.read_message()
    assert answer[2] == 5 and answer[3]["error"] == "cancelled"
    raw.send_message([5, 7, 5])  # finished: ignored
    raw.send_message([2, 8, "echo", "alive"])
    assert raw.read_message()[2:] == [8, "alive"]


@pytest.mark.parametrize("hello", [None, HELLO], ids=["plain", "handshake without features"])
def test_a_peer_without_the_features_never_receives_code_5_or_a_five_item_request(
    tcp_server: Any, tcp_raw: Any, hello: bytes | None
) -> None:
    work = Work()
    server = tcp_server(work.registry)
    raw = tcp_raw(server.address)
    if hello is not None:
        raw.send(hello)
        assert "features" not in raw.read_message()
    raw.send_message([2, 1, "call_back", None])
    received = []
    while True:
        message = raw.read_message()
        received.append(message)
        if message[0] == 3 and message[2] == 1:
            break
    requests = [m for m in received if m[0] == 2]
    assert len(requests) == 2 and all(len(m) == 4 for m in requests), received
    assert all(m[0] != 5 for m in received), received
    # And the strict parser refuses both from such a peer.
    raw.send_message([2, 9, "echo", None, 100])
    answer = raw.read_message()
    assert answer[0] == 4 and answer[2] == 9 and answer[3]["error"] == "invalid_message"
    raw.send_message([5, 10, 9])
    elapsed, _ = raw.wait_closed(5)
    assert elapsed < 5


def test_a_peer_that_floods_expired_requests_and_reads_nothing_is_bounded(
    tcp_server: Any, tcp_raw: Any, tcp_connect: Any
) -> None:
    """Expired requests are answered without running, by one sender: a peer that never reads holds no greenlets."""
    work = Work()
    server = tcp_server(work.registry, max_buffer=65536)
    raw = tcp_raw(server.address, rcvbuf=4096)
    raw.send(FEATURES_HELLO)
    raw.read_message()
    flood = b"".join(b'[2,%d,"echo",null,0]\n' % n for n in range(1, 50_001))  # every one expired on arrival

    def send_all() -> None:
        try:
            raw.sock.sendall(flood)
        except OSError:
            pass

    sender = gevent.spawn(send_all)
    (engine,) = server_engines(server)
    greenlets_before = len([g for g in gc_greenlets() if not g.dead])
    wait_until(lambda: sender.ready() or engine.transport.link.buffered > 65536, 20, what="flood read or backed up")
    wait_until(lambda: not engine._inbound and len(engine._soon or ()) < 100, 10, what="every expired request answered")
    assert work.started["echo"] == 0, "no expired request ran"
    assert len([g for g in gc_greenlets() if not g.dead]) < greenlets_before + 10, "no greenlet per answer"
    other = tcp_connect(server)
    assert other.request("echo", "others are served", timeout=5) == "others are served"
    sender.kill()


def gc_greenlets() -> list[Any]:
    """Every greenlet object alive in this process."""
    import gc

    import greenlet

    return [obj for obj in gc.get_objects() if isinstance(obj, greenlet.greenlet)]
