"""Unix-domain socket transport: TCP's line framing, sessions and limits, for processes on one machine.

No network port is opened: the server listens on a socket file (or, on
Linux, an abstract name written ``@name``, which has no file at all), and
file permissions decide who may connect::

    $ rpcengine serve rpcengine.cli.demo_service:DemoService unix:///tmp/demo.sock
    $ nc -U /tmp/demo.sock
    [2, 1, "echo", "hi"]
    [3, 1, 1, "hi"]

:class:`UnixServer` is :class:`~transports.tcp.TcpServer` on another
socket: the same handshake, heartbeats, resume, hooks, limits and line
framing (a :class:`~transports.tcp.TcpLink` carries each connection), and
JSON-RPC 2.0 clients are recognised by their first line as over TCP. What
differs:

* the socket file is created with mode ``0o600`` (only its owner may
  connect) unless ``mode`` says otherwise; the mode is set after ``bind``
  and before ``listen``, and nobody can connect to a socket that does not
  listen yet, so there is no moment when it is open wider;
* a socket file left by a dead server (connecting to it is refused) is
  replaced; one a live server answers on is refused with an
  :class:`AddressInUse` error naming the path, and a path that is not a
  socket is never removed;
* the file is removed when the server stops (only if it is still the
  file this server made);
* each side learns the other's process credentials from the kernel
  (``SO_PEERCRED``) as a :class:`PeerCredentials`: it is the link's
  ``peer_address``, so ``authenticate(hello, peer_address)`` and
  ``session.peer_address`` see the client's pid, uid and gid.

:func:`connect` returns a ready :class:`~rpcengine.engine.Engine`, as
:func:`transports.tcp.connect` does. A path longer than the kernel's
``sun_path`` allows (:data:`MAX_PATH_BYTES`) raises ValueError at once.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import struct
from dataclasses import dataclass
from typing import Any

import gevent.socket

from rpcengine.engine import Engine, RpcHandler
from rpcengine.packages import require_own_package
from transports.listener import DEFAULT_BACKLOG
from transports.session.config import SessionConfig
from transports.tcp import LineServer, TcpLink, open_line_session

require_own_package("transports")  # fails at once, naming it, if 'transports' is another installation

__all__ = [
    "DEFAULT_MODE",
    "MAX_PATH_BYTES",
    "AddressInUse",
    "PeerCredentials",
    "UnixServer",
    "connect",
    "peer_credentials",
    "socket_address",
]

log = logging.getLogger(__name__)

#: Permissions of a new socket file: only its owner may connect.
DEFAULT_MODE = 0o600
#: Longest socket path, in bytes of the file system encoding (``sun_path`` is 108 bytes with its NUL).
MAX_PATH_BYTES = 107
#: How long the check for a live server on an existing socket file may wait for its answer.
_STALE_CHECK_TIMEOUT = 1.0
_CREDENTIALS = struct.Struct("3i")


class AddressInUse(OSError):
    """A live server already listens on the socket path (``errno`` is EADDRINUSE, ``filename`` the path)."""


@dataclass(frozen=True)
class PeerCredentials:
    """The process at the other end of a Unix-domain socket, as the kernel saw it when it connected (or listened)."""

    pid: int
    uid: int
    gid: int


def peer_credentials(sock: Any) -> PeerCredentials:
    """Return the credentials of ``sock``'s peer (``SO_PEERCRED``); does not block. Raises OSError."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size)
    return PeerCredentials(*_CREDENTIALS.unpack(raw))


def socket_address(path: str) -> str:
    """Return what ``bind`` and ``connect`` take for ``path``: ``@name`` becomes the abstract ``\\0name``.

    Raises ValueError if the path is empty or longer than :data:`MAX_PATH_BYTES`.

    >>> socket_address("@rpcengine")
    '\\x00rpcengine'
    >>> socket_address("/run/app.sock")
    '/run/app.sock'
    """
    if not path:
        raise ValueError("a Unix socket path must not be empty")
    size = len(os.fsencode(path))  # an abstract name's NUL takes the place of the '@'
    if size > MAX_PATH_BYTES:
        raise ValueError(
            f"Unix socket path too long: {size} bytes, the limit is {MAX_PATH_BYTES} ({path!r}); "
            "use a shorter directory or a relative path"
        )
    return "\0" + path[1:] if path.startswith("@") else path


def _abstract(path: str) -> bool:
    return path.startswith("@")


def _remove_stale(path: str) -> None:
    """Remove a socket file no server answers on; raise AddressInUse if one does, OSError if it is no socket."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise FileExistsError(errno.EEXIST, "the path exists and is not a socket: not replaced", path)
    probe = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_STALE_CHECK_TIMEOUT)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        log.info("replacing the stale socket file %s (no server answers on it)", path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    except OSError as exc:  # a full backlog (EAGAIN) or a timeout: somebody is there
        raise AddressInUse(errno.EADDRINUSE, f"a server already listens on this socket ({exc})", path) from None
    finally:
        probe.close()
    raise AddressInUse(errno.EADDRINUSE, "a live server already listens on this socket", path)


class UnixServer(LineServer):
    """Serve ``rpc_handler`` on the Unix-domain socket ``path`` (``@name``: a Linux abstract name).

    ``mode`` is the socket file's permissions (default :data:`DEFAULT_MODE`,
    owner only; None leaves what the umask gives). Other keywords: as
    :class:`~transports.tcp.TcpServer` (``authenticate``, ``on_connect``,
    limits, :class:`~transports.session.config.SessionConfig` fields). Use
    as a context manager (the file is removed on leaving it, an exception
    included), or call :meth:`start` and :meth:`stop`. Raises ValueError at
    once if the path is too long.
    """

    kind = "Unix-socket server"

    def __init__(
        self,
        path: str,
        rpc_handler: RpcHandler,
        *,
        mode: int | None = DEFAULT_MODE,
        backlog: int = DEFAULT_BACKLOG,
        **options: Any,
    ) -> None:
        LineServer.__init__(self, None, rpc_handler, backlog=backlog, **options)
        self.path = os.fspath(path)
        self.mode = mode
        self._socket_address = socket_address(self.path)
        #: (device, inode) of the file this server bound, so that stop removes that file and no other.
        self._bound: tuple[int, int] | None = None

    @property
    def address(self) -> str:
        """The path the server listens on (``@name`` for an abstract name)."""
        return self.path

    def bind(self) -> Any:
        """Bind and listen on the path, replacing a stale socket file; return the socket (does not block long).

        Yields for at most a second while checking an existing socket file.
        Raises :class:`AddressInUse` if a live server answers there,
        FileExistsError if the path is not a socket, OSError if it cannot be bound.
        """
        if not _abstract(self.path):
            _remove_stale(self.path)
        sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                sock.bind(self._socket_address)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise AddressInUse(errno.EADDRINUSE, "a server already listens there", self.path) from None
            if not _abstract(self.path):
                info = os.stat(self.path)
                self._bound = (info.st_dev, info.st_ino)
                if self.mode is not None:
                    os.chmod(self.path, self.mode)  # before listen(): nobody can connect yet
            sock.listen(self.backlog)
        except BaseException:
            sock.close()
            self._remove_file()
            raise
        return sock

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop as :meth:`~transports.listener.Listener.stop` does, then remove the socket file (blocks, yielding)."""
        try:
            super().stop(timeout)
        finally:
            self._remove_file()

    def _remove_file(self) -> None:
        """Remove the socket file if it is still the one this server bound."""
        bound, self._bound = self._bound, None
        if bound is None:
            return
        try:
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == bound:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove the socket file %s: %s", self.path, exc)

    def handle_connection(self, sock: Any, address: Any) -> None:
        """Serve one accepted connection (runs on its own greenlet); its peer address is its credentials."""
        try:
            credentials = peer_credentials(sock)
        except OSError as exc:
            log.warning("no peer credentials on %s: %s", self.path, exc)
            sock.close()
            return
        self.serve_socket(sock, credentials)


def connect(
    path: str,
    rpc_handler: RpcHandler | None = None,
    *,
    connect_timeout: float = 10.0,
    **options: Any,
) -> Engine:
    """Connect to a Unix-socket server at ``path`` (``@name``: abstract) and return a ready Engine.

    Blocks (yields) until connected and the handshake is done. Keywords as
    :func:`transports.tcp.connect`: ``handshake``, ``reconnect``,
    ``hello_extra`` and :class:`~transports.session.config.SessionConfig`
    fields. The link's ``peer_address`` is the server's
    :class:`PeerCredentials`.

    Raises ValueError if the path is too long, OSError if nothing listens
    there (FileNotFoundError, ConnectionRefusedError, PermissionError),
    :class:`~rpcengine.errors.HandshakeError` if the server refuses.
    """
    address = socket_address(os.fspath(path))

    def dial(config: SessionConfig) -> TcpLink:
        sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(connect_timeout)
            sock.connect(address)
            sock.settimeout(None)
            return TcpLink(sock, peer_credentials(sock), config)
        except BaseException:
            sock.close()
            raise

    return open_line_session(dial, rpc_handler, **options)
