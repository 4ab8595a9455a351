"""The load scenarios (A, B, Bpool, C, C1, D), run inside the client worker against any System.

Each ``run_*`` function performs one timed repetition and returns a
:class:`Rep` with the number of calls, the elapsed wall time of the timed
phase, the CPU time both processes spent in it (from a :class:`Meter`) and
the number of failed calls. In scenario D the timed phase starts once all
connections are open and ends when the last call returned; connecting and
closing are outside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import Event

from benchmarks.base import Conn, System, cpu_seconds, payload_for

#: Callers sharing one connection in scenario B, and connections (one caller each) in Bpool.
B_CALLERS = 100
#: Connections in scenario D.
D_CONNECTIONS = 1000
#: Sequential calls per connection in scenario D.
D_CALLS = 100


@dataclass
class Rep:
    """One timed repetition."""

    calls: int
    seconds: float
    errors: int = 0
    setup_seconds: float = 0.0
    first_error: str = ""
    client_cpu: float = 0.0
    server_cpu: float = 0.0


class Meter:
    """CPU seconds used by this process and by the server between :meth:`start` and :meth:`stop`."""

    def __init__(self, server_cpu: Callable[[], float]) -> None:
        self.server_cpu = server_cpu
        self.client_start = self.server_start = 0.0

    def start(self) -> None:
        """Take the starting readings (the server's through the control channel)."""
        self.server_start = self.server_cpu()
        self.client_start = cpu_seconds()

    def stop(self, rep: Rep) -> Rep:
        """Store the CPU used since :meth:`start` in ``rep`` and return it."""
        rep.client_cpu = cpu_seconds() - self.client_start
        rep.server_cpu = self.server_cpu() - self.server_start
        return rep


def run_sequential(conn: Conn, payload: Any, duration: float, meter: Meter) -> Rep:
    """A, C and C1: one caller, sequential calls for ``duration`` seconds."""
    meter.start()
    calls = 0
    start = time.perf_counter()
    deadline = start + duration
    now = start
    while now < deadline:
        for _ in range(8):
            conn.call(payload)
        calls += 8
        now = time.perf_counter()
    return meter.stop(Rep(calls, now - start))


def run_concurrent(conns: list[Conn], payload: Any, duration: float, meter: Meter) -> Rep:
    """B and Bpool: one greenlet per entry of ``conns`` (B: one object repeated), calling for ``duration``."""
    counts = [0] * len(conns)
    errors: list[str] = []
    meter.start()
    start = time.perf_counter()
    deadline = start + duration

    def caller(index: int, conn: Conn) -> None:
        calls = 0
        try:
            while time.perf_counter() < deadline:
                conn.call(payload)
                calls += 1
        except Exception as exc:
            errors.append(repr(exc))
        counts[index] = calls

    greenlets = [gevent.spawn(caller, i, conn) for i, conn in enumerate(conns)]
    gevent.joinall(greenlets, timeout=duration + 30)
    elapsed = time.perf_counter() - start
    gevent.killall(greenlets, timeout=1)
    return meter.stop(Rep(sum(counts), elapsed, len(errors), first_error=errors[0] if errors else ""))


def run_many_connections(
    connect: Callable[[], Conn], payload: Any, meter: Meter, connections: int = D_CONNECTIONS, calls: int = D_CALLS
) -> Rep:
    """D: open ``connections`` concurrently (untimed), then each makes ``calls`` sequential calls (timed)."""
    errors: list[str] = []
    go = Event()
    all_ready = Event()
    done = [0]
    ready = [0]

    def client() -> Conn | None:
        try:
            conn = connect()
        except Exception as exc:
            errors.append(f"connect: {exc!r}")
            return None
        finally:
            ready[0] += 1
            if ready[0] == connections:
                all_ready.set()
        go.wait()
        try:
            for _ in range(calls):
                conn.call(payload)
                done[0] += 1
        except Exception as exc:
            errors.append(repr(exc))
        return conn

    setup_start = time.perf_counter()
    greenlets = [gevent.spawn(client) for _ in range(connections)]
    all_ready.wait(timeout=60)
    meter.start()
    start = time.perf_counter()
    go.set()
    gevent.joinall(greenlets, timeout=120)
    elapsed = time.perf_counter() - start
    rep = meter.stop(Rep(done[0], elapsed, setup_seconds=start - setup_start))
    for greenlet in greenlets:
        conn = greenlet.value if greenlet.dead else None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:
                errors.append(f"close: {exc!r}")
    gevent.killall(greenlets, timeout=1)
    rep.errors = max(len(errors), connections * calls - done[0])
    rep.first_error = errors[0] if errors else ""
    return rep


def run_scenario(
    system: System, port: int, scenario: str, duration: float, conns: list[Conn], meter: Meter, d_calls: int = D_CALLS
) -> Rep:
    """Run one repetition of ``scenario``; ``conns`` holds the connections opened by :func:`open_conns`."""
    payload = payload_for(scenario)
    if scenario in ("A", "C", "C1"):
        return run_sequential(conns[0], payload, duration, meter)
    if scenario in ("B", "Bpool"):
        return run_concurrent(conns, payload, duration, meter)
    return run_many_connections(lambda: system.connect(port, "D"), payload, meter, D_CONNECTIONS, d_calls)


def open_conns(system: System, port: int, scenario: str) -> list[Conn]:
    """Open the connections a scenario keeps across repetitions (none for D; Bpool one per caller)."""
    if scenario == "D":
        return []
    if scenario == "Bpool":
        return [system.connect(port, scenario) for _ in range(B_CALLERS)]
    conn = system.connect(port, scenario)
    return [conn] * (B_CALLERS if scenario == "B" else 1)


def close_conns(conns: list[Conn]) -> None:
    """Close each distinct connection once."""
    for conn in {id(c): c for c in conns}.values():
        try:
            conn.close()
        except Exception:
            pass
