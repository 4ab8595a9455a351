"""The file service's root is a jail: 40 escape attempts refused with an Error, nothing outside touched."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatchers import dummy_rpc_handler
from dispatchers.files import FileService, get_file, put_file
from rpcengine import Engine, RequestException
from transports.memory import pair

pytestmark = pytest.mark.timeout(60)

SECRET = b"outside the root\n"


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """A root with a file, a subfolder, symlinks out of it and in it, a FIFO; a secret beside the root."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "root"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "hello.txt").write_bytes(b"hello\n")
    (root / "sub" / "inner.txt").write_bytes(b"inner\n")
    (root / "out_link").symlink_to(outside / "secret.txt")
    (root / "out_dir").symlink_to(outside)
    (root / "sub" / "up_link").symlink_to("../../outside/secret.txt")
    (root / "in_link").symlink_to("hello.txt")
    (root / "dev_null").symlink_to("/dev/null")
    os.mkfifo(root / "fifo")
    return {"root": root, "outside": outside}


@pytest.fixture
def client(tree: dict[str, Path]) -> Iterator[Engine]:
    client_side, server_side = pair()
    Engine(server_side, FileService(tree["root"], writable=True))
    engine = Engine(client_side, dummy_rpc_handler, default_timeout=5)
    yield engine
    engine.close()


def snapshot(folder: Path) -> dict[str, Any]:
    """Every entry under ``folder`` with its content (or link target), its mtime and its atime."""
    seen: dict[str, Any] = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        body = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else None
        seen[str(path.relative_to(folder))] = (body, info.st_mtime_ns, info.st_size)
    return seen


LONG_NAME = "n" * 256
LONG_PATH = "/".join(["d" * 200] * 21)  # 4220 bytes, every component allowed

#: (path, the kind of refusal): 40 attempts to leave the root, each a different way.
ESCAPES = [
    ("/etc/passwd", "path_refused"),
    ("//etc/passwd", "path_refused"),
    ("/", "path_refused"),
    ("..", "path_refused"),
    ("../outside/secret.txt", "path_refused"),
    ("../../../../../../etc/passwd", "path_refused"),
    ("sub/../../outside/secret.txt", "path_refused"),
    ("sub/deeper/../../../outside/secret.txt", "path_refused"),
    ("sub/..", "path_refused"),
    ("./../outside/secret.txt", "path_refused"),
    ("sub/./../..", "path_refused"),
    ("hello.txt/..", "path_refused"),
    ("sub//..//..//outside/secret.txt", "path_refused"),
    ("..\\outside\\secret.txt", "path_refused"),
    ("sub\\..\\..\\outside\\secret.txt", "path_refused"),
    ("..%2foutside%2fsecret.txt", "path_refused"),
    ("%2e%2e/outside/secret.txt", "path_refused"),
    ("%2e%2e%2f%2e%2e%2fetc%2fpasswd", "path_refused"),
    ("..%252f..%252fetc%252fpasswd", "path_refused"),
    ("\u2025/outside/secret.txt", "path_refused"),
    ("\uff0e\uff0e/outside/secret.txt", "path_refused"),
    ("\ufe52\ufe52/outside/secret.txt", "path_refused"),
    ("~/secret.txt", "not_found"),
    ("$HOME/secret.txt", "not_found"),
    ("`cat /etc/passwd`", "not_found"),
    ("hello.txt; cat ../outside/secret.txt", "not_found"),
    ("hello.txt\x00../../etc/passwd", "path_refused"),
    ("\x00", "path_refused"),
    ("sub/\ninner.txt", "path_refused"),
    ("..\uff0foutside\uff0fsecret.txt", "path_refused"),
    ("out_link", "path_refused"),
    ("out_dir/secret.txt", "path_refused"),
    ("out_dir", "path_refused"),
    ("sub/up_link", "path_refused"),
    ("dev_null", "path_refused"),
    ("fifo", "not_a_file"),
    ("sub", "not_a_file"),
    (LONG_NAME, "path_refused"),
    (LONG_PATH, "path_refused"),
    (f"sub/{LONG_NAME}/x", "path_refused"),
]


def test_there_are_forty_different_attempts() -> None:
    assert len(ESCAPES) == 40
    assert len({path for path, _ in ESCAPES}) == 40


@pytest.mark.parametrize(("path", "kind"), ESCAPES, ids=[f"{i:02d}" for i in range(len(ESCAPES))])
def test_an_escape_is_refused_and_touches_nothing_outside(
    path: str, kind: str, client: Engine, tree: dict[str, Path], tmp_path: Path
) -> None:
    source = tmp_path / "upload_source.txt"
    source.write_bytes(b"new")
    before = snapshot(tmp_path)
    outside_atime = (tree["outside"] / "secret.txt").stat().st_atime_ns
    if kind == "not_a_file":  # a FIFO or a folder inside the root: it may be looked at, never read
        assert client.request("files.stat", {"path": path})["type"] in {"other", "directory"}
    attempts = [
        lambda: client.request("files.checksum", {"path": path}),
        lambda: list(client.stream("files.read", {"path": path}, timeout=5)),
        lambda: get_file(client, path, tmp_path / "local_copy"),
        lambda: client.request("files.open_write", {"path": path, "size": 3}),
        lambda: put_file(client, source, path),
    ]
    if kind != "not_a_file":
        attempts.append(lambda: client.request("files.stat", {"path": path}))
        attempts.append(lambda: client.request("files.list", {"path": path}))
    for number, attempt in enumerate(attempts):
        with pytest.raises(RequestException) as caught:
            attempt()
        data = caught.value.data
        assert set(data) >= {"error", "message"}, data
        assert "Traceback" not in data["message"] and str(tree["root"]) not in data["message"]
        if number < 3:  # the reads: the documented refusal (listing and writing may refuse otherwise)
            assert data["error"] == kind, (path, number, data)
        else:
            assert data["error"] in {kind, "path_refused", "not_found", "not_a_file", "not_a_directory"}, data
    after = snapshot(tmp_path)
    assert after == before  # nothing created, changed or removed, inside or outside the root
    assert (tree["outside"] / "secret.txt").read_bytes() == SECRET
    if outside_atime != (tree["outside"] / "secret.txt").stat().st_atime_ns:
        pytest.fail("the secret outside the root was read")


def test_paths_inside_the_root_still_work(client: Engine, tree: dict[str, Path], tmp_path: Path) -> None:
    assert client.request("files.stat", "in_link")["type"] == "file"  # a symlink that stays inside
    assert get_file(client, "in_link", tmp_path / "copy")["size"] == 6
    assert (tmp_path / "copy").read_bytes() == b"hello\n"
    assert get_file(client, "sub/./deeper/../inner.txt".replace("/deeper/..", ""), tmp_path / "inner")["size"] == 6
    listed = client.request("files.list", ".")
    names = {entry["name"]: entry["type"] for entry in listed["entries"]}
    assert names["out_link"] == "symlink" and names["fifo"] == "other" and names["sub"] == "directory"
    assert client.request("files.list", {"path": "sub"})["path"] == "sub"
