"""How-to: serve a directory, download and upload files with a progress callback, see a refusal."""

import hashlib
import tempfile
from pathlib import Path

from dispatchers import dummy_rpc_handler
from dispatchers.files import FileService, get_file, put_file
from rpcengine import RequestException
from transports.tcp import TcpServer, connect

work = Path(tempfile.mkdtemp())
shared = work / "shared"
shared.mkdir()
(shared / "report.csv").write_bytes(b"month,total\n" + b"june,42\n" * 100_000)
mine = work / "mine"
mine.mkdir()


def show(done, total):
    """A progress callback: bytes so far, and in all."""
    if done == total:
        print(f"{done} of {total} bytes")


with TcpServer(("127.0.0.1", 0), FileService(shared, writable=True)) as server:
    # max_unacked: the server acknowledges often, so few chunks wait to be resent
    engine = connect(*server.address, dummy_rpc_handler, max_unacked=256)

    print(engine.request("files.list", ".")["entries"][0]["name"])
    got = get_file(engine, "report.csv", mine / "report.csv", progress=show)
    assert got["sha256"] == hashlib.sha256((mine / "report.csv").read_bytes()).hexdigest()

    put_file(engine, mine / "report.csv", "copy.csv", progress=show)
    assert (shared / "copy.csv").read_bytes() == (shared / "report.csv").read_bytes()

    try:
        get_file(engine, "../../etc/passwd", mine / "passwd")
    except RequestException as exc:
        print(exc.data["error"], "-", exc.data["message"])
    assert not (mine / "passwd").exists()
    engine.close()
