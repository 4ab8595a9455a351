"""The command line speaking JSON-RPC 2.0 to `rpcengine serve`, which answers it on its listeners without flags.

One server serves the demo service on tcp:// and ws://; the client commands reach it over
jsonrpc+tcp://, tcp:// with --jsonrpc, ws://.../jsonrpc, ws://.../ with --jsonrpc (the subprotocol)
and http://.../jsonrpc (one POST per call).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import SERVICE, Served, assert_one_line_error, listen_while, run_cli

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, list[str]]]:
    """The demo service on a tcp:// and a ws:// listener: each JSON-RPC form of URL, as CLI arguments."""
    served = Served(SERVICE, "tcp://127.0.0.1:0", "ws://127.0.0.1:0/")
    try:
        tcp, ws = served.wait_for(2)
        base = ws.rstrip("/")
        yield {
            "jsonrpc+tcp": [tcp.replace("tcp://", "jsonrpc+tcp://")],
            "tcp --jsonrpc": ["--jsonrpc", tcp],
            "ws /jsonrpc": [base + "/jsonrpc"],
            "ws --jsonrpc": ["--jsonrpc", ws],
            "http /jsonrpc": [base.replace("ws://", "http://") + "/jsonrpc"],
            "http --jsonrpc": ["--jsonrpc", base.replace("ws://", "http://") + "/rpc"],
        }
    finally:
        assert served.stop() == 0


FORMS = ["jsonrpc+tcp", "tcp --jsonrpc", "ws /jsonrpc", "ws --jsonrpc", "http /jsonrpc", "http --jsonrpc"]


@pytest.mark.parametrize("form", FORMS)
def test_call_over_jsonrpc_prints_the_result(urls: dict[str, list[str]], form: str) -> None:
    result = run_cli("call", *urls[form], "echo", "2", "three", '{"a": 1}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [2, "three", {"a": 1}]
    assert result.stderr == ""


@pytest.mark.parametrize("form", ["jsonrpc+tcp", "ws /jsonrpc", "http /jsonrpc"])
def test_a_jsonrpc_error_answer_exits_1_with_its_code_on_stderr(urls: dict[str, list[str]], form: str) -> None:
    result = run_cli("call", *urls[form], "nowhere", "[1]")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    error = json.loads(result.stderr.splitlines()[0])
    assert error["error"] == "method_not_found" and error["code"] == -32601
    assert error["data"]["method"] == "nowhere"


def test_a_single_scalar_arg_is_sent_as_a_one_item_array_and_the_hint_says_so(urls: dict[str, list[str]]) -> None:
    echoed = run_cli("call", *urls["jsonrpc+tcp"], "echo", "5")
    assert echoed.returncode == 0 and json.loads(echoed.stdout) == [5]
    refused = run_cli("call", *urls["jsonrpc+tcp"], "add", "5")
    assert refused.returncode == 1
    assert json.loads(refused.stderr.splitlines()[0])["code"] == -32602
    assert "hint: JSON-RPC params are an array or an object: 5 was sent as [5]" in refused.stderr


@pytest.mark.parametrize("form", ["jsonrpc+tcp", "ws /jsonrpc", "http /jsonrpc"])
def test_notify_over_jsonrpc_reaches_the_server(urls: dict[str, list[str]], form: str) -> None:
    def value() -> int:
        got = run_cli("call", *urls["jsonrpc+tcp"], "get")
        assert got.returncode == 0, got.stderr
        return int(got.stdout)

    before = value()
    result = run_cli("notify", *urls[form], "add")
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 10
    while value() == before:  # a notification's effect has no answer to wait for
        assert time.monotonic() < deadline, "the notification was not handled"
    assert value() > before


@pytest.mark.parametrize("form", ["jsonrpc+tcp", "ws /jsonrpc", "http /jsonrpc"])
def test_trace_shows_the_jsonrpc_documents(urls: dict[str, list[str]], form: str) -> None:
    result = run_cli("call", *urls[form], "echo", "2", "3", "--trace")
    assert result.returncode == 0, result.stderr
    sent, received = result.stderr.splitlines()
    assert sent.endswith('{"jsonrpc":"2.0","id":1,"method":"echo","params":[2,3]}'), sent
    assert received.endswith('{"jsonrpc":"2.0","id":1,"result":[2,3]}'), received


@pytest.mark.parametrize("form", ["jsonrpc+tcp", "http /jsonrpc"])
def test_methods_over_jsonrpc_lists_the_service(urls: dict[str, list[str]], form: str) -> None:
    result = run_cli("methods", *urls[form])
    assert result.returncode == 0, result.stderr
    assert "echo(request: Any) -> Any" in result.stdout


def test_listen_over_a_jsonrpc_websocket_prints_broadcasts(urls: dict[str, list[str]]) -> None:
    def add() -> None:  # each add broadcasts counter.changed
        assert run_cli("call", *urls["jsonrpc+tcp"], "add").returncode == 0

    listened = listen_while([*urls["ws /jsonrpc"], "--count", "1"], add, timeout=30)
    assert listened.returncode == 0, listened.stderr
    line = json.loads(listened.stdout.splitlines()[0])
    assert line["method"] == "counter.changed" and line["data"]["by"] == 1


def test_listen_over_jsonrpc_http_is_a_usage_error(urls: dict[str, list[str]]) -> None:
    assert_one_line_error(run_cli("listen", *urls["http /jsonrpc"]), 2, "listen needs a connection")


def test_jsonrpc_tcp_is_not_a_listener() -> None:
    assert_one_line_error(run_cli("serve", SERVICE, "jsonrpc+tcp://127.0.0.1:0"), 2, "tcp://")


def test_nothing_listening_exits_4() -> None:
    for url in ("jsonrpc+tcp://127.0.0.1:1", "http://127.0.0.1:1/jsonrpc"):
        assert_one_line_error(run_cli("call", url, "echo"), 4, "Connection refused", url)


def test_a_path_not_served_over_jsonrpc_http_exits_4(urls: dict[str, list[str]]) -> None:
    url = urls["http /jsonrpc"][0].replace("/jsonrpc", "/nothere/jsonrpc")
    assert_one_line_error(run_cli("call", url, "echo"), 4, "HTTP 404")


SLOW = '''
"""A slow function for timeouts."""
import gevent


def slow(request):
    """Sleep 10 s."""
    gevent.sleep(10)
    return "late"
'''


@pytest.fixture(scope="module")
def slow_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A served module whose ``slow`` sleeps 10 s, on tcp:// and ws://."""
    folder: Path = tmp_path_factory.mktemp("slow")
    (folder / "slow_mod.py").write_text(SLOW)
    served = Served(
        "--functions", "slow_mod", "tcp://127.0.0.1:0", "ws://127.0.0.1:0/", "--stop-timeout", "0.5",
        cwd=folder, env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    try:
        tcp, ws = served.wait_for(2)
        yield tcp, ws.rstrip("/")
    finally:
        assert served.stop() == 0


@pytest.mark.parametrize("form", ["jsonrpc+tcp", "ws", "http"])
def test_a_jsonrpc_call_that_times_out_exits_3(slow_urls: tuple[str, str], form: str) -> None:
    tcp, ws = slow_urls
    url = {
        "jsonrpc+tcp": tcp.replace("tcp://", "jsonrpc+tcp://"),
        "ws": ws + "/jsonrpc",
        "http": ws.replace("ws://", "http://") + "/jsonrpc",
    }[form]
    started = time.monotonic()
    result = run_cli("call", url, "slow", "--timeout", "0.5")
    assert_one_line_error(result, 3, "timeout")
    assert time.monotonic() - started < 10
