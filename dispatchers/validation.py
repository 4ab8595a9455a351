"""Type checks built once from annotations, run on the JSON data of a call.

:func:`compile_check` turns an annotation into a *check*: a callable that
takes a decoded JSON value and returns it (a dataclass is built from an
object, a list or an object holding one is rebuilt), or raises
:class:`ParamTypeError` naming where the value went wrong. Supported:

* ``int`` (not ``bool``), ``float`` (an ``int`` is accepted, as in typing),
  ``str``, ``bool``, ``None``;
* ``list`` and ``list[X]``, ``dict`` and ``dict[str, X]``;
* ``X | Y``, ``Optional[X]``, ``Union[...]``, ``Literal[...]``, ``NewType``;
* dataclasses (built from an object; unknown keys refused) and
  ``TypedDict`` classes (kept as a dict; unknown keys refused);
* ``Any`` and ``object`` accept everything.

Any other annotation raises TypeError when the check is compiled, so a
handler never silently goes unchecked. Checks never yield to the gevent hub.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeAlias, Union, get_args, get_origin

from rpcengine.errors import RequestException
from rpcengine.wire import error_data

__all__ = ["Check", "ParamTypeError", "annotation_text", "compile_check", "key_segment", "type_name"]

#: ``check(value) -> value``: the accepted (possibly converted) value, or ParamTypeError.
Check: TypeAlias = Callable[[Any], Any]

_UNION_ORIGINS = (Union, types.UnionType)


class ParamTypeError(RequestException):
    """A value that does not match its annotation.

    ``path`` is where, relative to the value checked (``[2].name``; empty
    for the value itself), ``expected`` the annotation's text, ``got`` what
    came (a type name, ``missing`` or ``unknown key``). It is a
    :class:`~rpcengine.errors.RequestException` whose data is an
    ``invalid_params`` object, so raised out of a handler it answers the
    caller as it stands.
    """

    def __init__(self, expected: str, got: str, problem: str | None = None) -> None:
        self.expected = expected
        self.got = got
        self.problem = problem or f"must be {expected}, got {got}"
        self._segments: list[str] = []  # innermost first: containers append as the error unwinds
        super().__init__(self.data_at(""))

    @property
    def path(self) -> str:
        """Where the value went wrong, relative to the checked value (``[2].name``)."""
        return self.path_from("")

    def within(self, segment: str) -> ParamTypeError:
        """Record that the failing value sits at ``segment`` of its container; return self."""
        self._segments.append(segment)
        self.data = self.data_at("")
        return self

    def path_from(self, root: str) -> str:
        """Return the full path from ``root`` (a parameter's name): ``items[2].name``."""
        full = root + "".join(reversed(self._segments))
        return full[1:] if full.startswith(".") else full

    def data_at(self, root: str, prefix: str = "", **extra: Any) -> dict[str, Any]:
        """Return the ``invalid_params`` error data for this mismatch below ``root``.

        ``prefix`` starts the message; ``extra`` keys come before ``path``.
        """
        path = self.path_from(root)
        return error_data(
            "invalid_params",
            f"{prefix}{path or 'the value'} {self.problem}",
            **extra,
            path=path,
            expected=self.expected,
            got=self.got,
        )


def key_segment(key: str) -> str:
    """Return the path segment of an object key: ``.name`` for identifiers, ``["a b"]`` otherwise."""
    return f".{key}" if key.isidentifier() else f"[{json.dumps(key)}]"


def type_name(value: Any) -> str:
    """Return the name of a JSON value's type as the error data reports it (``None`` for null)."""
    return "None" if value is None else type(value).__name__


def annotation_text(annotation: Any) -> str:
    """Return an annotation as people write it: ``int``, ``list[Point]``, ``int | None``; a string as it is."""
    if isinstance(annotation, str):
        return annotation
    if annotation is None or annotation is type(None):
        return "None"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in _UNION_ORIGINS:
        return " | ".join(annotation_text(arg) for arg in args)
    if origin is Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if origin is not None and args:
        return f"{annotation_text(origin)}[{', '.join(annotation_text(arg) for arg in args)}]"
    if isinstance(annotation, type):
        return annotation.__qualname__
    name = getattr(annotation, "__name__", None)  # NewType
    return name if isinstance(name, str) and hasattr(annotation, "__supertype__") else repr(annotation)


def compile_check(annotation: Any) -> Check | None:
    """Return the check for ``annotation``, or None when it accepts every value.

    Does the work of reading the annotation (dataclass fields, TypedDict
    keys, their type hints) once. Raises TypeError for an annotation it
    cannot check, or a dataclass or TypedDict whose hints cannot be resolved.
    """
    return _Compiler().compile(annotation)


class _Compiler:
    """Compile annotations into checks; shares one check per class, so recursive types work."""

    def __init__(self) -> None:
        self.classes: dict[type, Check] = {}

    def compile(self, annotation: Any) -> Check | None:
        """Return the check for ``annotation`` (None: anything goes); raise TypeError if unsupported."""
        if annotation is Any or annotation is object:
            return None
        if annotation is None or annotation is type(None):
            return _exact(type(None), "None")
        if annotation in (bool, int, str, list, dict):
            return _exact(annotation, annotation.__name__)
        if annotation is float:
            return _number
        origin, args = get_origin(annotation), get_args(annotation)
        if origin in _UNION_ORIGINS:
            return self._union(annotation, args)
        if origin is Literal:
            return _literal(annotation, args)
        if origin is list:
            return _list(annotation_text(annotation), self.compile(args[0]) if args else None)
        if origin is dict:
            return self._dict(annotation, args)
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            return self.classes.get(annotation) or self._dataclass(annotation)
        if typing.is_typeddict(annotation):
            return self.classes.get(annotation) or self._typeddict(annotation)
        supertype = getattr(annotation, "__supertype__", None)
        if supertype is not None:
            return self.compile(supertype)
        raise TypeError(f"cannot check values against {annotation_text(annotation)} (see dispatchers.validation)")

    def _union(self, annotation: Any, args: tuple[Any, ...]) -> Check | None:
        checks = [self.compile(arg) for arg in args]
        if any(check is None for check in checks):
            return None
        return _union(annotation_text(annotation), typing.cast("list[Check]", checks))

    def _dict(self, annotation: Any, args: tuple[Any, ...]) -> Check:
        if args and args[0] not in (str, Any):
            raise TypeError(f"cannot check {annotation_text(annotation)}: JSON object keys are strings")
        return _dict(annotation_text(annotation), self.compile(args[1]) if args else None)

    def _hints(self, cls: type) -> dict[str, Any]:
        try:
            return typing.get_type_hints(cls)
        except Exception as exc:
            raise TypeError(f"cannot resolve the annotations of {cls.__qualname__}: {exc}") from None

    def _dataclass(self, cls: type) -> Check:
        init_fields = [field for field in dataclasses.fields(cls) if field.init]
        required = [
            field.name
            for field in init_fields
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        ]
        hints = self._hints(cls)
        return self._object(cls, {field.name: hints.get(field.name, Any) for field in init_fields}, required, cls)

    def _typeddict(self, cls: Any) -> Check:
        hints = self._hints(cls)
        return self._object(cls, hints, [name for name in hints if name in cls.__required_keys__], None)

    def _object(self, cls: Any, hints: dict[str, Any], required: list[str], build: type | None) -> Check:
        fields: dict[str, tuple[Check | None, str]] = {}
        self.classes[cls] = check = _object(cls.__qualname__, fields, required, build)
        for name, hint in hints.items():  # after registering: a field may refer to cls itself
            fields[name] = (self.compile(hint), annotation_text(hint))
        return check


def _exact(kind: type, name: str) -> Check:
    """Check that a value's type is exactly ``kind`` (so ``True`` is not an ``int``)."""

    def check(value: Any) -> Any:
        if type(value) is kind:
            return value
        raise ParamTypeError(name, type_name(value))

    return check


def _number(value: Any) -> Any:
    """Check a ``float``: a float or an int (not a bool), passed on unchanged."""
    if type(value) is float or type(value) is int:
        return value
    raise ParamTypeError("float", type_name(value))


def _literal(annotation: Any, values: tuple[Any, ...]) -> Check:
    """Check that a value is one of ``values``, of the same type (``1`` is not ``True``)."""
    allowed = [(type(value), value) for value in values]
    expected = annotation_text(annotation)

    def check(value: Any) -> Any:
        if (type(value), value) in allowed:
            return value
        raise ParamTypeError(
            expected, json.dumps(value) if type(value) in (str, int, float, bool) else type_name(value)
        )

    return check


def _union(expected: str, checks: list[Check]) -> Check:
    """Return the first alternative's result; a failure deep inside the one alternative whose shape matched wins."""

    def check(value: Any) -> Any:
        deep = []
        for alternative in checks:
            try:
                return alternative(value)
            except ParamTypeError as exc:
                if exc.path:
                    deep.append(exc)
        if len(deep) == 1:
            raise deep[0]
        raise ParamTypeError(expected, type_name(value))

    return check


def _list(expected: str, item: Check | None) -> Check:
    """Check a list, and each item with ``item``."""

    def check(value: Any) -> Any:
        if type(value) is not list:
            raise ParamTypeError(expected, type_name(value))
        if item is None:
            return value
        checked = []
        for index, element in enumerate(value):
            try:
                checked.append(item(element))
            except ParamTypeError as exc:
                raise exc.within(f"[{index}]") from None
        return checked

    return check


def _dict(expected: str, item: Check | None) -> Check:
    """Check an object, and each value with ``item``."""

    def check(value: Any) -> Any:
        if type(value) is not dict:
            raise ParamTypeError(expected, type_name(value))
        if item is None:
            return value
        checked = {}
        for key, element in value.items():
            try:
                checked[key] = item(element)
            except ParamTypeError as exc:
                raise exc.within(key_segment(key)) from None
        return checked

    return check


def _object(name: str, fields: dict[str, tuple[Check | None, str]], required: list[str], build: type | None) -> Check:
    """Check an object with known keys (a dataclass's fields, a TypedDict's keys); ``build`` the result if given.

    ``fields`` maps each key to its check and its annotation's text; it may
    be filled after this returns (a recursive class refers to its own check).
    """

    def check(value: Any) -> Any:
        if type(value) is not dict:
            raise ParamTypeError(name, type_name(value))
        for key in required:
            if key not in value:
                problem = f"is missing ({name} requires {', '.join(required)})"
                raise ParamTypeError(fields[key][1], "missing", problem).within(key_segment(key))
        checked = {}
        for key, element in value.items():
            field = fields.get(key)
            if field is None:
                known = ", ".join(fields)
                problem = f"is not a key of {name} (it takes {known})"
                raise ParamTypeError(f"one of {known}", "unknown key", problem).within(key_segment(key))
            try:
                checked[key] = element if field[0] is None else field[0](element)
            except ParamTypeError as exc:
                raise exc.within(key_segment(key)) from None
        return checked if build is None else build(**checked)

    return check
