"""Fixtures of the reliability suite: transport worlds, leak baselines, figures.

Every test here also gets the autouse ``hub_errors`` fixture of
``tests/conftest.py``: an error reported to the gevent hub fails it.

Figures (inputs tried per layer, faults survived, calls made, leaks found)
are collected with the ``figures`` fixture, printed in the terminal summary
(also without ``-s``) and written to ``tests/reliability/last_run.json``.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest

from .support import WORLDS, Baseline, World, websocket_missing

HERE = Path(__file__).parent
LAST_RUN = HERE / "last_run.json"


class Figures:
    """Counts recorded by the tests of one run, by section (layer or fault)."""

    def __init__(self) -> None:
        self.sections: dict[str, dict[str, Any]] = {}

    def add(self, section: str, key: str, amount: int | float = 1) -> None:
        """Add ``amount`` to ``section.key``."""
        values = self.sections.setdefault(section, {})
        values[key] = values.get(key, 0) + amount

    def set(self, section: str, key: str, value: Any) -> None:
        """Set ``section.key`` to ``value``."""
        self.sections.setdefault(section, {})[key] = value

    def worst(self, section: str, key: str, value: float) -> None:
        """Keep the largest ``value`` seen for ``section.key``."""
        values = self.sections.setdefault(section, {})
        values[key] = max(values.get(key, 0.0), round(value, 4))


_FIGURES = Figures()


@pytest.fixture(autouse=True)
def reliability_hub_errors() -> Iterator[list[tuple[object, BaseException]]]:
    """Fail the test if any greenlet died of an uncaught exception (an error reported to the hub).

    The suite's root conftest may do the same; this one keeps the check even if it does not.
    """
    hub = gevent.get_hub()
    errors: list[tuple[object, BaseException]] = []
    original = hub.handle_error

    def handle_error(context: object, kind: Any, value: Any, tb: Any) -> None:
        if kind is not None and not issubclass(kind, (gevent.GreenletExit, KeyboardInterrupt, SystemExit)):
            errors.append((context, value))
        original(context, kind, value, tb)

    hub.handle_error = handle_error
    try:
        yield errors
    finally:
        hub.handle_error = original
    _FIGURES.add("hub", "errors", len(errors))
    assert not errors, f"errors reported to the gevent hub: {errors!r}"


@pytest.fixture(scope="session")
def figures() -> Figures:
    """The figures of this run (shared by all reliability tests)."""
    return _FIGURES


@pytest.fixture
def quiet_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Silence the library's own (expected, very numerous) warnings and tracebacks for one test."""
    for name in ("rpcengine", "transports", "dispatchers"):
        caplog.set_level(logging.CRITICAL, logger=name)
    yield


@pytest.fixture(params=sorted(WORLDS))
def world(request: pytest.FixtureRequest, quiet_logs: None) -> Iterator[World]:
    """A started server of the reliability Service on loopback, TCP or WebSocket."""
    name = request.param
    if name == "websocket":
        reason = websocket_missing()
        if reason is not None:
            pytest.skip(reason)
    marker = request.node.get_closest_marker("world_options")
    options = dict(marker.kwargs) if marker is not None else {}
    made = WORLDS[name](**options).start()
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def baseline() -> Baseline:
    """Object and fd counts before the test body ran."""
    return Baseline.take()


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers this suite uses."""
    config.addinivalue_line("markers", "world_options(**options): server options for the `world` fixture")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures and write them to last_run.json (only when reliability tests ran)."""
    if not _FIGURES.sections:
        return
    terminalreporter.section("rpcengine reliability figures")
    for section in sorted(_FIGURES.sections):
        values = _FIGURES.sections[section]
        text = ", ".join(f"{key}={values[key]}" for key in sorted(values))
        terminalreporter.write_line(f"{section}: {text}")
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "soak_seconds": os.environ.get("RPCENGINE_SOAK_SECONDS", "300"),
        "figures": _FIGURES.sections,
    }
    try:
        LAST_RUN.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        terminalreporter.write_line(f"figures written to {LAST_RUN}")
    except OSError as exc:  # a read-only checkout still runs the suite
        terminalreporter.write_line(f"could not write {LAST_RUN}: {exc}")
