"""The transport conformance suite: the checks every transport must pass, unchanged.

As trio's ``check_two_way_stream`` does for streams, each ``check_*``
function below states one rule and tests it on pairs a factory makes. A
transport's tests supply that factory, ``make_pair(**options) ->
TransportPair``, and run every check on it::

    import pytest
    from helpers.conformance import CHECKS, TransportPair

    @pytest.fixture
    def make_pair():
        pairs = []
        def make(**options):
            pair = build_my_pair(**options)  # a TransportPair, both engines serving MethodDispatcher(pair.service)
            pairs.append(pair)
            return pair
        yield make
        for pair in pairs:
            pair.close()

    @pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
    def test_conformance(check, make_pair):
        check(make_pair)

``options`` are :class:`~transports.session.config.SessionConfig` field
names (``max_message_size``, ``heartbeat_interval``, ``heartbeat_timeout``,
``resume_grace``, ``drain_timeout``); they apply to the server side, and a
transport without such a setting ignores it. For a transport built on
:class:`~transports.link.SocketLink` and
:class:`~transports.session.server.SessionServer`, :func:`session_server_pair`
builds the pair from a started server and a connect function.

The rules checked (the same for loopback, TCP and WebSocket):

* messages go both ways: requests, answers, notifications;
* closing either side fails the pending requests of *both* sides with
  :class:`~rpcengine.errors.ConnectionLost`;
* a peer that vanishes (stops reading and writing, socket left open) is
  declared dead after ``heartbeat_timeout`` on the injected clock, where the
  transport has a liveness rule;
* an oversize message closes its connection; the server goes on serving;
* bad input that names a request id is answered with an ``invalid_message``
  Error and the connection goes on;
* bad input without an id closes the connection, once what came before it
  is answered;
* a cancelled call and a timed-out call end at once, exactly once; where
  both ends negotiated the ``cancel`` feature (the same features on both
  sides) the peer's handler is interrupted, else it runs on untouched, and
  the connection goes on either way;
* a handler's generator reaches the caller of ``engine.stream`` item by
  item, in order, within the window, where both ends negotiated the
  ``stream`` feature (else as one list); leaving the loop early closes the
  generator where the items stream.

Waits are on conditions, bounded; no check sleeps on real time for a timeout.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gevent
import pytest
from gevent.event import Event

from helpers.tcp import call_quietly, wait_until
from rpcengine import CANCEL, Engine, RequestCancelled, RequestTimeout
from rpcengine.errors import ConnectionLost
from rpcengine.features import STREAM
from rpcengine.messages import Error, Message, Response

__all__ = [
    "CHECKS",
    "FakeClock",
    "MakePair",
    "Service",
    "TransportPair",
    "check_cancel_and_timeout",
    "check_close_from_client",
    "check_close_from_server",
    "check_garbage_with_id",
    "check_garbage_without_id",
    "check_oversize_message",
    "check_peer_vanishes",
    "check_send_and_receive",
    "check_stream",
    "check_transport",
    "session_server_pair",
]

#: Bound on every wait for something the transport does at once (real seconds).
PROMPTLY = 5.0
#: Bound on a blocked ``wait`` call, so that a broken transport cannot hang a test.
WAIT_LIMIT = 20.0


class FakeClock:
    """A clock that moves only when told: inject it as a server's ``clock=``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds


class Service:
    """What both engines of every pair serve (through ``MethodDispatcher(service)``).

    ``echo`` returns its data; ``wait`` blocks until :meth:`release` (bounded
    by ``WAIT_LIMIT``); the notification ``note`` is recorded. State is kept
    per engine (the one that handles the call), so one Service may serve
    many pairs.
    """

    def __init__(self) -> None:
        self.gate = Event()
        self.waiting: defaultdict[Engine, int] = defaultdict(int)
        self.notes: defaultdict[Engine, list[Any]] = defaultdict(list)
        self.streams_ended: defaultdict[Engine, int] = defaultdict(int)

    def rpc_echo(self, request: Any) -> Any:
        return request.data

    def rpc_wait(self, request: Any) -> Any:
        engine = request.engine
        self.waiting[engine] += 1
        try:
            self.gate.wait(WAIT_LIMIT)
        finally:
            self.waiting[engine] -= 1
        return request.data

    def rpc_note(self, notification: Any) -> None:
        self.notes[notification.engine].append(notification.data)

    def rpc_count(self, request: Any) -> Any:
        """Yield 0, 1, ... up to ``data`` (a stream), counting the generators that ended, per engine."""
        engine = request.engine

        def generate() -> Any:
            try:
                yield from range(request.data)
            finally:
                self.streams_ended[engine] += 1

        return generate()

    def release(self) -> None:
        """Let every blocked ``wait`` return (and every later one return at once)."""
        self.gate.set()


@dataclass
class TransportPair:
    """Two connected engines over the transport under test, and the means to misbehave as the client.

    * ``client``, ``server``: the two engines of one connection (``server``
      is the server-side engine of *this* connection), both serving ``service``;
    * ``inject(*frames)``: deliver raw bytes to the server as frames (a
      line each, a text message each) from the client side, bypassing the
      client's codec; on a byte stream, all in one write;
    * ``vanish()``: the client stops reading and writing without closing its socket;
    * ``clock``: the server's injected clock (None if it takes none);
      :meth:`advance` moves it and runs the server's timed work;
    * ``has_liveness``: whether the server judges the client's silence;
    * ``another()``: a new pair to the same server (the server survived);
    * ``close()``: tear down what this pair made (servers stopped); idempotent.
    """

    client: Engine
    server: Engine
    service: Service
    inject: Callable[..., None]
    vanish: Callable[[], None]
    another: Callable[[], TransportPair]
    close: Callable[[], None]
    clock: FakeClock | None = None
    has_liveness: bool = False

    def advance(self, seconds: float, step: float = 0.5) -> None:
        """Move the server's clock by ``seconds`` in steps of ``step``, running its timed work after each step."""
        clock = self.clock
        assert clock is not None, "this pair's server takes no clock"
        handle_timer = getattr(self.server.transport, "handle_timer", None)
        remaining = seconds
        while remaining > 1e-9:
            delta = min(step, remaining)
            clock.advance(delta)
            remaining -= delta
            if handle_timer is not None:
                handle_timer(clock())
            gevent.sleep(0)


#: ``make_pair(**options)`` returns a new connected pair; options go to the server side.
MakePair = Callable[..., TransportPair]

_CLOSED = "closed"


def _record(engine: Engine) -> list[Any]:
    """Return a list that receives every message ``engine`` gets, then ``"closed"`` when it ends."""
    events: list[Any] = []
    handle = engine.handle_message

    def recording(message: Message) -> None:
        events.append(message)
        handle(message)

    engine.handle_message = recording  # type: ignore[method-assign]
    engine.on_close(lambda _engine: events.append(_CLOSED))
    return events


def _spawn_wait(engine: Engine, data: str) -> gevent.Greenlet:
    """Call ``wait`` on the peer of ``engine`` on a new greenlet; its value is the result or the exception."""
    return gevent.spawn(call_quietly, engine.request, "wait", data, timeout=WAIT_LIMIT)


def _joined(*greenlets: gevent.Greenlet) -> list[Any]:
    """Wait (bounded) for ``greenlets`` and return their values."""
    gevent.joinall(greenlets, timeout=PROMPTLY)
    assert all(g.ready() for g in greenlets), "a pending request was not failed in time"
    return [g.value for g in greenlets]


# -- the checks -----------------------------------------------------------


def check_send_and_receive(make_pair: MakePair) -> None:
    """Requests are answered and notifications arrive, in both directions."""
    pair = make_pair()
    data = {"text": "héllo", "list": [1, 2.5, None, True]}
    assert pair.client.request("echo", data, timeout=PROMPTLY) == data
    assert pair.server.request("echo", ["from", "the", "server"], timeout=PROMPTLY) == ["from", "the", "server"]
    pair.client.notify("note", "to the server")
    pair.server.notify("note", "to the client")
    notes = pair.service.notes
    wait_until(lambda: notes[pair.server] and notes[pair.client], PROMPTLY, what="both notifications")
    assert notes[pair.server] == ["to the server"]
    assert notes[pair.client] == ["to the client"]


def _check_close(make_pair: MakePair, closing: Callable[[TransportPair], Engine]) -> None:
    """Close the side ``closing`` names while a request waits each way: both fail with ConnectionLost."""
    pair = make_pair()
    from_client = _spawn_wait(pair.client, "client waits")
    from_server = _spawn_wait(pair.server, "server waits")
    waiting = pair.service.waiting
    wait_until(lambda: waiting[pair.server] == 1 and waiting[pair.client] == 1, PROMPTLY, what="both handlers blocked")
    closing(pair).close()
    client_result, server_result = _joined(from_client, from_server)
    assert isinstance(client_result, ConnectionLost), client_result
    assert isinstance(server_result, ConnectionLost), server_result
    wait_until(lambda: pair.client.closed and pair.server.closed, PROMPTLY, what="both engines closed")
    pair.service.release()


def check_close_from_client(make_pair: MakePair) -> None:
    """The client closes while a request waits each way: the pending requests on both sides fail."""
    _check_close(make_pair, lambda pair: pair.client)


def check_close_from_server(make_pair: MakePair) -> None:
    """The server side closes the connection while a request waits each way: both fail."""
    _check_close(make_pair, lambda pair: pair.server)


def check_peer_vanishes(make_pair: MakePair) -> None:
    """A client that stops reading and writing is declared dead after heartbeat_timeout on the server's clock.

    The server's pending request to it then fails with ConnectionLost; a
    resumable session is first kept for ``resume_grace``. Only the
    injected clock moves: nothing sleeps for the timeout. The clock moves
    faster than the network answers, so the check relies on ``vanish()``
    really silencing the client: a probe answered late would go unseen.
    """
    timeout, grace = 3.0, 2.0
    pair = make_pair(heartbeat_timeout=timeout, heartbeat_interval=1.0, resume_grace=grace)
    if not pair.has_liveness:
        pytest.skip("no liveness rule on this transport: there is no probe a plain peer answers")
    pending = _spawn_wait(pair.server, "to a peer that vanishes")
    wait_until(lambda: pair.service.waiting[pair.client] == 1, PROMPTLY, what="the client handler blocked")
    pair.vanish()
    transport = pair.server.transport
    pair.advance(timeout - 0.5)
    assert not pair.server.closed and not getattr(transport, "detached", False), "declared dead too early"
    pair.advance(0.6)
    wait_until(
        lambda: pair.server.closed or getattr(transport, "detached", False), PROMPTLY, what="the peer declared dead"
    )
    if not pair.server.closed:  # a resumable session waits for a resume first
        assert not pending.ready(), "a detached session keeps its pending requests"
        pair.advance(grace + 0.5)
    wait_until(lambda: pair.server.closed, PROMPTLY, what="the server engine closed")
    (result,) = _joined(pending)
    assert isinstance(result, ConnectionLost), result
    pair.service.release()


def check_oversize_message(make_pair: MakePair) -> None:
    """A message over max_message_size closes its connection unread; the server serves a new pair."""
    pair = make_pair(max_message_size=4096, drain_timeout=1.0)
    big = b'[1,%d,"note","%s"]' % (pair.client.next_message_id(), b"x" * 5000)
    pair.inject(big)
    # Sent right behind the oversize message: never read, so it fails when the connection ends.
    with pytest.raises(ConnectionLost):
        pair.client.request("echo", "behind the big one", timeout=PROMPTLY)
    wait_until(lambda: pair.client.closed and pair.server.closed, PROMPTLY, what="both engines closed")
    assert pair.service.notes[pair.server] == [], "the oversize notification was delivered"
    again = pair.another()
    assert again.client.request("echo", "still serving", timeout=PROMPTLY) == "still serving"


def check_garbage_with_id(make_pair: MakePair) -> None:
    """An invalid request whose id can be read gets an invalid_message Error; the connection goes on."""
    pair = make_pair()
    events = _record(pair.client)
    pair.inject(b'[2, 77, "", null]')  # an empty method name

    def answer() -> Error | None:
        errors = [m for m in events if type(m) is Error and m.request_message_id == 77]
        return errors[0] if errors else None

    wait_until(answer, PROMPTLY, what="the Error answering request 77")
    error = answer()
    assert error is not None and error.data["error"] == "invalid_message", error
    assert pair.client.request("echo", "still open", timeout=PROMPTLY) == "still open"
    assert pair.server.request("echo", "both ways", timeout=PROMPTLY) == "both ways"
    assert not pair.client.closed and not pair.server.closed


#: Bad input without a request id: not JSON, an unknown message code, an object after the handshake.
GARBAGE_WITHOUT_ID = (b"not json", b"[9,1]", b'{"a":1}')


def check_garbage_without_id(make_pair: MakePair) -> None:
    """Bad input without an id closes the connection, after answering the request sent just before it.

    The request and the garbage go in one write (two consecutive frames
    where frames are messages), once for each kind of garbage.
    """
    for garbage in GARBAGE_WITHOUT_ID:
        _check_garbage_closes(make_pair(drain_timeout=1.0), garbage)


def _check_garbage_closes(pair: TransportPair, garbage: bytes) -> None:
    """Send a valid request and ``garbage`` together: the request is answered, then the connection closes."""
    events = _record(pair.client)
    ident = pair.client.next_message_id()  # numbered as the client numbers its messages
    pair.inject(b'[2,%d,"echo","x"]' % ident, garbage)
    wait_until(lambda: pair.client.closed and pair.server.closed, PROMPTLY, what=f"closed after {garbage!r}")
    answers = [m for m in events if type(m) is Response and m.request_message_id == ident]
    assert answers, f"no answer to the request sent before {garbage!r}: {events}"
    assert answers[0].data == "x"
    assert events.index(answers[0]) < events.index(_CLOSED), events


#: Every check, in the order they are best read.
def check_cancel_and_timeout(make_pair: MakePair) -> None:
    """Cancel and timeout end a call once; with the cancel feature the peer's handler stops too."""
    pair = make_pair()
    client, server, waiting = pair.client, pair.server, pair.service.waiting
    assert client.transport.features == server.transport.features, "both ends use the same features"
    interrupts = CANCEL in client.transport.features
    call = client.call("wait", "cancel me", timeout=WAIT_LIMIT)
    wait_until(lambda: waiting[server] == 1, PROMPTLY, what="the handler runs")
    ended = []
    call.add_done_callback(ended.append)
    assert call.cancel() and not call.cancel()
    with pytest.raises(RequestCancelled):
        call.get()
    if interrupts:
        wait_until(lambda: waiting[server] == 0, PROMPTLY, what="the cancelled handler was interrupted")
    with pytest.raises(RequestTimeout):
        client.request("wait", "time me out", timeout=0.05)
    expected = 0 if interrupts else 2
    wait_until(lambda: waiting[server] == expected, PROMPTLY, what="the handlers' state")
    assert client.request("echo", "still here", timeout=PROMPTLY) == "still here"
    wait_until(lambda: ended == [call], PROMPTLY, what="the done callback ran once")
    assert client.pending_count == 0


def check_stream(make_pair: MakePair) -> None:
    """A generator's items reach the caller in order, within the window; leaving early closes it where it streams."""
    pair = make_pair()
    client, server, ended = pair.client, pair.server, pair.service.streams_ended
    streaming = STREAM in client.transport.features and CANCEL in client.transport.features
    stream = client.stream("count", 2000, timeout=PROMPTLY, window=8)
    assert stream.streaming == streaming
    most = 0
    for expected, item in enumerate(stream):
        assert item == expected
        most = max(most, len(stream.buffered))
    assert stream.consumed == 2000
    if streaming:
        assert most <= 8
    wait_until(lambda: ended[server] == 1, PROMPTLY, what="the first generator ended")
    if streaming:
        for index, _ in enumerate(client.stream("count", 10**9, timeout=PROMPTLY)):
            if index == 5:
                break
        wait_until(lambda: ended[server] == 2, PROMPTLY, what="leaving the loop closed the generator")
    assert client.request("echo", "still here", timeout=PROMPTLY) == "still here"
    assert client.pending_count == 0


CHECKS: tuple[Callable[[MakePair], None], ...] = (
    check_send_and_receive,
    check_cancel_and_timeout,
    check_stream,
    check_close_from_client,
    check_close_from_server,
    check_peer_vanishes,
    check_oversize_message,
    check_garbage_with_id,
    check_garbage_without_id,
)


def check_transport(make_pair: MakePair) -> list[str]:
    """Run every check in turn (outside pytest's parametrization); return the names of those skipped."""
    skipped = []
    for check in CHECKS:
        try:
            check(make_pair)
        except pytest.skip.Exception:
            skipped.append(check.__name__)
    return skipped


# -- pairs over a SessionServer -------------------------------------------


def _new_session_engine(server: Any, known: set[Any]) -> Engine:
    """Wait (bounded) for the one session ``server`` has that is not in ``known``; return its engine."""
    fresh: list[Any] = []

    def appeared() -> bool:
        fresh[:] = [s for s in server.sessions if s not in known and s.engine is not None]
        return bool(fresh)

    wait_until(appeared, PROMPTLY, what="the server-side session")
    assert len(fresh) == 1, fresh
    return fresh[0].engine  # type: ignore[no-any-return]


def _inject_through_link(client: Engine, frames: Iterable[bytes]) -> None:
    """Write ``frames`` on the client's current link as it frames messages, in one socket write."""
    link = client.transport.link  # type: ignore[attr-defined]
    link.write_many(list(frames))


def _vanish_link(client: Engine) -> None:
    """Make the client's link deaf and mute, its socket left open.

    Whatever arrives is read off the socket and dropped before anything
    answers it (no message reaches the client's session, and a WebSocket
    pong goes nowhere); whatever would be written is dropped. Killing the
    read greenlet instead would close a WebSocket link's socket (its read
    loop closes it on the way out), which the server would see at once.
    """
    link = client.transport.link  # type: ignore[attr-defined]
    link.detach_callbacks()
    link.send_nowait = lambda data: len(data)  # taken whole: nothing is left for a writer
    link.send_bytes = lambda data: None


def session_server_pair(
    server: Any,
    connect: Callable[[Any, Any], Engine],
    service: Service,
    make_handler: Callable[[Service], Any],
    *,
    clock: FakeClock | None,
    has_liveness: bool,
) -> TransportPair:
    """Return a pair whose client ``connect(server, rpc_handler)`` made, on a started server serving ``service``.

    For transports built on :class:`~transports.link.SocketLink` (the
    client engine's transport is a Session with a ``link``) and
    :class:`~transports.session.server.SessionServer` (``server.sessions``).
    ``make_handler(service)`` is the rpc handler of each client. The first
    pair's ``close()`` also stops the server (within one second).
    """
    owner: list[TransportPair] = []

    def make() -> TransportPair:
        known = set(server.sessions)
        client = connect(server, make_handler(service))
        # One round trip: a plain client's session exists only once its first message arrived.
        assert client.request("echo", "ready", timeout=PROMPTLY) == "ready"
        server_engine = _new_session_engine(server, known)

        def close() -> None:
            service.release()
            client.close()
            if pair is owner[0]:
                server.stop(timeout=1.0)

        pair = TransportPair(
            client=client,
            server=server_engine,
            service=service,
            inject=lambda *frames: _inject_through_link(client, frames),
            vanish=lambda: _vanish_link(client),
            another=make,
            close=close,
            clock=clock,
            has_liveness=has_liveness,
        )
        if not owner:
            owner.append(pair)
        return pair

    return make()
