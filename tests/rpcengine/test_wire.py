"""rpcengine.wire owns every wire layout: its frames, and no message list spelled outside rpcengine/."""

from __future__ import annotations

import ast
from pathlib import Path

from rpcengine.codec import default_codec
from rpcengine.wire import disconnect_frame, frame_array, heartbeat_array, heartbeat_frame

ROOT = Path(__file__).resolve().parents[2]

#: The packages outside rpcengine/ that must call rpcengine.wire instead of spelling a layout.
OUTSIDE_THE_CORE = ("transports", "dispatchers")
#: The message codes: Disconnect -1, Heartbeat 0, Notification 1 ... StreamCredit 8.
CODES = range(-1, 9)


def test_the_frames() -> None:
    codec = default_codec()
    assert heartbeat_frame(codec, 7) == b"[0,7]"
    assert disconnect_frame(codec) == b"[-1]"
    assert heartbeat_array(codec, 7) == b"[[0,7]]"
    assert heartbeat_array(codec, None) == b"[[0,null]]"  # mushroom's poll before anything came
    assert frame_array([b"[0,1]", b"[-1]"]) == b"[[0,1],[-1]]"


def _int_constant(node: ast.expr) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _int_constant(node.operand)
        return None if value is None else -value
    return None


def wire_literals(source: str) -> list[str]:
    """Message layouts spelled in ``source``: ``[code, ...]`` list displays and ``b"[code,..."`` bytes."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.List) and node.elts and _int_constant(node.elts[0]) in CODES:
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, bytes):
            head = node.value.lstrip()
            if head[:1] == b"[" and head[1:2] and head[1:2] in b"-0123456789":
                found.append(f"line {node.lineno}: {node.value[:30]!r}")
    return found


def test_the_scan_finds_what_it_looks_for() -> None:
    assert len(wire_literals('a = [0, ack]\nb = [-1]\nc = b"[1,%d,%s"\nd = [[0, None]]\n')) == 4
    assert wire_literals('a = [x, 0]\nb = b"["\nc = (0, [])\nd = [9, 1]\n') == []


def test_no_message_layout_is_spelled_outside_the_core() -> None:
    paths = sorted(path for package in OUTSIDE_THE_CORE for path in (ROOT / package).rglob("*.py"))
    assert len(paths) > 30  # the walk reached the packages
    found = {
        str(path.relative_to(ROOT)): literals
        for path in paths
        if (literals := wire_literals(path.read_text(encoding="utf-8")))
    }
    assert found == {}, f"call rpcengine.wire instead: {found}"
