"""`rpcengine discover` and `serve --discovery` on loopback: probes go to 127.0.0.1 only, never a broadcast."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import SERVICE, Served, assert_one_line_error, run_cli

from rpcengine import __version__


@pytest.fixture
def served() -> Iterator[tuple[str, int]]:
    """A `serve --discovery` in workgroup "lab" on free ports of 127.0.0.1: (its URL, its UDP port)."""
    server = Served(SERVICE, "tcp://127.0.0.1:0", "--discovery", "--discovery-port", "0", "--workgroup", "lab",
                    "--name", "counter")  # fmt: skip
    try:
        [url] = server.wait_for(1)
        line = server.lines.get(timeout=15)
        match = re.fullmatch(r"answering discovery on UDP port (\d+) as 'counter', workgroup 'lab'\n", line)
        assert match, line
        yield url, int(match.group(1))
    finally:
        server.stop()


def discover(port: int, *args: str) -> object:
    return run_cli("discover", "--address", "127.0.0.1", "--port", str(port), "--timeout", "0.5", *args)


def test_discover_prints_a_table(served: tuple[str, int]) -> None:
    url, port = served
    result = discover(port)
    assert result.returncode == 0 and result.stderr == "", result
    header, row = result.stdout.splitlines()
    assert header.split() == ["NAME", "WORKGROUP", "VERSION", "ADDRESS", "URLS"]
    assert row.split() == ["counter", "lab", __version__, "127.0.0.1", url]


def test_discover_json_and_the_workgroup_filter(served: tuple[str, int]) -> None:
    url, port = served
    result = discover(port, "--json", "--workgroup", "lab")
    assert result.returncode == 0, result
    assert json.loads(result.stdout) == [
        {"name": "counter", "version": __version__, "workgroup": "lab", "urls": [url], "address": "127.0.0.1"}
    ]
    other = discover(port, "--json", "--workgroup", "other")
    assert json.loads(other.stdout) == []
    assert_one_line_error(other, 3, "no server in workgroup 'other' answered within 0.5 s")


def test_nothing_answering_exits_3(served: tuple[str, int]) -> None:
    _, port = served
    result = run_cli("discover", "--address", "127.0.0.1", "--port", str(port + 1 if port < 65535 else 1),
                     "--timeout", "0.3")  # fmt: skip
    assert result.stdout == ""
    assert_one_line_error(result, 3, "no server answered within 0.3 s")


def udp_inodes() -> set[str]:
    """The inodes of every UDP socket of this network namespace (IPv4 and IPv6)."""
    inodes = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as lines:
            inodes |= {line.split()[9] for line in list(lines)[1:]}
    return inodes


@pytest.mark.skipif(not os.path.exists("/proc/net/udp"), reason="needs Linux's /proc/net/udp")
def test_serve_without_discovery_opens_no_udp_socket() -> None:
    server = Served(SERVICE, "tcp://127.0.0.1:0")
    try:
        server.wait_for(1)
        fds = Path(f"/proc/{server.proc.pid}/fd")
        sockets = {
            os.readlink(fd)[len("socket:[") : -1] for fd in fds.iterdir() if os.readlink(fd).startswith("socket:")
        }
        assert sockets, "the TCP listener at least"
        assert not sockets & udp_inodes(), "nothing to answer a probe with"
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["discover", "--workgroup", "x" * 200], "workgroup must be 1 to 128"),
        (["discover", "--timeout", "0"], "must be greater than 0"),
        (["discover", "--port", "70000"], "must be a port"),
        (["serve", SERVICE, "tcp://127.0.0.1:0", "--name", "x"], "--name and --workgroup are for --discovery"),
        (["serve", SERVICE, "tcp://127.0.0.1:0", "--discovery", "--name", ""], "cannot answer discovery"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], fragment: str) -> None:
    assert_one_line_error(run_cli(*args), 2, fragment)


def test_discover_help_has_examples_and_the_exit_codes() -> None:
    result = run_cli("discover", "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert "  rpcengine discover --workgroup lab" in result.stdout
    assert "3 none answered within --timeout" in result.stdout
    assert "--discovery" in run_cli("serve", "--help").stdout
    assert re.search(r"^\s+discover\s+\S", run_cli("--help").stdout, re.MULTILINE)


def test_a_file_server_answers_discovery_under_its_root_name(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    server = Served("--files", str(root), "tcp://127.0.0.1:0", "--discovery", "--discovery-port", "0")
    try:
        [url] = server.wait_for(1)
        line = server.lines.get(timeout=15)
        match = re.fullmatch(r"answering discovery on UDP port (\d+) as 'files:shared'\n", line)
        assert match, (line, server.errors)
        result = discover(int(match.group(1)), "--json")
        assert result.returncode == 0, result
        [found] = json.loads(result.stdout)  # type: ignore[attr-defined]
        assert found["name"] == "files:shared" and found["urls"] == [url]
    finally:
        server.stop()
