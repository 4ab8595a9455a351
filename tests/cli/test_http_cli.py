"""The command line over HTTP: `rpcengine call http://HOST:PORT/rpc` against a `serve` ws:// listener."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from helpers.cli import SERVICE, Served, assert_one_line_error, run_cli

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    """The demo service on a ws:// listener; its HTTP twin's URL."""
    served = Served(SERVICE, "ws://127.0.0.1:0/")
    try:
        ws_url = served.wait_for(1)[0]
        yield ws_url.replace("ws://", "http://").rstrip("/") + "/rpc"
    finally:
        assert served.stop() == 0


def test_call_over_http_prints_the_result(http_url: str) -> None:
    results = [run_cli("call", http_url, *args) for args in (["get"], ["add", "2"])]
    assert [result.returncode for result in results] == [0, 0], [result.stderr for result in results]
    before, after = (json.loads(result.stdout) for result in results)
    assert after == before + 2


def test_a_remote_error_over_http_exits_1(http_url: str) -> None:
    result = run_cli("call", http_url, "nowhere")
    assert result.returncode == 1, result.stderr
    assert "method_not_found" in result.stderr


def test_http_is_not_a_listener() -> None:
    result = run_cli("serve", SERVICE, "http://127.0.0.1:0/rpc")
    assert_one_line_error(result, 2, "ws://")


def test_serve_mushroom_answers_mushroom_bootstraps_and_error_strings() -> None:
    import urllib.request

    served = Served(SERVICE, "ws://127.0.0.1:0/", "--mushroom", "/mushroom")
    try:
        ws_url = served.wait_for(1)[0]
        base = ws_url.replace("ws://", "http://").rstrip("/")
        bootstrap = json.dumps({"transports": ["poll"], "auth": None}).encode()
        with urllib.request.urlopen(urllib.request.Request(base + "/mushroom/", data=bootstrap), timeout=10) as answer:
            hello = json.loads(answer.read())
        assert hello["transport"] == "poll" and hello["url"].startswith(base + "/mushroom/")
        result = run_cli("call", base + "/rpc", "nowhere")
        assert result.returncode == 1 and "rpc_nowhere" in result.stderr
    finally:
        assert served.stop() == 0
