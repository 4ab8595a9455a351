"""`serve` takes any rpc handler: rpc_ objects, a Registry, a dispatcher, a callable, a module's functions."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.cli import Served, assert_one_line_error, run_cli

HANDLERS = '''
from dispatchers import MethodDispatcher, Registry, with_middleware

registry = Registry()


@registry.register
def add(request):
    """Return the sum of the numbers sent."""
    return sum(request.data)


class Service:
    def rpc_ping(self, request):
        """Answer pong."""
        return "pong"


dispatcher = MethodDispatcher(Service())


def handler(request):
    """A bare rpc handler: answer every method with its name and data."""
    return {"method": request.method, "data": request.data}


def shout(request, call_next):
    return str(call_next(request)).upper()


wrapped = with_middleware(dispatcher, shout)
number = 5


class Heap:
    def rpc_frozen(self, request):
        """Return how many objects gc.freeze() moved out of full collections, and whether gc is on."""
        import gc

        return {"frozen": gc.get_freeze_count(), "enabled": gc.isenabled()}
'''

FUNCTIONS = '''
"""Functions served with --functions."""
from os.path import join

servers_seen = []


def double(request):
    """Return the data doubled."""
    return request.data * 2


def seen(request):
    """Return how many servers on_serve got."""
    return len(servers_seen)


def _private(request):
    return "hidden"


def on_serve(servers):
    servers_seen.extend(servers)
'''


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the modules to serve."""
    path: Path = tmp_path_factory.mktemp("handlers")
    (path / "handlers_mod.py").write_text(HANDLERS)
    (path / "functions_mod.py").write_text(FUNCTIONS)
    (path / "exported_mod.py").write_text(
        '__all__ = ["one"]\n\ndef one(request):\n    return 1\n\ndef two(request):\n    return 2\n'
    )
    return path


def served_in(folder: Path, *args: str) -> Served:
    """Start `serve ARGS` in ``folder`` (its modules importable) on one TCP port."""
    return Served(*args, "tcp://127.0.0.1:0", cwd=folder, env={**os.environ, "PYTHONPATH": ""})


@pytest.fixture
def serving(folder: Path) -> Iterator[Callable[..., str]]:
    """Start a server for a target; stop every one at the end."""
    started: list[Served] = []

    def start(*args: str) -> str:
        server = served_in(folder, *args)
        started.append(server)
        return server.wait_for(1)[0]

    yield start
    for server in started:
        assert server.stop() == 0


def call(url: str, *args: str) -> object:
    result = run_cli("call", url, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_serve_a_registry(serving: Callable[..., str]) -> None:
    url = serving("handlers_mod:registry")
    assert call(url, "add", "2", "3", "4") == 9
    assert "add(request)" in run_cli("methods", url).stdout


def test_serve_a_dispatcher(serving: Callable[..., str]) -> None:
    assert call(serving("handlers_mod:dispatcher"), "ping") == "pong"


def test_serve_a_plain_callable(serving: Callable[..., str]) -> None:
    assert call(serving("handlers_mod:handler"), "anything", "x") == {"method": "anything", "data": "x"}


def test_serve_a_handler_with_middleware(serving: Callable[..., str]) -> None:
    assert call(serving("handlers_mod:wrapped"), "ping") == "PONG"


def test_serve_a_class_with_rpc_methods_as_before(serving: Callable[..., str]) -> None:
    assert call(serving("handlers_mod:Service"), "ping") == "pong"


def test_serve_freezes_its_start_up_heap_and_keeps_collecting(serving: Callable[..., str]) -> None:
    report = call(serving("handlers_mod:Heap"), "frozen")
    assert isinstance(report, dict)
    assert report["frozen"] > 10_000, report  # the modules, the handler and the listener, made before serving
    assert report["enabled"] is True  # what the calls make is still collected


def test_serve_a_modules_functions(serving: Callable[..., str]) -> None:
    url = serving("--functions", "functions_mod")
    assert call(url, "double", "21") == 42
    assert call(url, "seen") == 1  # on_serve was called with the one server, and is not a method itself
    listed = run_cli("methods", url).stdout
    assert [line.split("(")[0] for line in listed.splitlines() if not line.startswith(" ")] == ["double", "seen"]
    for hidden in ("_private", "join", "on_serve"):
        line = assert_one_line_error(run_cli("call", url, hidden), 1)
        assert json.loads(line)["error"] == "method_not_found"


def test_functions_follow_the_modules_all(serving: Callable[..., str]) -> None:
    url = serving("--functions", "exported_mod")
    assert call(url, "one") == 1
    assert json.loads(assert_one_line_error(run_cli("call", url, "two"), 1))["error"] == "method_not_found"


def test_serve_refuses_what_is_no_handler(folder: Path) -> None:
    env = {**os.environ, "PYTHONPATH": ""}
    result = run_cli("serve", "handlers_mod:number", "tcp://127.0.0.1:0", cwd=folder, env=env)
    assert_one_line_error(result, 2, "handlers_mod:number is neither an rpc handler")
    result = run_cli("serve", "--functions", "handlers_mod:registry", "tcp://127.0.0.1:0", cwd=folder, env=env)
    assert_one_line_error(result, 2, "--functions takes a MODULE")
    result = run_cli("serve", "handlers_mod", "tcp://127.0.0.1:0", cwd=folder, env=env)
    assert_one_line_error(result, 2, "expected MODULE:OBJECT", "serve --functions MODULE")
