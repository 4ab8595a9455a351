"""Jail: a directory that paths sent by a peer are resolved inside, and never leave.

A path is checked before the filesystem is touched: it must be a string,
relative, without NUL or other control characters, backslashes or ``..``
components (nor their percent-encoded forms or Unicode look-alikes that
NFKC turns into them), at most :data:`NAME_MAX` bytes per component and
:data:`PATH_MAX` in all (UTF-8). It is then resolved (``os.path.realpath``)
and refused if the result is not the root or below it: a symlink may point
elsewhere inside the root, never out of it. Files are opened with
``O_NOFOLLOW`` and ``O_NONBLOCK`` (a FIFO cannot block the open), checked
with ``fstat`` (only regular files are read or written; directories are only
listed), and what was opened is checked once more through
``/proc/self/fd``, so a directory swapped for a symlink meanwhile is caught.
Writes go through a descriptor of the parent directory (``dir_fd``), never a
path. Every refusal is a :class:`~rpcengine.errors.RequestException` (see
:mod:`dispatchers.files.chunks`); none blocks, and no shell is involved.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
import unicodedata
from typing import Any, Final

from dispatchers.files.chunks import refusal
from rpcengine.errors import RequestException

__all__ = ["NAME_MAX", "PATH_MAX", "Jail", "check_path", "describe_stat", "os_refusal"]

#: The longest component of a path, in bytes (Linux ``NAME_MAX``).
NAME_MAX: Final = 255
#: The longest path, in bytes (Linux ``PATH_MAX``).
PATH_MAX: Final = 4096

#: Percent-encoded dot, slash, backslash, percent and NUL: a path sent still URL-encoded, or an attack.
_ENCODED: Final = re.compile(r"%(?:2e|2f|5c|25|00)", re.IGNORECASE)

_READ_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS: Final = _READ_FLAGS | os.O_DIRECTORY


def check_path(path: object) -> str:
    """Return ``path`` normalised (``""`` for the root itself) if it may be used at all; else raise.

    Raises RequestException ``invalid_params`` (not a string) or
    ``path_refused``. Looks at the text only.
    """
    if type(path) is not str:
        raise refusal("invalid_params", "a path must be a string")
    shown = path[:200]
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise refusal("path_refused", "the path is not valid Unicode", shown) from None
    if size > PATH_MAX:
        raise refusal("path_refused", f"the path is longer than {PATH_MAX} bytes", shown)
    if path.startswith("/"):
        raise refusal("path_refused", "absolute paths are refused: give a path relative to the root", shown)
    if "\\" in path:
        raise refusal("path_refused", "backslashes are refused: separate components with '/'", shown)
    if any(ord(char) < 32 or ord(char) == 127 for char in path):
        raise refusal("path_refused", "the path holds a NUL or another control character", shown)
    if _ENCODED.search(path):
        raise refusal("path_refused", "URL-encoded '.', '/', '\\' or '%' are refused: send the path decoded", shown)
    parts = [part for part in path.split("/") if part not in ("", ".")]
    for part in parts:
        if part == "..":
            raise refusal("path_refused", "'..' is refused: the path must stay inside the root", shown)
        if len(part.encode("utf-8")) > NAME_MAX:
            raise refusal("path_refused", f"a path component is longer than {NAME_MAX} bytes", shown)
    normalized = unicodedata.normalize("NFKC", path)
    if normalized.count("/") != path.count("/") or "\\" in normalized or ".." in normalized.split("/"):
        raise refusal("path_refused", "the path holds look-alikes of '.', '/' or '\\'", shown)
    return "/".join(parts)


def os_refusal(exc: OSError, path: str) -> RequestException:
    """Return the RequestException for an OSError met on ``path`` (relative: the root is never shown)."""
    code = exc.errno
    if code in (errno.ENOENT, errno.ENOTDIR):
        return refusal("not_found", f"no such file or directory: {path!r}", path)
    if code == errno.ELOOP:
        return refusal("path_refused", f"{path!r} is a symlink", path)
    if code == errno.ENAMETOOLONG:
        return refusal("path_refused", "the path is too long", path)
    if code == errno.EISDIR:
        return refusal("not_a_file", f"{path!r} is a directory", path)
    return refusal("file_error", f"{path!r}: {os.strerror(code) if code else exc}", path)


class Jail:
    """The directory ``root`` (resolved once): every path is taken relative to it, and kept inside it.

    Raises NotADirectoryError if ``root`` is not a directory.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        real = os.path.realpath(os.fspath(root))
        if not os.path.isdir(real):
            raise NotADirectoryError(f"{os.fspath(root)!r} is not a directory")
        self.root = real

    def __repr__(self) -> str:
        return f"Jail({self.root!r})"

    def resolve(self, path: object) -> tuple[str, str]:
        """Return the checked relative path and the real absolute path it names; raise ``path_refused``.

        The real path is the root or below it; whether it exists is not checked.
        """
        relative = check_path(path)
        real = os.path.realpath(os.path.join(self.root, relative))
        if not self._inside(real):
            raise refusal("path_refused", f"{relative!r} leads out of the root (a symlink)", relative)
        return relative, real

    def _inside(self, real: str) -> bool:
        """Whether the absolute ``real`` is the root or below it."""
        root = self.root
        return real == root or os.path.commonpath([root, real]) == root

    def _verify(self, fd: int, relative: str) -> None:
        """Raise ``path_refused`` if what ``fd`` opened is not inside the root (a race with a rename)."""
        try:
            opened = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return  # no /proc: the checks before the open stand alone
        if not self._inside(opened):
            raise refusal("path_refused", f"{relative!r} leads out of the root", relative)

    def _open(self, path: object, flags: int) -> tuple[int, str]:
        """Open ``path`` with ``flags`` (no symlink followed at the end, never blocking); return fd and path."""
        relative, real = self.resolve(path)
        try:
            fd = os.open(real, flags)
        except NotADirectoryError as exc:
            if flags & os.O_DIRECTORY and os.path.lexists(real):
                raise refusal("not_a_directory", f"{relative or '.'!r} is not a directory", relative) from None
            raise os_refusal(exc, relative) from None
        except OSError as exc:
            raise os_refusal(exc, relative) from None
        try:
            self._verify(fd, relative)
        except BaseException:
            os.close(fd)
            raise
        return fd, relative

    def open_file(self, path: object) -> tuple[int, os.stat_result, str]:
        """Open the regular file at ``path`` for reading; return its blocking fd, its stat, its relative path.

        Raises ``path_refused``, ``not_found``, ``not_a_file`` (a directory,
        FIFO, device or socket: never read), ``file_error``. The caller closes the fd.
        """
        fd, relative = self._open(path, _READ_FLAGS)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise refusal("not_a_file", f"{relative or '.'!r} is not a regular file", relative)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        except BaseException:
            os.close(fd)
            raise
        return fd, info, relative

    def open_directory(self, path: object) -> tuple[int, str]:
        """Open the directory at ``path``; return its fd and relative path (the caller closes the fd).

        Raises ``path_refused``, ``not_found``, ``not_a_directory``, ``file_error``.
        """
        return self._open(path, _DIR_FLAGS)

    def stat(self, path: object) -> dict[str, Any]:
        """Return ``{"path", "type", "size", "mtime"}`` of ``path``; raise ``path_refused``, ``not_found``.

        ``type`` is ``"file"``, ``"directory"`` or ``"other"`` (what cannot be read).
        """
        relative, real = self.resolve(path)
        try:
            info = os.stat(real, follow_symlinks=False)
        except OSError as exc:
            raise os_refusal(exc, relative) from None
        return {"path": relative, **describe_stat(info)}

    def open_parent(self, path: object) -> tuple[int, str, str]:
        """Open the directory a file at ``path`` would be written in; return its fd, the name, the relative path.

        Raises ``path_refused`` (the root itself, a symlink where the file
        would go), ``not_a_file`` (a directory or special file is there),
        ``not_found`` (no such directory), ``file_error``.
        """
        relative = check_path(path)
        if not relative:
            raise refusal("not_a_file", "the root is a directory", relative)
        parent, _, name = relative.rpartition("/")
        fd, _ = self.open_directory(parent)
        try:
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return fd, name, relative
            except OSError as exc:
                raise os_refusal(exc, relative) from None
            if stat.S_ISLNK(info.st_mode):
                raise refusal("path_refused", f"{relative!r} is a symlink: it is not written through", relative)
            if not stat.S_ISREG(info.st_mode):
                raise refusal("not_a_file", f"{relative!r} is not a regular file", relative)
        except BaseException:
            os.close(fd)
            raise
        return fd, name, relative


def describe_stat(info: os.stat_result) -> dict[str, Any]:
    """Return the ``type``, ``size`` and ``mtime`` a listing shows of one entry."""
    mode = info.st_mode
    kind = "file" if stat.S_ISREG(mode) else "directory" if stat.S_ISDIR(mode) else "other"
    if stat.S_ISLNK(mode):
        kind = "symlink"
    return {"type": kind, "size": info.st_size if kind == "file" else None, "mtime": info.st_mtime}
