"""Protocol features a session may negotiate beyond the six message kinds.

A feature is named in the ``features`` list of both handshake objects; a
session uses the ones both sides announce. A peer that announces none (a
plain session, a mushroom peer, a browser client without them) never sees
what they add, and the strict parser refuses it from such a peer.

* ``"cancel"``: the Cancel message ``[5, message_id, request_message_id]``:
  the sender gave up on a request it sent; the receiver stops the work.
* ``"deadline"``: a fifth item on a Request, ``[2, message_id, method, data,
  timeout_ms]``: the caller waits ``timeout_ms`` milliseconds at most (an
  integer of at most 8 digits, relative as gRPC's ``grpc-timeout``); the
  receiver does not start the work after that and interrupts it when it
  runs over.
* ``"stream"``: results that come as a stream of items
  (:mod:`rpcengine.streams`): the StreamRequest ``[6, message_id, method,
  data, window]``, the StreamItem ``[7, message_id, request_message_id,
  item]`` and the StreamCredit ``[8, message_id, request_message_id,
  consumed]``; the stream ends with the request's Response (the number of
  items) or Error. Used only together with ``"cancel"``.
"""

from __future__ import annotations

__all__ = [
    "ALL_FEATURES",
    "CANCEL",
    "DEADLINE",
    "MAX_STREAM_WINDOW",
    "MAX_TIMEOUT_MS",
    "NO_FEATURES",
    "STREAM",
    "negotiate",
]

CANCEL = "cancel"
DEADLINE = "deadline"
STREAM = "stream"
#: Every feature this library speaks.
ALL_FEATURES: frozenset[str] = frozenset({CANCEL, DEADLINE, STREAM})
NO_FEATURES: frozenset[str] = frozenset()
#: The largest relative deadline a Request may carry: 8 digits of milliseconds (about 27.8 hours).
MAX_TIMEOUT_MS = 99_999_999
#: The largest window a StreamRequest may ask for: items sent ahead of what the caller consumed.
MAX_STREAM_WINDOW = 65_536


def negotiate(announced: object, ours: frozenset[str]) -> frozenset[str]:
    """Return the features of ``ours`` that the peer's ``features`` handshake value names.

    Anything that is not a list of strings names none; unknown names are ignored.
    """
    if type(announced) is not list or len(announced) > 64:
        return NO_FEATURES
    return frozenset(name for name in announced if type(name) is str and name in ours)
