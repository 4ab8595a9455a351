"""JSON-RPC 2.0 over HTTP for ``call``, ``notify`` and ``methods``: one POST per call, no connection.

:class:`HttpCaller` stands where the other URLs put an Engine: it has the
``request``, ``notify`` and ``close`` those commands use, each a POST to the
endpoint's ``/jsonrpc`` path (:mod:`transports.jsonrpc_client`). The
server cannot call this client, and nothing can be listened to.
"""

from __future__ import annotations

import itertools
from typing import Any

from rpcengine.cli.diagnose import explain
from rpcengine.cli.errors import CliError, ExitCode
from rpcengine.cli.trace import Tracer
from rpcengine.cli.urls import Endpoint
from rpcengine.errors import ProtocolError, RequestTimeout

__all__ = ["HttpCaller"]


class HttpCaller:
    """The calls of one command to a JSON-RPC ``http://`` endpoint; ``tracer`` prints each document.

    ``timeout`` bounds a notification's POST (a request has its own).

    Each method blocks (yields) for its POST. Raises CliError (exit 4) if
    the server cannot be reached or answers with no JSON-RPC response,
    RequestTimeout (exit 3) when nothing comes in time, RequestException
    for an error answer.
    """

    #: No transport: the commands' flush before closing has nothing to flush.
    transport = None

    def __init__(self, endpoint: Endpoint, tracer: Tracer | None = None, timeout: float = 30.0) -> None:
        from rpcengine.cli.connect import load_websocket

        load_websocket()  # the HTTP client comes with the WebSocket transport's extra (h11)
        self.endpoint = endpoint
        self.tracer = tracer
        self.timeout = timeout
        self._ids = itertools.count(1)

    def _observe(self, sent: bool, payload: bytes) -> None:
        """Trace one document sent or received."""
        if self.tracer is not None:
            self.tracer.line(sent, self.endpoint.url, payload.decode("utf-8", "replace"))

    def _post(self, function: Any, method: str, data: Any, timeout: float, **extra: Any) -> Any:
        """Run one of the jsonrpc_client HTTP functions, turning its transport failures into the CLI's."""
        url = self.endpoint.url
        try:
            return function(url, method, data, timeout=timeout, observe=self._observe, **extra)
        except RequestTimeout:
            raise
        except TimeoutError:
            raise RequestTimeout(f"no HTTP answer from {url} within {timeout:g} s") from None
        except ProtocolError as exc:
            raise CliError(str(exc), ExitCode.CONNECTION) from None
        except OSError as exc:
            raise CliError(explain(self.endpoint, exc, timeout), ExitCode.CONNECTION) from None

    def request(self, method: str, data: Any = None, timeout: float | None = None) -> Any:
        """POST a request for ``method``; return its result. The server waits ``timeout`` s (default: the caller's)."""
        from transports.jsonrpc_client import call_http

        wait = self.timeout if timeout is None else timeout
        return self._post(call_http, method, data, wait, request_id=next(self._ids))

    def notify(self, method: str, data: Any = None) -> None:
        """POST a notification for ``method``; return once the server took it (HTTP 204)."""
        from transports.jsonrpc_client import notify_http

        self._post(notify_http, method, data, self.timeout)

    def close(self) -> None:
        """Nothing to close: each POST had its own connection."""
