"""Public modules declare __all__, every listed name exists, and the core imports no transport."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

PUBLIC_MODULES = [
    "rpcengine",
    "rpcengine.codec",
    "rpcengine.engine",
    "rpcengine.errors",
    "rpcengine.messages",
    "rpcengine.transport",
    "rpcengine.workers",
    "dispatchers",
    "dispatchers.method",
    "dispatchers.registry",
    "dispatchers.middleware",
    "transports",
    "transports.base",
    "transports.memory",
    "transports.tcp",
    "transports.session",
    "transports.session.server",
    "transports.session.client",
    "transports.session.config",
    "transports.framing",
    "transports.session.handshake",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_declared_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for attribute in exported:
        assert hasattr(module, attribute), f"{name}.{attribute} listed in __all__ but missing"
        value = getattr(module, attribute)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__doc__, f"{name}.{attribute} has no docstring"


def test_rpcengine_exports_the_seed_api() -> None:
    import rpcengine

    seed = {
        "Engine",
        "RpcError",
        "MethodNotFound",
        "RequestException",
        "RequestTimeout",
        "Message",
        "Heartbeat",
        "Notification",
        "Request",
        "Response",
        "Error",
        "Disconnect",
    }
    assert seed <= set(rpcengine.__all__)
    import dispatchers

    assert {"MethodDispatcher", "dummy_rpc_handler"} <= set(dispatchers.__all__)


def test_core_imports_no_transport_or_dispatcher() -> None:
    code = (
        "import sys, rpcengine, rpcengine.engine, rpcengine.codec, rpcengine.messages, rpcengine.errors;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('transports', 'dispatchers')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
