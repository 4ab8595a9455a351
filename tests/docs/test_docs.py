"""The README's examples run, and the facts the docs state match the code.

* every fenced ``python`` block of README.md runs;
* the docstrings' ``>>>`` examples pass;
* the facts the prose states (error kinds, limits and their defaults) match the code.

The docs build and every page's code (``docs/examples/*.py`` included, as
the pages show them) are tested by ``test_docs_pages.py``; console sessions
(``console`` blocks) are replayed by ``test_docs_console.py``.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

HAS_WEBSOCKET = importlib.util.find_spec("transports.websocket") is not None


def readme_python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", README.read_text(), re.MULTILINE | re.DOTALL)


def test_readme_keeps_the_two_commands_at_the_top() -> None:
    text = README.read_text()
    setup_and_demo = "bash .ci/setup.sh && .venv/bin/python -m rpcengine demo"
    setup_and_test = "bash .ci/setup.sh --test && .venv/bin/python -m pytest"
    assert setup_and_demo in text and setup_and_test in text
    first_fence = text.find("```")
    assert text.find(setup_and_demo) < text.find(setup_and_test) < (first_fence if first_fence >= 0 else len(text))


@pytest.mark.parametrize("index", range(len(readme_python_blocks())))
def test_readme_python_block_runs(index: int, tmp_path: Path) -> None:
    code = readme_python_blocks()[index]
    if "transports.websocket" in code and not HAS_WEBSOCKET:
        pytest.skip("transports.websocket cannot be imported")
    script = tmp_path / f"readme_{index}.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, code + result.stdout + result.stderr


def test_readme_has_python_blocks() -> None:
    assert readme_python_blocks()


def test_docstring_examples_pass() -> None:
    tested = 0
    for package in ("rpcengine", "dispatchers", "transports"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if ">>>" not in path.read_text():
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if name == "transports.websocket" and not HAS_WEBSOCKET:
                continue
            result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
            assert result.failed == 0, name
            tested += result.attempted
    assert tested > 0


def test_the_cli_page_names_every_option_of_every_command() -> None:
    import argparse

    from rpcengine.cli import build_parser

    page = (DOCS / "cli.rst").read_text()
    (commands,) = [action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)]
    for command, parser in commands.choices.items():
        assert re.search(rf"^{re.escape(command)}\b", page, re.MULTILINE) or f"rpcengine {command}" in page, command
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", page), (
                        f"docs/cli.rst does not mention {command} {option}"
                    )
    # What the command line does is described as done, not as planned.
    assert not re.search(r"\bplanned\b", page), "docs/cli.rst calls something planned: it ships, or say it does not"


def test_every_generated_error_kind_is_documented() -> None:
    protocol = (DOCS / "protocol.rst").read_text()
    kinds = set()
    for package in ("rpcengine", "dispatchers", "transports"):
        for path in (ROOT / package).glob("*.py"):  # not rpcengine/cli: the demo's own errors are not the library's
            kinds |= set(re.findall(r'error_data\(\s*"(\w+)"', path.read_text()))
            kinds |= set(re.findall(r'_interrupt\(\w+, "(\w+)"', path.read_text()))  # cancelled, deadline_exceeded
    assert kinds >= {"method_not_found", "internal_error", "unencodable_result", "invalid_message", "cancelled"}
    for kind in kinds:
        assert f"``{kind}``" in protocol, f"error kind {kind!r} is not in docs/protocol.rst"


def test_documented_limits_match_the_defaults() -> None:
    from dataclasses import fields

    from transports.session.budget import DEFAULT_MAX_MEMORY
    from transports.session.config import SessionConfig
    from transports.session.server import DEFAULT_MAX_CONNECTIONS

    protocol = (DOCS / "protocol.rst").read_text()
    table = protocol[protocol.index(".. _limits:") :]
    documented = dict(re.findall(r"\* - ``(\w+)``\n\s+- ([\w.]+)", table))
    # Not limits: the codec, and the protocol features a side offers (named in the prose above the table).
    not_limits = {"codec", "features"}
    expected = {field.name: field.default for field in fields(SessionConfig) if field.name not in not_limits}
    assert "``features``" in table.split(".. list-table::")[0]
    expected["max_connections"] = DEFAULT_MAX_CONNECTIONS
    expected["max_memory"] = DEFAULT_MAX_MEMORY
    assert set(documented) == set(expected)
    for name, default in expected.items():
        assert documented[name] == str(default), f"{name}: documented {documented[name]}, actual {default}"


def test_every_handshake_key_is_documented() -> None:
    from transports.session import handshake

    protocol = (DOCS / "protocol.rst").read_text()
    section = protocol[protocol.index(".. _handshake:") : protocol.index(".. _heartbeats:")]
    keys = set(handshake.client_hello("id", 0, secret="s")) | set(
        handshake.server_hello("id", False, 0, 5.0, 15.0, secret="s")
    )
    keys |= set(handshake.refusal("why"))
    for key in keys:
        assert f"``{key}``" in section or f'"{key}"' in section, f"handshake key {key!r} is not in docs/protocol.rst"
