"""TLS for gevent sockets from any ``ssl.SSLContext``.

A stdlib context's own ``wrap_socket`` would make a blocking socket; this
wraps with gevent's cooperative SSLSocket instead, so users can pass the
context they already built with the standard library.
"""

from __future__ import annotations

import ssl

import gevent
import gevent.ssl

__all__ = ["wrap_socket"]


def wrap_socket(
    context: ssl.SSLContext,
    sock: object,
    *,
    server_side: bool,
    server_hostname: str | None = None,
    timeout: float = 10.0,
) -> gevent.ssl.SSLSocket:
    """Wrap ``sock`` in TLS and complete the handshake within ``timeout``; blocks (yields).

    Raises ``ssl.SSLError`` or ``OSError`` if the handshake fails, and
    ``TimeoutError`` if it does not finish in time.
    """
    wrapped = gevent.ssl.SSLSocket(
        sock=sock,
        server_side=server_side,
        server_hostname=server_hostname,
        do_handshake_on_connect=False,
        _context=context,
    )
    try:
        with gevent.Timeout(timeout, TimeoutError(f"TLS handshake not done within {timeout} s")):
            wrapped.do_handshake()
    except BaseException:
        wrapped.close()
        raise
    return wrapped
