"""Dispatchers: route inbound Requests and Notifications to Python code.

* :class:`MethodDispatcher` exposes an object's ``rpc_`` methods;
* :class:`Registry` exposes functions registered with a decorator;
* :func:`dummy_rpc_handler` refuses every call (for publishers);
* :func:`with_middleware`, :class:`SlowCallLogger` and :class:`CallStatistics`
  wrap any of them.
"""

# Marks this package as rpcengine's own (see dispatchers._ownership); set before the imports below, which check it.
__rpcengine_package__ = True

from dispatchers.introspection import DESCRIBE_METHOD
from dispatchers.method import MethodDispatcher, dummy_rpc_handler
from dispatchers.middleware import CallStatistics, MethodStats, SlowCallLogger, with_middleware
from dispatchers.registry import Registry

__all__ = [
    "DESCRIBE_METHOD",
    "CallStatistics",
    "MethodDispatcher",
    "MethodStats",
    "Registry",
    "SlowCallLogger",
    "dummy_rpc_handler",
    "with_middleware",
]
