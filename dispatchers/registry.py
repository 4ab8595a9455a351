"""Registry: a dispatcher of functions registered with a decorator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from dispatchers.blocking import REGISTERED_MARKER
from dispatchers.introspection import DESCRIBE_METHOD, describe_callables
from dispatchers.method import is_plain_method_name
from dispatchers.params import make_handler
from rpcengine.engine import RpcHandler
from rpcengine.errors import MethodNotFound
from rpcengine.messages import Notification, Request

__all__ = ["Registry"]

F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    """A dispatcher whose methods are functions registered by name.

    Each function takes the inbound Request or Notification::

        registry = Registry()

        @registry.register
        def add(request):
            return request.data[0] + request.data[1]

        @registry.register("math.mul")
        def multiply(request):
            return request.data[0] * request.data[1]

    Names given explicitly may contain dots; names taken from functions are
    plain identifiers. Registering a name twice raises ValueError.

    With ``unpack_params=True`` the functions take parameters instead
    (``def add(a, b)``, see :mod:`dispatchers.params`), checked against
    their annotations unless ``validate=False``; a function marked with
    :func:`~dispatchers.params.takes_params` takes parameters in either mode.
    """

    def __init__(self, *, introspection: bool = True, unpack_params: bool = False, validate: bool = True) -> None:
        self.introspection = introspection
        self.unpack_params = unpack_params
        self.validate = validate
        self._methods: dict[str, RpcHandler] = {}

    @overload
    def register(self, func_or_name: F) -> F: ...

    @overload
    def register(self, func_or_name: str | None = None) -> Callable[[F], F]: ...

    def register(self, func_or_name: Any = None) -> Any:
        """Register a function, as ``@register`` or ``@register("name")``; return it unchanged."""
        if callable(func_or_name):
            return self.add(func_or_name.__name__, func_or_name)

        def decorator(func: F) -> F:
            return self.add(func_or_name or func.__name__, func)

        return decorator

    def add(self, name: str, func: F) -> F:
        """Register ``func`` under ``name``; return ``func``.

        Raises ValueError for a bad or taken name, TypeError for a function
        taking parameters whose signature or annotations cannot be used.
        """
        if not isinstance(name, str) or not name or name == DESCRIBE_METHOD:
            raise ValueError(f"invalid method name {name!r}")
        if not all(is_plain_method_name(part) for part in name.split(".")):
            raise ValueError(f"method name {name!r} must be identifiers not starting with '_', joined by dots")
        if name in self._methods:
            raise ValueError(f"method {name!r} is registered already")
        self._methods[name] = make_handler(name, func, unpack_params=self.unpack_params, validate=self.validate)
        try:
            setattr(func, REGISTERED_MARKER, True)  # so that a @blocking applied on top says it comes too late
        except (AttributeError, TypeError):
            pass  # a builtin or a bound method takes no attributes; @blocking cannot be put on those anyway
        return func

    def __call__(self, request: Request | Notification) -> Any:
        """Call the function registered as ``request.method``; raise MethodNotFound if none is."""
        func = self._methods.get(request.method)
        if func is None:
            if request.method == DESCRIBE_METHOD and self.introspection:
                return self.describe()
            raise MethodNotFound(request.method if type(request.method) is str else repr(request.method))
        return func(request)

    def names(self) -> list[str]:
        """Return the registered names."""
        return sorted(self._methods)

    def describe(self) -> list[dict[str, Any]]:
        """Return the description of every registered function (see :mod:`dispatchers.introspection`)."""
        return describe_callables(self._methods.items())
