"""Dispatchers: route inbound Requests and Notifications to Python code.

* :class:`MethodDispatcher` exposes an object's ``rpc_`` methods;
* :class:`Registry` exposes functions registered with a decorator;
* either passes the request to each handler, or, with ``unpack_params=True``
  or :func:`takes_params`, the call's data as arguments checked against the
  handler's signature and annotations (:mod:`dispatchers.params`);
* :func:`blocking` marks a handler that must block a thread: it runs in a
  bounded thread pool, off the hub (:mod:`dispatchers.blocking`);
* :func:`dummy_rpc_handler` refuses every call (for publishers);
* :func:`with_middleware`, :class:`SlowCallLogger` and :class:`CallStatistics`
  wrap any of them; :class:`MushroomErrors` answers with mushroom's error strings.
"""

# Marks this package as rpcengine's own (see rpcengine.packages); set before the imports below, which check it.
__rpcengine_package__ = True

from dispatchers.blocking import BlockingHandler, blocking, blocking_pool
from dispatchers.introspection import DESCRIBE_METHOD
from dispatchers.method import MethodDispatcher, dummy_rpc_handler
from dispatchers.middleware import CallStatistics, MethodStats, MushroomErrors, SlowCallLogger, with_middleware
from dispatchers.params import ParamsHandler, takes_params
from dispatchers.registry import Registry

__all__ = [
    "DESCRIBE_METHOD",
    "BlockingHandler",
    "CallStatistics",
    "MethodDispatcher",
    "MethodStats",
    "MushroomErrors",
    "ParamsHandler",
    "Registry",
    "SlowCallLogger",
    "blocking",
    "blocking_pool",
    "dummy_rpc_handler",
    "takes_params",
    "with_middleware",
]
