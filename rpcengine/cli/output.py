"""How the command line prints JSON: indented on a terminal, one compact line when piped.

>>> dump_json({"a": [1, 2]})
'{"a": [1, 2]}'
>>> print(dump_json({"a": [1, 2]}, pretty=True))
{
  "a": [
    1,
    2
  ]
}

``--pretty`` and ``--compact`` force one way; without them
:func:`wants_pretty` asks whether stdout is a terminal. Errors on stderr
are always one line.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

__all__ = ["dump_json", "wants_pretty"]


def dump_json(value: Any, pretty: bool = False) -> str:
    """Return ``value`` as JSON: indented by two spaces if ``pretty``, else one line (non-ASCII kept)."""
    if pretty:
        return json.dumps(value, ensure_ascii=False, indent=2)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def wants_pretty(choice: bool | None, stream: TextIO | None = None) -> bool:
    """Return ``choice`` if the user gave one, else whether ``stream`` (default stdout) is a terminal."""
    if choice is not None:
        return choice
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
