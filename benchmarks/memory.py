"""Memory measurements: bytes per idle connection and bytes per pending request.

* Idle connection (server side): the server worker runs under tracemalloc;
  the client opens ``count`` connections and makes one echo call on each, so
  that the server has set up its per-connection state, and asks the server
  (control channel, after ``gc.collect()``) for its traced Python memory and
  RSS until two readings 0.1 s apart agree (the same before opening them). Bytes per connection = delta / count. Kernel
  socket buffers are in neither figure. For rpcengine-loopback both ends
  live in the client process, so the figure is per connected *pair*.
* Pending request (client side): the client runs under tracemalloc,
  starts ``PENDING`` greenlets that each call ``hang`` (never answered) on
  one connection, waits until they are all pending (or their number stops
  growing), and divides the traced delta by the number pending.
  The greenlet of each caller is part of that cost; a parked greenlet alone
  (waiting on a shared Event) is measured afterwards, as ``greenlet_only``.
  Killed greenlets are freed lazily, so every baseline is taken once traced
  memory has stopped falling (:func:`_settle`).
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import gevent
from gevent.event import Event

from benchmarks.base import SMALL_PAYLOAD, System
from benchmarks.control import ControlClient, NoControl

#: Number of never-answered requests for the pending-request measurement.
PENDING = 10_000


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def _settle() -> int:
    """Let killed greenlets and closed connections be freed: wait until traced memory stops falling."""
    last = _traced()
    for _ in range(50):
        gevent.sleep(0.05)
        now = _traced()
        if now >= last:
            break
        last = now
    return now


def _greenlet_only(count: int) -> float:
    """Traced bytes per greenlet parked on a shared Event."""
    event = Event()
    parked = [0]
    all_parked = Event()

    def park() -> None:
        parked[0] += 1
        if parked[0] == count:
            all_parked.set()
        event.wait()

    before = _settle()
    greenlets = [gevent.spawn(park) for _ in range(count)]
    all_parked.wait(timeout=30)
    per = (_traced() - before) / count
    gevent.killall(greenlets, timeout=5)
    _settle()
    return per


def measure_pending(system: System, port: int, count: int = PENDING) -> dict[str, Any]:
    """Client-side traced bytes per request awaiting an answer that never comes."""
    conn = system.connect(port, "pending")
    try:
        conn.call(SMALL_PAYLOAD)
        before = _settle()
        greenlets = [gevent.spawn(conn.call, SMALL_PAYLOAD, "hang") for _ in range(count)]
        seen = _wait_pending(conn, count)
        after = _traced()
        failed = sum(1 for g in greenlets if g.dead)
        gevent.killall(greenlets, timeout=5)
        greenlet_only = _greenlet_only(count)
    finally:
        conn.close()
    return {
        "traced": (after - before) / max(seen, 1),
        "count": count,
        "pending_seen": seen,
        "failed": failed,
        "greenlet_only": greenlet_only,
    }


def _pending_of(conn: Any) -> int:
    """Requests ``conn`` has sent and not seen answered (rpcengine: the engine's count)."""
    engine = getattr(conn, "engine", None)
    return engine.pending_count if engine is not None else len(conn.waiting)


def _wait_pending(conn: Any, count: int, limit: float = 15.0) -> int:
    """Wait until all ``count`` calls are pending, or their number stopped growing for 0.5 s; return it."""
    seen, still = 0, 0
    for _ in range(int(limit / 0.1)):
        gevent.sleep(0.1)
        now = _pending_of(conn)
        still = still + 1 if now == seen else 0
        seen = now
        if seen >= count or still >= 5:
            break
    return seen


def _stable_reading(control: Any, limit: float = 5.0) -> dict[str, Any]:
    """The server's memory report once two readings 0.1 s apart agree (within 0.1 % + 1 KiB), or after ``limit`` s.

    Waits for what the server frees or sets up after the calls returned
    (closed connections collected, lazily created state) without a fixed delay.
    """
    last = control.ask("mem")
    key = "traced" if last.get("traced") is not None else "rss"
    for _ in range(int(limit / 0.1)):
        gevent.sleep(0.1)
        now = control.ask("mem")
        if abs(now[key] - last[key]) <= now[key] * 0.001 + 1024:
            return now
        last = now
    return last


def measure_idle(system: System, port: int, control: Any, count: int) -> dict[str, Any]:
    """Server-side traced and RSS bytes per idle connection (per pair for in-process systems)."""
    errors: list[str] = []

    def open_one() -> Any:
        try:
            conn = system.connect(port, "A")
            conn.call(SMALL_PAYLOAD)
            return conn
        except Exception as exc:
            errors.append(repr(exc))
            return None

    warm = open_one()  # one-time allocations (caches, lazy imports) stay out of the delta
    if warm is not None:
        warm.close()
    before = _stable_reading(control)
    greenlets = [gevent.spawn(open_one) for _ in range(count)]
    gevent.joinall(greenlets, timeout=120)
    conns = [g.value for g in greenlets if g.value is not None]
    after = _stable_reading(control)
    opened = max(len(conns), 1)
    for conn in conns:
        try:
            conn.close()
        except Exception:
            pass
    traced = None if after["traced"] is None else (after["traced"] - before["traced"]) / opened
    return {
        "traced": traced,
        "rss": (after["rss"] - before["rss"]) / opened,
        "count": len(conns),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "where": "client process, both ends" if system.in_process else "server process",
    }


def measure_memory(system: System, port: int, control_port: int, count: int) -> dict[str, Any]:
    """Pending-request then idle-connection measurements for ``system``."""
    tracemalloc.start()
    result: dict[str, Any] = {}
    if system.in_process:
        port, _ = system.start_server()
        result["pending"] = None
        result["pending_note"] = "not measured: the never-answering server would share the process"
        control: Any = NoControl()
    else:
        result["pending"] = measure_pending(system, port)
        control = ControlClient(control_port)
    try:
        result["idle"] = measure_idle(system, port, control, count)
    finally:
        control.close()
    return result
