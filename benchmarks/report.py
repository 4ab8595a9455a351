"""Summaries over the rounds, ratios within each round, and the printed tables."""

from __future__ import annotations

import statistics
from typing import Any

#: Short description of each scenario, used in the tables.
SCENARIO_LABELS = {
    "A": "A seq small",
    "B": "B 100 in flight, 1 conn",
    "Bpool": "Bpool 100 conn x 1",
    "C": "C seq 606 dicts",
    "C1": "C1 seq 64KiB str",
    "D": "D 1000 conn x{d_calls}",
}
#: The main baseline of every ratio.
RAW_TCP = "raw-tcp"
#: The other baselines, and their short names in the "other ratios" column.
OTHER_BASELINES = {"raw-tcp-plain": "plain", "raw-ws": "ws", "mprpc": "mprpc"}


def scenario_label(scenario: str, d_calls: int) -> str:
    """The table label of ``scenario`` (D names its calls per connection)."""
    return SCENARIO_LABELS[scenario].format(d_calls=d_calls)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize_round(result: dict[str, Any]) -> dict[str, Any]:
    """One round of one case: median calls/s and CPU us per call over its repetitions, errors."""
    reps = result["reps"]
    rates = [r["calls"] / r["seconds"] for r in reps if r["seconds"] > 0]
    good = [r for r in reps if r["calls"]]
    return {
        "calls_per_s": _median(rates) or 0.0,
        "client_us": _median([r["client_cpu"] / r["calls"] * 1e6 for r in good]),
        "server_us": _median([r["server_cpu"] / r["calls"] * 1e6 for r in good]),
        "errors": sum(r["errors"] for r in reps),
        "first_error": next((r["first_error"] for r in reps if r["first_error"]), ""),
    }


def summarize_case(case: dict[str, Any]) -> None:
    """Set the medians over the case's rounds (calls/s with min-max, CPU per call) and its error totals."""
    rounds = [r for r in case["rounds"] if r is not None and "error" not in r]
    rates = [r["calls_per_s"] for r in rounds]
    case["failed_rounds"] = sum(1 for r in case["rounds"] if r is not None and "error" in r)
    case["round_errors"] = [r["error"] for r in case["rounds"] if r is not None and "error" in r]
    if not rounds:
        return
    case["calls_per_s"] = statistics.median(rates)
    case["min"] = min(rates)
    case["max"] = max(rates)
    case["client_us"] = _median([r["client_us"] for r in rounds if r["client_us"] is not None])
    case["server_us"] = _median([r["server_us"] for r in rounds if r["server_us"] is not None])
    case["errors"] = sum(r["errors"] for r in rounds)
    case["first_error"] = next((r["first_error"] for r in rounds if r["first_error"]), "")


def round_ratio(case: dict[str, Any], base: dict[str, Any]) -> float | None:
    """Median over the rounds of ``case``'s calls/s / ``base``'s calls/s in the same round."""
    ratios = []
    for mine, theirs in zip(case["rounds"], base["rounds"], strict=False):
        if mine and theirs and "error" not in mine and "error" not in theirs and theirs["calls_per_s"] > 0:
            ratios.append(mine["calls_per_s"] / theirs["calls_per_s"])
    return _median(ratios)


def add_ratios(cases: list[dict[str, Any]]) -> None:
    """Set ``ratios`` on each case: baseline system -> median per-round ratio, for each baseline that ran."""
    by_key = {(c["system"], c["scenario"]): c for c in cases}
    for case in cases:
        case["ratios"] = {}
        for base_name in (RAW_TCP, *OTHER_BASELINES):
            base = by_key.get((base_name, case["scenario"]))
            if base is None or base is case:
                continue
            ratio = round_ratio(case, base)
            if ratio is not None:
                case["ratios"][base_name] = ratio


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _other_ratios(case: dict[str, Any]) -> str:
    shown = []
    for base, short in OTHER_BASELINES.items():
        ratio = case.get("ratios", {}).get(base)
        if ratio is None or (short == "ws" and "ws" not in case["system"]):
            continue
        shown.append(f"{short} {ratio:.2f}")
    return ", ".join(shown) or "-"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "| " + " | ".join(cells) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def _ordered(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(cases, key=lambda c: (c["scenario_order"], c["order"]))


def throughput_table(cases: list[dict[str, Any]]) -> str:
    """Calls/s (median over rounds, min-max) and the per-round ratios, one row per (system, scenario)."""
    header = ["system", "scenario", "calls/s median", "min-max", "vs raw-tcp", "other ratios", "rounds"]
    rows = []
    for case in _ordered(cases):
        ok = len(case["rounds"]) - case["failed_rounds"]
        rounds = f"{ok}/{len(case['rounds'])}"
        if "calls_per_s" not in case:
            rows.append([case["system"], case["label"], "failed", "-", "-", "-", rounds])
            continue
        rows.append(
            [
                case["system"],
                case["label"],
                _num(case["calls_per_s"]),
                f"{_num(case['min'])}-{_num(case['max'])}",
                _num(case["ratios"].get(RAW_TCP), 2),
                _other_ratios(case),
                rounds,
            ]
        )
    return _table(header, rows, {2, 3, 4, 6})


def _count(case: dict[str, Any], kind: str, side: str) -> str:
    counts = (case.get("counts") or {}).get(kind) or {}
    if side == "server" and case.get("in_process") and counts:
        return "(in client)"
    return _num(counts.get(side), 1)


def cost_table(cases: list[dict[str, Any]]) -> str:
    """Per call, per side: CPU microseconds (median over rounds), greenlet switches and Python calls."""
    header = ["system", "scenario", "CPU us client", "server", "switches client", "server", "py calls client", "server"]
    rows = []
    for case in _ordered(cases):
        if "calls_per_s" not in case:
            continue
        server_us = "(in client)" if case.get("in_process") else _num(case["server_us"], 1)
        rows.append(
            [
                case["system"],
                case["label"],
                _num(case["client_us"], 1),
                server_us,
                _count(case, "switches", "client"),
                _count(case, "switches", "server"),
                _count(case, "calls", "client"),
                _count(case, "calls", "server"),
            ]
        )
    return _table(header, rows, {2, 3, 4, 5, 6, 7})


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
