"""The client side of the file service: :func:`get_file` and :func:`put_file`, over any connected Engine.

::

    engine = connect(("127.0.0.1", 7000), dummy_rpc_handler)
    get_file(engine, "reports/june.csv", "june.csv", progress=print)
    put_file(engine, "notes.txt", "inbox/notes.txt")

Memory stays bounded whatever the size: a download keeps at most
``window`` chunks in flight (the stream's credit, :mod:`rpcengine.streams`),
an upload at most ``in_flight`` unanswered ``files.write`` calls. Both
write the local or remote file under a temporary name in the same directory
and rename it into place only once its SHA-256 matches, so a failed
transfer leaves the old file (or none) untouched. Against a peer that cannot
stream, a download pages through the file one chunk per request.

Both block (yielding to the hub) and must run on the engine's hub thread.
They raise :class:`~rpcengine.errors.RequestException` with the service's
refusal (``not_found``, ``path_refused``, ``read_only``, ...; see
:data:`~dispatchers.files.chunks.ERROR_KINDS`), or ``checksum_mismatch``
when what arrived is not what was sent;
:class:`~rpcengine.errors.RequestTimeout`,
:class:`~rpcengine.errors.ConnectionLost`; OSError for the local file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import deque
from collections.abc import Callable
from typing import Any

from dispatchers.files.chunks import DEFAULT_CHUNK, MAX_CHUNK, MIN_CHUNK, decode_chunk, encode_chunk, refusal
from rpcengine.calls import Call
from rpcengine.engine import Engine
from rpcengine.errors import RpcError

__all__ = ["DEFAULT_IN_FLIGHT", "DEFAULT_WINDOW", "Progress", "get_file", "put_file"]

#: ``progress(done, total)``: bytes transferred so far, and in all (None while unknown).
Progress = Callable[[int, "int | None"], object]

#: Chunks a download lets the server send ahead of those written.
DEFAULT_WINDOW = 8
#: ``files.write`` calls an upload leaves unanswered at most.
DEFAULT_IN_FLIGHT = 8


def _check_chunk(chunk: int) -> None:
    """Raise ValueError unless ``chunk`` is a chunk size the service takes."""
    if type(chunk) is not int or not MIN_CHUNK <= chunk <= MAX_CHUNK:
        raise ValueError(f"chunk must be from {MIN_CHUNK} to {MAX_CHUNK} bytes, got {chunk!r}")


def get_file(
    engine: Engine,
    remote: str,
    local: str | os.PathLike[str],
    progress: Progress | None = None,
    *,
    prefix: str = "files",
    chunk: int = DEFAULT_CHUNK,
    window: int = DEFAULT_WINDOW,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Download ``remote`` to the local path ``local``; return ``{"path", "size", "sha256"}``.

    ``progress(done, total)`` is called after every chunk; ``timeout``
    bounds each wait for the next chunk. Blocks (yields); raises as the
    module docstring says. ``local`` is replaced only if the whole file
    arrived with its checksum.
    """
    _check_chunk(chunk)
    target = os.fspath(local)
    directory = os.path.dirname(os.path.abspath(target))
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(target)[:200]}.", suffix=".part", dir=directory)
    try:
        os.fchmod(fd, _new_file_mode(target))
        with os.fdopen(fd, "wb") as out:
            size, digest = _download(engine, remote, out, progress, f"{prefix}.read", chunk, window, timeout)
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    return {"path": remote, "size": size, "sha256": digest}


def _new_file_mode(path: str) -> int:
    """The mode a downloaded file gets: that of the file it replaces, else 0o666 less the umask."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        mask = os.umask(0o022)
        os.umask(mask)
        return 0o666 & ~mask


def _download(
    engine: Engine,
    remote: str,
    out: Any,
    progress: Progress | None,
    method: str,
    chunk: int,
    window: int,
    timeout: float,
) -> tuple[int, str]:
    """Write ``remote``'s bytes to ``out``, range after range; return the size and SHA-256."""
    whole = hashlib.sha256()
    offset = 0
    total: int | None = None
    while True:
        stream = engine.stream(method, {"path": remote, "offset": offset, "chunk": chunk}, timeout, window=window)
        part = hashlib.sha256()
        end: dict[str, Any] | None = None
        for item in stream:
            if type(item) is not dict:
                raise refusal("checksum_mismatch", f"{remote!r}: the server sent {type(item).__name__}, not a chunk")
            if "data" in item:
                if item.get("offset") != offset:
                    raise refusal("checksum_mismatch", f"{remote!r}: a chunk at {item.get('offset')}, not {offset}")
                block = decode_chunk(item["data"])
                out.write(block)
                part.update(block)
                whole.update(block)
                offset += len(block)
                if progress is not None:
                    progress(offset, total)
            elif item.get("end"):
                end = item
            elif total is None and type(item.get("size")) is int:
                total = item["size"]
        if end is None or end.get("sha256") != part.hexdigest():
            raise refusal("checksum_mismatch", f"{remote!r}: the bytes that arrived do not have the server's SHA-256")
        if end.get("eof") or end.get("length") == 0:
            return offset, whole.hexdigest()


def put_file(
    engine: Engine,
    local: str | os.PathLike[str],
    remote: str,
    progress: Progress | None = None,
    *,
    prefix: str = "files",
    chunk: int = DEFAULT_CHUNK,
    in_flight: int = DEFAULT_IN_FLIGHT,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Upload the local file ``local`` to ``remote``; return the server's ``{"path", "size", "sha256"}``.

    ``progress(done, total)`` is called as each chunk is acknowledged;
    ``timeout`` bounds each call. The server renames the upload into place
    only once size and checksum match. Blocks (yields); raises as the
    module docstring says. On any failure the upload is aborted.
    """
    _check_chunk(chunk)
    if type(in_flight) is not int or in_flight < 1:
        raise ValueError(f"in_flight must be an integer >= 1, got {in_flight!r}")
    with open(local, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        opened = engine.request(f"{prefix}.open_write", {"path": remote, "size": size}, timeout)
        handle = opened["handle"]
        served = opened.get("chunk")
        if type(served) is int and MIN_CHUNK <= served < chunk:
            chunk = served
        pending: deque[tuple[Call, int]] = deque()
        try:
            digest = _upload(engine, source, size, handle, pending, progress, prefix, chunk, in_flight, timeout)
            data = {"handle": handle, "size": size, "sha256": digest}
            result: dict[str, Any] = engine.request(f"{prefix}.close_write", data, timeout)
        except BaseException:
            for call, _ in pending:
                call.cancel()
            _abort(engine, f"{prefix}.abort_write", handle, timeout)
            raise
    return result


def _upload(
    engine: Engine,
    source: Any,
    size: int,
    handle: str,
    pending: deque[tuple[Call, int]],
    progress: Progress | None,
    prefix: str,
    chunk: int,
    in_flight: int,
    timeout: float,
) -> str:
    """Send ``size`` bytes of ``source`` as ``files.write`` calls, ``in_flight`` at most; return their SHA-256."""
    digest = hashlib.sha256()
    method = f"{prefix}.write"
    offset = done = 0
    while offset < size or pending:
        if offset < size and len(pending) < in_flight:
            block = source.read(min(chunk, size - offset))
            if not block:
                raise refusal("checksum_mismatch", f"the local file shrank while it was read, at {offset} bytes")
            digest.update(block)
            data = {"handle": handle, "offset": offset, "data": encode_chunk(block)}
            pending.append((engine.call(method, data, timeout), len(block)))
            offset += len(block)
            continue
        call, length = pending[0]
        call.get()
        pending.popleft()
        done += length
        if progress is not None:
            progress(done, size)
    return digest.hexdigest()


def _abort(engine: Engine, method: str, handle: str, timeout: float) -> None:
    """Ask the server to discard an upload, if the connection still stands; never raises an RpcError."""
    if engine.closed:
        return
    try:
        engine.request(method, {"handle": handle}, min(timeout, 5.0))
    except RpcError:
        pass
