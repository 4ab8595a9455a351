"""`methods URL NAME` shows one method in full; `--log-level debug` shows connections and calls."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from helpers.cli import SERVICE, Served, assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """The demo service over TCP, logging at debug level."""
    server = Served(SERVICE, "tcp://127.0.0.1:0", "--log-level", "debug")
    try:
        server.wait_for(1)
        yield server
    finally:
        assert server.stop() == 0


def test_methods_name_shows_the_method_in_full(served: Served) -> None:
    url = served.urls[0]
    result = run_cli("methods", url, "sleep")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("sleep(") and lines[1] == ""
    assert lines[2].startswith("    Sleep for the given seconds")
    described = json.loads(run_cli("methods", url, "--json").stdout)
    entry = next(entry for entry in described if entry["name"] == "sleep")
    assert lines[0] == f"sleep{entry['signature']}"
    # Whatever else describe reports is shown too, but for what the heading and docstring already say.
    already_said = {"name", "signature", "doc", "docstring", "takes", "returns"}
    for key in set(entry) - already_said:
        if not (key == "params" and entry[key] is None):
            assert any(line.startswith(f"{key}:") for line in lines), key
    assert not any(line.startswith(("takes:", "returns:", "docstring:", "params: null")) for line in lines)


def test_methods_name_json_is_that_entry(served: Served) -> None:
    url = served.urls[0]
    entry = json.loads(run_cli("methods", url, "add", "--json").stdout)
    assert entry["name"] == "add" and "doc" in entry


def test_methods_with_an_unknown_name_lists_the_names(served: Served) -> None:
    url = served.urls[0]
    line = assert_one_line_error(run_cli("methods", url, "nope"), 1, f"{url} has no method 'nope'")
    assert line.endswith("it has: add, echo, get, greet, say, sleep")


def test_debug_logging_on_the_client_shows_the_connection_and_the_call(served: Served) -> None:
    url = served.urls[0]
    result = run_cli("call", url, "echo", "7", "--log-level", "debug")
    assert result.returncode == 0 and json.loads(result.stdout) == 7
    log = result.stderr
    fragments = (f"connecting to {url}", f"connected to {url} (resumable session)", "calling echo with 7")
    for fragment in (*fragments, "echo answered", "connection closed"):
        assert fragment in log, log


def test_debug_logging_on_the_server_shows_connections_and_calls(served: Served) -> None:
    assert run_cli("call", served.urls[0], "echo", "logged").returncode == 0
    peer = served.wait_for_stderr(r"call echo from (127\.0\.0\.1:\d+) \(id \d+\)").group(1)
    served.wait_for_stderr(rf"client {peer} connected \(resumable session\)")
    served.wait_for_stderr(rf"call echo from {peer} done in [\d.]+ ms")
    served.wait_for_stderr(rf"client {peer} disconnected")


def test_warning_level_logs_nothing_on_success(served: Served) -> None:
    result = run_cli("call", served.urls[0], "get")
    assert result.returncode == 0 and result.stderr == ""
