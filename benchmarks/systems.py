"""The registry of benchmarked systems, imported lazily so that one broken system skips alone."""

from __future__ import annotations

import importlib

from benchmarks.base import System

#: name -> (module, class), in the order of the report.
SYSTEMS: dict[str, tuple[str, str]] = {
    "raw-tcp": ("benchmarks.raw_tcp", "RawTcp"),
    "raw-tcp-plain": ("benchmarks.raw_tcp", "RawTcpPlain"),
    "raw-unix": ("benchmarks.raw_unix", "RawUnix"),
    "raw-ws": ("benchmarks.raw_ws", "RawWs"),
    "rpcengine-tcp": ("benchmarks.rpcengine_cases", "RpcengineTcp"),
    "rpcengine-tcp+orjson": ("benchmarks.rpcengine_cases", "RpcengineTcpOrjson"),
    "rpcengine-unix": ("benchmarks.rpcengine_cases", "RpcengineUnix"),
    "rpcengine-ws": ("benchmarks.rpcengine_cases", "RpcengineWs"),
    "rpcengine-loopback": ("benchmarks.rpcengine_cases", "RpcengineLoopback"),
    "zerorpc": ("benchmarks.peers", "Zerorpc"),
    "mprpc": ("benchmarks.peers", "Mprpc"),
}


def load_system(name: str) -> System:
    """Import and instantiate system ``name`` (may raise anything its imports raise)."""
    module_name, class_name = SYSTEMS[name]
    return getattr(importlib.import_module(module_name), class_name)()
