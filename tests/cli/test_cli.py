"""The rpcengine command line, run for real: `python -m rpcengine ...` against a `serve` subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import SERVICE, Served, assert_one_line_error, free_port, listen_while_notifying, run_cli


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """A demo service served over TCP on a free port for the whole module."""
    served = Served(SERVICE, "tcp://127.0.0.1:0")
    try:
        yield served.wait_for(1)[0]
    finally:
        code = served.stop()
    assert code == 0


# -- the package entry point ------------------------------------------------------


def test_import_rpcengine_main_loads_no_transport_dispatcher_or_cli() -> None:
    # The command line is imported only when it runs (tests/rpcengine/test_exports.py checks every core module).
    code = (
        "import sys, rpcengine, rpcengine.__main__;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('transports', 'dispatchers')"
        " or m == 'rpcengine.cli' or m.startswith('rpcengine.cli.'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_help_and_version() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("serve", "call", "notify", "listen", "methods", "demo"):
        assert command in result.stdout
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("rpcengine ")


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("rpcengine")
    if not script.exists():
        pytest.skip("the rpcengine console script is not installed next to this interpreter")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.startswith("rpcengine ")


# -- call, notify, listen, methods --------------------------------------------


def test_call_prints_the_result_as_json(url: str) -> None:
    before = run_cli("call", url, "get")
    assert before.returncode == 0, before.stderr
    result = run_cli("call", url, "add", "2")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(before.stdout) + 2
    assert result.stderr == ""


def test_call_without_data_and_with_data_from_stdin(url: str) -> None:
    assert json.loads(run_cli("call", url, "sleep", "0").stdout) == 0
    result = run_cli("call", url, "sleep", "-", stdin="0.01\n")
    assert result.returncode == 0 and json.loads(result.stdout) == 0.01


def test_remote_error_exits_1_with_the_error_data_on_one_line(url: str) -> None:
    line = assert_one_line_error(run_cli("call", url, "add", '"five"'), 1)
    assert json.loads(line) == {"error": "invalid_params", "message": "add takes an integer", "got": "five"}
    line = assert_one_line_error(run_cli("call", url, "no_such_method"), 1)
    assert json.loads(line)["error"] == "method_not_found"


def test_timeout_exits_3(url: str) -> None:
    started = time.monotonic()
    assert_one_line_error(run_cli("call", url, "sleep", "5", "--timeout", "0.3"), 3, "rpcengine: error: timeout")
    assert time.monotonic() - started < 4


def test_methods_lists_names_signatures_and_docstrings(url: str) -> None:
    result = run_cli("methods", url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "add(request: 'Any') -> 'int'" in lines or "add(request)" in lines or lines[0].startswith("add(")
    assert any(line.startswith("    Add an integer") for line in lines)
    names = [line.split("(")[0] for line in lines if not line.startswith(" ")]
    assert names == ["add", "echo", "get", "greet", "say", "sleep"]
    raw = run_cli("methods", url, "--json")
    described = json.loads(raw.stdout)
    assert [entry["name"] for entry in described] == names
    keys = {"name", "doc", "signature", "takes", "params", "returns", "docstring"}
    assert all(set(entry) == keys and entry["takes"] == "request" for entry in described)


def test_listen_prints_the_broadcast_a_notify_causes(url: str) -> None:
    out, _ = listen_while_notifying(url, url)
    assert [json.loads(line) for line in out.splitlines()] == [
        {"method": "chat.message", "data": {"name": "cli", "text": "hi"}}
    ]


def test_listen_for_a_duration_exits_0(url: str) -> None:
    result = run_cli("listen", url, "--duration", "0.3")
    assert result.returncode == 0 and result.stderr == ""


# -- usage errors: exit 2, one line -------------------------------------------------


@pytest.mark.parametrize(
    "bad_url",
    [
        "udp://127.0.0.1:7000",
        "tcp://127.0.0.1",
        "tcp://:7000",
        "tcp://127.0.0.1:99999",
        "tcp://127.0.0.1:0",
        "tcp://127.0.0.1:7000/path",
        "127.0.0.1:7000",
        "ws://127.0.0.1:7000/x?y=1",
    ],
)
def test_bad_url_exits_2(bad_url: str) -> None:
    assert_one_line_error(run_cli("call", bad_url, "get"), 2, "rpcengine: error: bad URL")


@pytest.mark.parametrize("bad_json", ["[1,", "{'a': 1}", '"unterminated', "{a: 1}"])
def test_an_argument_that_starts_like_json_but_is_not_exits_2(bad_json: str) -> None:
    line = assert_one_line_error(run_cli("call", "tcp://127.0.0.1:1", "add", bad_json), 2, "invalid JSON argument")
    assert "--string" in line or "single quotes" in line


@pytest.mark.parametrize("bad_json", ["NaN", "five", "[1,"])
def test_invalid_json_with_the_json_flag_exits_2(bad_json: str) -> None:
    assert_one_line_error(run_cli("call", "tcp://127.0.0.1:1", "add", "--json", bad_json), 2, "invalid JSON argument")


def test_missing_arguments_are_one_line_usage_errors() -> None:
    assert_one_line_error(run_cli("call"), 2, "rpcengine: error:", "--help")
    assert_one_line_error(run_cli("listen", "tcp://127.0.0.1:1", "--count", "0"), 2, "--count")
    assert_one_line_error(run_cli("frobnicate"), 2, "rpcengine: error:")


def test_serve_with_a_bad_target_exits_2() -> None:
    assert_one_line_error(run_cli("serve", "no_such_module_xyz:Thing", "tcp://127.0.0.1:0"), 2, "cannot import")
    assert_one_line_error(run_cli("serve", "rpcengine.cli.demo_service:Nope", "tcp://127.0.0.1:0"), 2, "no attribute")
    assert_one_line_error(run_cli("serve", "rpcengine.cli.demo_service", "tcp://127.0.0.1:0"), 2, "MODULE:OBJECT")


def test_serve_tls_without_a_certificate_exits_2() -> None:
    assert_one_line_error(run_cli("serve", SERVICE, "tls://127.0.0.1:0"), 2, "--certfile")


WITHOUT_WEBSOCKET = (
    "import sys; sys.modules['transports.websocket'] = None;"  # as if the module were not there
    "from rpcengine.__main__ import main; sys.exit(main(sys.argv[1:]))"
)


def test_websocket_url_without_the_transport_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_WEBSOCKET, "call", "ws://127.0.0.1:1/rpc", "get"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert_one_line_error(result, 2, "WebSocket transport (transports.websocket) is not installed")


# -- connection failures: exit 4, one line ------------------------------------------


def test_refused_connection_exits_4() -> None:
    port = free_port()
    assert_one_line_error(run_cli("call", f"tcp://127.0.0.1:{port}", "get"), 4, "cannot connect", "Connection refused")


class OneShotServer:
    """A raw TCP server thread that answers each connection's first line with ``reply``, then closes."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        with self.sock:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(10)
                conn.recv(65536)
                conn.sendall(self.reply)


def test_handshake_refused_exits_4() -> None:
    server = OneShotServer(b'{"rpcengine": 1, "error": "go away"}\n')
    line = assert_one_line_error(run_cli("call", f"tcp://127.0.0.1:{server.port}", "get"), 4, "refused the handshake")
    assert "go away" in line


def test_connection_lost_exits_4() -> None:
    server = OneShotServer(b"")
    assert_one_line_error(run_cli("call", f"tcp://127.0.0.1:{server.port}", "get"), 4, "rpcengine: error:")


def test_serve_on_a_busy_port_exits_4() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert_one_line_error(run_cli("serve", SERVICE, f"tcp://127.0.0.1:{port}"), 4, "cannot listen")


def test_max_connections_option_refuses_the_extra_client() -> None:
    served = Served(SERVICE, "tcp://127.0.0.1:0", "--max-connections", "1", "--heartbeat-interval", "0")
    try:
        url = served.wait_for(1)[0]
        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as holder:
            holder.sendall(b'{"rpcengine": 1, "session": null, "ack": 0}\n')
            assert json.loads(holder.makefile("rb").readline())["rpcengine"] == 1  # admitted: the one slot is taken
            assert_one_line_error(run_cli("call", url, "get"), 4, "rpcengine: error:")
        deadline = time.monotonic() + 10
        while run_cli("call", url, "get").returncode != 0:  # the slot is free again once the holder left
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        assert served.stop() == 0


# -- serve: several listeners, signals, TLS, WebSocket --------------------------


def test_serve_prints_every_listener_and_stops_on_sigint() -> None:
    served = Served(SERVICE, "tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "--log-level", "error")
    try:
        first, second = served.wait_for(2)
        assert first != second
        for url in (first, second):
            assert run_cli("call", url, "get").returncode == 0
    finally:
        assert served.stop(signal.SIGINT) == 0


def test_serve_lets_a_running_call_finish_on_sigterm(tmp_path: Path) -> None:
    started = tmp_path / "started"
    (tmp_path / "slow_service.py").write_text(
        "import gevent\n"
        "class Slow:\n"
        "    def rpc_sleep(self, request):\n"
        '        """Mark that the call started, sleep, return the seconds."""\n'
        f"        open({str(started)!r}, 'w').close()\n"
        "        gevent.sleep(request.data)\n"
        "        return request.data\n"
    )
    served = Served("slow_service:Slow", "tcp://127.0.0.1:0", cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    try:
        url = served.wait_for(1)[0]
        slow = subprocess.Popen(
            [sys.executable, "-m", "rpcengine", "call", url, "sleep", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 15
        while not started.exists():  # the call is in flight on the server
            assert time.monotonic() < deadline, "the slow call never reached the server"
            time.sleep(0.01)
    finally:
        code = served.stop()
    out, err = slow.communicate(timeout=20)
    assert code == 0
    assert slow.returncode == 0 and json.loads(out) == 1, err


def test_tls_serve_and_call(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    served = Served(SERVICE, "tls://127.0.0.1:0", "--certfile", cert, "--keyfile", key)
    try:
        url = served.wait_for(1)[0]
        assert url.startswith("tls://")
        result = run_cli("call", url, "add", "3", "--cafile", cert)
        assert result.returncode == 0 and json.loads(result.stdout) == 3, result.stderr
        assert run_cli("call", url, "get", "--insecure").returncode == 0
        assert_one_line_error(run_cli("call", url, "get"), 4, "cannot connect")
    finally:
        assert served.stop() == 0


def test_serve_and_call_over_websocket() -> None:
    pytest.importorskip("transports.websocket")
    served = Served(SERVICE, "ws://127.0.0.1:0/rpc", "ws://127.0.0.1:0/other", "tcp://127.0.0.1:0")
    try:
        urls = served.wait_for(3)
        ws_rpc = next(url for url in urls if url.endswith("/rpc"))
        ws_other = next(url for url in urls if url.endswith("/other"))
        tcp = next(url for url in urls if url.startswith("tcp://"))
        assert ws_rpc.rsplit("/", 1)[0] == ws_other.rsplit("/", 1)[0]
        assert json.loads(run_cli("call", ws_rpc, "add", "4").stdout) == 4
        assert json.loads(run_cli("call", ws_other, "get").stdout) == 4
        assert json.loads(run_cli("call", tcp, "get").stdout) == 4
        assert "add(" in run_cli("methods", ws_rpc).stdout
        assert_one_line_error(run_cli("call", ws_rpc, "sleep", "3", "--timeout", "0.3"), 3)
    finally:
        assert served.stop() == 0


def test_serve_instance_attribute_and_on_serve_hook(tmp_path: Path) -> None:
    (tmp_path / "tiny_service.py").write_text(
        "class Tiny:\n"
        "    def on_serve(self, servers):\n"
        "        self.count = len(servers)\n"
        "    def rpc_servers(self, request):\n"
        '        """Return how many servers on_serve saw."""\n'
        "        return self.count\n"
        "tiny = Tiny()\n"
    )
    served = Served(
        "tiny_service:tiny",
        "tcp://127.0.0.1:0",
        "tcp://127.0.0.1:0",
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
    )
    try:
        url = served.wait_for(2)[0]
        assert json.loads(run_cli("call", url, "servers").stdout) == 2
    finally:
        assert served.stop() == 0


def _upgrade_status(url: str, origin: str | None) -> int:
    """The HTTP status a WebSocket upgrade to ``url`` gets, with ``origin`` as its Origin header."""
    from helpers.ws import RawWebSocket
    from websockets.exceptions import InvalidStatus

    try:
        RawWebSocket(url, origin=origin).sock.close()
    except InvalidStatus as exc:
        return exc.response.status_code
    return 101


def test_serve_origin_admits_the_pages_it_names_and_refuses_others() -> None:
    served = Served(SERVICE, "ws://127.0.0.1:0/rpc", "--origin", "https://app.example", "--log-level", "error")
    try:
        (url,) = served.wait_for(1)
        assert _upgrade_status(url, "https://app.example") == 101
        assert _upgrade_status(url, "https://evil.example") == 403
        assert _upgrade_status(url, None) == 101  # a program, not a browser
    finally:
        assert served.stop() == 0
    default = Served(SERVICE, "ws://127.0.0.1:0/rpc", "--log-level", "error")
    try:
        (url,) = default.wait_for(1)
        assert _upgrade_status(url, "https://app.example") == 403  # same-origin pages only by default
    finally:
        assert default.stop() == 0
