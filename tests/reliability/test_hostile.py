"""Clients that mean harm (the [hardening] reproductions): each one is bounded, and a healthy client keeps working.

Every server runs in a process of its own (``tests/helpers/tcp_server_process.py``)
and the hostile clients are raw sockets. Throughout each test a healthy client
calls ``echo`` in a loop; its worst latency is recorded in the reliability
figures and bounded here.

* D1 abandoned sessions: connections plus detached sessions share
  ``max_connections``, and every queued byte counts against ``max_memory``;
* D2 no progress: a line, or a WebSocket frame, begun and not finished is closed
  at ``frame_timeout``; a plain connection with no message is closed at ``idle_timeout``;
* D4 ``max_unacked`` is checked before a message is queued, for any number of senders;
* D5 session takeover: a resume needs the secret, not just the session id;
* D8 broadcast bursts: readers that keep up get every broadcast, a reader that stops is cut off;
* D10 a dead peer: its end is seen while all handlers are busy, and its queued requests never start.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.subprocess
import pytest
from helpers.tcp import HELLO, RawClient, ServerProcess, wait_until
from helpers.ws import OP_PING, RawWebSocket, frame_bytes

from rpcengine import RpcError
from transports import websocket
from transports.tcp import connect

WS_SERVER_SCRIPT = Path(__file__).with_name("ws_server_process.py")

pytestmark = pytest.mark.timeout(120)

MIB = 1 << 20


class Healthy:
    """A well-behaved client calling ``echo`` in a loop, recording its worst latency and any failure."""

    def __init__(self, address: tuple[str, int] | None = None, engine: Any = None, **options: Any) -> None:
        if engine is None:
            engine = connect(*address, lambda message: None, **options)  # broadcasts are not its business
        self.engine = engine
        self.worst = 0.0
        self.calls = 0
        self.failures: list[str] = []
        self._stopped = False
        self._loop = gevent.spawn(self._run)

    def _run(self) -> None:
        while not self._stopped:
            started = time.perf_counter()
            try:
                assert self.engine.request("echo", self.calls, timeout=5) == self.calls
            except (RpcError, AssertionError) as exc:
                self.failures.append(repr(exc))
                return
            self.worst = max(self.worst, time.perf_counter() - started)
            self.calls += 1
            gevent.sleep(0.005)  # pacing: a person-sized call rate, not a wait for a condition

    def stop(self) -> None:
        """Stop calling; fail if any call failed or none was made."""
        self._stopped = True
        self._loop.join(timeout=10)
        self.engine.close()
        assert not self.failures, self.failures
        assert self.calls > 0


@pytest.fixture
def served():
    """Factory ``served(**options)``: a server process and a healthy client on it; both stopped afterwards."""
    made: list[tuple[ServerProcess, Healthy]] = []

    def make(**options: Any) -> tuple[ServerProcess, Healthy]:
        server = ServerProcess(**options)
        healthy = Healthy(server.address)
        made.append((server, healthy))
        return server, healthy

    yield make
    for server, healthy in made:
        try:
            healthy.stop()
        finally:
            server.kill()


def stats(healthy: Healthy) -> dict[str, Any]:
    """The server's own figures, asked over the healthy client's connection."""
    return healthy.engine.request("stats", None, timeout=10)


def test_d1_abandoned_sessions_stay_within_the_connection_and_memory_budgets(served, figures) -> None:
    # Well under what the six hostile clients can make the server hold (about 75 MiB of answers and
    # read-ahead): the budget is passed, and the sessions holding the most are closed.
    budget = 32 * MIB
    server, healthy = served(max_connections=6, max_memory=budget)
    baseline = stats(healthy)["rss"]
    payload = "x" * (256 << 10)
    peak = 0
    for round_number in range(6):
        raw = RawClient(server.address, rcvbuf=64 << 10)
        raw.sock.settimeout(1.0)  # a server that stops reading this client makes its sends time out
        raw.send(HELLO)
        deadline = time.monotonic() + 1.5
        ident = 1
        try:
            while time.monotonic() < deadline:
                raw.sock.sendall(b'[2,%d,"echo","%s"]\n' % (ident, payload.encode()))
                ident += 1
        except OSError:
            figures.add("hostile", f"d1_round_{round_number}_closed_by_server", 1)  # it held too much
        raw.close(reset=True)
        now = stats(healthy)
        figures.add("hostile", f"d1_round_{round_number}_requests", ident - 1)
        peak = max(peak, now["rss"] - baseline)
        assert now["links"] + now["detached"] <= 6, now
        assert now["queued_bytes"] <= budget * 1.2, now
        figures.add("hostile", f"d1_round_{round_number}_rss_growth_mib", round((now["rss"] - baseline) / MIB, 1))
    figures.add("hostile", "d1_peak_rss_growth_mib", round(peak / MIB, 1))
    over_budget = stats(healthy)["closed_over_budget"]
    figures.add("hostile", "d1_closed_over_memory_budget", over_budget)
    assert over_budget >= 1, "the memory budget was never reached: the test does not exercise it"
    # Sessions abandoned with something unacknowledged wait for a resume: they count against
    # max_connections, and the one detached longest makes room for a new connection.
    evicted_before = stats(healthy)["evicted"]
    for _ in range(8):
        raw = RawClient(server.address)
        raw.handshake()
        raw.send(b'[2,1,"echo","unread"]\n')
        wait_until(lambda: stats(healthy)["largest_outbox"] >= 1, 5, 0.05, "the answer waits in the outbox")
        raw.close(reset=True)
        now = stats(healthy)
        assert now["links"] + now["detached"] <= 6, now
    assert stats(healthy)["evicted"] - evicted_before >= 3
    figures.add("hostile", "d1_detached_sessions_evicted", stats(healthy)["evicted"] - evicted_before)
    figures.worst("hostile", "d1_healthy_worst_ms", healthy.worst * 1000)
    assert peak <= budget * 1.2, f"server memory grew by {peak / MIB:.1f} MiB, budget {budget / MIB:.0f} MiB"


def test_d2_a_begun_line_must_finish_and_a_plain_connection_must_speak(served, figures) -> None:
    server, healthy = served(frame_timeout=2.0, idle_timeout=3.0)
    trickler = RawClient(server.address)
    trickler.send(b'[2,1,"echo",1]\n')
    assert trickler.read_message()[2:] == [1, 1]
    started = time.monotonic()
    trickler.send(b"[1,1," + b"1," * 1000)
    with gevent.Timeout(10, AssertionError("a half-sent line was never closed")):
        try:
            while True:
                trickler.send(b"1,")  # progress in bytes, never a whole message
                gevent.sleep(0.2)
        except OSError:
            pass
    closed_after = time.monotonic() - started
    assert 2.0 - 1.0 <= closed_after <= 2.0 + 1.0, closed_after
    idle = RawClient(server.address)
    idle.send(b'[2,1,"echo",1]\n')
    assert idle.read_message()[2:] == [1, 1]
    started = time.monotonic()
    with pytest.raises(EOFError):
        idle.read_message(timeout=10)
    idle_after = time.monotonic() - started
    assert 3.0 - 1.0 <= idle_after <= 3.0 + 1.0, idle_after
    figures.add("hostile", "d2_half_line_closed_s", round(closed_after, 2))
    figures.add("hostile", "d2_idle_closed_s", round(idle_after, 2))
    figures.worst("hostile", "d2_healthy_worst_ms", healthy.worst * 1000)


@pytest.fixture
def ws_served():
    """Factory ``ws_served(**options)``: a WebSocket server process and a healthy client on it; both stopped after."""
    made: list[tuple[Any, Healthy]] = []

    def make(**options: Any) -> tuple[str, Healthy]:
        process = gevent.subprocess.Popen(
            [sys.executable, str(WS_SERVER_SCRIPT), json.dumps(options)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            with gevent.Timeout(20, AssertionError("the WebSocket server process did not report its port")):
                url = f"ws://127.0.0.1:{int(process.stdout.readline())}/"
            healthy = Healthy(engine=websocket.connect(url))
        except BaseException:
            process.kill()
            raise
        made.append((process, healthy))
        return url, healthy

    yield make
    for process, healthy in made:
        try:
            healthy.stop()
        finally:
            process.kill()
            process.wait(10)


@pytest.mark.parametrize("trickled", ["frame bytes", "whole fragments"])
def test_d2_a_begun_websocket_message_must_finish(ws_served, figures, trickled: str) -> None:
    """A message begun and trickled is closed at ``frame_timeout`` (± 1 s), whether by bytes or by whole fragments.

    Bytes: a frame header announcing 1,000 bytes, then one byte every 0.2 s.
    Fragments: a text frame without FIN, then a complete continuation frame
    (without FIN) every 0.2 s; each is a whole frame, but the message never ends.
    """
    url, healthy = ws_served(frame_timeout=2.0)
    trickler = RawWebSocket(url)
    trickler.send_message([2, 1, "echo", 1])
    assert trickler.read_message()[2:] == [1, 1]
    sock = trickler.sock
    if trickled == "frame bytes":
        sock.sendall(bytes([0x81, 0x80 | 126]) + (1000).to_bytes(2, "big") + b"\0\0\0\0")  # text, masked, 1,000 bytes
        piece = b"1"  # progress in bytes, never a whole frame
    else:
        sock.sendall(frame_bytes(0x1, b'[2,2,"echo",', fin=False))
        piece = frame_bytes(0x0, b"1", fin=False)  # a whole continuation frame, never the last
    started = time.monotonic()
    received = b""

    def trickle() -> None:
        try:
            while True:
                gevent.sleep(0.2)
                sock.sendall(piece)
        except OSError:
            pass

    trickling = gevent.spawn(trickle)
    try:
        # Raw reads: a client protocol would answer a ping in the middle of the half-sent frame.
        with gevent.Timeout(10, AssertionError("a half-sent message was never closed")):
            while b"\x88" not in received:  # the close frame (nothing else is sent meanwhile)
                data = sock.recv(65536)
                if not data:
                    break
                received += data
    finally:
        trickling.kill()
    closed_after = time.monotonic() - started
    trickler.close()
    assert 2.0 - 1.0 <= closed_after <= 2.0 + 1.0, closed_after
    assert b"not completed within" in received, received
    label = "frame" if trickled == "frame bytes" else "fragments"
    figures.add("hostile", f"d2_half_ws_{label}_closed_s", round(closed_after, 2))
    figures.worst("hostile", "d2_ws_healthy_worst_ms", healthy.worst * 1000)


def test_d5_a_stolen_session_id_gets_a_fresh_session(served) -> None:
    server, _healthy = served()
    victim = RawClient(server.address)
    hello = victim.handshake()
    victim.send_message([2, 1, "echo", "mine"])
    assert victim.read_message()[2:] == [1, "mine"]
    thief = RawClient(server.address)
    thief.send(b'{"rpcengine": 1, "session": "%s", "ack": 0}\n' % hello["session"].encode())
    answer = thief.read_message()
    assert answer["resumed"] is False and answer["session"] != hello["session"]
    guessed = RawClient(server.address)
    guessed.send(b'{"rpcengine": 1, "session": "%s", "ack": 0, "secret": "guess"}\n' % hello["session"].encode())
    assert guessed.read_message()["resumed"] is False
    victim.send_message([2, 2, "echo", "still mine"])
    assert victim.read_message()[2:] == [2, "still mine"]


def test_numbers_outside_the_json_grammar_never_reach_a_handler(served, figures) -> None:
    """ujson's own decoder reads these as 0 or 0.0; the default codec refuses them, so ``slow`` never starts."""
    server, healthy = served()
    before = stats(healthy)["slow_started"]
    for number in (b"-", b"00", b"0.", b"0.e0", b"-.0", b"-00"):
        for handshaken in (False, True):
            sender = RawClient(server.address)
            if handshaken:
                sender.handshake()
            sender.send(b'[2,1,"slow",' + number + b"]\n")
            _elapsed, messages = sender.wait_closed(2)
            assert not any(isinstance(m, list) and m[:1] == [3] for m in messages), (number, messages)
            sender.close()
    assert stats(healthy)["slow_started"] == before, "a number outside the grammar reached the handler"
    figures.worst("hostile", "off_grammar_numbers_healthy_worst_ms", healthy.worst * 1000)


def test_d10_a_dead_client_is_seen_at_once_and_its_queued_requests_never_start(served, figures) -> None:
    server, healthy = served(max_concurrency=4, handshake_timeout=10)
    figures_before = stats(healthy)
    before, before_finished = figures_before["slow_started"], figures_before["slow_finished"]
    doomed = RawClient(server.address)
    doomed.send(b"".join(b'[2,%d,"slow",2]\n' % i for i in range(1, 41)))
    wait_until(lambda: stats(healthy)["slow_started"] - before == 4, 5, 0.05, "four handlers busy")
    started = time.monotonic()
    doomed.close(reset=True)
    wait_until(lambda: stats(healthy)["sessions"] == 1, 5, 0.05, "the dead client's session ended")
    seen_after = time.monotonic() - started
    # The four running handlers finish (2 s); none of the 36 queued behind them may start.
    # Once the four running handlers are done, a queued request would have started on their workers.
    finished_before = before_finished
    wait_until(lambda: stats(healthy)["slow_finished"] - finished_before >= 4, 10, 0.05, "the busy handlers finished")
    started_total = stats(healthy)["slow_started"] - before
    assert started_total == 4, f"{started_total - 4} requests of a dead client ran"
    assert seen_after < 1.0, seen_after
    figures.add("hostile", "d10_dead_client_seen_ms", round(seen_after * 1000, 1))
    figures.worst("hostile", "d10_healthy_worst_ms", healthy.worst * 1000)


def test_d4_max_unacked_holds_for_any_number_of_concurrent_senders(served, figures) -> None:
    server, healthy = served(max_unacked=1000, outbox_timeout=20)
    silent = RawClient(server.address)
    silent.handshake()  # then never reads, never acknowledges
    assert healthy.engine.request("flood", 5000, timeout=10) == 1
    wait_until(lambda: stats(healthy)["largest_outbox"] >= 1000, 10, 0.05, "the outbox filled")
    for _ in range(20):
        assert stats(healthy)["largest_outbox"] <= 1000
    figures.add("hostile", "d4_largest_outbox", stats(healthy)["largest_outbox"])
    figures.worst("hostile", "d4_healthy_worst_ms", healthy.worst * 1000)
    silent.close(reset=True)


def test_d4_server_to_client_requests_without_a_timeout_stop_at_max_pending(served, figures) -> None:
    """2,000 requests with no timeout to a silent client: 1,024 wait (the server default), the rest fail at once."""
    server, healthy = served()
    silent = RawClient(server.address)
    silent.handshake()  # then never answers
    wait_until(lambda: stats(healthy)["sessions"] == 2, 5, 0.05, "both sessions up")
    report = healthy.engine.request("swamp", 2000, timeout=10)
    assert report == {"refused": 2000 - 1024, "most_pending": 1024}, report
    figures.add("hostile", "d4_server_requests_pending_per_session", report["most_pending"])
    silent.close(reset=True)


def test_d8_readers_that_keep_up_get_every_broadcast_while_a_stalled_one_is_cut_off(served, figures) -> None:
    count = 100_000
    server, healthy = served(broadcast_timeout=2.0)
    received: list[list[int]] = [[], []]
    readers = [connect(*server.address, lambda message, seen=seen: seen.append(message.data)) for seen in received]
    stalled = RawClient(server.address, rcvbuf=4096)
    stalled.handshake()  # then reads nothing more
    report = healthy.engine.request("burst", count, timeout=110)
    wait_until(lambda: all(len(seen) >= count for seen in received), 30, 0.05, "every broadcast arrived")
    for seen in received:
        assert seen == list(range(count))
    assert report["closed"] >= 1, report
    # The stalled reader cannot read its close reason (its socket is full of broadcasts): the server tells it.
    wait_until(lambda: stats(healthy)["closed_slow_consumer"] >= 1, 10, 0.05, "closed as a slow consumer")
    figures.add("hostile", "d8_broadcasts_per_reader", count)
    figures.add("hostile", "d8_slow_consumers_closed", report["closed"])
    figures.worst("hostile", "d8_healthy_worst_ms", healthy.worst * 1000)
    for reader in readers:
        reader.close()
    stalled.close()


#: Control messages in one flood burst (each alone costs the server a few microseconds).
FLOOD = 10_000
#: Bursts per flood test: the worst latency of the healthy client over all of them is what counts.
FLOOD_BURSTS = 5


def flood_and_check(send_burst: Any, healthy: Healthy) -> None:
    """Send ``FLOOD_BURSTS`` bursts, each once the healthy client made a call since the last one."""
    for _ in range(FLOOD_BURSTS):
        calls = healthy.calls
        send_burst()
        wait_until(lambda calls=calls: healthy.calls > calls + 3, 10, 0.005, "the healthy client went on")


def test_a_heartbeat_flood_does_not_stall_other_connections(served, figures) -> None:
    """10,000 heartbeats ``[0,0]`` in one write (one recv of 60 KB): the hub serves others meanwhile."""
    server, healthy = served()
    flooder = RawClient(server.address)
    flooder.handshake()
    burst = b"[0,0]\n" * FLOOD
    flood_and_check(lambda: flooder.send(burst), healthy)
    flooder.send_message([2, 1, "echo", "after"])  # the flood's connection still works, in order
    assert flooder.read_message()[2:] == [1, "after"]
    flooder.close()
    worst_ms = healthy.worst * 1000
    figures.worst("hostile", "heartbeat_flood_healthy_worst_ms", worst_ms)
    assert worst_ms <= 50, worst_ms


def test_a_ping_flood_does_not_stall_other_connections(ws_served, figures) -> None:
    """10,000 WebSocket pings in one write (one recv of 60 KB): the hub serves others meanwhile."""
    url, healthy = ws_served()
    flooder = RawWebSocket(url)
    burst = frame_bytes(OP_PING) * FLOOD
    flood_and_check(lambda: flooder.send(burst), healthy)
    flooder.send_message([2, 1, "echo", "after"])  # pongs are skipped: the answer still comes
    assert flooder.read_message(timeout=10)[2:] == [1, "after"]
    flooder.close()
    worst_ms = healthy.worst * 1000
    figures.worst("hostile", "ping_flood_healthy_worst_ms", worst_ms)
    assert worst_ms <= 50, worst_ms
