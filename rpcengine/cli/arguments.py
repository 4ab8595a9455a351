"""The data of ``call`` and ``notify``: positional arguments read as JSON or as strings.

>>> parse_values(["2", "3"]).data
[2, 3]
>>> parse_values(["five"]).data
'five'
>>> parse_values(['{"name": "me"}']).data
{'name': 'me'}
>>> parse_values(["007"], mode="string").data
'007'
>>> parse_values([]).data is None
True

No argument sends ``null``, one argument sends its value, several send a
list of their values. In the default ``auto`` mode each argument is JSON
when it is valid JSON (``5``, ``true``, ``"five"``, ``[1, 2]``) and a
string otherwise (``five``); one that starts like JSON (``{``, ``[`` or
``"``) but is not valid JSON is a usage error rather than a string nobody
meant to send. ``json`` mode (``--json``) requires valid JSON, ``string``
mode (``--string``) takes every argument as a string. ``-`` reads one
argument from stdin.

When the server answers ``invalid_params``, :func:`quoting_hints` explains
how a bare word was read, since ``call URL greet 123`` sends the number 123
and ``call URL add five`` the string ``"five"``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rpcengine.cli.errors import CliError, ExitCode

__all__ = ["MODES", "Argument", "Values", "clip", "params_hints", "parse_values", "quoting_hints"]

#: How positional arguments are read: ``auto`` (JSON if valid, else a string), ``json``, ``string``.
MODES = ("auto", "json", "string")

_JSON_OPENERS = ("{", "[", '"')


def clip(text: str, limit: int = 40) -> str:
    """Return ``text`` shortened to ``limit`` characters for an error message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Argument:
    """One positional argument: the text given, its value, and whether auto mode guessed its type."""

    text: str
    value: Any
    #: ``"string"``: a bare word taken as a string; ``"json"``: a bare number/true/false/null; ``""``: not a guess.
    guessed: str = ""


@dataclass(frozen=True)
class Values:
    """The parsed arguments of one command and the data they make."""

    arguments: list[Argument] = field(default_factory=list)

    @property
    def data(self) -> Any:
        """``None`` for no argument, the value of one, the list of the values of several."""
        if not self.arguments:
            return None
        if len(self.arguments) == 1:
            return self.arguments[0].value
        return [argument.value for argument in self.arguments]


def _refuse_constant(name: str) -> Any:
    """json.loads hook: NaN and Infinity are not JSON (the wire protocol refuses them)."""
    raise ValueError(f"{name} is not allowed in JSON")


def _loads(text: str) -> Any:
    """Parse strict JSON; raise ValueError."""
    return json.loads(text, parse_constant=_refuse_constant)


def _invalid(text: str, exc: ValueError, mode: str) -> CliError:
    """Return the usage error for text that should have been JSON."""
    hint = "; pass --string to send it as a string"
    if mode == "auto" and text.startswith(("{", "[")) and '"' not in text and ":" in text:
        hint = "; the shell removes unquoted double quotes: put JSON in single quotes, as in '{\"a\": 1}'"
    return CliError(f"invalid JSON argument {clip(text)!r}: {exc}{hint}", ExitCode.USAGE)


def _parse_one(text: str, mode: str) -> Argument:
    """Return the Argument for one text in ``mode``; raise CliError (exit 2) for invalid JSON."""
    if text == "-":
        text = sys.stdin.read().removesuffix("\n")
    if mode == "string":
        return Argument(text, text)
    try:
        value = _loads(text)
    except ValueError as exc:
        if mode == "json" or text.lstrip().startswith(_JSON_OPENERS):
            raise _invalid(text, exc, mode) from None
        return Argument(text, text, guessed="string")
    if mode == "auto" and not text.lstrip().startswith(_JSON_OPENERS) and not isinstance(value, (list, dict)):
        return Argument(text, value, guessed="json")
    return Argument(text, value)


def parse_values(texts: Sequence[str], mode: str = "auto") -> Values:
    """Parse positional arguments in ``mode`` (see the module docstring); raise CliError (exit 2).

    Reads stdin (blocking) for an argument ``-``, which may appear once.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if list(texts).count("-") > 1:
        raise CliError("'-' (read stdin) may be given once", ExitCode.USAGE)
    return Values([_parse_one(text, mode) for text in texts])


def _kind(value: Any) -> str:
    """Name a JSON value's type for a hint."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def quoting_hints(values: Values, error: Any) -> list[str]:
    """Return hint lines for an ``invalid_params`` Error answer when a bare argument's type was guessed.

    ``error`` is the Error's data; no hint comes for other errors or when
    every argument was quoted JSON, ``--json`` or ``--string``.
    """
    if not (isinstance(error, dict) and error.get("error") == "invalid_params"):
        return []
    hints = []
    for argument in values.arguments:
        if argument.guessed == "json":
            hints.append(
                f"hint: {argument.text} was sent as {_kind(argument.value)}; to send the string, "
                f"quote it as JSON ('\"{argument.text}\"') or pass --string"
            )
        elif argument.guessed == "string":
            hints.append(
                f"hint: {clip(argument.text)} was sent as the string {clip(json.dumps(argument.value))}; "
                "a JSON value is sent as typed (5, true, null, '[1, 2]', '{\"a\": 1}'), pass --json to require it"
            )
    return hints


def params_hints(values: Values, error: Any) -> list[str]:
    """Return the hint line for a JSON-RPC ``invalid_params`` Error answer when one ARG was wrapped in an array.

    JSON-RPC params are an array or an object, so a single other value is
    sent as a one-item array; no hint comes otherwise.
    """
    if not (isinstance(error, dict) and error.get("error") == "invalid_params") or len(values.arguments) != 1:
        return []
    value = values.data
    if value is None or isinstance(value, (list, dict)):
        return []
    return [
        f"hint: JSON-RPC params are an array or an object: {clip(values.arguments[0].text)} was sent as "
        f"{clip(json.dumps([value]))}; send an array or an object ('[1, 2]', '{{\"a\": 1}}') if the method wants one"
    ]
