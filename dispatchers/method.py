"""MethodDispatcher: expose an object's ``rpc_`` methods, and nothing else."""

from __future__ import annotations

import inspect
import keyword
from typing import Any, NoReturn

from dispatchers.introspection import DESCRIBE_METHOD, describe_callables
from dispatchers.params import make_handler
from rpcengine.engine import RpcHandler
from rpcengine.errors import MethodNotFound
from rpcengine.messages import Notification, Request
from rpcengine.packages import require_own_package

require_own_package("dispatchers")  # fails at once, naming it, if 'dispatchers' is another installation

__all__ = ["MethodDispatcher", "dummy_rpc_handler", "is_plain_method_name"]

_MAX_NAME_LENGTH = 200


def is_plain_method_name(name: object) -> bool:
    """Return whether ``name`` may be resolved at all: a short identifier not starting with ``_``."""
    return (
        type(name) is str
        and 0 < len(name) <= _MAX_NAME_LENGTH
        and name.isidentifier()
        and not name.startswith("_")
        and not keyword.iskeyword(name)
    )


class MethodDispatcher:
    """Dispatcher that calls methods of ``obj`` named ``prefix + method + suffix``.

    The Engine calls the dispatcher with the inbound Request or Notification;
    the dispatcher calls the method with that message and returns its result.
    It never resolves a name that is not a plain identifier or that starts
    with ``_`` (so ``__class__``, ``__init__`` and ``_private`` are
    :class:`~rpcengine.errors.MethodNotFound`), never evaluates a property and
    never calls an attribute that is not callable.

    An empty prefix would expose every public method of ``obj``, so it is
    refused unless ``allow_empty_prefix=True`` says so explicitly. With
    ``introspection`` on (the default), the reserved method
    ``rpcengine.describe`` lists the exposed methods.

    With ``unpack_params=True`` every method takes parameters instead of the
    request (``def rpc_add(self, a, b)``, see :mod:`dispatchers.params`):
    a list of data is passed as positional arguments, an object as keyword
    arguments, and a call that does not fit the signature, or (with
    ``validate``, the default) the annotations, is answered with an
    ``invalid_params`` Error. Every method is then resolved at once, so a
    signature or annotation that cannot be used raises TypeError here. A
    method marked with :func:`~dispatchers.params.takes_params` takes
    parameters in either mode.
    """

    def __init__(
        self,
        obj: object,
        prefix: str = "rpc_",
        suffix: str = "",
        *,
        allow_empty_prefix: bool = False,
        introspection: bool = True,
        unpack_params: bool = False,
        validate: bool = True,
    ) -> None:
        if not prefix and not allow_empty_prefix:
            raise ValueError("an empty prefix exposes every public method; pass allow_empty_prefix=True to mean it")
        self.obj = obj
        self.prefix = prefix
        self.suffix = suffix
        self.introspection = introspection
        self.unpack_params = unpack_params
        self.validate = validate
        self._cache: dict[str, RpcHandler] = {}
        if unpack_params:
            self.names()

    def __call__(self, request: Request | Notification) -> Any:
        """Call the method named by ``request.method`` with ``request``; return its result.

        Raises :class:`~rpcengine.errors.MethodNotFound` when no such method is exposed.
        """
        method = self._cache.get(request.method)
        if method is None:
            if request.method == DESCRIBE_METHOD and self.introspection:
                return self.describe()
            method = self.resolve(request.method)
        return method(request)

    def resolve(self, name: str) -> RpcHandler:
        """Return the handler of the method exposed as ``name``; raise MethodNotFound if there is none.

        The handler is the bound method itself, or a
        :class:`~dispatchers.params.ParamsHandler` around it for a method
        that takes parameters (made once, then cached).
        """
        if not is_plain_method_name(name):
            raise MethodNotFound(name if type(name) is str else repr(name))
        attribute = self.prefix + name + self.suffix
        try:
            raw = inspect.getattr_static(self.obj, attribute)
        except AttributeError:
            raise MethodNotFound(name) from None
        if isinstance(raw, property) or not (callable(raw) or isinstance(raw, (staticmethod, classmethod))):
            raise MethodNotFound(name)
        method = getattr(self.obj, attribute)
        if not callable(method):
            raise MethodNotFound(name)
        handler = make_handler(name, method, unpack_params=self.unpack_params, validate=self.validate)
        self._cache[name] = handler
        return handler

    def names(self) -> list[str]:
        """Return the names of the exposed methods, without prefix and suffix."""
        found = []
        end = len(self.suffix)
        for attribute in dir(self.obj):
            if not attribute.startswith(self.prefix) or not attribute.endswith(self.suffix):
                continue
            name = attribute[len(self.prefix) : len(attribute) - end]
            try:
                self.resolve(name)
            except MethodNotFound:
                continue
            found.append(name)
        return found

    def describe(self) -> list[dict[str, Any]]:
        """Return the description of every exposed method (see :mod:`dispatchers.introspection`)."""
        return describe_callables((name, self.resolve(name)) for name in self.names())


def dummy_rpc_handler(request: Request | Notification) -> NoReturn:
    """RPC handler that raises MethodNotFound for every call.

    For applications that only publish data and never receive calls.
    """
    raise MethodNotFound(request.method)
