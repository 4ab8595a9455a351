"""The reserved introspection method shared by the dispatchers.

A Request for :data:`DESCRIBE_METHOD` (``"rpcengine.describe"``) returns a
list with one object per method a dispatcher exposes::

    [{"name": "add", "doc": "Return a + b.", "signature": "(request)"}, ...]

The name holds a dot, so it can never collide with a method a dispatcher
resolves (those are plain identifiers).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from rpcengine.engine import RpcHandler

__all__ = ["DESCRIBE_METHOD", "describe_callables"]

#: Name of the reserved method that lists what a dispatcher exposes.
DESCRIBE_METHOD = "rpcengine.describe"


def describe_callables(named: Iterable[tuple[str, RpcHandler]]) -> list[dict[str, Any]]:
    """Return name, first docstring paragraph and signature for each ``(name, callable)``."""
    described = []
    for name, func in sorted(named, key=lambda pair: pair[0]):
        doc = inspect.getdoc(func) or ""
        try:
            signature = str(inspect.signature(func))
        except (TypeError, ValueError):
            signature = "(request)"
        described.append({"name": name, "doc": doc.split("\n\n", 1)[0].strip(), "signature": signature})
    return described
