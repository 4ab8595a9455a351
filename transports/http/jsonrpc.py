"""JSON-RPC 2.0 over HTTP: one ``POST`` to a ``/jsonrpc`` path, its document's answer as the reply.

Each POST gets a :class:`~transports.session.jsonrpc.JsonRpcSession` of the
endpoint it is the twin of, as a one-shot call gets a plain session
(:mod:`transports.http.calls`): the rpc handler, ``authenticate`` (with
``hello=None``), ``on_connect``, ``on_disconnect``, limits and middleware
see it as any other connection. Its answers are collected instead of
written: the reply is ``200`` with the answer (an object, or an array for
a batch, errors included), or ``204`` with no body when nothing is
answered (only notifications). A request not answered within the wait gets
a TIMEOUT error (``-32001``) in the reply, and its handler's late answer is
dropped. The server cannot call an HTTP client: such a call fails at once
with :class:`~rpcengine.errors.ConnectionLost`.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
from gevent.event import Event

from rpcengine.jsonrpc import OVERLOADED, SERVER_ERROR, error_object, error_response
from rpcengine.wire import error_data
from transports.http.calls import CallResult, CollectingLink
from transports.session.jsonrpc import JsonRpcSession
from transports.session.server import SessionServer

__all__ = ["jsonrpc_path", "run_jsonrpc"]

log = logging.getLogger(__name__)


def jsonrpc_path(path: str) -> str:
    """Return the JSON-RPC path for WebSocket path ``path`` (``/`` -> ``/jsonrpc``, ``/p`` -> ``/p/jsonrpc``)."""
    return path.rstrip("/") + "/jsonrpc"


def run_jsonrpc(
    endpoint: SessionServer,
    body: bytes,
    *,
    peer_address: Any,
    request: Any,
    path: str,
    timeout: float,
) -> CallResult:
    """Answer the JSON-RPC document ``body`` on a new session of ``endpoint`` (blocks, yielding).

    Waits up to ``timeout`` seconds for its requests' answers. A server full
    or stopping: 503; refused by ``authenticate``: 403; both with a
    JSON-RPC error object as the body.
    """
    codec = endpoint.codec
    link = CollectingLink(peer_address, request, path)
    if not endpoint.admit(link):
        reason = endpoint.refusal_reason
        return CallResult(
            503, codec.encode(error_response(None, error_object(OVERLOADED, reason, error_data("unavailable", reason))))
        )
    answers: list[bytes] = []
    answered = Event()

    def collect(payload: bytes) -> None:
        answers.append(payload)
        answered.set()

    def run() -> None:
        session = link.owner
        assert isinstance(session, JsonRpcSession)
        session.answer_sink = collect
        session.calls_peer = False
        session.frame_received(body)
        deadline = gevent.Timeout(timeout)
        try:
            with deadline:
                while session.adapter.awaiting and not session.closed:
                    answered.clear()
                    answered.wait()
        except gevent.Timeout as exc:
            if exc is not deadline:
                raise
        if session.adapter.awaiting:
            reason = "the session ended" if session.closed else f"no answer within {timeout:g} s"
            log.info(
                "JSON-RPC POST from %s: %d requests not answered: %s", peer_address, session.adapter.awaiting, reason
            )
            session.expire(reason)

    endpoint.serve_jsonrpc_link(link, run)
    if link.owner is None:
        refused = error_object(SERVER_ERROR, "authentication failed", error_data("refused", "authentication failed"))
        return CallResult(403, codec.encode(error_response(None, refused)))
    if not answers:
        return CallResult(204, b"")
    return CallResult(200, answers[0])  # one document, one answer (a batch's is one array)
