"""The reserved introspection method shared by the dispatchers.

A Request for :data:`DESCRIBE_METHOD` (``"rpcengine.describe"``) returns a
list with one object per method a dispatcher exposes, sorted by name. A
handler that takes the request (the default style) says so, and its
docstring tells what data to send::

    {"name": "add", "doc": "Return a + b.", "signature": "(request)",
     "takes": "request", "params": null, "returns": null, "docstring": "Return a + b."}

A handler that takes parameters (:mod:`dispatchers.params`) lists them as
the caller sends them (a parameter taking the request is left out)::

    {"name": "add", "doc": "Return a + b.", "signature": "(a: int, b: int = 1) -> int",
     "takes": "params",
     "params": [{"name": "a", "kind": "positional_or_keyword", "annotation": "int", "required": true},
                {"name": "b", "kind": "positional_or_keyword", "annotation": "int", "required": false,
                 "default": 1}],
     "returns": "int", "docstring": "Return a + b."}

``doc`` is the docstring's first paragraph, ``docstring`` all of it;
annotations are strings as written (``null`` when absent); ``kind`` is the
:class:`inspect.Parameter` kind in lower case; ``default`` is present when
there is one, itself when it is a JSON scalar, else its ``repr``.

The name holds a dot, so it can never collide with a method a dispatcher
resolves (those are plain identifiers).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from dispatchers.blocking import BlockingHandler
from dispatchers.params import ParamsHandler, json_default, signature_text
from dispatchers.validation import annotation_text
from rpcengine.engine import RpcHandler

__all__ = ["DESCRIBE_METHOD", "describe_callables", "describe_parameter"]

#: Name of the reserved method that lists what a dispatcher exposes.
DESCRIBE_METHOD = "rpcengine.describe"


def describe_callables(named: Iterable[tuple[str, RpcHandler]]) -> list[dict[str, Any]]:
    """Return the description of each ``(name, handler)``, sorted by name (see the module docstring)."""
    return [_describe(name, handler) for name, handler in sorted(named, key=lambda pair: pair[0])]


def describe_parameter(param: inspect.Parameter) -> dict[str, Any]:
    """Return name, kind, annotation, whether it is required, and any default of one parameter."""
    variadic = param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    entry: dict[str, Any] = {
        "name": param.name,
        "kind": param.kind.name.lower(),
        "annotation": None if param.annotation is inspect.Parameter.empty else annotation_text(param.annotation),
        "required": param.default is inspect.Parameter.empty and not variadic,
    }
    if param.default is not inspect.Parameter.empty:
        entry["default"] = json_default(param.default)
    return entry


def _describe(name: str, handler: RpcHandler) -> dict[str, Any]:
    """Return the description of one handler."""
    if isinstance(handler, BlockingHandler):
        handler = handler.handler
    if isinstance(handler, ParamsHandler):
        params = list(handler.signature.parameters.values())
        returns = handler.signature.return_annotation
        return _entry(
            name,
            handler.func,
            signature_text(params, returns),
            "params",
            [describe_parameter(param) for param in params],
            returns,
        )
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return _entry(name, handler, "(request)", "request", None, inspect.Signature.empty)
    return _entry(name, handler, str(signature), "request", None, signature.return_annotation)


def _entry(
    name: str, func: object, signature: str, takes: str, params: list[dict[str, Any]] | None, returns: Any
) -> dict[str, Any]:
    """Assemble one description, its keys always in the same order."""
    doc = inspect.getdoc(func) or ""
    return {
        "name": name,
        "doc": doc.split("\n\n", 1)[0].strip(),
        "signature": signature,
        "takes": takes,
        "params": params,
        "returns": None if returns is inspect.Signature.empty else annotation_text(returns),
        "docstring": doc,
    }
