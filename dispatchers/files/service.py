"""FileService: a dispatcher that serves one directory: list, stat, read and (when writable) write.

::

    service = FileService("/srv/shared", writable=True)
    server = TcpServer(("127.0.0.1", 7000), service)

Its methods (``PREFIX`` is ``files`` unless told otherwise) take an object,
or for the path-only ones a path string:

``files.list`` ``{"path": ".", "after": NAME}``
    ``{"path", "entries": [{"name", "type", "size", "mtime"}...], "more"}``:
    at most ``max_list`` entries sorted by name; ``more`` says whether there
    are others after the last (ask again with ``after`` set to its name).
``files.stat`` ``{"path"}``
    ``{"path", "type", "size", "mtime"}``; ``type`` is ``file``,
    ``directory``, ``symlink`` or ``other``.
``files.read`` ``{"path", "offset": 0, "length": null, "chunk": 65536}``
    a stream: ``{"path", "size", "offset", "length"}`` first, then
    ``{"offset", "data"}`` chunks (base64), then ``{"end": true, "length",
    "sha256", "eof"}`` with the SHA-256 of the bytes sent. To a caller that
    cannot take a stream (see :mod:`rpcengine.streams`) the same items come
    as one list covering one chunk at most: it pages with ``offset``.
``files.checksum`` ``{"path"}``
    ``{"path", "size", "sha256"}`` of the whole file.
``files.open_write`` ``{"path", "size"}``
    ``{"handle", "chunk"}``: an upload (see :mod:`dispatchers.files.uploads`).
``files.write`` ``{"handle", "offset", "data"}``
    ``{"offset", "length"}``: one chunk written at its offset.
``files.close_write`` ``{"handle", "size", "sha256"}``
    ``{"path", "size", "sha256"}`` once checked and renamed into place.
``files.abort_write`` ``{"handle"}``
    ``true``; the upload is discarded.

Paths are relative to the root and jailed in it (:mod:`dispatchers.files.jail`).
Every refusal is an Error with one of the kinds of
:data:`~dispatchers.files.chunks.ERROR_KINDS`; a read-only service answers
the write methods with ``read_only``. Handlers run on the hub: reads and
writes are of one chunk at a time; hashing a whole file yields between blocks.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import os
from collections.abc import Callable
from typing import Any

from dispatchers.files.chunks import DEFAULT_CHUNK, MAX_CHUNK, MIN_CHUNK, decode_chunk, encode_chunk, refusal
from dispatchers.files.jail import Jail, describe_stat, os_refusal
from dispatchers.files.uploads import DEFAULT_MAX_UPLOADS, DEFAULT_UPLOAD_TIMEOUT, Uploads, file_sha256
from dispatchers.registry import Registry
from rpcengine.engine import Engine
from rpcengine.messages import Notification, Request

__all__ = ["DEFAULT_MAX_LIST", "FileReader", "FileService"]

log = logging.getLogger(__name__)

#: Entries one ``files.list`` answer holds at most.
DEFAULT_MAX_LIST = 1000


def _fields(request: Request | Notification, *required: str) -> dict[str, Any]:
    """Return the request's data as an object with ``required`` keys (a string is the ``path``)."""
    data = request.data
    if type(data) is str:
        data = {"path": data}
    if type(data) is not dict:
        raise refusal("invalid_params", f"{request.method} takes an object with {', '.join(required)}")
    missing = [name for name in required if name not in data]
    if missing:
        raise refusal("invalid_params", f"{request.method} needs {', '.join(missing)}")
    return data


def _count(data: dict[str, Any], name: str, default: int | None = None, *, low: int = 0) -> int | None:
    """Return the integer ``data[name]`` (``default`` when absent or null); raise ``invalid_params``."""
    value = data.get(name)
    if value is None:
        return default
    if type(value) is not int or value < low:
        raise refusal("invalid_params", f"{name} must be an integer >= {low}")
    return value


class FileReader:
    """The items of one ``files.read``: a header, the chunks of ``[offset, offset + length)``, an end item.

    It owns ``fd`` and closes it when exhausted or closed (the stream's end
    closes it either way). Reading a chunk is one ``pread``.
    """

    def __init__(self, fd: int, path: str, size: int, offset: int, length: int, chunk: int) -> None:
        self.fd = fd
        self.path = path
        self.offset = offset
        self.length = length
        self.chunk = chunk
        self.sent = 0
        self._digest = hashlib.sha256()
        self._header: dict[str, Any] | None = {"path": path, "size": size, "offset": offset, "length": length}
        self._ended = False

    def __iter__(self) -> FileReader:
        return self

    def __next__(self) -> dict[str, Any]:
        """Return the next item; raise StopIteration after the end item, ``file_error`` if reading fails."""
        header = self._header
        if header is not None:
            self._header = None
            return header
        if self._ended or self.fd < 0:
            self.close()
            raise StopIteration
        want = min(self.chunk, self.length - self.sent)
        block = b""
        if want > 0:
            try:
                block = os.pread(self.fd, want, self.offset + self.sent)
            except OSError as exc:
                self.close()
                raise os_refusal(exc, self.path) from None
        if not block:
            self._ended = True
            eof = self.offset + self.sent >= os.fstat(self.fd).st_size
            return {"end": True, "length": self.sent, "sha256": self._digest.hexdigest(), "eof": eof}
        position = self.offset + self.sent
        self._digest.update(block)
        self.sent += len(block)
        return {"offset": position, "data": encode_chunk(block)}

    def close(self) -> None:
        """Close the file (again is harmless)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FileService:
    """A dispatcher serving the directory ``root``; see the module docstring for its methods.

    ``writable`` allows uploads; ``chunk_size`` is the largest chunk it reads
    or takes (at most :data:`~dispatchers.files.chunks.MAX_CHUNK`);
    ``max_uploads`` and ``upload_timeout`` bound the uploads open at once
    and how long one may sit idle; ``max_list`` the entries of one listing;
    ``prefix`` names the methods (``files.read``, ...). Raises
    NotADirectoryError if ``root`` is not a directory, ValueError for a bad
    ``chunk_size``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        writable: bool = False,
        chunk_size: int = DEFAULT_CHUNK,
        max_uploads: int = DEFAULT_MAX_UPLOADS,
        upload_timeout: float = DEFAULT_UPLOAD_TIMEOUT,
        max_list: int = DEFAULT_MAX_LIST,
        prefix: str = "files",
    ) -> None:
        if type(chunk_size) is not int or not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
            raise ValueError(f"chunk_size must be from {MIN_CHUNK} to {MAX_CHUNK} bytes, got {chunk_size!r}")
        self.jail = Jail(root)
        self.writable = writable
        self.chunk_size = chunk_size
        self.max_list = max_list
        self.uploads = Uploads(max_uploads, upload_timeout)
        self._watched: set[int] = set()
        self._registry = Registry()
        methods: dict[str, Callable[[Request], Any]] = {
            "list": self.rpc_list,
            "stat": self.rpc_stat,
            "read": self.rpc_read,
            "checksum": self.rpc_checksum,
            "open_write": self.rpc_open_write,
            "write": self.rpc_write,
            "close_write": self.rpc_close_write,
            "abort_write": self.rpc_abort_write,
        }
        for name, method in methods.items():
            self._registry.add(f"{prefix}.{name}", method)

    @property
    def root(self) -> str:
        """The directory served (resolved)."""
        return self.jail.root

    def __call__(self, request: Request | Notification) -> Any:
        """Answer ``request`` (the rpc handler); raise MethodNotFound for a method it does not have."""
        return self._registry(request)

    def names(self) -> list[str]:
        """Return the method names."""
        return self._registry.names()

    def describe(self) -> list[dict[str, Any]]:
        """Return the description of every method (see :mod:`dispatchers.introspection`)."""
        return self._registry.describe()

    def close(self) -> None:
        """Discard every open upload (their temporary files are removed)."""
        self.uploads.close()

    # -- reading ----------------------------------------------------------

    def rpc_list(self, request: Request) -> dict[str, Any]:
        """List a directory: ``{"path": ".", "after": NAME}`` → ``{"path", "entries", "more"}``."""
        data = _fields(request)
        after = data.get("after")
        if after is not None and type(after) is not str:
            raise refusal("invalid_params", "after must be a name")
        fd, relative = self.jail.open_directory(data.get("path", "."))
        try:
            with os.scandir(fd) as entries:
                chosen = heapq.nsmallest(
                    self.max_list + 1,
                    (entry for entry in entries if after is None or entry.name > after),
                    key=lambda entry: entry.name,
                )
                listed = [self._entry(entry) for entry in chosen[: self.max_list]]
        except OSError as exc:
            raise os_refusal(exc, relative) from None
        finally:
            os.close(fd)
        return {"path": relative, "entries": listed, "more": len(chosen) > self.max_list}

    @staticmethod
    def _entry(entry: os.DirEntry[str]) -> dict[str, Any]:
        """Describe one directory entry (symlinks not followed)."""
        try:
            return {"name": entry.name, **describe_stat(entry.stat(follow_symlinks=False))}
        except OSError:
            return {"name": entry.name, "type": "other", "size": None, "mtime": None}

    def rpc_stat(self, request: Request) -> dict[str, Any]:
        """Describe one path: ``{"path"}`` → ``{"path", "type", "size", "mtime"}``."""
        return self.jail.stat(_fields(request, "path")["path"])

    def rpc_read(self, request: Request) -> FileReader:
        """Stream a file's chunks: ``{"path", "offset", "length", "chunk"}`` (see the module docstring).

        A caller that cannot take a stream gets one chunk at most, as a list.
        """
        data = _fields(request, "path")
        offset = _count(data, "offset", 0) or 0
        length = _count(data, "length")
        chunk = min(_count(data, "chunk", self.chunk_size, low=MIN_CHUNK) or 0, self.chunk_size)
        fd, info, relative = self.jail.open_file(data["path"])
        available = max(0, info.st_size - offset)
        length = available if length is None else min(length, available)
        if getattr(request, "window", None) is None:
            length = min(length, chunk)  # collected into one answer: one chunk, so that it fits a message
        return FileReader(fd, relative, info.st_size, offset, length, chunk)

    def rpc_checksum(self, request: Request) -> dict[str, Any]:
        """Hash a whole file: ``{"path"}`` → ``{"path", "size", "sha256"}`` (yields between blocks)."""
        fd, info, relative = self.jail.open_file(_fields(request, "path")["path"])
        try:
            return {"path": relative, "size": info.st_size, "sha256": file_sha256(fd, info.st_size)}
        except OSError as exc:
            raise os_refusal(exc, relative) from None
        finally:
            os.close(fd)

    # -- writing ----------------------------------------------------------

    def _writing(self, request: Request) -> None:
        """Raise ``read_only`` unless the service is writable."""
        if not self.writable:
            raise refusal("read_only", f"this service is read-only: {request.method} is refused")

    def rpc_open_write(self, request: Request) -> dict[str, Any]:
        """Start an upload: ``{"path", "size"}`` → ``{"handle", "chunk"}``."""
        self._writing(request)
        data = _fields(request, "path", "size")
        size = _count(data, "size") or 0
        owner = request.engine
        upload = self.uploads.open(self.jail, data["path"], size, owner)
        if isinstance(owner, Engine) and id(owner) not in self._watched:
            self._watched.add(id(owner))
            owner.on_close(self._connection_ended)
        log.debug("upload %s of %r (%d bytes) opened", upload.handle, upload.path, size)
        return {"handle": upload.handle, "chunk": self.chunk_size}

    def _connection_ended(self, engine: Engine) -> None:
        """An engine's connection ended: discard its uploads."""
        self._watched.discard(id(engine))
        if self.uploads.discard_owned_by(engine):
            log.info("uploads discarded: their connection ended")

    def rpc_write(self, request: Request) -> dict[str, Any]:
        """Write one chunk: ``{"handle", "offset", "data"}`` → ``{"offset", "length"}``."""
        self._writing(request)
        data = _fields(request, "handle", "offset", "data")
        upload = self.uploads.get(data["handle"], request.engine)
        offset = _count(data, "offset") or 0
        block = decode_chunk(data["data"], self.chunk_size)
        if offset + len(block) > upload.size:
            raise refusal("bad_offset", f"{upload.path!r}: a chunk past the announced {upload.size} bytes")
        try:
            os.pwrite(upload.fd, block, offset)
        except OSError as exc:
            self.uploads.discard(upload)
            raise os_refusal(exc, upload.path) from None
        return {"offset": offset, "length": len(block)}

    def rpc_close_write(self, request: Request) -> dict[str, Any]:
        """Finish an upload: ``{"handle", "size", "sha256"}`` → ``{"path", "size", "sha256"}`` (yields)."""
        self._writing(request)
        data = _fields(request, "handle", "size", "sha256")
        upload = self.uploads.get(data["handle"], request.engine)
        digest = self.uploads.commit(upload, data["size"], data["sha256"])
        log.info("uploaded %r (%d bytes)", upload.path, upload.size)
        return {"path": upload.path, "size": upload.size, "sha256": digest}

    def rpc_abort_write(self, request: Request) -> bool:
        """Give up an upload: ``{"handle"}`` → ``true``; its temporary file is removed."""
        self._writing(request)
        upload = self.uploads.get(_fields(request, "handle")["handle"], request.engine)
        self.uploads.discard(upload)
        return True
