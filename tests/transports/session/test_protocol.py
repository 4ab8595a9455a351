"""The sans-I/O session core on its own: times are passed in, nothing sleeps, nothing does I/O."""

from __future__ import annotations

from typing import Any

import pytest

from rpcengine.codec import default_codec
from rpcengine.messages import Disconnect, Heartbeat, Notification, Request
from transports.session.budget import MemoryBudget
from transports.session.protocol import SessionProtocol, TimerAction


def make(**options: Any) -> SessionProtocol:
    settings: dict[str, Any] = {
        "handshaken": True,
        "resumable": True,
        "heartbeat_interval": 1.0,
        "heartbeat_timeout": 3.0,
        "resume_grace": 10.0,
        "max_unacked": 100,
        "ack_every": 25,
        "now": 0.0,
    }
    settings.update(options)
    protocol = SessionProtocol(default_codec(), **settings)
    protocol.connection_made(0.0)
    return protocol


def test_next_deadline_is_the_heartbeat_and_the_timer_sends_it() -> None:
    protocol = make()
    assert protocol.next_deadline() == 1.0
    assert protocol.handle_timer(1.0) is TimerAction.NONE
    assert protocol.data_to_send() == [b"[0,0]"]
    assert protocol.next_deadline() == 2.0


def test_silence_past_the_timeout_is_a_dead_peer_and_delivery_pauses_the_clock() -> None:
    protocol = make(heartbeat_interval=None)
    assert protocol.next_deadline() == 3.0
    assert protocol.message_received(Request(1, "echo"), 1.0)
    # The engine is still taking that message (all handlers busy): not reading is not the peer's silence.
    assert protocol.handle_timer(10.0) is TimerAction.NONE
    protocol.delivered(10.0)
    assert protocol.handle_timer(13.0) is TimerAction.NONE
    assert protocol.handle_timer(13.01) is TimerAction.PEER_DEAD


def test_first_message_with_id_0_is_taken_and_a_repeat_is_a_duplicate() -> None:
    protocol = make()
    assert protocol.message_received(Notification(0, "hello"), 0.1)
    protocol.delivered(0.1)
    assert not protocol.message_received(Notification(0, "hello"), 0.2)
    assert protocol.duplicates_dropped == 1


def test_disconnect_marks_the_peer_leaving_and_a_lost_connection_then_ends_the_session() -> None:
    protocol = make()
    assert protocol.message_received(Disconnect(), 0.5)
    assert protocol.peer_leaving and protocol.leaving
    assert protocol.connection_lost(0.6) is False


def test_resume_grace_expires() -> None:
    protocol = make()
    assert protocol.connection_lost(2.0) is True
    assert protocol.next_deadline() == 12.0
    assert protocol.handle_timer(11.9) is TimerAction.NONE
    assert protocol.handle_timer(12.0) is TimerAction.EXPIRED


def test_a_begun_frame_must_complete_in_time() -> None:
    protocol = make(heartbeat_interval=None, heartbeat_timeout=None, frame_timeout=2.0)
    assert protocol.next_deadline() is None
    protocol.partial_started(5.0)
    protocol.partial_started(6.0)  # still the same frame: the deadline does not move
    assert protocol.next_deadline() == 7.0
    assert protocol.handle_timer(6.9) is TimerAction.NONE
    assert protocol.handle_timer(7.0) is TimerAction.FRAME_TIMEOUT
    protocol.partial_done()
    assert protocol.next_deadline() is None


def test_a_plain_session_with_no_message_is_idle() -> None:
    protocol = make(handshaken=False, resumable=False, idle_timeout=30.0)
    assert protocol.next_deadline() == 30.0
    assert protocol.message_received(Request(1, "echo"), 20.0)
    protocol.delivered(20.0)
    assert protocol.handle_timer(49.0) is TimerAction.NONE
    assert protocol.handle_timer(50.0) is TimerAction.IDLE
    # A handshaken session is judged by its heartbeats instead.
    assert make(idle_timeout=30.0, heartbeat_timeout=None, heartbeat_interval=None).next_deadline() is None


def test_a_plain_peer_that_can_be_probed_gets_probes_and_their_answers_count() -> None:
    protocol = make(handshaken=False, resumable=False, probe=True)
    assert protocol.handle_timer(1.0) is TimerAction.PROBE
    protocol.activity(2.5)
    assert protocol.handle_timer(5.0) is TimerAction.PROBE
    assert protocol.handle_timer(5.6) is TimerAction.PEER_DEAD


@pytest.mark.parametrize("acked", [0, 40])
def test_the_outbox_counts_its_bytes_against_the_budget(acked: int) -> None:
    alarms: list[int] = []
    budget = MemoryBudget(1000, lambda: alarms.append(budget.used))
    protocol = make()
    protocol.budget = budget
    for ident in range(1, 51):
        protocol.message_sent(ident, b"x" * 30)
    assert protocol.outbox_bytes == budget.used == 1500
    assert alarms == [1020]  # called once, when the limit was passed
    protocol.message_received(Heartbeat(acked), 1.0)
    assert budget.used == protocol.outbox_bytes == (50 - acked) * 30
    protocol.close()
    assert budget.used == 0


def test_ids_that_arrive_late_are_delivered_once_and_true_duplicates_dropped() -> None:
    # A peer that sends over several connections at once (mushroom's poll client: one POST per
    # message) can deliver a higher id before a lower one; the lower one is not a duplicate.
    protocol = make()
    assert protocol.message_received(Notification(1, "m"), 0.0)
    assert protocol.message_received(Notification(3, "m"), 0.0)
    assert protocol.message_received(Notification(2, "m"), 0.0), "id 2 came late, not twice"
    assert not protocol.message_received(Notification(2, "m"), 0.0), "now it is a duplicate"
    assert not protocol.message_received(Notification(1, "m"), 0.0)
    assert protocol.duplicates_dropped == 2
    assert protocol.last_received == 3
    # Skipped ids are remembered within a bound: a huge jump keeps nothing.
    assert protocol.message_received(Notification(10_000, "m"), 0.0)
    assert not protocol.message_received(Notification(5_000, "m"), 0.0)
