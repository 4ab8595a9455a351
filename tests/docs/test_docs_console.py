"""Replay every ``console`` session in the docs and README.md against real processes.

A session is a ``console`` code block (``.. code-block:: console`` in the
docs, a fenced ``console`` block in README.md). Its ``$ `` lines are
``rpcengine`` commands; the lines after each are the output expected, stdout
and stderr together. A command ending in ``&`` is a ``serve`` started in the
background: it is started on port 0 and the ports it prints stand for the
documented ones in the commands that follow. All sessions of one page share
their background servers, in page order, so a page reads like one shell
session. Commands run in ``docs/examples`` (the repository root for
README.md) and each must print exactly what the page shows.
"""

from __future__ import annotations

import importlib.util
import queue
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
HAS_WEBSOCKET = importlib.util.find_spec("transports.websocket") is not None
PORT = re.compile(r"(?<=://127\.0\.0\.1:)(\d+)")


def rst_sessions(text: str) -> list[str]:
    """Return the bodies of the ``.. code-block:: console`` blocks of an rst text."""
    sessions = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip() != ".. code-block:: console":
            continue
        indent = len(line) - len(line.lstrip())
        body = []
        for following in lines[index + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        sessions.append(textwrap.dedent("\n".join(body)).strip("\n"))
    return sessions


def markdown_sessions(text: str) -> list[str]:
    """Return the bodies of the fenced ``console`` blocks of a Markdown text."""
    return [body.strip("\n") for body in re.findall(r"^```console\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)]


def pages() -> list[tuple[str, list[str], Path]]:
    """Every page with console sessions: (name, sessions, folder the commands run in)."""
    found = []
    for path in sorted(DOCS.rglob("*.rst")):
        if "_build" in path.parts:
            continue
        sessions = rst_sessions(path.read_text())
        if sessions:
            found.append((str(path.relative_to(ROOT)), sessions, DOCS / "examples"))
    readme = ROOT / "README.md"
    if markdown_sessions(readme.read_text()):
        found.append(("README.md", markdown_sessions(readme.read_text()), ROOT))
    return found


def commands(session: str) -> list[tuple[str, list[str]]]:
    """Split a session into (command, expected output lines)."""
    steps: list[tuple[str, list[str]]] = []
    for line in session.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before any command: {line!r}"
            steps[-1][1].append(line.rstrip())
    return steps


class Shell:
    """Runs a page's commands, keeping its background servers and the port mapping."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.ports: dict[str, str] = {}
        self.background: list[subprocess.Popen[str]] = []

    def argv(self, command: str) -> list[str]:
        words = shlex.split(command)
        if words[:3] == ["python", "-m", "rpcengine"]:
            words = words[3:]
        elif words[:1] == ["rpcengine"]:
            words = words[1:]
        else:
            raise AssertionError(f"console sessions may only run rpcengine: {command!r}")
        return [sys.executable, "-m", "rpcengine", *words]

    def to_real(self, text: str) -> str:
        return PORT.sub(lambda match: self.ports.get(match.group(1), match.group(1)), text)

    def to_documented(self, text: str) -> str:
        documented = {real: doc for doc, real in self.ports.items()}
        return PORT.sub(lambda match: documented.get(match.group(1), match.group(1)), text)

    def run(self, command: str, expected: list[str]) -> None:
        if command.endswith(" &"):
            self.start(command[:-2], expected)
            return
        result = subprocess.run(
            self.argv(self.to_real(command)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=30,
            cwd=self.cwd,
        )
        output = [line.rstrip() for line in self.to_documented(result.stdout).splitlines()]
        assert output == expected, f"$ {command}\nexpected:\n" + "\n".join(expected) + "\ngot:\n" + result.stdout

    def start(self, command: str, expected: list[str]) -> None:
        argv = self.argv(command)
        assert argv[3] == "serve", f"only serve may run in the background: {command!r}"
        documented_ports = PORT.findall(command)
        proc = subprocess.Popen(
            [PORT.sub("0", word) for word in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=self.cwd,
        )  # fmt: skip
        self.background.append(proc)
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put("")

        threading.Thread(target=read, daemon=True).start()
        ports = iter(documented_ports)
        for want in expected:
            try:
                got = lines.get(timeout=20).rstrip()
            except queue.Empty:
                raise AssertionError(f"$ {command}: no output within 20 s") from None
            assert got, f"$ {command}: the server exited: {proc.stderr.read() if proc.stderr else ''}"
            if not PORT.findall(want):  # a listener without a port (unix:PATH) prints what the page shows
                assert got == want, (want, got)
                continue
            documented = next(ports)
            real = PORT.findall(got)
            assert len(real) == 1 and PORT.sub(documented, got) == want, (want, got)
            self.ports.setdefault(documented, real[0])
        assert next(ports, None) is None, f"$ {command}: a listener printed no line"

    def close(self) -> list[int | None]:
        codes = []
        for proc in self.background:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                codes.append(proc.wait(15))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                codes.append(None)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        return codes


PAGES = pages()


def test_the_docs_have_console_sessions() -> None:
    assert {"docs/tutorial.rst", "docs/cli.rst"} <= {name for name, _, _ in PAGES}


@pytest.mark.parametrize(("name", "sessions", "cwd"), PAGES, ids=[name for name, _, _ in PAGES])
def test_console_session(name: str, sessions: list[str], cwd: Path) -> None:
    if not HAS_WEBSOCKET and any("ws://" in session for session in sessions):
        pytest.skip("transports.websocket cannot be imported")
    shell = Shell(cwd)
    try:
        for session in sessions:
            for command, expected in commands(session):
                shell.run(command, expected)
    finally:
        codes = shell.close()
    assert all(code == 0 for code in codes), f"background servers exited with {codes}"
