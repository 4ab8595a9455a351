"""`--trace`: every message sent and received, one line each, with direction and time, on every command."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from helpers.cli import SERVICE, Served, listen_while_notifying, run_cli

LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) (→|←|>|<) (\S+) (\[.*\])$")


def trace_lines(stderr: str) -> list[tuple[str, str, list[object]]]:
    """Parse every trace line of ``stderr`` into (direction, peer, message); fail on any other line."""
    parsed = []
    for line in stderr.splitlines():
        match = LINE.match(line)
        assert match, f"not a trace line: {line!r}"
        direction = "sent" if match.group(2) in ("→", ">") else "received"
        parsed.append((direction, match.group(3), json.loads(match.group(4))))
    return parsed


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """The demo service over TCP, tracing on the server side too."""
    server = Served(SERVICE, "tcp://127.0.0.1:0", "--trace")
    try:
        server.wait_for(1)
        yield server
    finally:
        assert server.stop() == 0


def test_call_traces_the_request_and_its_answer(served: Served) -> None:
    url = served.urls[0]
    result = run_cli("call", url, "echo", "2", "3", "--trace")
    assert result.returncode == 0 and json.loads(result.stdout) == [2, 3]
    lines = trace_lines(result.stderr)
    assert [direction for direction, _, _ in lines] == ["sent", "received"]
    (_, peer, request), (_, _, response) = lines
    assert peer == url
    # The call's timeout travels with it (the session negotiated the deadline feature): --timeout's 30 s.
    assert request[0] == 2 and request[2:] == ["echo", [2, 3], 30_000]
    assert response[0] == 3 and response[2] == request[1] and response[3] == [2, 3]


def test_serve_traces_what_each_client_sends_and_gets(served: Served) -> None:
    url = served.urls[0]
    assert run_cli("call", url, "echo", "traced-on-the-server").returncode == 0
    received = served.wait_for_stderr(
        r'^.* (←|<) (127\.0\.0\.1:\d+) \[2, ?(\d+), ?"echo", ?"traced-on-the-server", ?30000\]$'  # with its deadline
    )
    peer, ident = received.group(2), received.group(3)
    answer = served.wait_for_stderr(rf'^.* (→|>) {re.escape(peer)} \[3, ?\d+, ?{ident}, ?"traced-on-the-server"\]$')
    assert LINE.match(answer.group(0))


def test_serve_traces_broadcasts(served: Served) -> None:
    _, err = listen_while_notifying(served.urls[0], served.urls[0], "--trace")
    received = [message for direction, _, message in trace_lines(err) if direction == "received"]
    assert received[0][0] == 1 and received[0][2:] == ["chat.message", {"name": "cli", "text": "hi"}]
    served.wait_for_stderr(
        r'(→|>) 127\.0\.0\.1:\d+ \[1, ?\d+, ?"chat\.message", ?\{"name": ?"cli", ?"text": ?"hi"\}\]$'
    )


def test_methods_traces_the_describe_call(served: Served) -> None:
    result = run_cli("methods", served.urls[0], "--trace")
    assert result.returncode == 0
    (_, _, request), (_, _, response) = trace_lines(result.stderr)
    assert request[2] == "rpcengine.describe" and response[0] == 3


def test_a_remote_error_is_traced_before_it_is_reported(served: Served) -> None:
    result = run_cli("call", served.urls[0], "add", '"five"', "--trace")
    assert result.returncode == 1
    *trace, error = result.stderr.splitlines()
    assert json.loads(error)["error"] == "invalid_params"
    assert trace_lines("\n".join(trace))[1][2][0] == 4  # the Error message


def test_without_trace_nothing_is_printed(served: Served) -> None:
    result = run_cli("call", served.urls[0], "get")
    assert result.returncode == 0 and result.stderr == ""


def test_trace_over_websocket() -> None:
    pytest.importorskip("transports.websocket")
    server = Served(SERVICE, "ws://127.0.0.1:0/rpc")
    try:
        url = server.wait_for(1)[0]
        result = run_cli("call", url, "echo", "ws", "--trace")
        assert result.returncode == 0
        assert [direction for direction, _, _ in trace_lines(result.stderr)] == ["sent", "received"]
    finally:
        assert server.stop() == 0


def test_demo_trace_shows_the_servers_messages() -> None:
    result = run_cli("demo", "--base-port", "0", "--trace", timeout=60)
    assert result.returncode == 0, result.stderr
    lines = trace_lines(result.stderr)
    methods = {message[2] for _, _, message in lines if message[0] in (1, 2)}
    assert {"add", "counter.changed", "say", "chat.message", "whoami", "rpcengine.describe"} <= methods
