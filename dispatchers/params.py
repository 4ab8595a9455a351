"""Handlers that take parameters, the style of zerorpc, tinyrpc and mprpc: ``def rpc_add(self, a, b)``.

A :class:`ParamsHandler` wraps such a function into an rpc handler. The
call's data becomes the arguments:

===============  ====================
data             call
===============  ====================
a list           ``func(*data)``
an object        ``func(**data)``
``null``         ``func()``
any other value  ``func(data)``
===============  ====================

So a function that takes one list is called with ``[[1, 2, 3]]`` or
``{"numbers": [1, 2, 3]}``. A parameter annotated
:class:`~rpcengine.messages.Request`, :class:`~rpcengine.messages.Notification`
or their union receives the inbound message itself (its ``engine`` calls the
peer back); the caller does not send it.

The signature is read once, when the handler is made. Each call is bound
to it *before* the function runs, and, with ``validate`` on (the default),
checked against the annotations (:mod:`dispatchers.validation`); a
mismatch raises :class:`~rpcengine.errors.RequestException` with
``invalid_params`` data naming the parameters, and the function is not
called. Unannotated parameters take any value.

Dispatchers make these handlers: ``MethodDispatcher(obj, unpack_params=True)``
and ``Registry(unpack_params=True)`` for every method, :func:`takes_params`
for one function or method whatever its dispatcher's default.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, Union, overload

from dispatchers.blocking import BlockingHandler, is_blocking
from dispatchers.validation import Check, ParamTypeError, annotation_text, compile_check, key_segment
from rpcengine.engine import RpcHandler
from rpcengine.errors import RequestException
from rpcengine.messages import Notification, Request
from rpcengine.wire import error_data

__all__ = ["ParamsHandler", "ParamsOptions", "json_default", "make_handler", "signature_text", "takes_params"]

F = TypeVar("F", bound=Callable[..., Any])

_MARKER = "__rpcengine_takes_params__"
_EMPTY = inspect.Parameter.empty
_POSITIONAL_ONLY = inspect.Parameter.POSITIONAL_ONLY
_POSITIONAL_OR_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD
_VAR_POSITIONAL = inspect.Parameter.VAR_POSITIONAL
_KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY
_VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD
_VARIADIC = (_VAR_POSITIONAL, _VAR_KEYWORD)
_MESSAGE_NAMES = {"Request", "Notification"}


@dataclass(frozen=True)
class ParamsOptions:
    """What :func:`takes_params` recorded on a function: ``validate`` None follows the dispatcher."""

    validate: bool | None = None


@overload
def takes_params(func: F, *, validate: bool | None = None) -> F: ...


@overload
def takes_params(func: None = None, *, validate: bool | None = None) -> Callable[[F], F]: ...


def takes_params(func: Any = None, *, validate: bool | None = None) -> Any:
    """Mark a function or method as taking parameters, whatever its dispatcher's default; return it unchanged.

    Used as ``@takes_params`` or ``@takes_params(validate=False)``; with
    ``validate`` left at None the dispatcher's ``validate`` applies (on by
    default). Put it below ``@staticmethod`` and ``@classmethod``.
    """

    def mark(target: F) -> F:
        setattr(target, _MARKER, ParamsOptions(validate))
        return target

    return mark if func is None else mark(func)


def make_handler(name: str, func: Callable[..., Any], *, unpack_params: bool, validate: bool) -> RpcHandler:
    """Return what a dispatcher calls for ``func`` exposed as ``name``: ``func`` itself, or a ParamsHandler.

    A ParamsHandler when ``unpack_params`` is set or ``func`` is marked by
    :func:`takes_params`; run in a thread (a
    :class:`~dispatchers.blocking.BlockingHandler`) when marked by
    :func:`~dispatchers.blocking.blocking`. Raises TypeError as :class:`ParamsHandler` does.
    """
    handler = _params_handler(name, func, unpack_params=unpack_params, validate=validate)
    if is_blocking(func):
        return BlockingHandler(handler)
    return handler


def _params_handler(name: str, func: Callable[..., Any], *, unpack_params: bool, validate: bool) -> RpcHandler:
    """Return ``func`` itself, or the ParamsHandler around it (see :func:`make_handler`)."""
    options = getattr(func, _MARKER, None)
    if isinstance(options, ParamsOptions):
        return ParamsHandler(name, func, validate=validate if options.validate is None else options.validate)
    if unpack_params:
        return ParamsHandler(name, func, validate=validate)
    return func


class ParamsHandler:
    """An rpc handler that calls ``func`` with the call's data as its arguments (see the module docstring).

    ``name`` is the method name used in error messages. Raises TypeError at
    once if ``func`` has no readable signature, more than one parameter
    taking the request, or, with ``validate``, an annotation that cannot be
    resolved or checked.
    """

    def __init__(self, name: str, func: Callable[..., Any], *, validate: bool = True) -> None:
        self.name = name
        self.func = func
        self.validate = validate
        try:
            full = inspect.signature(func)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: cannot read the signature of {func!r}: {exc}") from None
        hints = _type_hints(name, func, required=validate)
        #: The name of the parameter that receives the Request or Notification, if any.
        self.request_param = _request_param(name, full, hints)
        params = [param for param in full.parameters.values() if param.name != self.request_param]
        #: The parameters a caller sends: the function's, less the request's.
        self.signature = full.replace(parameters=params)
        #: ``add(a, b=1)``: how error messages name the parameters.
        self.call_text = name + signature_text(params, annotations=False)
        self._order = [(param.name, param.kind) for param in full.parameters.values()]
        self._checks = _compile_checks(name, params, hints) if validate else []
        # The common shape, plain parameters and no request among them, binds without Signature.bind
        # (which costs several microseconds a call): a count for a list, a key set for an object.
        self._plain = self.request_param is None and all(param.kind is _POSITIONAL_OR_KEYWORD for param in params)
        self._names = frozenset(param.name for param in params)
        self._required = frozenset(param.name for param in params if param.default is _EMPTY)
        self._least, self._most = len(self._required), len(params)
        by_name = {name: check for name, _, check in self._checks}
        self._positional_checks = [(param.name, by_name.get(param.name)) for param in params]

    def __call__(self, request: Request | Notification) -> Any:
        """Bind the data to the signature, check it, call the function; return its result.

        Yields to the gevent hub only if the function does. Raises
        RequestException with ``invalid_params`` data when the data does not
        fit the signature or the annotations; the function's own exceptions
        pass through.
        """
        data = request.data
        if self._plain:
            kind = type(data)
            if kind is dict:
                if self._names.issuperset(data) and self._required.issubset(data):
                    return self.func(**self._checked_keywords(data)) if self._checks else self.func(**data)
            else:
                args = data if kind is list else () if data is None else (data,)
                if self._least <= len(args) <= self._most:
                    return self.func(*self._checked_positional(args)) if self._checks else self.func(*args)
        return self._call_bound(request)

    def _checked_positional(self, args: Any) -> list[Any]:
        """Return ``args`` (that fit a plain signature) checked; raise RequestException at the first mismatch."""
        checked = []
        for (name, check), value in zip(self._positional_checks, args, strict=False):
            if check is None:
                checked.append(value)
                continue
            try:
                checked.append(check(value))
            except ParamTypeError as exc:
                raise RequestException(exc.data_at(name, f"{self.call_text}: ", method=self.name)) from None
        return checked

    def _checked_keywords(self, data: dict[str, Any]) -> dict[str, Any]:
        """Return the keyword arguments of ``data`` (that fit a plain signature) checked, in signature order."""
        arguments = {name: data[name] for name, _ in self._positional_checks if name in data}
        self._check(arguments)
        return arguments

    def _call_bound(self, request: Request | Notification) -> Any:
        """Bind with Signature.bind, check, call: every shape of signature, and every mismatch's message."""
        data = request.data
        if type(data) is list:
            args: list[Any] | tuple[Any, ...] = data
            kwargs: dict[str, Any] = {}
        elif type(data) is dict:
            args, kwargs = (), data
        elif data is None:
            args, kwargs = (), {}
        else:
            args, kwargs = (data,), {}
        try:
            if self.request_param is not None and self.request_param in kwargs:
                raise TypeError("the request's own parameter cannot be sent")
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise RequestException(self._mismatch(args, kwargs, exc)) from None
        if self._checks:
            self._check(bound.arguments)
        if self.request_param is None:
            return self.func(*bound.args, **bound.kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        arguments[self.request_param] = request
        call_args: list[Any] = []
        call_kwargs: dict[str, Any] = {}
        for name, kind in self._order:
            value = arguments[name]
            if kind is _POSITIONAL_ONLY or kind is _POSITIONAL_OR_KEYWORD:
                call_args.append(value)
            elif kind is _VAR_POSITIONAL:
                call_args.extend(value)
            elif kind is _KEYWORD_ONLY:
                call_kwargs[name] = value
            else:
                call_kwargs.update(value)
        return self.func(*call_args, **call_kwargs)

    def _check(self, arguments: dict[str, Any]) -> None:
        """Check (and convert) the bound arguments in place; raise RequestException at the first mismatch."""
        root = ""
        try:
            for name, kind, check in self._checks:
                if name not in arguments:
                    continue
                value = arguments[name]
                if kind is _VAR_POSITIONAL:
                    checked = []
                    for index, item in enumerate(value):
                        root = f"{name}[{index}]"
                        checked.append(check(item))
                    arguments[name] = tuple(checked)
                elif kind is _VAR_KEYWORD:
                    for key, item in value.items():
                        root = key_segment(key)
                        value[key] = check(item)
                else:
                    root = name
                    arguments[name] = check(value)
        except ParamTypeError as exc:
            raise RequestException(exc.data_at(root, f"{self.call_text}: ", method=self.name)) from None

    def _mismatch(self, args: Any, kwargs: dict[str, Any], exc: TypeError) -> dict[str, Any]:
        """Return the ``invalid_params`` data for arguments that do not bind, naming the parameters."""
        params = list(self.signature.parameters.values())
        positional = [param for param in params if param.kind in (_POSITIONAL_ONLY, _POSITIONAL_OR_KEYWORD)]
        by_name = {param.name for param in params if param.kind in (_POSITIONAL_OR_KEYWORD, _KEYWORD_ONLY)}
        has_var_keyword = any(param.kind is _VAR_KEYWORD for param in params)
        has_var_positional = any(param.kind is _VAR_POSITIONAL for param in params)
        call = self.call_text
        unknown = [str(key) for key in kwargs if key == self.request_param or not (key in by_name or has_var_keyword)]
        supplied = {param.name for param in positional[: len(args)]} | set(kwargs)
        missing = [
            param.name
            for param in params
            if param.kind not in _VARIADIC and param.default is _EMPTY and param.name not in supplied
        ]
        if len(args) > len(positional) and not has_var_positional:
            least = sum(1 for param in positional if param.default is _EMPTY)
            noun = "positional argument" if any(param.kind is _KEYWORD_ONLY for param in params) else "argument"
            message = f"{call} takes {_count(least, len(positional), noun)}, got {len(args)}"
        elif unknown:
            only = [key for key in unknown if key in {param.name for param in positional}]
            if only:
                message = f"{call} takes {_names(only)} by position only: send a list"
            else:
                message = f"{call} got unexpected keyword argument{_plural(unknown)} {_names(unknown)}"
        elif missing:
            message = f"{call} missing {len(missing)} required argument{_plural(missing)}: {_names(missing)}"
        else:
            message = f"{call}: {exc}"
        return error_data("invalid_params", message, method=self.name, expected=call, got=_sent(args, kwargs))


def signature_text(parameters: Iterable[inspect.Parameter], returns: Any = _EMPTY, *, annotations: bool = True) -> str:
    """Return ``(a: int, b: int = 1, *, c) -> int`` for ``parameters``; without annotations ``(a, b=1, *, c)``."""
    parts = []
    previous = None
    for param in parameters:
        kind = param.kind
        if previous is _POSITIONAL_ONLY and kind is not _POSITIONAL_ONLY:
            parts.append("/")
        if kind is _KEYWORD_ONLY and previous not in (_KEYWORD_ONLY, _VAR_POSITIONAL):
            parts.append("*")
        text = ("*" if kind is _VAR_POSITIONAL else "**" if kind is _VAR_KEYWORD else "") + param.name
        annotated = annotations and param.annotation is not _EMPTY
        if annotated:
            text += ": " + annotation_text(param.annotation)
        if param.default is not _EMPTY:
            text += (" = " if annotated else "=") + repr(param.default)
        parts.append(text)
        previous = kind
    if previous is _POSITIONAL_ONLY:
        parts.append("/")
    text = f"({', '.join(parts)})"
    if annotations and returns is not _EMPTY:
        text += " -> " + annotation_text(returns)
    return text


def json_default(value: Any) -> Any:
    """Return a default value as describe reports it: itself if it is a JSON scalar, else its repr."""
    if value is None or type(value) in (bool, int, str) or (type(value) is float and math.isfinite(value)):
        return value
    return repr(value)


def _type_hints(name: str, func: Callable[..., Any], *, required: bool) -> dict[str, Any]:
    """Return the resolved annotations of ``func``.

    {} if it has none, or if they cannot be resolved and ``required`` is false.
    """
    target = func if inspect.isroutine(func) else type(func).__call__
    if not hasattr(target, "__annotations__"):
        return {}
    try:
        return typing.get_type_hints(target)
    except Exception as exc:
        if not required:
            return {}
        raise TypeError(
            f"{name}: cannot resolve the annotations of {func!r}: {exc} "
            "(import the names at module level, or pass validate=False)"
        ) from None


def _is_message_annotation(annotation: Any) -> bool:
    """Whether ``annotation`` is Request, Notification or their union (also as a string that cannot be resolved)."""
    if isinstance(annotation, str):
        names = {part.strip().rsplit(".", 1)[-1] for part in annotation.split("|")}
        return names <= _MESSAGE_NAMES
    if annotation is Request or annotation is Notification:
        return True
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return all(arg is Request or arg is Notification for arg in typing.get_args(annotation))
    return False


def _request_param(name: str, signature: inspect.Signature, hints: dict[str, Any]) -> str | None:
    """Return the parameter annotated as the request, or None.

    Raises TypeError if several are, or if it is ``*args`` or ``**kwargs``.
    """
    found = [
        param
        for param in signature.parameters.values()
        if _is_message_annotation(hints.get(param.name, param.annotation))
    ]
    if len(found) > 1:
        raise TypeError(f"{name}: only one parameter can take the request, got {_names(p.name for p in found)}")
    if found and found[0].kind in _VARIADIC:
        raise TypeError(f"{name}: the request goes to a named parameter, not to {found[0]}")
    return found[0].name if found else None


def _compile_checks(name: str, params: list[inspect.Parameter], hints: dict[str, Any]) -> list[tuple[str, Any, Check]]:
    """Return ``(parameter, kind, check)`` for every annotated parameter whose annotation restricts its value."""
    checks = []
    for param in params:
        if param.name not in hints:
            continue
        try:
            check = compile_check(hints[param.name])
        except TypeError as exc:
            message = f"{name}: parameter {param.name}: {exc}; pass validate=False to take it unchecked"
            raise TypeError(message) from None
        if check is not None:
            checks.append((param.name, param.kind, check))
    return checks


def _count(least: int, most: int, noun: str = "argument") -> str:
    """Return ``no arguments``, ``1 argument``, ``2 arguments`` or ``1 to 2 arguments`` (of another ``noun``)."""
    if most == 0:
        return f"no {noun}s"
    if least == most:
        return f"{most} {noun}{'s' if most != 1 else ''}"
    return f"{least} to {most} {noun}s"


def _sent(args: Any, kwargs: dict[str, Any]) -> str:
    """Describe what a caller sent: ``3 arguments``, ``keyword arguments a, c`` or ``no arguments``."""
    if kwargs:
        return f"keyword argument{_plural(kwargs)} {_names(kwargs)}"
    return _count(len(args), len(args))


def _names(names: Iterable[Any]) -> str:
    """Join names with commas."""
    return ", ".join(str(name) for name in names)


def _plural(items: Any) -> str:
    """Return ``s`` unless ``items`` holds exactly one."""
    return "" if len(items) == 1 else "s"
