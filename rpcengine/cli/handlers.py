"""What ``serve`` can serve: any rpc handler named on the command line.

``MODULE:OBJECT`` names an object in an importable module (a dotted path
after the colon is allowed); :func:`rpc_handler_for` turns it into the rpc
handler the listeners call:

* an object with ``rpc_`` methods (a class is instantiated with no
  arguments first) is served by a :class:`~dispatchers.MethodDispatcher`,
  as before;
* anything else callable is itself the handler: a
  :class:`~dispatchers.Registry`, a :class:`~dispatchers.MethodDispatcher`,
  a handler wrapped :func:`~dispatchers.with_middleware`, or a plain
  function taking the Request or Notification.

With ``--functions``, the target is a ``MODULE`` and its public functions
(those in its ``__all__``, or else those defined in it whose names do not
start with ``_``) are registered in a :class:`~dispatchers.Registry` under
their names; each takes the Request or Notification. A function named
``on_serve`` is not exposed: like an object's ``on_serve`` method, it is
called once with the started servers.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from dispatchers.method import MethodDispatcher, is_plain_method_name
from dispatchers.registry import Registry
from rpcengine.cli.errors import CliError, ExitCode
from rpcengine.engine import RpcHandler

__all__ = ["Served", "import_module", "load_object", "module_functions", "rpc_handler_for", "serve_functions"]

#: The name of the hook called with the started servers.
ON_SERVE = "on_serve"


@dataclass
class Served:
    """What ``serve`` serves: the rpc handler, the hook to call with the servers, and what it exposes."""

    handler: RpcHandler
    on_serve: Callable[[list[Any]], object] | None
    names: list[str] | None


def import_module(module_name: str) -> ModuleType:
    """Import ``module_name`` (the current directory is searched first); raise CliError (exit 2)."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"cannot import module {module_name!r}: {exc}", ExitCode.USAGE) from None
    except Exception as exc:
        raise CliError(f"importing {module_name!r} raised {type(exc).__name__}: {exc}", ExitCode.USAGE) from None


def load_object(target: str) -> Any:
    """Import ``MODULE:OBJECT`` and return the object, instantiating a class with no arguments.

    Raises CliError (exit 2) if the module or attribute cannot be found or
    the class cannot be instantiated.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise CliError(
            f"expected MODULE:OBJECT, got {target!r} (to serve a module's functions: serve --functions MODULE URL)",
            ExitCode.USAGE,
        )
    obj: Any = import_module(module_name)
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(f"{module_name!r} has no attribute {attribute!r}", ExitCode.USAGE) from None
    if inspect.isclass(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise CliError(f"{target}() raised {type(exc).__name__}: {exc}", ExitCode.USAGE) from None
    return obj


def _has_rpc_methods(obj: object) -> bool:
    """Return whether ``obj`` has at least one ``rpc_`` attribute."""
    return any(name.startswith("rpc_") for name in dir(obj))


def _hook(obj: object) -> Callable[[list[Any]], object] | None:
    """Return ``obj.on_serve`` if it is callable, else None."""
    hook = getattr(obj, ON_SERVE, None)
    return hook if callable(hook) else None


def rpc_handler_for(obj: object, target: str, **dispatcher_options: Any) -> Served:
    """Return what serving ``obj`` (loaded from ``target``) means; raise CliError (exit 2) if it is no handler.

    ``dispatcher_options`` go to the :class:`~dispatchers.MethodDispatcher`
    made for an object with ``rpc_`` methods.
    """
    if _has_rpc_methods(obj):
        dispatcher = MethodDispatcher(obj, **dispatcher_options)
        return Served(dispatcher, _hook(obj), dispatcher.names())
    if callable(obj):
        list_names = getattr(obj, "names", None)
        names = list(list_names()) if callable(list_names) else None
        return Served(obj, _hook(obj), names)
    raise CliError(
        f"{target} is neither an rpc handler (a callable taking the request, such as a dispatchers.Registry) "
        "nor an object with rpc_ methods",
        ExitCode.USAGE,
    )


def module_functions(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """Return the public functions of ``module`` by name (``__all__`` if it has one), ``on_serve`` left out."""
    exported = getattr(module, "__all__", None)
    found: dict[str, Callable[..., Any]] = {}
    for name, value in sorted(vars(module).items()):
        if not inspect.isfunction(value) or name == ON_SERVE:
            continue
        if exported is not None:
            if name not in exported:
                continue
        elif name.startswith("_") or value.__module__ != module.__name__:
            continue
        if is_plain_method_name(name):
            found[name] = value
    return found


def serve_functions(module_name: str, **registry_options: Any) -> Served:
    """Import ``module_name`` and return a Registry of its public functions; raise CliError (exit 2)."""
    if ":" in module_name:
        raise CliError(f"--functions takes a MODULE, got {module_name!r}", ExitCode.USAGE)
    module = import_module(module_name)
    functions = module_functions(module)
    if not functions:
        raise CliError(f"module {module_name!r} has no public functions to serve", ExitCode.USAGE)
    registry = Registry(**registry_options)
    for name, function in functions.items():
        registry.add(name, function)
    return Served(registry, _hook(module), registry.names())
