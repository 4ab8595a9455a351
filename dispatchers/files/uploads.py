"""Uploads: the files being written, each in a temporary file beside its target, behind a handle.

``files.open_write`` creates ``.NAME.RANDOM.part`` in the target's directory
(through the directory's descriptor, ``O_EXCL | O_NOFOLLOW``) and returns a
handle; ``files.write`` puts chunks at their offsets; ``files.close_write``
checks the size and the SHA-256 of what is on disk and only then renames the
temporary file over the target (``os.replace``: atomic). An upload that is
aborted, fails its check, is not touched for ``timeout`` seconds, or whose
connection ends, is discarded: its temporary file is removed. At most
``max_open`` uploads are open at once. Nothing here blocks but the hashing
in :meth:`Uploads.commit`, which yields between blocks.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable
from typing import Any, Final

import gevent

from dispatchers.files.chunks import refusal
from dispatchers.files.jail import Jail, os_refusal

__all__ = ["DEFAULT_MAX_UPLOADS", "DEFAULT_UPLOAD_TIMEOUT", "Upload", "Uploads", "file_sha256"]

#: Uploads open at once, unless the service says otherwise.
DEFAULT_MAX_UPLOADS: Final = 16
#: Seconds an upload may go untouched before it is discarded.
DEFAULT_UPLOAD_TIMEOUT: Final = 60.0

_CREATE_FLAGS: Final = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: Bytes hashed between two yields to the hub.
_HASH_BLOCK: Final = 1 << 20


def file_sha256(fd: int, size: int) -> str:
    """Return the SHA-256 (hex) of the first ``size`` bytes of ``fd``, read with ``pread``.

    Yields to the hub between blocks of 1 MiB. Raises OSError.
    """
    digest = hashlib.sha256()
    offset = 0
    while offset < size:
        block = os.pread(fd, min(_HASH_BLOCK, size - offset), offset)
        if not block:
            break
        digest.update(block)
        offset += len(block)
        gevent.sleep(0)
    return digest.hexdigest()


class Upload:
    """One file being written: ``path`` (relative), its announced ``size``, the temporary file's fd."""

    __slots__ = ("dir_fd", "expires", "fd", "handle", "name", "owner", "path", "size", "temp_name")

    def __init__(self, handle: str, path: str, size: int, dir_fd: int, name: str, temp_name: str, fd: int) -> None:
        self.handle = handle
        self.path = path
        self.size = size
        self.dir_fd = dir_fd
        self.name = name
        self.temp_name = temp_name
        self.fd = fd
        self.expires = 0.0
        #: Who opened it (the connection's engine): only it may write, and its end discards the upload.
        self.owner: Any = None

    def __repr__(self) -> str:
        return f"<Upload {self.handle} {self.path!r} {self.size} bytes>"


class Uploads:
    """The open uploads of one service: at most ``max_open``, each discarded after ``timeout`` idle seconds."""

    def __init__(
        self,
        max_open: int = DEFAULT_MAX_UPLOADS,
        timeout: float = DEFAULT_UPLOAD_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_open = max_open
        self.timeout = timeout
        self.clock = clock
        self._open: dict[str, Upload] = {}

    def __len__(self) -> int:
        return len(self._open)

    def open(self, jail: Jail, path: object, size: int, owner: Any) -> Upload:
        """Create the temporary file for writing ``size`` bytes to ``path``; return its Upload. Does not block.

        Raises RequestException ``too_many_uploads`` and those of
        :meth:`Jail.open_parent <dispatchers.files.jail.Jail.open_parent>`.
        """
        self.expire()
        if len(self._open) >= self.max_open:
            raise refusal("too_many_uploads", f"{self.max_open} uploads are open already; close or abort one")
        dir_fd, name, relative = jail.open_parent(path)
        stem = name.encode("utf-8")[:200].decode("utf-8", "ignore")
        temp_name = f".{stem}.{secrets.token_hex(6)}.part"
        try:
            fd = os.open(temp_name, _CREATE_FLAGS, 0o644, dir_fd=dir_fd)
        except OSError as exc:
            os.close(dir_fd)
            raise os_refusal(exc, relative) from None
        upload = Upload(secrets.token_urlsafe(12), relative, size, dir_fd, name, temp_name, fd)
        upload.owner = owner
        upload.expires = self.clock() + self.timeout
        self._open[upload.handle] = upload
        return upload

    def get(self, handle: object, owner: Any) -> Upload:
        """Return the open upload ``handle`` of ``owner``, its timer restarted; raise ``unknown_handle``."""
        self.expire()
        upload = self._open.get(handle) if type(handle) is str else None
        if upload is None or upload.owner is not owner:
            raise refusal("unknown_handle", f"no open upload has the handle {str(handle)[:40]!r}")
        upload.expires = self.clock() + self.timeout
        return upload

    def commit(self, upload: Upload, size: object, sha256: object) -> str:
        """Check the upload has ``size`` bytes hashing to ``sha256``; rename it over its target; return the hash.

        Yields while it hashes. Raises RequestException ``checksum_mismatch``
        (the upload is discarded) or ``file_error``.
        """
        self._open.pop(upload.handle, None)
        try:
            actual_size = os.fstat(upload.fd).st_size
            if size != upload.size or actual_size != upload.size:
                raise refusal(
                    "checksum_mismatch",
                    f"{upload.path!r}: {actual_size} bytes arrived, {upload.size} were announced",
                    upload.path,
                )
            digest = file_sha256(upload.fd, actual_size)
            if digest != sha256:
                raise refusal("checksum_mismatch", f"{upload.path!r}: the SHA-256 differs", upload.path)
            os.fsync(upload.fd)
            os.replace(upload.temp_name, upload.name, src_dir_fd=upload.dir_fd, dst_dir_fd=upload.dir_fd)
        except OSError as exc:
            self.discard(upload)
            raise os_refusal(exc, upload.path) from None
        except BaseException:
            self.discard(upload)
            raise
        self._close_fds(upload)
        return digest

    def discard(self, upload: Upload) -> None:
        """Forget ``upload`` and remove its temporary file. Does not block."""
        self._open.pop(upload.handle, None)
        if upload.fd >= 0:
            try:
                os.unlink(upload.temp_name, dir_fd=upload.dir_fd)
            except OSError:
                pass
        self._close_fds(upload)

    def discard_owned_by(self, owner: Any) -> int:
        """Discard every upload of ``owner`` (its connection ended); return how many."""
        owned = [upload for upload in self._open.values() if upload.owner is owner]
        for upload in owned:
            self.discard(upload)
        return len(owned)

    def expire(self) -> int:
        """Discard the uploads idle past their timeout; return how many."""
        now = self.clock()
        stale = [upload for upload in self._open.values() if upload.expires <= now]
        for upload in stale:
            self.discard(upload)
        return len(stale)

    def close(self) -> None:
        """Discard every open upload."""
        for upload in list(self._open.values()):
            self.discard(upload)

    @staticmethod
    def _close_fds(upload: Upload) -> None:
        """Close the upload's descriptors (once)."""
        for fd in (upload.fd, upload.dir_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        upload.fd = upload.dir_fd = -1
