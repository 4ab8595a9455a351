"""``python -m benchmarks.broker``: the Redis broker rows of issue #17, each as a ratio to raw redis-py.

Two rows, each measured against a raw redis-py loop in the same run:

* **fan-out**: a private redis-server (Unix socket in a temporary folder), 2
  node processes, 1,000 clients (half on each node) in one client process.
  Node 1 makes N broadcasts; the time runs from node 1's first broadcast
  until every client has all N. rpcengine: ``TcpServer(..., broker=RedisBroker)``
  nodes, ``server.sessions.notify`` on node 1, ``transports.tcp.connect``
  clients counting a notification. raw: node 1 PUBLISHes the N messages
  with redis-py; both nodes are redis-py subscribers that write every
  message (one JSON line) to each of their 500 plain TCP connections, which
  the client process reads and decodes line by line.
* **queue**: one caller (client process) with K calls in flight and one
  worker (server process) with an echo handler; M calls. rpcengine:
  ``connect_queue`` + ``QueueWorker(concurrency=K)``. raw (redis-py on gevent
  sockets, ``transports.redis.redis_client``): caller XADD -> worker
  XREADGROUP -> worker MULTI(XADD reply, XACK) -> caller XREAD + XDEL reply.

Server-side processes (nodes, workers, redis-server) are pinned to CPU 1,
the client process to CPU 0 (``--no-pin`` turns that off). Each system runs
a warm-up then ``--reps`` timed repetitions in the same processes; the
figures are the medians, the ratio is rpcengine's median / raw's median.
The child roles (``node``, ``clients``, ...) are this module run with a
role as first argument.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import socket as std_socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU, CLIENT_CPU = 1, 0


# ---------------------------------------------------------------------------- children


def _child_setup(cpu: int | None) -> None:
    import resource
    import signal

    signal.alarm(900)  # dies on its own if the orchestrator does
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _out(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _commands() -> Any:
    """Yield the stdin lines (split) until EOF, reading through gevent."""
    from gevent.fileobject import FileObject

    stdin = FileObject(sys.stdin.buffer, "rb")  # type: ignore[arg-type]
    for line in stdin:
        words = line.decode().split()
        if words:
            yield words


def role_node(url: str, prefix: str) -> None:
    """rpcengine fan-out node: TcpServer + RedisBroker; ``go N`` makes N broadcasts."""
    from dispatchers import Registry
    from transports.redis import RedisBroker
    from transports.tcp import TcpServer

    broker = RedisBroker(url, prefix).start()
    server = TcpServer(("127.0.0.1", 0), Registry(), broker=broker)
    server.start()
    if not broker.wait_subscribed(10):
        raise SystemExit("the broker did not subscribe within 10 s")
    _out({"port": server.address[1], "node": broker.node_id})
    for words in _commands():
        if words[0] == "go":
            count, dropped = int(words[1]), 0
            started = time.monotonic()
            for seq in range(count):
                dropped += server.sessions.notify("tick", [seq]).dropped
            _out({"t0": started, "published": time.monotonic(), "dropped": dropped,
                  "sessions": len(server.sessions), "stats": broker.stats.as_dict()})  # fmt: skip
    server.stop(timeout=1)
    broker.stop()


def role_raw_node(url: str, channel: str) -> None:
    """raw fan-out node: a redis-py subscriber writing each message to every accepted TCP connection."""
    import gevent
    import ujson
    from gevent.server import StreamServer

    from transports.redis import redis_client

    conns: list[Any] = []

    def handle(sock: Any, _address: Any) -> None:
        conns.append(sock)
        try:
            while sock.recv(4096):
                pass
        finally:
            conns.remove(sock)

    listener = StreamServer(("127.0.0.1", 0), handle)
    listener.start()
    client = redis_client(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    while pubsub.get_message(timeout=1.0) is None and not pubsub.subscribed:
        pass

    def relay() -> None:
        for message in pubsub.listen():
            if message["type"] != "message":
                continue
            line = ujson.dumps(ujson.loads(message["data"])).encode() + b"\n"  # decode as a node would, re-encode
            for sock in conns:
                sock.sendall(line)

    gevent.spawn(relay)
    gevent.sleep(0.1)
    _out({"port": listener.address[1]})
    for words in _commands():
        if words[0] == "go":
            count = int(words[1])
            started = time.monotonic()
            for seq in range(count):
                client.publish(channel, ujson.dumps([1, "tick", [seq]]))
            _out({"t0": started, "published": time.monotonic(), "dropped": 0, "sessions": len(conns)})
    listener.stop()


def role_clients(kind: str, port1: str, port2: str, per_node: str) -> None:
    """The client process of fan-out: ``per_node`` connections to each node; ``expect N`` waits for N each."""
    import gevent
    import ujson
    from gevent import socket
    from gevent.event import Event
    from gevent.pool import Pool

    state = {"count": 0, "target": -1}
    done = Event()

    def counted(n: int) -> None:
        state["count"] += n
        if state["count"] >= state["target"] >= 0:
            done.set()

    engines: list[Any] = []
    ports = [int(port1), int(port2)] * int(per_node)
    if kind == "rpc":
        from dispatchers import Registry
        from transports.tcp import connect

        registry = Registry()

        @registry.register
        def tick(notification: Any) -> None:
            counted(1)

        def dial(port: int) -> None:
            engines.append(connect("127.0.0.1", port, registry))
    else:

        def reader(sock: Any) -> None:
            buf = b""
            while True:
                data = sock.recv(256 * 1024)
                if not data:
                    return
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    ujson.loads(line)
                counted(len(lines))

        def dial(port: int) -> None:
            sock = socket.create_connection(("127.0.0.1", port))
            engines.append(sock)
            gevent.spawn(reader, sock)

    Pool(50).map(dial, ports)
    gevent.sleep(0.5)
    _out({"connected": len(engines)})
    for words in _commands():
        if words[0] == "expect":
            done.clear()
            state["count"] = 0
            state["target"] = int(words[1]) * len(engines)
            _out({"armed": True})
            done.wait(float(words[2]))
            _out({"t1": time.monotonic(), "count": state["count"], "target": state["target"]})


def role_queue_worker(kind: str, url: str, prefix: str, queue: str, inflight: str) -> None:
    """Queue worker: rpcengine QueueWorker or the raw XREADGROUP loop, echo handler."""
    import gevent

    if kind == "rpc":
        from dispatchers import Registry
        from transports.redis import QueueWorker

        registry = Registry()

        @registry.register
        def echo(request: Any) -> Any:
            return request.data

        worker = QueueWorker(url, queue, registry, prefix=prefix, concurrency=int(inflight)).start()
        _out({"ready": True})
        for _ in _commands():
            pass
        worker.stop(1)
        return
    import redis
    import ujson

    from transports.redis import redis_client

    client = redis_client(url)
    stream = f"{prefix}:queue:{queue}"
    try:
        client.xgroup_create(stream, "workers", id="0", mkstream=True)
    except redis.ResponseError:
        pass

    def work() -> None:
        while True:
            found: Any = client.xreadgroup("workers", "raw", {stream: ">"}, count=int(inflight), block=1000)
            for _name, entries in found or ():
                for entry_id, fields in entries:
                    message = ujson.loads(fields[b"m"])
                    answer = ujson.dumps([3, 0, message[1], message[3]])
                    pipe = client.pipeline(transaction=True)
                    pipe.xadd(fields[b"r"], {"m": answer}, maxlen=10_000, approximate=True)
                    pipe.xack(stream, "workers", entry_id)
                    pipe.execute()

    gevent.spawn(work)
    _out({"ready": True})
    for _ in _commands():
        pass


def role_queue_caller(kind: str, url: str, prefix: str, queue: str, inflight: str) -> None:
    """Queue caller: ``run M`` makes M calls with K in flight, prints the seconds."""
    import gevent
    from gevent.pool import Pool

    k = int(inflight)
    if kind == "rpc":
        from transports.redis import connect_queue

        engine = connect_queue(url, queue, prefix=prefix)

        def one(seq: int) -> Any:
            return engine.request("echo", seq, timeout=30)
    else:
        import itertools

        import ujson
        from gevent.event import AsyncResult

        from transports.redis import redis_client

        client = redis_client(url)
        reader_client = redis_client(url)
        stream = f"{prefix}:queue:{queue}"
        reply_key = f"{prefix}:reply:raw-{os.getpid()}"
        waiting: dict[int, AsyncResult] = {}
        ids = itertools.count(1)

        def read_replies() -> None:
            last = "$"
            while True:
                found: Any = reader_client.xread({reply_key: last}, count=500, block=1000)
                for _name, entries in found or ():
                    for _entry_id, fields in entries:
                        message = ujson.loads(fields[b"m"])
                        result = waiting.pop(message[2], None)
                        if result is not None:
                            result.set(message[3])
                    last = entries[-1][0]
                    reader_client.xdel(reply_key, *[e[0] for e in entries])

        gevent.spawn(read_replies)
        gevent.sleep(0.1)

        def one(seq: int) -> Any:
            call_id = next(ids)
            result = waiting[call_id] = AsyncResult()
            deadline = int(time.time() * 1000) + 30_000
            fields: dict[Any, Any] = {"m": ujson.dumps([2, call_id, "echo", seq]), "r": reply_key, "d": deadline}
            client.xadd(stream, fields, maxlen=1_000_000, approximate=True)
            return result.get(timeout=30)

    _out({"ready": True})
    for words in _commands():
        if words[0] == "run":
            count = int(words[1])
            errors, first = 0, ""
            started = time.monotonic()
            pool = Pool(k)
            results = []
            for seq in range(count):
                results.append(pool.spawn(one, seq))
            pool.join()
            seconds = time.monotonic() - started
            for seq, g in enumerate(results):
                if not g.successful() or g.value != seq:
                    errors += 1
                    first = first or repr(g.exception or g.value)
            _out({"seconds": seconds, "calls": count, "errors": errors, "first_error": first})


ROLES: dict[str, Callable[..., None]] = {
    "node": role_node,
    "raw-node": role_raw_node,
    "clients": role_clients,
    "queue-worker": role_queue_worker,
    "queue-caller": role_queue_caller,
}


# ---------------------------------------------------------------------------- orchestrator


class Child:
    """One ``python -m benchmarks.broker ROLE ...`` process, talked to by JSON lines."""

    def __init__(self, role: str, *args: str, cpu: int | None) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        command = [sys.executable, "-m", "benchmarks.broker", role, "--cpu", "-" if cpu is None else str(cpu), *args]
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True
        )
        self.name = f"{role} {' '.join(args)}"

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stderr.seek(0)
            raise RuntimeError(f"{self.name} ended: {self.stderr.read().decode(errors='replace')[-2000:]}")
        return json.loads(line)

    def stop(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(3)
        except (subprocess.TimeoutExpired, OSError):
            self.proc.kill()
            self.proc.wait()


def redis_server_binary() -> str | None:
    """The path of redis-server, or None."""
    return shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


class Redis:
    """A private redis-server on a Unix socket in a temporary folder (persistence off)."""

    def __init__(self, folder: Path, cpu: int | None) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (bash .ci/setup.sh --test installs it)")
        self.path = str(folder / "redis.sock")
        self.url = f"unix://{self.path}"
        args = [binary, "--port", "0", "--unixsocket", self.path, "--unixsocketperm", "700", "--save", "",
                "--appendonly", "no", "--dir", str(folder), "--daemonize", "no", "--loglevel", "warning",
                "--maxclients", "10000", "--logfile", str(folder / "redis.log")]  # fmt: skip
        pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, preexec_fn=pin)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with std_socket.socket(std_socket.AF_UNIX) as sock:
                    sock.settimeout(1)
                    sock.connect(self.path)
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer PING within 10 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_fanout(kind: str, url: str, prefix: str, clients: int, count: int, reps: int, pin: bool) -> dict[str, Any]:
    """One system's fan-out: warm-up then ``reps`` timed repetitions of ``count`` broadcasts."""
    server_cpu, client_cpu = (SERVER_CPU, CLIENT_CPU) if pin else (None, None)
    role = "node" if kind == "rpc" else "raw-node"
    nodes = [Child(role, url, prefix, cpu=server_cpu) for _ in range(2)]
    client = None
    try:
        ports = [str(n.read()["port"]) for n in nodes]
        client = Child("clients", kind, *ports, str(clients // 2), cpu=client_cpu)
        connected = client.read()["connected"]
        rates, errors = [], []
        for rep in range(reps + 1):
            n = max(1, count // 5) if rep == 0 else count  # rep 0: warm-up
            client.send(f"expect {n} 300")
            client.read()
            nodes[0].send(f"go {n}")
            sent = nodes[0].read()
            got = client.read()
            if got["count"] != got["target"]:
                errors.append(f"{got['count']} of {got['target']} deliveries arrived")
            if rep:
                rates.append(n / (got["t1"] - sent["t0"]))
        broadcasts = statistics.median(rates)
        return {"broadcasts_per_s": broadcasts, "deliveries_per_s": broadcasts * connected, "clients": connected,
                "reps": rates, "errors": errors}  # fmt: skip
    finally:
        for child in [client, *nodes]:
            if child:
                child.stop()


def run_queue(kind: str, url: str, prefix: str, calls: int, inflight: int, reps: int, pin: bool) -> dict[str, Any]:
    """One system's queue row: warm-up then ``reps`` timed repetitions of ``calls`` calls."""
    server_cpu, client_cpu = (SERVER_CPU, CLIENT_CPU) if pin else (None, None)
    worker = Child("queue-worker", kind, url, prefix, "bench", str(inflight), cpu=server_cpu)
    caller = None
    try:
        worker.read()
        caller = Child("queue-caller", kind, url, prefix, "bench", str(inflight), cpu=client_cpu)
        caller.read()
        rates, errors = [], []
        for rep in range(reps + 1):
            caller.send(f"run {max(inflight, calls // 5) if rep == 0 else calls}")
            got = caller.read()
            if got["errors"]:
                errors.append(f"{got['errors']} failed calls, first: {got['first_error']}")
            if rep:
                rates.append(got["calls"] / got["seconds"])
        return {"calls_per_s": statistics.median(rates), "reps": rates, "errors": errors}
    finally:
        for child in [caller, worker]:
            if child:
                child.stop()


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    """Run both rows and print the table; 0 on success, 0 with SKIP if redis-server is missing."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.broker", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 clients, 30 broadcasts, 200 queue calls, 1 rep")
    parser.add_argument("--clients", type=int, help="fan-out clients in all, half per node (default 1000)")
    parser.add_argument("--broadcasts", type=int, help="broadcasts per repetition (default 200)")
    parser.add_argument("--calls", type=int, help="queue calls per repetition (default 5000)")
    parser.add_argument("--inflight", type=int, default=32, help="queue calls in flight (default 32)")
    parser.add_argument("--reps", type=int, help="timed repetitions per system (default 3)")
    parser.add_argument("--rows", default="fanout,queue", help="comma-separated subset of fanout,queue")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--no-pin", action="store_true", help="no CPU pinning")
    args = parser.parse_args(argv)
    clients = args.clients or (20 if args.quick else 1000)
    broadcasts = args.broadcasts or (30 if args.quick else 200)
    calls = args.calls or (200 if args.quick else 5000)
    reps = args.reps or (1 if args.quick else 3)
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    print(
        f"rpcengine broker benchmarks, {datetime.date.today()}: {os.cpu_count()} CPUs, load"
        f" {os.getloadavg()[0]:.2f}; {reps} reps per system; "
        + ("servers and redis-server pinned to CPU 1, client to CPU 0" if pin else "not pinned"),
        flush=True,
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rpcbroker-") as folder:
        try:
            redis = Redis(Path(folder), SERVER_CPU if pin else None)
        except FileNotFoundError as exc:
            print(f"SKIP broker benchmarks: {exc}", flush=True)
            return 0
        try:
            if "fanout" in rows:
                for kind in ("rpc", "raw"):
                    began = time.monotonic()
                    results[f"fanout-{kind}"] = run_fanout(kind, redis.url, f"f{kind}", clients, broadcasts, reps, pin)
                    print(f"  fan-out {kind}: {results[f'fanout-{kind}']['broadcasts_per_s']:,.1f} broadcasts/s"
                          f" ({time.monotonic() - began:.1f} s)", flush=True)  # fmt: skip
            if "queue" in rows:
                for kind in ("rpc", "raw"):
                    began = time.monotonic()
                    results[f"queue-{kind}"] = run_queue(kind, redis.url, f"q{kind}", calls, args.inflight, reps, pin)
                    print(
                        f"  queue {kind}: {results[f'queue-{kind}']['calls_per_s']:,.0f} calls/s"
                        f" ({time.monotonic() - began:.1f} s)",
                        flush=True,
                    )
        finally:
            redis.stop()
    print()
    print(_row(["row", "rpcengine", "raw redis-py", "ratio (rpcengine / raw)"]))
    print(_row(["---", "---:", "---:", "---:"]))
    if "fanout" in rows:
        rpc, raw = results["fanout-rpc"], results["fanout-raw"]
        label = f"fan-out: {broadcasts} broadcasts x {rpc['clients']} clients over 2 nodes"
        print(_row([f"{label} (broadcasts/s)", f"{rpc['broadcasts_per_s']:,.1f}", f"{raw['broadcasts_per_s']:,.1f}",
                    f"{rpc['broadcasts_per_s'] / raw['broadcasts_per_s']:.2f}"]))  # fmt: skip
        print(_row([f"{label} (deliveries/s)", f"{rpc['deliveries_per_s']:,.0f}", f"{raw['deliveries_per_s']:,.0f}",
                    f"{rpc['deliveries_per_s'] / raw['deliveries_per_s']:.2f}"]))  # fmt: skip
    if "queue" in rows:
        rpc, raw = results["queue-rpc"], results["queue-raw"]
        label = f"queue: {calls} calls, {args.inflight} in flight, 1 worker (calls/s)"
        print(_row([label, f"{rpc['calls_per_s']:,.0f}", f"{raw['calls_per_s']:,.0f}",
                    f"{rpc['calls_per_s'] / raw['calls_per_s']:.2f}"]))  # fmt: skip
    for name, result in results.items():
        for error in result["errors"]:
            print(f"\n{name}: {error}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] in ROLES:
        role, cpu_arg, rest = sys.argv[1], sys.argv[3], sys.argv[4:]
        _child_setup(None if cpu_arg == "-" else int(cpu_arg))
        ROLES[role](*rest)
    else:
        sys.exit(main())
