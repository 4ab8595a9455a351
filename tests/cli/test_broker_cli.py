"""The Redis broker on the command line: `serve --broker`/`--queue`, `call --broker queue:NAME`, `demo --cluster`.

Every command runs in a subprocess against a real redis-server on a Unix
socket in a temporary folder (tests/helpers/redis_server.py; no TCP port for
Redis). Each test uses a key prefix of its own on the module's server.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import SERVICE, Served, assert_one_line_error, run_cli
from helpers.redis_server import RedisServer

pytest.importorskip("redis")

pytestmark = pytest.mark.timeout(120)

#: Seconds any one wait of these tests may take.
WAIT = 20.0


@pytest.fixture(autouse=True)
def hub_block_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command these tests start runs gevent's hub-block monitor (0.1 s).

    A block would be reported on the command's stderr, and every test here
    checks stderr (empty, or exactly its one error line).
    """
    monkeypatch.setenv("GEVENT_MONITOR_THREAD_ENABLE", "true")
    monkeypatch.setenv("GEVENT_MAX_BLOCKING_TIME", "0.1")
    # The monitor also warns once that it cannot watch memory without psutil: not what is watched here.
    monkeypatch.setenv("PYTHONWARNINGS", "ignore:Unable to monitor memory usage:RuntimeWarning")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the module, on a socket in a temporary folder."""
    folder = tmp_path_factory.mktemp("redis")
    if len(os.fsencode(str(folder / "redis.sock"))) > 100:
        pytest.skip("the temporary folder's path is too long for a Unix socket")
    try:
        server = RedisServer(folder).start()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prefix() -> str:
    """A key prefix of the test's own."""
    return f"clitest-{secrets.token_hex(4)}"


def next_line(served: Served, timeout: float = WAIT) -> str:
    """Return the next line ``serve`` printed on stdout; fail (with its stderr) if it exits or is silent."""
    try:
        line = served.lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"serve printed nothing more within {timeout} s: {served.stderr}") from None
    assert line, f"serve exited {served.proc.wait(5)}: {served.stderr}"
    return line.rstrip("\n")


def start_node(redis_url: str, prefix: str, *extra: str) -> tuple[Served, str, str]:
    """Start `serve SERVICE tcp://127.0.0.1:0 --broker URL`; return it with its URL and node id (subscribed)."""
    served = Served(SERVICE, "tcp://127.0.0.1:0", "--broker", redis_url, "--broker-prefix", prefix, *extra)
    url = served.wait_for(1)[0]
    line = next_line(served)
    match = re.fullmatch(rf"broker node (\w+) on {re.escape(redis_url)} \(prefix {re.escape(prefix)}\)", line)
    assert match, line
    return served, url, match.group(1)


class Listener:
    """`rpcengine listen URL --count N` in a subprocess, whose stderr tells when it has connected."""

    def __init__(self, url: str, count: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpcengine", "listen", url, "--count", str(count), "--duration", "60",
             "--log-level", "debug"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.errors: list[str] = []
        self.connected = threading.Event()
        self._reader = threading.Thread(target=self._read_errors, daemon=True)
        self._reader.start()

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errors.append(line)
            if "connected to " in line:
                self.connected.set()
        self.connected.set()  # it ended: wait_connected reports how

    def wait_connected(self) -> None:
        """Wait (bounded) until the listener's connection is up."""
        assert self.connected.wait(WAIT), "listen did not connect"
        assert self.proc.poll() is None, "".join(self.errors)

    def result(self) -> list[dict[str, object]]:
        """Wait (bounded) for the listener to end with 0; return the notifications it printed."""
        try:
            out, _ = self.proc.communicate(timeout=WAIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.communicate()
        self._reader.join(5)
        assert self.proc.returncode == 0, "".join(self.errors)
        return [json.loads(line) for line in out.splitlines()]


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """Assert a command succeeded silently on stderr; return its stdout."""
    assert result.returncode == 0 and result.stderr == "", result
    return result.stdout


def test_serve_broker_on_two_processes_a_broadcast_reaches_the_clients_of_both(
    redis_server: RedisServer, prefix: str
) -> None:
    node1, url1, id1 = start_node(redis_server.url, prefix)
    node2, url2, id2 = start_node(redis_server.url, prefix)
    try:
        assert id1 != id2
        listeners = [Listener(url1, 3), Listener(url2, 3)]
        for listener in listeners:
            listener.wait_connected()
        # One broadcast made on node 1, one on node 2, one from a notification to node 1: the clients of both
        # nodes get all three, once each and in order (a duplicate would take the place of a later one).
        assert json.loads(ok(run_cli("call", url1, "add", "5"))) == 5
        assert json.loads(ok(run_cli("call", url2, "add", "2"))) == 7  # the demo's counter lives in Redis
        assert ok(run_cli("notify", url1, "say", '{"name": "cli", "text": "hi"}')) == ""
        expected = [
            {"method": "counter.changed", "data": {"value": 5, "by": 5}},
            {"method": "counter.changed", "data": {"value": 7, "by": 2}},
            {"method": "chat.message", "data": {"name": "cli", "text": "hi"}},
        ]
        assert [listener.result() for listener in listeners] == [expected, expected]
    finally:
        codes = [node1.stop(), node2.stop()]
    assert codes == [0, 0], node1.stderr + node2.stderr
    assert node1.stderr == node2.stderr == ""


def test_serve_queue_answers_call_broker_queue(redis_server: RedisServer, prefix: str) -> None:
    # A queue worker only: no listener URL.
    worker = Served(SERVICE, "--broker", redis_server.url, "--broker-prefix", prefix, "--queue", "work")
    try:
        assert next_line(worker).startswith("broker node ")
        assert next_line(worker) == "serving queue work (concurrency 16)"
        target = ("--broker", redis_server.url, "--broker-prefix", prefix, "queue:work")
        assert json.loads(ok(run_cli("call", *target, "add", "5"))) == 5
        assert json.loads(ok(run_cli("call", *target, "echo", "2", '"three"', "--timeout", "5"))) == [2, "three"]
        assert ok(run_cli("notify", *target, "say", '{"name": "cli", "text": "hi"}')) == ""
        described = json.loads(ok(run_cli("methods", *target, "--json")))
        assert "add" in [entry["name"] for entry in described]
        # An Error answer comes back as from any server: its data on stderr, exit 1.
        failed = run_cli("call", *target, "add", '"five"')
        assert failed.returncode == 1 and json.loads(failed.stderr)["error"] == "invalid_params"
    finally:
        code = worker.stop()
    assert code == 0, worker.stderr
    assert worker.stderr == ""


def test_a_queue_nobody_serves_times_out_in_one_line(redis_server: RedisServer, prefix: str) -> None:
    started = time.monotonic()
    result = run_cli("call", "--broker", redis_server.url, "--broker-prefix", prefix, "queue:nobody", "get",
                     "--timeout", "0.5")  # fmt: skip
    assert_one_line_error(result, 3, "timeout: no answer to 'get'", "queue:nobody", "--queue nobody")
    assert time.monotonic() - started < 15


def test_an_unreachable_broker_is_one_line_exit_4(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/none.sock"
    served = run_cli("serve", SERVICE, "tcp://127.0.0.1:0", "--broker", url)
    assert_one_line_error(served, 4, f"cannot reach the broker at {url}", "No such file or directory")
    called = run_cli("call", "--broker", url, "queue:work", "get")
    assert_one_line_error(called, 4, f"cannot reach the broker at {url}")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["serve", SERVICE, "--queue", "work"], "--queue NAME needs --broker URL"),
        (["serve", SERVICE], "serve needs a listener URL"),
        (["serve", SERVICE, "tcp://127.0.0.1:0", "--broker", "http://127.0.0.1:6379"], "bad broker URL"),
        (["call", "queue:work", "get"], "give the Redis its workers read with --broker URL"),
        (["call", "--broker", "/tmp/redis.sock", "tcp://127.0.0.1:7000", "get"], "queue:NAME"),
        (["call", "--broker", "/tmp/redis.sock", "queue:", "get"], "bad queue name"),
        (["demo", "--broker", "/tmp/redis.sock"], "--broker goes with --cluster"),
    ],
)
def test_broker_usage_errors_are_one_line_exit_2(args: list[str], fragment: str) -> None:
    assert_one_line_error(run_cli(*args), 2, fragment)


def _check_cluster_output(stdout: str) -> None:
    """Assert the cluster demo's output: both nodes' clients got every broadcast, node 1 reached bob on node 2."""
    nodes = re.findall(r"^  node ([12])   tcp://127\.0\.0\.1:\d+   broker node (\w+)$", stdout, re.MULTILINE)
    assert [number for number, _ in nodes] == ["1", "2"], stdout
    for broadcast in (
        'counter.changed {"value": 5, "by": 5}',
        'counter.changed {"value": 7, "by": 2}',
        'chat.message {"name": "bob", "text": "hello from node 2"}',
    ):
        assert f"   alice (node 1) got  {broadcast}\n" in stdout, stdout
        assert f"   bob   (node 2) got  {broadcast}\n" in stdout, stdout
    assert re.search(rf"bob's session id {nodes[1][1]}\.\S+ starts with node 2's id", stdout), stdout
    assert 'node 1 asked bob through Redis: whoami() -> "bob"' in stdout
    assert '   answer: "Hello, bob!"' in stdout


def test_demo_cluster_runs_two_nodes_on_a_private_redis_and_exits_0() -> None:
    if not Path("/usr/bin/redis-server").exists():
        pytest.skip("/usr/bin/redis-server is not installed")
    started = time.monotonic()
    result = run_cli("demo", "--cluster", "--base-port", "0", timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    _check_cluster_output(result.stdout)
    redis = re.search(r"^  Redis    unix://(\S+) \(a private redis-server", result.stdout, re.MULTILINE)
    assert redis, result.stdout
    assert not Path(redis.group(1)).parent.exists()  # its folder, socket included, is removed
    assert result.stdout.rstrip().endswith("its folder and socket are removed")
    assert time.monotonic() - started < 60


def test_demo_cluster_on_a_given_broker_leaves_nothing_there(redis_server: RedisServer) -> None:
    import redis

    result = run_cli("demo", "--cluster", "--base-port", "0", "--broker", redis_server.url, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    _check_cluster_output(result.stdout)
    with redis.Redis(unix_socket_path=redis_server.path) as client:  # the tests' thread: a plain client is fine
        assert client.keys("rpcengine-demo-*") == []


def test_demo_cluster_without_redis_server_says_what_it_needs() -> None:
    code = (
        "import os, sys; import rpcengine.cli.demo_cluster as cluster;"
        "cluster.REDIS_SERVER = '/nonexistent/redis-server'; os.environ['PATH'] = '/nonexistent';"
        "from rpcengine.cli import main; sys.exit(main(['demo', '--cluster']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert_one_line_error(result, 2, "demo --cluster needs redis-server", "--broker URL")
