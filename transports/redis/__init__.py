"""Many server processes as one service, through Redis (the ``rpcengine[redis]`` extra).

* :class:`RedisBroker`: one node; give it to servers (``broker=``) for
  broadcasts to every node's sessions and calls to a session on any node;
* :func:`connect_queue` and :class:`QueueWorker`: a load-balanced work queue
  on Redis Streams (at-least-once, with claims, deadlines and a dead-letter
  stream);
* :func:`redis_client`: a ``redis.Redis`` whose sockets are gevent sockets
  (no monkey-patching, no hiredis).

See ``docs/howto/many-servers.rst`` and ``docs/reference/broker.rst``.
"""

from __future__ import annotations

from rpcengine.packages import require_own_package
from transports.redis.broker import BrokerStats, RedisBroker, node_of
from transports.redis.connection import GeventConnection, GeventUnixConnection, redis_client
from transports.redis.payloads import BadPayload
from transports.redis.queue import QueueStats, QueueWorker, connect_queue

require_own_package("transports")

__all__ = [
    "BadPayload",
    "BrokerStats",
    "GeventConnection",
    "GeventUnixConnection",
    "QueueStats",
    "QueueWorker",
    "RedisBroker",
    "connect_queue",
    "node_of",
    "redis_client",
]
