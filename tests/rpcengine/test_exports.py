"""Public modules declare __all__, every listed name exists, and the core imports no transport."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PACKAGES = ("rpcengine", "transports", "dispatchers")


def all_modules() -> list[str]:
    """Every module of the three packages, found by walking the source tree (no hand-written list)."""
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


PUBLIC_MODULES = all_modules()


def test_the_walk_finds_every_package() -> None:
    assert {"rpcengine.cli", "transports.session", "transports.websocket", "dispatchers"} <= set(PUBLIC_MODULES)
    assert len(PUBLIC_MODULES) > 40


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


# In a fresh interpreter: import every module of the core (rpcengine outside its front door
# rpcengine.cli, which is never imported: pkgutil.walk_packages would import it to look inside),
# then print the modules imported and those loaded that the core must not load.
CORE_IMPORT_PROBE = """
import importlib, pkgutil, sys
import rpcengine

core = ["rpcengine"]

def walk(package):
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if info.name != "rpcengine.cli":
            core.append(info.name)
            module = importlib.import_module(info.name)
            if info.ispkg:
                walk(module)

walk(rpcengine)
bad = [name for name in sys.modules if name.split(".")[0] in ("transports", "dispatchers")]
bad += [name for name in sys.modules if name == "rpcengine.cli" or name.startswith("rpcengine.cli.")]
print(repr({"core": core, "bad": sorted(bad)}))
"""


def core_modules_on_disk() -> set[str]:
    """The module names of every .py file under rpcengine/ outside rpcengine/cli/."""
    names = set()
    for path in (ROOT / "rpcengine").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[1] != "cli":
            names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_core_imports_no_transport_dispatcher_or_cli() -> None:
    result = subprocess.run([sys.executable, "-c", CORE_IMPORT_PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    report = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    assert set(report["core"]) == core_modules_on_disk()  # the walk reached every core module
    assert report["bad"] == [], report["bad"]
