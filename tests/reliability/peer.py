"""A peer in its own process, for faults that need one: killed, frozen, cut off, or driving load.

Run as ``python peer.py MODE --host H --port P [--options JSON] ...``. It
writes one JSON object per line on stdout (``{"event": ...}``) and obeys
lines on stdin (``stop``, ``close``); it exits when stdin closes, on
SIGTERM, or after ``--max-seconds``. Modes:

* ``server``: a TcpServer of :class:`service.Service`; reports
  ``listening`` (with the port) and ``session_closed`` for each session end;
* ``client``: one connection; ``--calls N`` echo calls, then, with
  ``--hang``, one call to ``wait`` that blocks on the server; reports how
  that call ends (``hang_failed`` with the error and the seconds it took);
* ``load``: ``--connections`` resumable connections calling ``echo`` at
  ``--rate`` calls per second in total (0: as fast as they can); reports
  ``stats`` every second; on ``stop`` it finishes in-flight calls, sends
  a final heartbeat on each connection and reports ``drained`` with the
  unacknowledged outbox sizes; on ``close`` it disconnects and reports
  ``final``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

import gevent
from gevent.event import Event
from gevent.fileobject import FileObjectPosix

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from service import Service

from dispatchers import MethodDispatcher
from rpcengine import RpcError
from transports.tcp import TcpServer, connect


def emit(event: str, **fields: Any) -> None:
    """Write one event line to stdout."""
    sys.stdout.write(json.dumps({"event": event, "t": time.monotonic(), **fields}) + "\n")
    sys.stdout.flush()


def watch_stdin(commands: dict[str, Event], done: Event) -> None:
    """Set the Event named by each stdin line; set ``done`` at EOF."""
    stream = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
    try:
        for line in stream:
            name = line.decode(errors="replace").strip()
            if name in commands:
                commands[name].set()
    finally:
        done.set()


def run_server(args: argparse.Namespace, options: dict[str, Any], done: Event) -> None:
    """Serve until told to stop."""

    def closed(session: Any) -> None:
        emit("session_closed", reason=session.close_reason)

    server = TcpServer((args.host, args.port), MethodDispatcher(Service()), on_disconnect=closed, **options)
    server.start()
    emit("listening", port=server.address[1])
    done.wait(args.max_seconds)
    server.stop(timeout=1)


def run_client(args: argparse.Namespace, options: dict[str, Any], done: Event) -> None:
    """Make some calls, then optionally one that hangs on the server, and report how it ends."""
    engine = connect(args.host, args.port, **options)
    emit("connected")
    for index in range(args.calls):
        assert engine.request("echo", index, timeout=10) == index
    emit("calls_done", calls=args.calls)
    if args.hang:
        started = time.monotonic()
        waiter = gevent.spawn(engine.request, "wait", None, timeout=args.max_seconds)
        emit("hanging")
        waiter.join(args.max_seconds)
        error = waiter.exception
        emit("hang_failed" if error else "hang_answered", error=repr(error), seconds=time.monotonic() - started)
    done.wait(args.max_seconds)
    engine.close()


def run_load(args: argparse.Namespace, options: dict[str, Any], done: Event, commands: dict[str, Event]) -> None:
    """Drive paced load over many resumable connections; drain and report on request."""
    engines = [connect(args.host, args.port, reconnect=True, **options) for _ in range(args.connections)]
    emit("connected", connections=len(engines))
    stats = {"calls": 0, "failures": 0, "errors": []}
    stop = commands["stop"]
    interval = args.connections / args.rate if args.rate > 0 else 0.0
    deadline = time.monotonic() + args.max_seconds

    def worker(index: int, engine: Any) -> None:
        next_at = time.monotonic() + (interval * index / max(1, len(engines)))
        sequence = 0
        while not stop.is_set() and time.monotonic() < deadline:
            if interval:
                pause = next_at - time.monotonic()
                if pause > 0 and stop.wait(pause):
                    return
                next_at += interval
            sequence += 1
            value = [index, sequence]
            try:
                answer = engine.request("echo", value, timeout=args.call_timeout)
            except RpcError as exc:
                stats["failures"] += 1
                if len(stats["errors"]) < 20:
                    stats["errors"].append(f"connection {index}: {exc!r}")
                if engine.closed:
                    return
                continue
            if answer != value:
                stats["failures"] += 1
                stats["errors"].append(f"connection {index}: wrong answer {answer!r}")
            stats["calls"] += 1

    def reporter() -> None:
        while not stop.wait(1.0):
            emit("stats", calls=stats["calls"], failures=stats["failures"], errors=stats["errors"][-3:])

    workers = [gevent.spawn(worker, i, e) for i, e in enumerate(engines)]
    gevent.spawn(reporter)
    gevent.wait([stop, done], count=1, timeout=args.max_seconds)
    stop.set()
    gevent.joinall(workers, timeout=args.call_timeout + 5)
    for engine in engines:
        if not engine.closed:
            engine.transport.send_heartbeat()
    emit(
        "drained",
        calls=stats["calls"],
        failures=stats["failures"],
        errors=stats["errors"],
        closed=sum(e.closed for e in engines),
        pending=sum(e.pending_count for e in engines),
        unacked=sum(len(e.transport.outbox) for e in engines if not e.closed),
    )
    gevent.wait([commands["close"], done], count=1, timeout=args.max_seconds)
    for engine in engines:
        if not engine.closed:
            engine.transport.send_heartbeat()
    # The server's final heartbeat acknowledges everything; wait (bounded) until it has been read.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(e.transport.outbox for e in engines if not e.closed):
        gevent.sleep(0.01)
    unacked = sum(len(e.transport.outbox) for e in engines if not e.closed)
    for engine in engines:
        engine.transport.disconnect(timeout=1)
    emit("final", calls=stats["calls"], failures=stats["failures"], unacked=unacked)


def main() -> None:
    """Parse arguments and run the chosen mode."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["server", "client", "load"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--options", default="{}", help="SessionConfig keywords as JSON")
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--call-timeout", type=float, default=10.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args()
    options = json.loads(args.options)
    done = Event()
    commands = {"stop": Event(), "close": Event()}
    gevent.spawn(watch_stdin, commands, done)
    gevent.signal_handler(signal.SIGTERM, done.set)
    try:
        if args.mode == "server":
            run_server(args, options, done)
        elif args.mode == "client":
            run_client(args, options, done)
        else:
            run_load(args, options, done, commands)
    except Exception as exc:
        emit("crashed", error=repr(exc))
        raise


if __name__ == "__main__":
    main()
