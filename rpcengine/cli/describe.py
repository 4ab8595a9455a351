"""How ``methods`` prints what ``rpcengine.describe`` answers: a summary of all, or one method in full.

An entry is an object with at least ``name``; ``signature`` and the
docstring (``docstring`` in full, else ``doc``) are printed when present,
then the parameters of a handler that takes them, and any other key
(whatever the server's dispatcher reports) in full. What the heading
already says (``takes``, ``returns``, a request-style handler's ``params:
null``) is not repeated::

    >>> print("\\n".join(format_method({"name": "add", "signature": "(a, b)", "doc": "Add.", "params": [1]})))
    add(a, b)
    <BLANKLINE>
        Add.
    <BLANKLINE>
    params: [1]
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from typing import Any

from rpcengine.cli.output import dump_json

__all__ = ["format_method", "format_summary"]

_SHOWN = ("name", "signature", "doc", "docstring", "takes", "returns")


def _heading(entry: dict[str, Any]) -> str:
    """Return ``name(signature)``."""
    return f"{entry.get('name', '?')}{entry.get('signature', '')}"


def format_summary(entries: Iterable[dict[str, Any]]) -> list[str]:
    """Return one line per method, ``name(signature)``, each followed by its docstring on one indented line."""
    lines = []
    for entry in entries:
        lines.append(_heading(entry))
        if entry.get("doc"):
            lines.append(f"    {' '.join(str(entry['doc']).split())}")
    return lines


def _detail(key: str, value: Any) -> list[str]:
    """Return the lines for one more key of an entry: a list of objects one per line, else JSON."""
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return [f"{key}:"] + [f"    {dump_json(item)}" for item in value]
    if isinstance(value, dict) and value:
        return [f"{key}:"] + [f"    {name}: {dump_json(item)}" for name, item in value.items()]
    return [f"{key}: {dump_json(value)}"]


def format_method(entry: dict[str, Any]) -> list[str]:
    """Return every line ``methods URL NAME`` prints for one method: heading, whole docstring, the rest."""
    lines = [_heading(entry)]
    doc = str(entry.get("docstring") or entry.get("doc") or "").strip()
    if doc:
        lines += ["", textwrap.indent(doc, "    "), ""]
    for key, value in entry.items():
        if key not in _SHOWN and not (key == "params" and value is None):
            lines += _detail(key, value)
    while lines and not lines[-1]:
        lines.pop()
    return lines
