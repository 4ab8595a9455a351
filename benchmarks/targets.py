"""The targets of issue #11, checked against one run: measured value and PASS or MISS for each.

Ratios are the per-round medians of :func:`benchmarks.report.add_ratios`
(system calls/s / baseline calls/s in the same round). A target whose cases
did not run (a system skipped, a scenario not selected) is ``n/a`` with the
reason. Nothing here is a test: the run reports, it asserts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    """One target: ``system``'s figure in ``scenario`` against ``baseline`` (or against a bound).

    ``kind`` is ``ratio`` (per-round median ratio of calls/s >= ``bound``),
    ``errors`` (failed calls over all rounds == 0) or ``memory`` (traced
    bytes per idle connection / the baseline's <= ``bound``).
    """

    text: str
    system: str
    scenario: str
    baseline: str
    bound: float
    kind: str = "ratio"


#: Issue #11's targets, in its order.
TARGETS = (
    Target("A over TCP >= 0.80 of raw lockstep A", "rpcengine-tcp", "A", "raw-tcp", 0.80),
    Target("A over TCP >= 0.80 of mprpc A", "rpcengine-tcp", "A", "mprpc", 0.80),
    Target("B over TCP >= 1.20 of raw plain B", "rpcengine-tcp", "B", "raw-tcp-plain", 1.20),
    Target("B over TCP >= 0.80 of raw batching B", "rpcengine-tcp", "B", "raw-tcp", 0.80),
    Target("Bpool over TCP >= 0.90 of raw Bpool", "rpcengine-tcp", "Bpool", "raw-tcp", 0.90),
    Target("C (606 dicts, ujson) >= 0.90 of raw C", "rpcengine-tcp", "C", "raw-tcp", 0.90),
    Target("C with the orjson codec >= 1.0 of mprpc C", "rpcengine-tcp+orjson", "C", "mprpc", 1.0),
    Target("WebSocket A >= 0.80 of raw-ws A", "rpcengine-ws", "A", "raw-ws", 0.80),
    Target("WebSocket B >= 1.0 of raw-ws B", "rpcengine-ws", "B", "raw-ws", 1.0),
    Target("D over TCP: zero errors", "rpcengine-tcp", "D", "", 0, "errors"),
    Target("D over TCP >= 0.6 of raw D", "rpcengine-tcp", "D", "raw-tcp", 0.6),
    Target("idle connection <= 2x raw (traced bytes)", "rpcengine-tcp", "", "raw-tcp", 2.0, "memory"),
)


def _check_ratio(target: Target, cases: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    case = cases.get((target.system, target.scenario))
    if case is None or (target.baseline and (target.baseline, target.scenario) not in cases):
        missing = target.system if case is None else target.baseline
        return {"status": "n/a", "measured": None, "note": f"{missing} {target.scenario} did not run"}
    if target.kind == "errors":
        if "calls_per_s" not in case:
            return {"status": "MISS", "measured": None, "note": "every round failed"}
        errors = case["errors"] + case["failed_rounds"]
        note = case["first_error"] or ("; ".join(case["round_errors"]) if case["round_errors"] else "")
        return {"status": "PASS" if errors == 0 else "MISS", "measured": errors, "note": note[:120]}
    ratio = case.get("ratios", {}).get(target.baseline)
    if ratio is None:
        return {"status": "n/a", "measured": None, "note": "no round where both ran"}
    return {"status": "PASS" if ratio >= target.bound else "MISS", "measured": ratio, "note": ""}


def _check_memory(target: Target, memory: dict[str, dict[str, Any]]) -> dict[str, Any]:
    mine = (memory.get(target.system) or {}).get("idle") or {}
    base = (memory.get(target.baseline) or {}).get("idle") or {}
    if not mine.get("traced") or not base.get("traced"):
        return {"status": "n/a", "measured": None, "note": "memory not measured"}
    ratio = mine["traced"] / base["traced"]
    note = f"{mine['traced']:,.0f} B vs {base['traced']:,.0f} B"
    return {"status": "PASS" if ratio <= target.bound else "MISS", "measured": ratio, "note": note}


def evaluate(cases: list[dict[str, Any]], memory: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Return each target of :data:`TARGETS` with ``status`` (PASS, MISS, n/a), ``measured`` and a ``note``."""
    by_key = {(c["system"], c["scenario"]): c for c in cases}
    results = []
    for target in TARGETS:
        check = _check_memory(target, memory) if target.kind == "memory" else _check_ratio(target, by_key)
        results.append({"target": target.text, "bound": target.bound, "kind": target.kind, **check})
    return results


def targets_table(results: list[dict[str, Any]]) -> str:
    """The targets as a Markdown table: target, measured, status, note."""
    lines = ["| target | measured | status | note |", "|---|---:|---|---|"]
    for result in results:
        measured = result["measured"]
        if measured is None:
            shown = "-"
        elif result["kind"] == "errors":
            shown = f"{measured:,d} errors"
        else:
            shown = f"{measured:.2f}"
        lines.append(f"| {result['target']} | {shown} | {result['status']} | {result['note']} |")
    return "\n".join(lines)
