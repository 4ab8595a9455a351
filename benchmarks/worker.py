"""Worker processes: ``python -m benchmarks.worker {probe,server,client,memory} SYSTEM ...``.

Started by the orchestrator (:mod:`benchmarks.runner`), never by hand. Each
prints exactly one JSON line on stdout; logs go to stderr. Every worker
arms ``signal.alarm`` so that it ends by itself even if the orchestrator
dies, and the server also exits when its stdin closes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tracemalloc
from dataclasses import asdict
from typing import Any

import gevent
from gevent import socket

from benchmarks.base import THREAD_SCENARIOS, payload_for, raise_nofile_limit, same_data
from benchmarks.control import ControlClient, NoControl, start_control_server
from benchmarks.counting import COUNTER, KINDS, EventCounter, ThreadedCounter
from benchmarks.loads import Meter, close_conns, open_conns, run_many_connections, run_scenario
from benchmarks.memory import measure_memory
from benchmarks.systems import load_system


def _emit(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def _probe_threads(system: Any, port: int) -> str | None:
    """Echo once through a HubThread connection (S, S8) from a plain thread; return why it failed, or None.

    The server runs on this thread's hub, so the connection is opened, used
    and closed from threads of gevent's thread pool while this hub goes on.
    """
    pool = gevent.get_hub().threadpool
    payload = payload_for("S")
    try:
        with gevent.Timeout(20):
            conn = pool.apply(system.connect, (port, "S"))
            try:
                answer = pool.apply(conn.call, (payload,))
            finally:
                pool.apply(conn.close)
    except BaseException as exc:  # gevent.Timeout is a BaseException
        return f"submit() smoke test failed: {type(exc).__name__}: {exc}"
    if not same_data(answer, payload):
        return f"submit() echo returned a different value ({str(answer)[:60]!r})"
    return None


def probe(name: str) -> dict[str, Any]:
    """Import ``name``, then start its server and echo each payload (A, C, C1) once, in this process.

    A system with thread scenarios (S, S8) also echoes once through
    ``submit()`` from a plain thread; if that fails, those scenarios are
    dropped from its list with the reason under ``scenario_skips`` (the
    system's other scenarios still run).
    """
    try:
        system = load_system(name)
    except Exception as exc:
        return {"skip": f"cannot load: {type(exc).__name__}: {exc}"}
    reason = system.unavailable()
    if reason:
        return {"skip": reason}
    info = {
        "scenarios": list(system.scenarios),
        "in_process": system.in_process,
        "memory": system.memory,
        "description": system.description,
    }
    try:
        with gevent.Timeout(20):
            port, stop = system.start_server()
            try:
                conn = system.connect(port, "A")
                for scenario in ("A", "C", "C1"):
                    payload = payload_for(scenario)
                    answer = conn.call(payload)
                    if not same_data(answer, payload):
                        return {"skip": f"echo returned a different value ({str(answer)[:60]!r})", **info}
                conn.close()
                threaded = [s for s in system.scenarios if s in THREAD_SCENARIOS]
                reason = _probe_threads(system, port) if threaded else None
                if reason:
                    info["scenarios"] = [s for s in system.scenarios if s not in THREAD_SCENARIOS]
                    info["scenario_skips"] = dict.fromkeys(threaded, reason)
            finally:
                stop()
    except BaseException as exc:  # gevent.Timeout is a BaseException
        return {"skip": f"smoke test failed: {type(exc).__name__}: {exc}", **info}
    return {"ok": True, **info}


def _wait_eof() -> None:
    """Return once stdin is closed (the orchestrator ended the case)."""
    fd = sys.stdin.fileno()
    while True:
        socket.wait_read(fd)
        if not os.read(fd, 4096):
            return


def serve(name: str, trace: bool) -> None:
    """Run the server of ``name`` plus the control channel until stdin closes."""
    if trace:
        tracemalloc.start()
    system = load_system(name)
    port, stop = system.start_server()
    control_port, _ = start_control_server()
    _emit({"port": port, "control": control_port, "pid": os.getpid()})
    gevent.spawn(_wait_eof).join()
    with gevent.Timeout(3, False):
        stop()
    os._exit(0)


def count_pass(
    system: Any, port: int, scenario: str, conns: list[Any], control: Any, duration: float
) -> dict[str, dict[str, float | None]]:
    """Greenlet switches and Python calls per call, client and server, each from its own short untimed pass.

    The server counts between two control commands; the same two commands
    with nothing between them are counted first and subtracted (the control
    exchange's own switches and calls). In-process systems report both ends
    under ``client``. A connection on a HubThread (S, S8) is counted by a
    :class:`~benchmarks.counting.ThreadedCounter`: its hub thread and the
    calling threads, with its own start and stop subtracted the same way.
    """
    result: dict[str, dict[str, float | None]] = {}
    untimed = Meter(lambda: 0.0)
    in_hub = getattr(conns[0], "in_hub", None)
    counter: EventCounter | ThreadedCounter = COUNTER if in_hub is None else ThreadedCounter(in_hub)
    for kind in KINDS:
        control.ask(f"count {kind}")
        idle = control.ask("count stop").get("count")
        client_idle = 0
        if counter is not COUNTER:  # S, S8: starting and stopping hand work to the hub thread
            counter.start(kind)
            client_idle = counter.stop()
        control.ask(f"count {kind}")
        counter.start(kind)
        try:
            rep = run_scenario(system, port, scenario, duration, conns, untimed)
        finally:
            client = counter.stop() - client_idle
            server = control.ask("count stop").get("count")
        calls = max(rep.calls, 1)
        result[kind] = {
            "client": client / calls,
            "server": None if server is None or idle is None else (server - idle) / calls,
            "calls": rep.calls,
        }
    return result


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the warm-up and the timed repetitions of ``args.scenario``; return per-repetition figures.

    With ``--count`` (and a scenario other than D), a counting pass follows
    the timed repetitions: see :func:`count_pass`.
    """
    system = load_system(args.system)
    scenario, port = args.scenario, args.port
    if system.in_process:
        port, _ = system.start_server()
        control: Any = NoControl()
    else:
        control = ControlClient(args.control)
    conns = open_conns(system, port, scenario)
    meter = Meter(control.cpu)
    results = []
    try:
        if scenario == "D":  # warm-up: 100 connections x 10 calls
            run_many_connections(lambda: system.connect(port, "D"), payload_for("D"), meter, 100, 10)
        else:
            run_scenario(system, port, scenario, args.warmup, conns, meter)
        for _ in range(args.reps):
            results.append(asdict(run_scenario(system, port, scenario, args.duration, conns, meter, args.d_calls)))
        counts = count_pass(system, port, scenario, conns, control, args.count) if args.count and conns else None
    finally:
        close_conns(conns)
        control.close()
    return {"reps": results, "counts": counts}


def main(argv: list[str] | None = None) -> None:
    """Parse the worker command line and run it."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("role", choices=("probe", "server", "client", "memory"))
    parser.add_argument("system")
    parser.add_argument("--scenario", default="A")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control", type=int, default=0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=0.3)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--d-calls", type=int, default=100)
    parser.add_argument("--count", type=float, default=0.0, help="seconds of the counting pass (0: none)")
    parser.add_argument("--connections", type=int, default=1000, help="memory: idle connections to open")
    parser.add_argument("--alarm", type=int, default=600, help="hard limit on this process's life, seconds")
    args = parser.parse_args(argv)
    signal.alarm(args.alarm)
    raise_nofile_limit()
    if args.role == "probe":
        _emit(probe(args.system))
    elif args.role == "server":
        serve(args.system, args.tracemalloc)
    elif args.role == "client":
        _emit(bench(args))
    else:
        _emit(measure_memory(load_system(args.system), args.port, args.control, args.connections))
    sys.stderr.flush()
    os._exit(0)  # no interpreter teardown: a peer's atexit hooks (zmq) must not hang the worker


if __name__ == "__main__":
    main()
