"""Summaries over the rounds, ratios within each round, and the printed tables."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.base import THREAD_SCENARIOS as THREADS

#: Short description of each scenario, used in the tables.
SCENARIO_LABELS = {
    "A": "A seq small",
    "S": "S submit, 1 thread",
    "S8": "S8 submit, 8 threads",
    "B": "B 100 in flight, 1 conn",
    "Bpool": "Bpool 100 conn x 1",
    "C": "C seq 606 dicts",
    "C1": "C1 seq 64KiB str",
    "D": "D 1000 conn x{d_calls}",
}
#: The main baseline of every ratio.
RAW_TCP = "raw-tcp"
#: The other baselines, and their short names in the "other ratios" column.
OTHER_BASELINES = {"raw-tcp-plain": "plain", "raw-unix": "unix", "raw-ws": "ws", "mprpc": "mprpc"}
#: Baselines shown only beside the systems on their own socket kind (the name's part after "raw-").
_OWN_KIND_BASELINES = {"unix", "ws"}
#: Scenarios measured against another scenario of the same round (S and S8: submit() against A's request()).
REFERENCE_SCENARIO = {"S": "A", "S8": "A"}
#: Systems whose reference scenario is also a ratio of S and S8 ("raw A", "mprpc A"), besides the system's own.
REFERENCE_BASELINES = {RAW_TCP: "raw", "mprpc": "mprpc"}


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
        **_thread_cpus(reps),
    }


def _thread_cpus(reps: list[dict[str, Any]]) -> dict[str, list[int]]:
    """S, S8: ``{"thread_cpus": [...]}``, the CPUs the client's calling threads and hub thread could run on."""
    seen = [r["thread_cpus"] for r in reps if r.get("thread_cpus") is not None]
    return {"thread_cpus": sorted({cpu for cpus in seen for cpu in cpus})} if seen else {}


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
    """Set ``ratios`` on each case: baseline system -> median per-round ratio, for each baseline that ran.

    S and S8 are measured against scenario A of the same round instead: the
    keys are ``"<system> A"``, the same system's A first (submit() against
    request()), then raw-tcp's and mprpc's A where they ran.
    """
    by_key = {(c["system"], c["scenario"]): c for c in cases}
    for case in cases:
        case["ratios"] = {}
        reference = REFERENCE_SCENARIO.get(case["scenario"])
        if reference is not None:
            for base_name in (case["system"], *REFERENCE_BASELINES):
                base = by_key.get((base_name, reference))
                ratio = None if base is None else round_ratio(case, base)
                if ratio is not None:
                    case["ratios"][f"{base_name} {reference}"] = ratio
            continue
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
    reference = REFERENCE_SCENARIO.get(case["scenario"])
    if reference is not None:
        own = case.get("ratios", {}).get(f"{case['system']} {reference}")
        shown = [] if own is None else [f"{reference} {own:.2f}"]
        for base, short in REFERENCE_BASELINES.items():
            ratio = case.get("ratios", {}).get(f"{base} {reference}")
            if ratio is not None:
                shown.append(f"{short} {reference} {ratio:.2f}")
        return ", ".join(shown) or "-"
    shown = []
    for base, short in OTHER_BASELINES.items():
        ratio = case.get("ratios", {}).get(base)
        if ratio is None or (short in _OWN_KIND_BASELINES and short not in case["system"]):
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


def _us(calls_per_s: float | None) -> float | None:
    return None if not calls_per_s else 1e6 / calls_per_s


def _extra_us(case: dict[str, Any], base: dict[str, Any]) -> float | None:
    """Median over the rounds of (wall us per call of ``case`` - that of ``base``) in the same round."""
    extras = []
    for mine, theirs in zip(case["rounds"], base["rounds"], strict=False):
        if mine and theirs and "error" not in mine and "error" not in theirs:
            if mine["calls_per_s"] > 0 and theirs["calls_per_s"] > 0:
                extras.append(1e6 / mine["calls_per_s"] - 1e6 / theirs["calls_per_s"])
    return _median(extras)


def submit_summary(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """S and S8 against the same system's A (request() on the hub) of the same rounds, one entry per S case.

    ``us_per_call`` is wall time per call (1e6 / calls/s, medians over the
    rounds): with one call in flight (S, A) the round trip of one call; for
    S8 the time per call at its throughput, ``thread_us_per_call`` the round
    trip each of its threads sees. ``extra_us_per_call`` (one thread only)
    is the per-round median of S's minus A's wall us per call;
    ``client_cpu_us`` the client process's CPU per call (all its threads).
    """
    by_key = {(c["system"], c["scenario"]): c for c in cases}
    rows = []
    for case in _ordered(cases):
        reference = REFERENCE_SCENARIO.get(case["scenario"])
        if reference is None:
            continue
        base = by_key.get((case["system"], reference))
        if base is not None and "calls_per_s" not in base:
            base = None
        rate = case.get("calls_per_s")
        threads = THREADS.get(case["scenario"], 1)
        good = [r for r in case["rounds"] if r is not None and "error" not in r]
        rows.append(
            {
                "system": case["system"],
                "scenario": case["scenario"],
                "threads": threads,
                "rounds": len(good),
                "calls_per_s": rate,
                "us_per_call": _us(rate),
                "thread_us_per_call": None if not rate else threads * 1e6 / rate,
                "client_cpu_us": case.get("client_us"),
                "server_cpu_us": case.get("server_us"),
                "reference": reference,
                "reference_calls_per_s": None if base is None else base["calls_per_s"],
                "reference_us_per_call": None if base is None else _us(base["calls_per_s"]),
                "reference_client_cpu_us": None if base is None else base.get("client_us"),
                "ratio": case.get("ratios", {}).get(f"{case['system']} {reference}"),
                "extra_us_per_call": None if base is None or not rate or threads != 1 else _extra_us(case, base),
                "thread_cpus": sorted({cpu for r in good for cpu in r.get("thread_cpus", [])}),
            }
        )
    return rows


def submit_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`submit_summary` as a table: submit() from threads against request() on the hub."""
    header = [
        "system",
        "scenario",
        "calls/s",
        "us/call",
        "vs A",
        "extra us/call",
        "client CPU us",
        "A request() calls/s",
        "A us/call",
        "A client CPU us",
        "thread CPUs",
    ]
    body = []
    for row in rows:
        body.append(
            [
                row["system"],
                SCENARIO_LABELS[row["scenario"]],
                _num(row["calls_per_s"]),
                _num(row["us_per_call"], 1),
                _num(row["ratio"], 2),
                _num(row["extra_us_per_call"], 1),
                _num(row["client_cpu_us"], 1),
                _num(row["reference_calls_per_s"]),
                _num(row["reference_us_per_call"], 1),
                _num(row["reference_client_cpu_us"], 1),
                ",".join(str(c) for c in row["thread_cpus"]) or "-",
            ]
        )
    return _table(header, body, {2, 3, 4, 5, 6, 7, 8, 9})


def submit_sentence(rows: list[dict[str, Any]]) -> str | None:
    """One line for the notes: what submit() from one thread costs per call against request() on the hub."""
    one = next((r for r in rows if r["scenario"] == "S" and r["us_per_call"] and r["reference_us_per_call"]), None)
    if one is None:
        return None
    text = (
        f"{one['system']}: submit() from a thread costs {one['us_per_call']:.1f} us per call against"
        f" {one['reference_us_per_call']:.1f} us for request() on the hub (wall time per sequential call, medians"
        f" over {one['rounds']} rounds; per-round ratio {_num(one['ratio'], 2)},"
        f" extra {_num(one['extra_us_per_call'], 1)} us; client CPU {_num(one['client_cpu_us'], 1)} us"
        f" against {_num(one['reference_client_cpu_us'], 1)} us)"
    )
    eight = next((r for r in rows if r["scenario"] == "S8" and r["calls_per_s"]), None)
    if eight is not None:
        text += (
            f"; {eight['threads']} threads: {eight['calls_per_s']:,.0f} calls/s ({_num(eight['ratio'], 2)} of A,"
            f" {eight['thread_us_per_call']:.1f} us per call in each thread)"
        )
    return text
