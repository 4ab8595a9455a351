"""The command line over Unix-domain sockets: unix:///PATH and unix:@NAME in serve, call, notify, listen, methods."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import SERVICE, Served, assert_one_line_error, listen_while_notifying, run_cli

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str, str]]:
    """The demo service on a socket file and an abstract name: ``(served, file URL, abstract URL)``."""
    path = tmp_path_factory.mktemp("unix") / "demo.sock"
    if len(os.fsencode(str(path))) > 107:
        pytest.skip("the temporary folder's path is too long for a Unix socket")
    name = f"unix:@rpcengine-cli-{os.getpid()}"
    server = Served(SERVICE, f"unix://{path}", name, "--log-level", "error")
    try:
        urls = server.wait_for(2)
        yield server, urls[0], urls[1]
    finally:
        code = server.stop()
    assert code == 0
    assert not path.exists()  # removed on stop


def test_serve_prints_the_unix_urls_and_the_file_is_0600(served: tuple[Served, str, str]) -> None:
    _, file_url, abstract_url = served
    assert file_url.startswith("unix:///") and file_url.endswith("/demo.sock")
    assert abstract_url.startswith("unix:@rpcengine-cli-")
    info = os.stat(file_url.removeprefix("unix://"))
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600


@pytest.mark.parametrize("which", ["file", "abstract"])
def test_call_over_unix(served: tuple[Served, str, str], which: str) -> None:
    url = served[1] if which == "file" else served[2]
    result = run_cli("call", url, "echo", "5", '"six"')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [5, "six"]


def test_methods_over_unix(served: tuple[Served, str, str]) -> None:
    result = run_cli("methods", served[1], "--json")
    assert result.returncode == 0, result.stderr
    assert "echo" in result.stdout


def test_listen_prints_the_broadcast_a_notify_over_unix_causes(served: tuple[Served, str, str]) -> None:
    # Listening on the file, notifying through the abstract name: one server behind both.
    out, _ = listen_while_notifying(served[1], served[2])
    assert [json.loads(line) for line in out.splitlines()] == [
        {"method": "chat.message", "data": {"name": "cli", "text": "hi"}}
    ]


def test_a_missing_socket_file_is_one_line_exit_4(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/none.sock"
    assert_one_line_error(run_cli("call", url, "get"), 4, url, "no such socket file")


def test_a_second_server_on_a_live_socket_is_refused(served: tuple[Served, str, str]) -> None:
    result = run_cli("serve", SERVICE, served[1], timeout=30)
    assert_one_line_error(result, 4, f"cannot listen on {served[1]}", "already listens")


@pytest.mark.parametrize(
    "bad_url", ["unix://host/tmp/x.sock", "unix:", "unix://", "unix:@", "unix:///" + "x" * 120, "unix:///a?b"]
)
def test_bad_unix_url_exits_2(bad_url: str) -> None:
    assert_one_line_error(run_cli("call", bad_url, "get"), 2, "rpcengine: error: bad URL")
