"""Summaries, ratios and the printed tables."""

from __future__ import annotations

import statistics
from typing import Any

#: Short description of each scenario, used in the table.
SCENARIO_LABELS = {
    "A": "A seq small",
    "B": "B 100 in flight",
    "C": "C seq 64KiB",
    "D": "D 1000 conn x{d_calls}",
}
#: The baseline of every ratio, and the extra one for WebSocket systems.
RAW_TCP = "raw-tcp"
RAW_WS = "raw-ws"


def scenario_label(scenario: str, d_calls: int) -> str:
    """The table label of ``scenario`` (D names its calls per connection)."""
    return SCENARIO_LABELS[scenario].format(d_calls=d_calls)


def summarize(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max calls/s and median CPU microseconds per call over the repetitions."""
    rates = [r["calls"] / r["seconds"] for r in reps if r["seconds"] > 0]
    good = [r for r in reps if r["calls"]]
    return {
        "calls_per_s": statistics.median(rates) if rates else 0.0,
        "min": min(rates, default=0.0),
        "max": max(rates, default=0.0),
        "rates": rates,
        "client_us": statistics.median(r["client_cpu"] / r["calls"] * 1e6 for r in good) if good else None,
        "server_us": statistics.median(r["server_cpu"] / r["calls"] * 1e6 for r in good) if good else None,
        "errors": sum(r["errors"] for r in reps),
        "first_error": next((r["first_error"] for r in reps if r["first_error"]), ""),
    }


def add_ratios(cases: list[dict[str, Any]]) -> None:
    """Set ``ratio`` (to raw-tcp) and, for WebSocket systems, ``ratio_ws`` (to raw-ws) on each case."""
    medians = {(c["system"], c["scenario"]): c["calls_per_s"] for c in cases if "calls_per_s" in c}
    for case in cases:
        if "calls_per_s" not in case:
            continue
        base = medians.get((RAW_TCP, case["scenario"]))
        case["ratio"] = case["calls_per_s"] / base if base else None
        if "ws" in case["system"]:
            base_ws = medians.get((RAW_WS, case["scenario"]))
            case["ratio_ws"] = case["calls_per_s"] / base_ws if base_ws else None


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(case: dict[str, Any]) -> str:
    text = _num(case.get("ratio"), 2)
    if case.get("ratio_ws") is not None and case["system"] != RAW_WS:
        text += f" (ws {case['ratio_ws']:.2f})"
    return text


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "| " + " | ".join(cells) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def throughput_table(cases: list[dict[str, Any]]) -> str:
    """The main table, one row per (system, scenario), ordered by scenario."""
    header = ["system", "scenario", "calls/s median", "min-max", "ratio to raw", "CPU us/call client", "server"]
    rows = []
    for case in sorted(cases, key=lambda c: (c["scenario"], c["order"])):
        label = case["label"]
        if "calls_per_s" not in case:
            rows.append([case["system"], label, "failed", "-", "-", "-", "-"])
            continue
        server = "(in client)" if case.get("in_process") else _num(case["server_us"], 1)
        rows.append(
            [
                case["system"],
                label,
                _num(case["calls_per_s"]),
                f"{_num(case['min'])}-{_num(case['max'])}",
                _ratio(case),
                _num(case["client_us"], 1),
                server,
            ]
        )
    return _table(header, rows, {2, 3, 5, 6})


def memory_table(memory: dict[str, dict[str, Any]]) -> str:
    """Bytes per idle connection (server) and per pending request (client), with ratios to raw-tcp."""
    header = [
        "system",
        "idle conn: traced B",
        "RSS B",
        "ratio",
        "pending req: traced B",
        "w/o greenlet",
        "ratio",
        "conns / pending",
    ]
    base = memory.get(RAW_TCP, {})
    base_idle = (base.get("idle") or {}).get("traced")
    base_pending = (base.get("pending") or {}).get("traced")
    rows = []
    for system, result in memory.items():
        if "error" in result:
            rows.append([system, "failed", "-", "-", "-", "-", "-", "-"])
            continue
        idle = result.get("idle") or {}
        pending = result.get("pending") or {}
        rows.append(
            [
                system + (" (pair)" if idle.get("where", "").startswith("client") else ""),
                _num(idle.get("traced")),
                _num(idle.get("rss")),
                _num(idle["traced"] / base_idle, 2) if idle.get("traced") and base_idle else "-",
                _num(pending.get("traced")),
                _num(pending["traced"] - pending["greenlet_only"]) if pending else "-",
                _num(pending["traced"] / base_pending, 2) if pending.get("traced") and base_pending else "-",
                f"{idle.get('count', '-')} / {pending.get('pending_seen', '-')}",
            ]
        )
    return _table(header, rows, {1, 2, 3, 4, 5, 6})
