"""The load scenarios (A, S, S8, B, Bpool, C, C1, D), run inside the client worker against any System.

Each ``run_*`` function performs one timed repetition and returns a
:class:`Rep` with the number of calls, the elapsed wall time of the timed
phase, the CPU time both processes spent in it (from a :class:`Meter`) and
the number of failed calls. In scenario D the timed phase starts once all
connections are open and ends when the last call returned; connecting and
closing are outside it. In S and S8 the calls come from plain OS threads
(started before the timed phase, released together), not from greenlets.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import Event

from benchmarks.base import THREAD_SCENARIOS, Conn, System, cpu_seconds, payload_for

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
    #: S and S8: the CPUs the calling threads and the hub thread were allowed on (read in each thread).
    thread_cpus: list[int] | None = None


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


def _thread_cpus() -> list[int]:
    """The CPUs the calling OS thread may run on (Linux: the affinity of this thread, not the process)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def run_threads(conn: Conn, threads: int, payload: Any, duration: float, meter: Meter) -> Rep:
    """S and S8: ``threads`` plain OS threads, each making sequential calls on ``conn`` for ``duration`` seconds.

    The threads are started first and wait on a barrier; the timed phase runs
    from their release to the end of the last one (each checks the clock
    every 8 calls, as :func:`run_sequential` does). This thread only waits
    (``Thread.join``) meanwhile.
    """
    counts = [0] * threads
    errors: list[str] = []
    cpus: set[int] = set()
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def caller(index: int) -> None:
        cpus.update(_thread_cpus())
        calls = 0
        try:
            barrier.wait()
            end = deadline[0]
            while time.perf_counter() < end:
                for _ in range(8):
                    conn.call(payload)
                    calls += 1
        except Exception as exc:
            errors.append(repr(exc))
        counts[index] = calls

    in_hub = getattr(conn, "in_hub", None)
    if in_hub is not None:
        cpus.update(in_hub(_thread_cpus))
    workers = [threading.Thread(target=caller, args=(i,), name=f"bench-caller-{i}") for i in range(threads)]
    for worker in workers:
        worker.start()
    meter.start()
    start = time.perf_counter()
    deadline[0] = start + duration
    barrier.wait(timeout=30)
    for worker in workers:
        worker.join(duration + 30)
    elapsed = time.perf_counter() - start
    rep = meter.stop(Rep(sum(counts), elapsed, len(errors), first_error=errors[0] if errors else ""))
    stuck = [w.name for w in workers if w.is_alive()]
    if stuck:
        rep.errors += len(stuck)
        rep.first_error = rep.first_error or f"threads still in a call {duration + 30:.0f} s after the end: {stuck}"
    rep.thread_cpus = sorted(cpus)
    return rep


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
    if scenario in THREAD_SCENARIOS:
        return run_threads(conns[0], THREAD_SCENARIOS[scenario], payload, duration, meter)
    return run_many_connections(lambda: system.connect(port, "D"), payload, meter, D_CONNECTIONS, d_calls)


def open_conns(system: System, port: int, scenario: str) -> list[Conn]:
    """Open the connections a scenario keeps across repetitions (none for D; Bpool one per caller; S, S8 one)."""
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
