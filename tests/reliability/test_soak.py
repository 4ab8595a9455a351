"""A bounded soak: 100 connections at half the measured throughput, a fault every 10 seconds.

The server runs in this process (so its objects, file descriptors,
sessions and outboxes can be inspected); the load comes from ``peer.py
load`` subprocesses: one with 90 connections that is never touched, and two
"victims" with 5 connections each, one frozen now and then, one killed
(and replaced). All connections are resumable. Faults rotate:

* ``connection killed``: the server drops a random live connection (the
  client resumes it: no call may fail);
* ``client frozen``: victim A is SIGSTOPped for 2 s (no call may fail);
* ``malformed frame``: raw connections send garbage, a bad handshake and a
  bad request (closed, refused, answered with an Error, within 100 ms);
* ``client killed``: victim B is SIGKILLed and a new one started (only its
  calls may fail; they are not counted as failures).

Throughout, a hostile client (:func:`hostile_loop`) abandons sessions with a
full outbox (D1), begins lines it never finishes and keeps the connection open
(D2: each must be closed at ``frame_timeout``, within a second) and tries to
resume other clients' sessions by id (D5); none of it may cost another client
a call.

Duration: ``RPCENGINE_SOAK_SECONDS`` (default 300). At the end: nothing
pending, every outbox empty after a final heartbeat exchange, zero failed
calls outside the injected faults, objects and fds back to the baseline,
zero hub errors. The figures are printed (also without ``-s``) and
recorded in ``last_run.json``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import time

import gevent
import pytest

from .conftest import Figures
from .support import BUDGET, Baseline, LineReader, PeerProcess, TcpWorld, raw_tcp, wait_until

SOAK_SECONDS = float(os.environ.get("RPCENGINE_SOAK_SECONDS", "300"))
FAULT_EVERY = 10.0
SERVER_OPTIONS = {"heartbeat_interval": 1.0, "heartbeat_timeout": 5.0, "resume_grace": 3.0, "frame_timeout": 2.0}
HOSTILE_EVERY = 1.0
CLIENT_OPTIONS = {"heartbeat_interval": 1.0, "heartbeat_timeout": 5.0, "resume_grace": 10.0}
CONNECTIONS = {"main": 90, "victim_a": 5, "victim_b": 5}


def start_load(port: int, connections: int, rate: float) -> PeerProcess:
    """Start a load process and wait until its connections are up."""
    peer = PeerProcess(
        "load",
        "--port",
        str(port),
        "--connections",
        str(connections),
        "--rate",
        str(rate),
        "--call-timeout",
        "10",
        "--max-seconds",
        str(SOAK_SECONDS + 120),
        options=CLIENT_OPTIONS,
    )
    peer.wait_event("connected", 30)
    return peer


def measure_throughput(world: TcpWorld, seconds: float = 3.0) -> float:
    """Run 100 unpaced connections for ``seconds``; return the calls per second they made."""
    with start_load(world.address[1], sum(CONNECTIONS.values()), 0) as peer:
        first = peer.wait_event("stats", 10)
        index = len(peer.events)
        gevent.sleep(seconds)  # measuring over a fixed window is the point here
        last = peer.wait_event("stats", 5, after=index)
        rate = (last["calls"] - first["calls"]) / (last["t"] - first["t"])
        peer.send("stop")
        peer.wait_event("drained", 20)
        heartbeat_all(world)
        peer.send("close")
        peer.wait_event("final", 20)
    wait_until(lambda: len(world.server.sessions) == 0, 10, "measurement sessions closed")
    return rate


def kill_a_connection(world: TcpWorld, rng: random.Random) -> int:
    """Drop the connection of a random attached session (the client resumes it); return how many were live."""
    live = [s for s in world.server.sessions if s.link is not None]
    rng.choice(live).link.close("fault injected: connection killed")  # type: ignore[union-attr]
    return len(live)


def heartbeat_all(world: TcpWorld) -> None:
    """Send a heartbeat (acknowledging everything received) on every server session."""
    for session in list(world.server.sessions):
        session.send_heartbeat()


def inject_malformed(world: TcpWorld) -> list[tuple[str, str, float]]:
    """Send three kinds of bad input on raw connections; return (what, outcome, seconds) for each."""
    results = []
    for label, payload in [
        ("invalid UTF-8", b'[2,1,"echo","\xff\xfe"]\n'),
        ("unsupported handshake", b'{"rpcengine":99}\n'),
        ("bad method type", b"[2,7,42,null]\n"),
        ("random bytes", bytes(random.Random(7).randrange(256) for _ in range(64)) + b"\n"),
    ]:
        sock = raw_tcp(world.address)
        reader = LineReader(sock)
        try:
            start = time.perf_counter()
            sock.sendall(payload)
            line = reader.readline(2)
            elapsed = time.perf_counter() - start
        finally:
            sock.close()
        if line is None:
            outcome = "close"
        else:
            value = json.loads(line)
            outcome = "error" if isinstance(value, list) and value[0] == 4 else "refused" if "error" in value else "?"
        results.append((label, outcome, elapsed))
    return results


def closed_after(sock: socket.socket, reader: LineReader, limit: float) -> float | None:
    """Wait (reading) until the server closes ``sock``; return the seconds it took, None past ``limit``."""
    started = time.monotonic()
    try:
        while reader.readline(max(0.01, started + limit - time.monotonic())) is not None:
            pass
    except TimeoutError:
        return None
    except OSError:
        pass  # a reset is a close too
    finally:
        sock.close()
    return time.monotonic() - started


def hostile_loop(world: TcpWorld, counts: dict[str, int], stop: list[bool], half_lines: list[gevent.Greenlet]) -> None:
    """Until ``stop[0]``: every HOSTILE_EVERY seconds one of D1, D2, D5 against the soak's server.

    Each D2 connection stays open; a greenlet in ``half_lines`` waits for the server to close it.
    """
    victims = [s.session_id for s in world.server.sessions]
    number = 0
    while not stop[0]:
        kind = ("d1_abandoned", "d2_half_line", "d5_stolen_id")[number % 3]
        number += 1
        sock = raw_tcp(world.address)
        try:
            if kind == "d1_abandoned":
                sock.sendall(b'{"rpcengine": 1, "session": null, "ack": 0}\n')
                sock.sendall(b"".join(b'[2,%d,"echo","%s"]\n' % (i, b"x" * 4096) for i in range(1, 51)))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif kind == "d2_half_line":
                reader = LineReader(sock)
                sock.sendall(b'[2,1,"echo",1]\n')  # a plain session first, then a line it never finishes
                assert reader.readline(5.0) is not None
                sock.sendall(b'[2,2,"echo",' + b"1" * 100)
                limit = SERVER_OPTIONS["frame_timeout"] + 5.0
                half_lines.append(gevent.spawn(closed_after, sock, reader, limit))
                sock = None  # closed_after closes it
            else:
                stolen = victims[number % len(victims)].encode()
                sock.sendall(b'{"rpcengine": 1, "session": "%s", "ack": 0}\n' % stolen)
                answer = LineReader(sock).readline(5.0)
                assert answer is not None and b'"resumed":false' in answer.replace(b" ", b""), answer
        finally:
            if sock is not None:
                sock.close()
        counts[kind] += 1
        gevent.sleep(HOSTILE_EVERY)  # the hostile client's own pace


@pytest.mark.timeout(int(SOAK_SECONDS) + 240)
def test_soak(figures: Figures, quiet_logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    """100 connections, half the measured throughput, a fault every 10 s; clean and leak-free at the end."""
    world = TcpWorld(**SERVER_OPTIONS).start()
    peers: dict[str, PeerProcess] = {}
    killed_calls = 0
    faults: dict[str, int] = {"connection_killed": 0, "client_frozen": 0, "malformed_frame": 0, "client_killed": 0}
    fault_log: list[str] = []
    malformed_worst = 0.0
    rng = random.Random(20261123)
    baseline: Baseline | None = None
    try:
        throughput = measure_throughput(world)
        baseline = Baseline.take()
        total = sum(CONNECTIONS.values())
        rate = throughput / 2
        served_before = world.service.calls
        for name, count in CONNECTIONS.items():
            peers[name] = start_load(world.address[1], count, rate * count / total)
        wait_until(lambda: len(world.server.sessions) == total, 10, "100 sessions")
        hostile_counts = {"d1_abandoned": 0, "d2_half_line": 0, "d5_stolen_id": 0}
        hostile_stop = [False]
        half_lines: list[gevent.Greenlet] = []
        hostile = gevent.spawn(hostile_loop, world, hostile_counts, hostile_stop, half_lines)
        started = time.monotonic()
        kinds = list(faults)
        for number in range(int(SOAK_SECONDS // FAULT_EVERY)):
            due = started + (number + 1) * FAULT_EVERY
            gevent.sleep(max(0.0, due - time.monotonic()))  # the schedule: one fault per period
            kind = kinds[number % len(kinds)]
            at = round(time.monotonic() - started, 1)
            if kind == "connection_killed":
                fault_log.append(f"{at}s: killed one of {kill_a_connection(world, rng)} connections")
            elif kind == "client_frozen":
                peers["victim_a"].signal(signal.SIGSTOP)
                gevent.sleep(2.0)  # the fault is a 2-second freeze
                peers["victim_a"].signal(signal.SIGCONT)
                fault_log.append(f"{at}s: froze victim A for 2 s")
            elif kind == "malformed_frame":
                for label, outcome, elapsed in inject_malformed(world):
                    assert outcome in ("close", "error", "refused"), (label, outcome)
                    assert elapsed < BUDGET, (label, elapsed)
                    malformed_worst = max(malformed_worst, elapsed)
                fault_log.append(f"{at}s: 4 malformed inputs, worst {malformed_worst * 1000:.1f} ms")
            else:
                stats = peers["victim_b"].last("stats")
                killed_calls += stats["calls"] if stats else 0
                peers["victim_b"].signal(signal.SIGKILL)
                peers["victim_b"].kill()
                peers["victim_b"] = start_load(world.address[1], CONNECTIONS["victim_b"], rate * 5 / total)
                fault_log.append(f"{at}s: killed victim B, started a new one")
            faults[kind] += 1
        remaining = started + SOAK_SECONDS - time.monotonic()
        if remaining > 0:
            gevent.sleep(remaining)  # run out the configured duration
        soak_took = time.monotonic() - started
        hostile_stop[0] = True
        hostile.join(timeout=15)
        assert hostile.dead and hostile.successful(), hostile.exception
        gevent.joinall(half_lines, timeout=SERVER_OPTIONS["frame_timeout"] + 10)
        half_line_closes = [greenlet.value for greenlet in half_lines]
        frame_timeout = SERVER_OPTIONS["frame_timeout"]
        late = [t for t in half_line_closes if t is None or not frame_timeout - 1.0 <= t <= frame_timeout + 1.0]
        assert half_line_closes and not late, f"half-sent lines closed after {late} s (frame_timeout {frame_timeout})"
        # Drain: stop calling, wait for in-flight calls, final heartbeats both ways.
        for peer in peers.values():
            peer.send("stop")
        drained = {name: peer.wait_event("drained", 30) for name, peer in peers.items()}
        wait_until(
            lambda: all(not s.outbox for s in world.server.sessions if s.link is not None), 10, "server outboxes empty"
        )
        wait_until(lambda: len(world.server.sessions) == total, 15, "killed victims' sessions expired")
        server_unacked = sum(len(s.outbox) for s in world.server.sessions)
        server_pending = sum(s.engine.pending_count for s in world.server.sessions if s.engine is not None)
        heartbeat_all(world)
        for peer in peers.values():
            peer.send("close")
        final = {name: peer.wait_event("final", 30) for name, peer in peers.items()}
        wait_until(lambda: len(world.server.sessions) == 0, 15, "every session closed after Disconnect")
        for peer in peers.values():
            peer.process.wait(timeout=15)
        served = world.service.calls - served_before
    finally:
        for peer in peers.values():
            peer.kill()
        world.stop()
    peers.clear()
    assert baseline is not None
    left = baseline.wait_back(15)
    calls = sum(event["calls"] for event in final.values()) + killed_calls
    failures_outside_faults = final["main"]["failures"] + final["victim_a"]["failures"]
    figures_now = {
        "soak_seconds": round(soak_took, 1),
        "connections": total,
        "measured_throughput_calls_per_s": round(throughput),
        "target_rate_calls_per_s": round(rate),
        "achieved_rate_calls_per_s": round(calls / soak_took),
        "calls_made": calls,
        "calls_served": served,
        "failed_calls_outside_faults": failures_outside_faults,
        "failed_calls_of_killed_victims": final["victim_b"]["failures"],
        "faults_survived": sum(faults.values()),
        **{f"hostile_{kind}": count for kind, count in hostile_counts.items()},
        "hostile_d2_closed_s_min_max": [round(min(half_line_closes), 2), round(max(half_line_closes), 2)],
        **{f"fault_{kind}": count for kind, count in faults.items()},
        "malformed_worst_ms": round(malformed_worst * 1000, 2),
        "pending_at_end": server_pending + sum(event["pending"] for event in drained.values()),
        "unacknowledged_at_end": server_unacked + sum(event["unacked"] for event in final.values()),
        "leaks_found": len(left),
    }
    for key, value in figures_now.items():
        figures.set("soak", key, value)
    with capsys.disabled():
        print("\n[soak] " + ", ".join(f"{key}={value}" for key, value in figures_now.items()))
        for line in fault_log:
            print(f"[soak]   {line}")
    assert failures_outside_faults == 0, (final["main"], final["victim_a"])
    assert figures_now["pending_at_end"] == 0, drained
    assert figures_now["unacknowledged_at_end"] == 0, (server_unacked, final)
    assert not left, f"objects or fds left behind: {left}"
    assert calls > 0 and served > 0
