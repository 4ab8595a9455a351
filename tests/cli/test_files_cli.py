"""``serve --files ROOT [--writable]``, ``get`` and ``put`` as a user runs them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.cli import Served, assert_one_line_error, run_cli

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_get_and_put_through_the_command_line(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_text("hello\n")
    (tmp_path / "notes.txt").write_text("notes\n")
    served = Served("--files", str(root), "--writable", "tcp://127.0.0.1:0", env=env())
    try:
        url = served.wait_for(1)[0]
        got = run_cli("get", url, "hello.txt", str(tmp_path / "copy.txt"), env=env(), cwd=tmp_path)
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["size"] == 6 and got.stderr == ""  # no progress bar when piped
        assert (tmp_path / "copy.txt").read_text() == "hello\n"
        put = run_cli("put", url, str(tmp_path / "notes.txt"), "notes.txt", env=env(), cwd=tmp_path)
        assert put.returncode == 0, put.stderr
        assert (root / "notes.txt").read_text() == "notes\n"
        refused = run_cli("get", url, "../etc/passwd", str(tmp_path / "x"), env=env(), cwd=tmp_path)
        line = assert_one_line_error(refused, 1, "path_refused")
        assert json.loads(line)["error"] == "path_refused"
        assert not (tmp_path / "x").exists()
        missing = run_cli("put", url, str(tmp_path / "none.txt"), "none.txt", env=env(), cwd=tmp_path)
        assert_one_line_error(missing, 2, "none.txt")
        listed = run_cli("call", url, "files.list", ".", env=env(), cwd=tmp_path)
        assert {entry["name"] for entry in json.loads(listed.stdout)["entries"]} == {"hello.txt", "notes.txt"}
    finally:
        assert served.stop() == 0, served.stderr


def test_a_read_only_server_refuses_put(tmp_path: Path) -> None:
    (tmp_path / "local.txt").write_text("x")
    served = Served("--files", str(tmp_path), "tcp://127.0.0.1:0", env=env())
    try:
        url = served.wait_for(1)[0]
        result = run_cli("put", url, str(tmp_path / "local.txt"), "copy.txt", env=env(), cwd=tmp_path)
        assert_one_line_error(result, 1, "read_only")
        assert sorted(os.listdir(tmp_path)) == ["local.txt"]
    finally:
        served.stop()


def test_serve_usage_errors(tmp_path: Path) -> None:
    missing = run_cli("serve", "--files", str(tmp_path / "nope"), "tcp://127.0.0.1:0", env=env())
    assert_one_line_error(missing, 2, "nope")
    assert_one_line_error(run_cli("serve", "--writable", "tcp://127.0.0.1:0", env=env()), 2, "--files")
    assert_one_line_error(run_cli("serve", "tcp://127.0.0.1:0", env=env()), 2, "MODULE:OBJECT")
    assert_one_line_error(run_cli("get", "jsonrpc+tcp://127.0.0.1:1", "a", "b", env=env()), 2, "JSON-RPC")
