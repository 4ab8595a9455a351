"""Fault injection: peers killed, frozen or cut off, slow readers, and 10,000-fold load of every kind.

Peers in other processes are ``peer.py`` subprocesses, always killed in a
``finally``; the half-open connection runs between two network namespaces
this test creates (and always deletes), skipped with the reason when the
machine does not allow them. Every wait is bounded.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
import uuid

import gevent
import gevent.pool
import pytest

from rpcengine import ConnectionLost, RequestException, RequestTimeout

from .conftest import Figures
from .support import (
    Baseline,
    Connection,
    HealthyClient,
    LineReader,
    PeerProcess,
    TcpWorld,
    World,
    call_quietly,
    raw_tcp,
    wait_until,
)

FAST_HEARTBEAT = {"heartbeat_interval": 0.2, "heartbeat_timeout": 1.0, "resume_grace": 0.5}


def _dead_within(engine: object, seconds: float) -> float:
    """Wait until ``engine`` is closed; return how long it took."""
    return wait_until(lambda: engine.closed, seconds, "the engine noticed its peer is gone")  # type: ignore[attr-defined]


# -- processes killed and frozen ---------------------------------------------------------


@pytest.mark.timeout(60)
def test_server_killed_mid_request(figures: Figures, quiet_logs: None) -> None:
    """SIGKILL the server while 100 calls wait on it: every call fails with ConnectionLost at once."""
    from transports.tcp import connect

    with PeerProcess("server") as server:
        port = server.wait_event("listening", 20)["port"]
        engine = connect("127.0.0.1", port)
        assert engine.request("echo", "alive", timeout=5) == "alive"
        calls = [gevent.spawn(call_quietly, engine, "wait", None, 30) for _ in range(100)]
        wait_until(lambda: engine.pending_count == 100, 5, "100 calls pending")
        killed = time.monotonic()
        server.signal(signal.SIGKILL)
        gevent.joinall(calls, timeout=5)
        elapsed = time.monotonic() - killed
    assert all(isinstance(call.value, ConnectionLost) for call in calls), [c.value for c in calls[:3]]
    assert engine.closed and engine.pending_count == 0
    assert elapsed < 1.0, elapsed
    figures.add("faults", "server_killed_mid_request", 1)
    figures.worst("faults", "server_killed_detect_ms", elapsed * 1000)


@pytest.mark.timeout(60)
def test_client_killed_mid_request(baseline: Baseline, figures: Figures, quiet_logs: None) -> None:
    """SIGKILL a client whose call blocks in a handler: its session ends, nothing is left behind."""
    world = TcpWorld(resume_grace=0.5).start()
    try:
        healthy = HealthyClient(world.connect())
        with PeerProcess("client", "--port", str(world.address[1]), "--hang") as client:
            client.wait_event("hanging", 20)
            wait_until(lambda: world.service.waiting == 1, 5, "the handler blocks")
            client.signal(signal.SIGKILL)
            # The connection drops, the resumable session waits resume_grace, then ends.
            took = wait_until(lambda: len(world.server.sessions) == 1, 5, "the killed client's session ended")
        world.service.release.set()
        wait_until(lambda: world.service.waiting == 0, 5, "the handler returned (its answer goes nowhere)")
        stats = healthy.stop()
        healthy.conn.close()
        healthy = None  # drop references before the leak check
        assert not stats.failures, stats.failures
    finally:
        world.stop()
    left = baseline.wait_back()
    figures.add("faults", "client_killed_mid_request", 1)
    figures.worst("faults", "client_killed_session_end_ms", took * 1000)
    figures.add("leaks", "found", len(left))
    assert not left, left


@pytest.mark.timeout(60)
def test_server_frozen(figures: Figures, quiet_logs: None) -> None:
    """SIGSTOP the server: a call times out, then the client's heartbeat timeout declares it dead."""
    from transports.tcp import connect

    with PeerProcess("server", options=FAST_HEARTBEAT) as server:
        port = server.wait_event("listening", 20)["port"]
        engine = connect("127.0.0.1", port, **FAST_HEARTBEAT)
        assert engine.request("echo", 1, timeout=5) == 1
        waiting = gevent.spawn(call_quietly, engine, "wait", None, 30)
        server.signal(signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            with pytest.raises(RequestTimeout):
                engine.request("echo", 3, timeout=0.3)
            took = _dead_within(engine, 5)
            waiting.join(5)
        finally:
            server.signal(signal.SIGCONT)
    elapsed = time.monotonic() - frozen
    assert isinstance(waiting.value, ConnectionLost), waiting.value
    # Declared dead after heartbeat_timeout (1 s) of silence, checked every 0.05 s.
    assert 0.9 <= elapsed < 2.5, (took, elapsed)
    figures.add("faults", "server_frozen", 1)
    figures.worst("faults", "server_frozen_detect_ms", elapsed * 1000)


@pytest.mark.timeout(60)
def test_client_frozen(baseline: Baseline, figures: Figures, quiet_logs: None) -> None:
    """SIGSTOP a client: the server declares it dead after its heartbeat timeout; others never notice."""
    world = TcpWorld(**FAST_HEARTBEAT).start()
    try:
        healthy = HealthyClient(world.connect(**FAST_HEARTBEAT))
        with PeerProcess("client", "--port", str(world.address[1]), options=FAST_HEARTBEAT) as client:
            client.wait_event("calls_done", 20)
            assert len(world.server.sessions) == 2
            client.signal(signal.SIGSTOP)
            took = wait_until(lambda: len(world.server.sessions) == 1, 5, "the frozen client's session ended")
            client.signal(signal.SIGCONT)
        stats = healthy.stop()
        healthy.conn.close()
        healthy = None  # drop references before the leak check
        assert not stats.failures, stats.failures
    finally:
        world.stop()
    left = baseline.wait_back()
    assert 0.9 <= took < 3.0, took
    figures.add("faults", "client_frozen", 1)
    figures.worst("faults", "client_frozen_session_end_ms", took * 1000)
    figures.add("leaks", "found", len(left))
    assert not left, left


# -- half-open connection between two network namespaces ------------------------------------


def _ip(*args: str) -> subprocess.CompletedProcess:
    """Run ``ip ARGS`` (bounded); return the completed process."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


def _netns_unavailable() -> str | None:
    """Return why network namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"rpcprobe{os.getpid()}"
    try:
        made = _ip("netns", "add", probe)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns add` unavailable: {exc}"
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


@pytest.mark.timeout(90)
def test_half_open_connection(figures: Figures) -> None:
    """Set the veth link down under a live connection: no FIN, no RST; both sides must still notice.

    Server and client run in two namespaces created here (with a veth pair
    between them and link-local addresses that exist nowhere else); both
    are deleted in a ``finally``.
    """
    reason = _netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:6]
    ns_server, ns_client = f"rpcrel-{tag}-s", f"rpcrel-{tag}-c"
    veth_server, veth_client = f"rv{tag}s", f"rv{tag}c"
    address = "169.254.77.1"
    options = {"heartbeat_interval": 0.2, "heartbeat_timeout": 1.5, "resume_grace": 0.5}
    peers: list[PeerProcess] = []
    try:
        for command in (
            ("netns", "add", ns_server),
            ("netns", "add", ns_client),
            ("link", "add", veth_server, "type", "veth", "peer", "name", veth_client),
            ("link", "set", veth_server, "netns", ns_server),
            ("link", "set", veth_client, "netns", ns_client),
            ("-n", ns_server, "addr", "add", f"{address}/30", "dev", veth_server),
            ("-n", ns_client, "addr", "add", "169.254.77.2/30", "dev", veth_client),
            ("-n", ns_server, "link", "set", veth_server, "up"),
            ("-n", ns_client, "link", "set", veth_client, "up"),
            ("-n", ns_server, "link", "set", "lo", "up"),
            ("-n", ns_client, "link", "set", "lo", "up"),
        ):
            done = _ip(*command)
            if done.returncode != 0:
                pytest.skip(f"cannot set up namespaces: ip {' '.join(command)}: {done.stderr.strip()}")
        server = PeerProcess(
            "server", "--host", address, "--port", "7000", prefix=("ip", "netns", "exec", ns_server), options=options
        )
        peers.append(server)
        server.wait_event("listening", 20)
        client = PeerProcess(
            "client",
            "--host",
            address,
            "--port",
            "7000",
            "--hang",
            "--max-seconds",
            "30",
            prefix=("ip", "netns", "exec", ns_client),
            options=options,
        )
        peers.append(client)
        client.wait_event("hanging", 20)
        assert _ip("-n", ns_server, "link", "set", veth_server, "down").returncode == 0
        cut = time.monotonic()
        failed = client.wait_event("hang_failed", 10)
        closed = server.wait_event("session_closed", 10)
        client_took, server_took = failed["received"] - cut, closed["received"] - cut
    finally:
        for peer in peers:
            peer.kill()
        for namespace in (ns_server, ns_client):
            _ip("netns", "del", namespace)
    assert "ConnectionLost" in failed["error"], failed
    # Silence is noticed after heartbeat_timeout (1.5 s); the server then keeps the session resume_grace.
    assert 1.4 <= client_took < 3.5, client_took
    assert 1.4 <= server_took < 4.0, server_took
    figures.add("faults", "half_open_connections", 1)
    figures.worst("faults", "half_open_client_detect_ms", client_took * 1000)
    figures.worst("faults", "half_open_server_detect_ms", server_took * 1000)


# -- slow reader ------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_slow_reader(baseline: Baseline, figures: Figures, quiet_logs: None) -> None:
    """A client that asks for big answers and never reads: bounded buffers, others unaffected, then dropped."""
    max_buffer = 256 * 1024
    world = TcpWorld(max_buffer=max_buffer, max_concurrency=8, heartbeat_timeout=None).start()
    try:
        healthy = HealthyClient(world.connect())
        sock = raw_tcp(world.address)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sent = 0
        request = b'[2,%d,"big",100000]\n'
        with gevent.Timeout(10, False):
            for ident in range(1, 2001):  # stops early: the server stops reading once its workers block
                sock.settimeout(0.5)
                try:
                    sock.sendall(request % ident)
                except OSError:
                    break
                sent = ident
                gevent.sleep(0)  # let the server read (it stops once its workers block on the full link)
        local = sock.getsockname()[1]
        link = next(iter(lk for lk in world.server.links if lk.peer_address[1] == local))
        peak = link.buffered
        assert peak <= max_buffer + 8 * 100_100, peak
        answered_meanwhile = healthy.stats.calls
        wait_until(lambda: healthy.stats.calls >= answered_meanwhile + 20, 10, "the healthy client keeps going")
        # Each writer queues its answer, then waits while the queue is over max_buffer: the bound is
        # max_buffer plus one answer per handler running at once (8 here), never the 2000 answers asked for.
        assert link.buffered <= max_buffer + 8 * 100_100, link.buffered
        # A broadcast cannot queue behind the slow reader: it is closed as a slow consumer.
        delivered = world.server.sessions.notify("news", "x" * 1000)
        assert delivered == 1, delivered
        wait_until(lambda: link.closed, 5, "the slow consumer closed")
        sock.close()
        stats = healthy.stop()
        healthy.conn.close()
        healthy = link = None  # drop references before the leak check
        assert not stats.failures, stats.failures
    finally:
        world.stop()
    left = baseline.wait_back()
    figures.add("faults", "slow_readers", 1)
    figures.set("faults", "slow_reader_requests_sent", sent)
    figures.set("faults", "slow_reader_peak_buffered_bytes", peak)
    figures.add("leaks", "found", len(left))
    assert not left, left


# -- 10,000-fold load on every transport ----------------------------------------------------------


@pytest.mark.timeout(120)
def test_ten_thousand_pending_then_released(world: World, baseline: Baseline, figures: Figures) -> None:
    """10,000 calls wait on a blocked handler, then all are released and answered."""
    conn = world.connect()
    healthy = HealthyClient(world.connect())
    calls = [gevent.spawn(call_quietly, conn.client, "wait", None, 60) for _ in range(10_000)]
    wait_until(lambda: conn.client.pending_count == 10_000, 30, "10,000 calls pending")
    before = healthy.stats.calls
    wait_until(lambda: healthy.stats.calls >= before + 10, 10, "the healthy client is answered meanwhile")
    started = time.monotonic()
    world.service.release.set()
    gevent.joinall(calls, timeout=60)
    took = time.monotonic() - started
    results = [c.value for c in calls]
    assert results.count("released") == 10_000, [r for r in results if r != "released"][:3]
    assert conn.client.pending_count == 0
    stats = healthy.stop()
    conn.close()
    healthy.conn.close()
    conn = healthy = calls = None  # drop references before the leak check
    assert not stats.failures, stats.failures
    wait_until(lambda: world.server_sessions() == 0, 10, "sessions closed")
    left = baseline.wait_back()
    figures.add(f"load[{world.name}]", "pending_then_released", 10_000)
    figures.worst(f"load[{world.name}]", "release_10000_ms", took * 1000)
    figures.add("leaks", "found", len(left))
    assert not left, left


def _time_out_ten_thousand(conn: Connection) -> None:
    """Make 10,000 calls to ``wait`` that time out after 0.5 s (bounded: 60 s); assert each timed out, none pends."""
    outcomes: list[str] = []

    def call() -> None:
        try:
            conn.client.request("wait", None, timeout=0.5)
            outcomes.append("answered")
        except RequestTimeout:
            outcomes.append("timeout")

    calls = [gevent.spawn(call) for _ in range(10_000)]
    gevent.joinall(calls, timeout=60)
    assert outcomes.count("timeout") == 10_000, outcomes.count("answered")
    assert conn.client.pending_count == 0


@pytest.mark.timeout(120)
@pytest.mark.world_options(max_concurrency=20_000, features=frozenset())
def test_ten_thousand_timeouts(world: World, baseline: Baseline, figures: Figures) -> None:
    """10,000 calls time out; their late answers are dropped; nothing stays pending; the link still works.

    On a session without the cancel and deadline features (so the handlers run on; see the next test).
    """
    conn = world.connect()
    _time_out_ten_thousand(conn)
    wait_until(lambda: world.service.waiting == 10_000, 30, "every call reached the handler")
    world.service.release.set()
    late = len(conn.received)
    wait_until(lambda: len(conn.received) >= late + 10_000, 30, "10,000 late answers arrived (and were dropped)")
    assert conn.client.request("echo", "still fine", timeout=5) == "still fine"
    assert conn.client.pending_count == 0
    conn.close()
    conn = None  # drop references before the leak check
    wait_until(lambda: world.server_sessions() == 0, 10, "sessions closed")
    left = baseline.wait_back()
    figures.add(f"load[{world.name}]", "timeouts", 10_000)
    figures.add("leaks", "found", len(left))
    assert not left, left


@pytest.mark.timeout(120)
@pytest.mark.world_options(max_concurrency=20_000)
def test_ten_thousand_timeouts_stop_the_work_they_started(world: World, baseline: Baseline, figures: Figures) -> None:
    """With the features: 10,000 calls time out, each tells the server, and no handler is left running."""
    conn = world.connect()
    _time_out_ten_thousand(conn)
    wait_until(lambda: conn.server.active_handlers == 0, 10, "every handler stopped")
    assert world.service.waiting == 0
    assert not conn.server._inbound
    assert conn.client.request("echo", "still fine", timeout=5) == "still fine"
    conn.close()
    conn = None  # drop references before the leak check
    wait_until(lambda: world.server_sessions() == 0, 10, "sessions closed")
    left = baseline.wait_back()
    figures.add(f"load[{world.name}]", "timeouts_cancelled", 10_000)
    figures.add("leaks", "found", len(left))
    assert not left, left


@pytest.mark.timeout(120)
def test_ten_thousand_misbehaving_handlers(world: World, baseline: Baseline, figures: Figures) -> None:
    """Handlers that raise, block briefly (yielding or not) or return unencodable values, 10,000 times."""
    conn = world.connect()
    healthy = HealthyClient(world.connect())
    kinds = ["crash", "fail", "unencodable", "sleep", "busy"]
    tally: dict[str, int] = dict.fromkeys(kinds, 0)
    wrong: list[str] = []

    def call(index: int) -> None:
        kind = kinds[index % len(kinds)]
        data = {"sleep": 0.001, "busy": 0.0002, "unencodable": index, "fail": index}.get(kind)
        try:
            answer = conn.client.request(kind, data, timeout=30)
        except RequestException as exc:
            expected = {"crash": "internal_error", "fail": "custom", "unencodable": "unencodable_result"}.get(kind)
            if exc.data.get("error") != expected:
                wrong.append(f"{kind}: {exc.data}")
        else:
            if kind not in ("sleep", "busy") or (kind == "sleep" and answer != data):
                wrong.append(f"{kind}: answered {answer!r}")
        tally[kind] += 1

    pool = gevent.pool.Pool(64)
    for index in range(10_000):
        pool.spawn(call, index)
    assert pool.join(timeout=90), "10,000 calls did not finish in time"
    assert not wrong, wrong[:5]
    assert sum(tally.values()) == 10_000
    stats = healthy.stop()
    conn.close()
    healthy.conn.close()
    conn = healthy = pool = None  # drop references before the leak check
    assert not stats.failures, stats.failures
    wait_until(lambda: world.server_sessions() == 0, 10, "sessions closed")
    left = baseline.wait_back()
    section = f"load[{world.name}]"
    for kind, count in tally.items():
        figures.add(section, f"handler_{kind}", count)
    figures.add(section, "healthy_calls", stats.calls)
    figures.add("leaks", "found", len(left))
    assert not left, left


@pytest.mark.timeout(120)
def test_ten_thousand_connect_close_cycles(baseline: Baseline, figures: Figures, quiet_logs: None) -> None:
    """10,000 TCP connect/close cycles (handshaken or plain, closed by either side): fds and objects back."""
    from transports.tcp import connect

    world = TcpWorld().start()
    rng = random.Random(20261123)
    kinds = {"handshake": 0, "plain": 0, "server_closes": 0, "raw_abort": 0, "with_call": 0}
    started = time.monotonic()
    try:
        host, port = world.address
        for index in range(10_000):
            choice = rng.random()
            if choice < 0.05:
                sock = raw_tcp(world.address)  # a raw socket that says nothing and vanishes
                sock.close()
                kinds["raw_abort"] += 1
                continue
            plain = choice < 0.3
            engine = connect(host, port, handshake=not plain)
            kinds["plain" if plain else "handshake"] += 1
            if index % 100 == 0:
                assert engine.request("echo", index, timeout=5) == index
                kinds["with_call"] += 1
            if choice > 0.9 and not plain:
                session = next(iter(world.server.sessions), None)
                if session is not None:
                    session.close("closed by the server")
                    kinds["server_closes"] += 1
                wait_until(lambda engine=engine: engine.closed, 5, "client saw the server close")
            engine.close()
            if index % 1000 == 999:
                # Bounded backlog: at most a few sessions are still winding down.
                wait_until(lambda: len(world.server.sessions) <= 5, 10, "sessions wind down")
        took = time.monotonic() - started
        wait_until(lambda: len(world.server.sessions) == 0 and len(world.server.links) == 0, 10, "all closed")
    finally:
        world.stop()
    engine = session = sock = None  # what the loop last held is not a leak
    left = baseline.wait_back(15)
    figures.add("faults", "connect_close_cycles", 10_000)
    figures.set("faults", "connect_close_cycles_per_s", round(10_000 / took))
    for kind, count in kinds.items():
        figures.add("faults", f"cycles_{kind}", count)
    figures.add("leaks", "found", len(left))
    assert not left, left


def test_line_reader_helper() -> None:
    """The raw-socket helpers report EOF as None (used by the tests above)."""
    world = TcpWorld().start()
    try:
        sock = raw_tcp(world.address)
        sock.sendall(b"garbage\n")
        assert LineReader(sock).readline(2) is None
        sock.close()
    finally:
        world.stop()
