"""FileService, get_file and put_file on the loopback: paging without streams, uploads' checks and bounds."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from dispatchers import dummy_rpc_handler
from dispatchers.files import FileService, get_file, put_file
from rpcengine import Engine, RequestException
from transports.memory import pair

pytestmark = pytest.mark.timeout(60)


def connected(service: FileService, features: frozenset[str] | None = None) -> Engine:
    client_side, server_side = pair() if features is None else pair(features=features)
    Engine(server_side, service)
    return Engine(client_side, dummy_rpc_handler, default_timeout=5)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    (folder / "data.bin").write_bytes(os.urandom(300_000))
    return folder


@pytest.fixture
def client(root: Path) -> Iterator[Engine]:
    engine = connected(FileService(root, writable=True))
    yield engine
    engine.close()


def kind_of(call: object) -> str:
    with pytest.raises(RequestException) as caught:
        call()  # type: ignore[operator]
    return str(caught.value.data["error"])


def test_get_and_put_round_trip_with_progress(client: Engine, root: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    result = get_file(client, "data.bin", tmp_path / "copy.bin", lambda done, total: seen.append((done, total)))
    assert (tmp_path / "copy.bin").read_bytes() == (root / "data.bin").read_bytes()
    assert result["sha256"] == hashlib.sha256((root / "data.bin").read_bytes()).hexdigest()
    assert seen[-1] == (300_000, 300_000) and len(seen) == 5
    assert put_file(client, tmp_path / "copy.bin", "again.bin")["sha256"] == result["sha256"]
    assert (root / "again.bin").read_bytes() == (root / "data.bin").read_bytes()
    assert client.request("files.checksum", "again.bin")["sha256"] == result["sha256"]


def test_a_peer_that_cannot_stream_pages_one_chunk_per_request(root: Path, tmp_path: Path) -> None:
    engine = connected(FileService(root), features=frozenset())
    items = engine.request("files.read", {"path": "data.bin", "offset": 65536})
    assert [sorted(item) for item in items] == [
        ["length", "offset", "path", "size"],
        ["data", "offset"],
        ["end", "eof", "length", "sha256"],
    ]
    assert items[2]["length"] == 65536 and items[2]["eof"] is False
    result = get_file(engine, "data.bin", tmp_path / "paged.bin")
    assert (tmp_path / "paged.bin").read_bytes() == (root / "data.bin").read_bytes()
    assert result["size"] == 300_000


def test_a_read_only_service_refuses_every_write(root: Path, tmp_path: Path) -> None:
    engine = connected(FileService(root))
    (tmp_path / "local.txt").write_text("x")
    assert kind_of(lambda: put_file(engine, tmp_path / "local.txt", "new.txt")) == "read_only"
    for method in ("files.open_write", "files.write", "files.close_write", "files.abort_write"):
        assert kind_of(lambda method=method: engine.request(method, {"handle": "h", "path": "x"})) == "read_only"
    assert sorted(os.listdir(root)) == ["data.bin"]


def test_a_wrong_checksum_leaves_nothing(client: Engine, root: Path) -> None:
    handle = client.request("files.open_write", {"path": "bad.bin", "size": 3})["handle"]
    client.request("files.write", {"handle": handle, "offset": 0, "data": "YWJj"})
    assert kind_of(lambda: client.request("files.close_write", {"handle": handle, "size": 3, "sha256": "0" * 64})) == (
        "checksum_mismatch"
    )
    assert sorted(os.listdir(root)) == ["data.bin"]
    assert kind_of(lambda: client.request("files.write", {"handle": handle, "offset": 0, "data": "YQ=="})) == (
        "unknown_handle"
    )


def test_writes_past_the_size_and_bad_chunks_are_refused(client: Engine) -> None:
    handle = client.request("files.open_write", {"path": "small.bin", "size": 2})["handle"]
    assert kind_of(lambda: client.request("files.write", {"handle": handle, "offset": 0, "data": "YWJj"})) == (
        "bad_offset"
    )
    assert kind_of(lambda: client.request("files.write", {"handle": handle, "offset": 0, "data": "!!"})) == (
        "invalid_params"
    )
    assert client.request("files.abort_write", {"handle": handle}) is True


def test_uploads_are_bounded_and_expire(root: Path) -> None:
    service = FileService(root, writable=True, max_uploads=2, upload_timeout=0.2)
    engine = connected(service)
    now = [0.0]
    service.uploads.clock = lambda: now[0]
    for name in ("a", "b"):
        engine.request("files.open_write", {"path": name, "size": 1})
    assert kind_of(lambda: engine.request("files.open_write", {"path": "c", "size": 1})) == "too_many_uploads"
    assert len([name for name in os.listdir(root) if name.endswith(".part")]) == 2
    now[0] = 1.0
    engine.request("files.open_write", {"path": "c", "size": 1})
    assert len(service.uploads) == 1
    engine.close()
    for _ in range(100):  # the server's side learns of the end in a moment
        if not [name for name in os.listdir(root) if name.endswith(".part")]:
            break
        gevent.sleep(0.01)
    assert not [name for name in os.listdir(root) if name.endswith(".part")]  # its connection ended


def test_listing_pages_by_name(root: Path) -> None:
    for index in range(5):
        (root / f"f{index}").write_text("x")
    engine = connected(FileService(root, max_list=3))
    first = engine.request("files.list", ".")
    assert [entry["name"] for entry in first["entries"]] == ["data.bin", "f0", "f1"] and first["more"]
    second = engine.request("files.list", {"path": ".", "after": "f1"})
    assert [entry["name"] for entry in second["entries"]] == ["f2", "f3", "f4"] and not second["more"]


def test_bad_arguments_are_clear_errors(client: Engine) -> None:
    assert kind_of(lambda: client.request("files.read", 5)) == "invalid_params"
    assert kind_of(lambda: client.request("files.read", {"offset": 1})) == "invalid_params"
    assert kind_of(lambda: client.request("files.read", {"path": "data.bin", "offset": -1})) == "invalid_params"
    assert kind_of(lambda: client.request("files.stat", {"path": 7})) == "invalid_params"
    with pytest.raises(ValueError):
        FileService(".", chunk_size=10)
    with pytest.raises(NotADirectoryError):
        FileService("/nonexistent/folder")
