"""A tiny HTTP server for the demo's browser page, on gevent's WSGI server.

``GET /`` returns ``rpcengine/cli/static/demo.html`` with the WebSocket URL
filled in; ``GET /rpcengine.js`` returns the browser client
(``transports/static/rpcengine.js``, which the WebSocket server serves too)
from the same origin. Nothing else is served.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any, cast

from gevent.pywsgi import WSGIServer

__all__ = ["DemoPageServer", "static_file"]

log = logging.getLogger(__name__)

#: Placeholder in demo.html replaced by the WebSocket URL.
WS_URL_PLACEHOLDER = "{{RPCENGINE_WS_URL}}"

StartResponse = Callable[..., Any]


def static_file(name: str, package: str = "rpcengine.cli") -> bytes | None:
    """Return the bytes of ``<package>/static/<name>``, or None if the file is not there.

    The demo page ships in ``rpcengine.cli``, the browser client in ``transports``.
    """
    try:
        return (resources.files(package) / "static" / name).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


class DemoPageServer:
    """Serve the demo page, wired to ``ws_url``, at ``address`` (port 0: a free port)."""

    def __init__(self, address: tuple[str, int], ws_url: str) -> None:
        self.ws_url = ws_url
        self._server = WSGIServer(address, self.application, log=None, error_log=log)

    @property
    def address(self) -> tuple[str, int]:
        """The address the page is served on (with the real port once started)."""
        return cast("tuple[str, int]", self._server.address)

    def start(self) -> DemoPageServer:
        """Start serving in the background; raise OSError if the address is taken."""
        self._server.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        """Stop serving; blocks (yields) up to ``timeout`` for requests in progress."""
        self._server.stop(timeout=timeout)

    def application(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI application: the page, the browser client, or 404."""
        path = environ.get("PATH_INFO", "/")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _respond(start_response, "405 Method Not Allowed", b"method not allowed\n", "text/plain")
        if path in ("/", "/index.html", "/demo.html"):
            page = static_file("demo.html")
            if page is not None:
                page = page.replace(WS_URL_PLACEHOLDER.encode(), html.escape(self.ws_url).encode())
                return _respond(start_response, "200 OK", page, "text/html; charset=utf-8")
        elif path == "/rpcengine.js":
            script = static_file("rpcengine.js", "transports")
            if script is not None:
                return _respond(start_response, "200 OK", script, "text/javascript; charset=utf-8")
        return _respond(start_response, "404 Not Found", b"not found\n", "text/plain")


def _respond(start_response: StartResponse, status: str, body: bytes, content_type: str) -> list[bytes]:
    """Start a response with ``body`` and return it."""
    start_response(
        status,
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")],
    )
    return [body]
