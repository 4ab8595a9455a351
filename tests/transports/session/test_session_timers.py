"""Session timers, acknowledgement and resend, driven by an injected clock through ``Session.tick``.

No socket and no sleeping: the link writes into a list, and the session's
own timer greenlet is disabled so that only the test calls ``tick``.
"""

from __future__ import annotations

from typing import Any

import gevent
import pytest
import ujson
from helpers.tcp import call_quietly, wait_until

from rpcengine.engine import Engine
from rpcengine.errors import ConnectionLost, OutboxFull
from transports.link import SocketLink
from transports.session import Session
from transports.session.config import SessionConfig

pytestmark = pytest.mark.timeout(30)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeSocket:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def sendall(self, data: bytes) -> None:
        if self.closed:
            raise OSError("closed")
        self.data += data

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class LineLink(SocketLink):
    def __init__(self) -> None:
        super().__init__(FakeSocket(), ("fake", 1))

    def frame_batch(self, payloads: list[bytes]) -> bytes:
        return b"".join(p + b"\n" for p in payloads)

    def written(self) -> list[Any]:
        """Flush, then return every message written so far (and forget them)."""
        self.flush_quietly(1)
        lines = bytes(self.sock.data).splitlines()
        self.sock.data.clear()
        return [ujson.loads(line) for line in lines]


@pytest.fixture(autouse=True)
def no_timer_greenlet(monkeypatch):
    monkeypatch.setattr(Session, "_arm_timer", lambda self: None)


def make_session(clock: FakeClock, resumable: bool = True, handshaken: bool | None = None, **options: Any):
    config = SessionConfig().with_options(**options)
    session = Session(config, resumable=resumable, handshaken=handshaken, clock=clock, session_id="s1")
    calls: list[Any] = []
    engine = Engine(session, lambda request: calls.append(request.data) or request.data)
    link = LineLink()
    session.attach(link)
    return session, engine, link, calls


def test_heartbeat_goes_out_once_the_interval_has_passed():
    clock = FakeClock()
    session, _, link, _ = make_session(clock, heartbeat_interval=5.0, heartbeat_timeout=15.0)
    session.frame_received(b'[1,7,"note",null]')
    clock.now += 4.9
    session.tick(clock.now)
    assert link.written() == []
    clock.now += 0.1
    session.tick(clock.now)
    assert link.written() == [[0, 7]]
    clock.now += 1.0
    session.tick(clock.now)
    assert link.written() == []


def test_plain_session_never_sends_heartbeats_nor_times_out():
    clock = FakeClock()
    session, _, link, _ = make_session(clock, resumable=False, heartbeat_interval=1.0, heartbeat_timeout=2.0)
    clock.now += 100
    session.tick(clock.now)
    assert link.written() == []
    assert not link.closed and not session.closed


def test_peer_silent_past_timeout_detaches_a_resumable_session():
    clock = FakeClock()
    session, engine, link, _ = make_session(clock, heartbeat_interval=1.0, heartbeat_timeout=3.0, resume_grace=10.0)
    clock.now += 3.0
    session.tick(clock.now)
    assert not link.closed
    clock.now += 0.01
    session.tick(clock.now)
    assert link.closed and "no frame from the peer" in link.close_reason
    assert session.detached and not engine.closed


def test_peer_silent_past_timeout_closes_a_session_that_cannot_resume_and_fails_its_requests():
    clock = FakeClock()
    session, engine, link, _ = make_session(
        clock, resumable=False, handshaken=True, heartbeat_interval=1.0, heartbeat_timeout=3.0
    )
    assert not link.closed
    pending = gevent.spawn(call_quietly, engine.request, "work", None, timeout=30)
    wait_until(lambda: engine.pending_count == 1)
    clock.now += 3.5
    session.tick(clock.now)
    assert session.closed and engine.closed
    assert isinstance(pending.get(timeout=5), ConnectionLost)


def test_frames_from_the_peer_postpone_the_liveness_deadline():
    clock = FakeClock()
    session, _, link, _ = make_session(clock, heartbeat_interval=None, heartbeat_timeout=3.0)
    for _ in range(5):
        clock.now += 2.0
        session.frame_received(b"[0,0]")
        session.tick(clock.now)
    assert not link.closed


def test_session_not_resumed_within_grace_closes_and_fails_pending_requests():
    clock = FakeClock()
    session, engine, link, _ = make_session(clock, heartbeat_interval=None, heartbeat_timeout=None, resume_grace=30.0)
    pending = gevent.spawn(call_quietly, engine.request, "work", None, timeout=60)
    wait_until(lambda: engine.pending_count == 1)
    link.close("cable pulled")
    assert session.detached
    clock.now += 29.9
    session.tick(clock.now)
    assert session.detached and engine.pending_count == 1
    clock.now += 0.1
    session.tick(clock.now)
    assert session.closed and "not resumed" in session.close_reason
    assert isinstance(pending.get(timeout=5), ConnectionLost)


def test_receiving_ack_every_messages_sends_an_acknowledgement_at_once():
    clock = FakeClock()
    session, _, link, calls = make_session(clock, max_unacked=8, heartbeat_interval=60.0)
    assert session.config.ack_every == 2
    session.frame_received(b'[1,1,"n",1]')
    assert link.written() == []
    session.frame_received(b'[1,2,"n",2]')
    assert link.written() == [[0, 2]]
    wait_until(lambda: calls == [1, 2])


def test_duplicate_ids_are_dropped_on_a_resumable_session():
    clock = FakeClock()
    session, _, _, calls = make_session(clock)
    for frame in (b'[1,1,"n",1]', b'[1,2,"n",2]', b'[1,2,"n",2]', b'[1,1,"n",1]', b'[1,3,"n",3]'):
        session.frame_received(frame)
    wait_until(lambda: len(calls) == 3)
    assert calls == [1, 2, 3] and session.duplicates_dropped == 2


def test_acknowledged_messages_leave_the_outbox_and_the_rest_are_resent_in_order_on_attach():
    clock = FakeClock()
    session, engine, link, _ = make_session(clock)
    for i in range(5):
        engine.notify("n", i)
    assert [m[1] for m in link.written()] == [1, 2, 3, 4, 5]
    session.frame_received(b"[0,2]")
    assert [ident for ident, _ in session.outbox] == [3, 4, 5]
    link.close("lost")
    engine.notify("n", 5)
    new_link = LineLink()
    session.attach(new_link, peer_ack=3)
    assert [m[1:] for m in new_link.written()] == [[4, "n", 3], [5, "n", 4], [6, "n", 5]]


def test_attaching_a_link_that_already_closed_detaches_instead_of_waiting_on_it_forever():
    clock = FakeClock()
    config = SessionConfig(resume_grace=5.0)
    session = Session(config, clock=clock, session_id="s2")
    Engine(session, lambda request: None)
    link = LineLink()
    link.close("write failed: broken pipe")
    session.attach(link)
    assert session.link is None and session.detached
    clock.now += 5.0
    session.tick(clock.now)
    assert session.closed


def test_error_reply_to_invalid_request_does_not_block_the_reader_on_a_full_outbox():
    clock = FakeClock()
    session, engine, link, _ = make_session(clock, max_unacked=2, outbox_timeout=30.0, heartbeat_interval=None)
    engine.notify("n", 1)
    engine.notify("n", 2)
    link.written()
    with gevent.Timeout(2, AssertionError("frame_received blocked waiting for outbox room")):
        session.frame_received(b'[2,9,7,"method is not a string"]')
    reply = link.written()
    assert len(reply) == 1
    assert reply[0][0] == 4 and reply[0][2] == 9 and reply[0][3]["error"] == "invalid_message"


def test_sender_gets_outbox_full_when_the_peer_acknowledges_nothing():
    clock = FakeClock()
    _, engine, _, _ = make_session(clock, max_unacked=3, outbox_timeout=0.0)
    for i in range(3):
        engine.notify("n", i)
    with pytest.raises(OutboxFull):
        engine.notify("n", 3)
