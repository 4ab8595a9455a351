"""Interleaved rounds: every (system, scenario) case once per round, in the same order each round.

Each round runs the cases scenario by scenario (every system's A, then
every system's B, ...), so a system and its baselines are measured within
seconds of each other; ratios are then taken within each round
(:func:`benchmarks.report.add_ratios`). A scenario measured against another
one of the same system (S and S8 against A) runs right after that system's
case of it: rpcengine-tcp's A, S, S8, then the next system's A. The first
round also runs each case's counting pass (switches and Python calls per
call).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks.base import SCENARIOS
from benchmarks.report import REFERENCE_SCENARIO, scenario_label, summarize_case, summarize_round
from benchmarks.runner import Settings, WorkerError, run_case
from benchmarks.systems import SYSTEMS


def plan(available: dict[str, dict[str, Any]], scenarios: list[str], d_calls: int) -> list[dict[str, Any]]:
    """The cases of one round, in their order: by scenario, then by system in the registry's order.

    A case with a reference scenario (S, S8: A) follows the same system's
    case of that scenario, in the order of :data:`SCENARIOS`.
    """
    order = list(SYSTEMS)
    cases = []
    for scenario in SCENARIOS:
        if scenario not in scenarios:
            continue
        for name, info in available.items():
            if scenario in info["scenarios"]:
                cases.append(
                    {
                        "system": name,
                        "scenario": scenario,
                        "order": order.index(name),
                        "scenario_order": SCENARIOS.index(scenario),
                        "label": scenario_label(scenario, d_calls),
                        "in_process": info["in_process"],
                        "rounds": [],
                        "counts": None,
                        "wall_seconds": 0.0,
                    }
                )

    def run_order(case: dict[str, Any]) -> tuple[int, int, int]:
        reference = REFERENCE_SCENARIO.get(case["scenario"])
        if reference is None or reference not in scenarios:
            return (case["scenario_order"], case["order"], 0)
        return (SCENARIOS.index(reference), case["order"], case["scenario_order"])

    return sorted(cases, key=run_order)


def _run_one(case: dict[str, Any], info: dict[str, Any], settings: Settings, count: bool) -> str:
    """Run ``case`` once, append the round's summary (or its error); return a one-line progress note."""
    started = time.monotonic()
    try:
        result = run_case(case["system"], info, case["scenario"], settings, count)
        summary = summarize_round(result)
        if result.get("counts"):
            case["counts"] = result["counts"]
        case["rounds"].append(summary)
        errors = f", {summary['errors']} errors ({summary['first_error']})" if summary["errors"] else ""
        note = f"{summary['calls_per_s']:>10,.0f} calls/s{errors}"
    except WorkerError as exc:
        case["rounds"].append({"error": str(exc)})
        note = f"FAILED {exc}"
    case["wall_seconds"] = round(case["wall_seconds"] + time.monotonic() - started, 1)
    return note


def run_rounds(
    available: dict[str, dict[str, Any]],
    scenarios: list[str],
    settings: Settings,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Run ``settings.rounds`` rounds of every case; return the cases with their rounds summarized."""
    cases = plan(available, scenarios, settings.d_calls)
    for number in range(1, settings.rounds + 1):
        started = time.monotonic()
        say(f"round {number}/{settings.rounds}" + (" (with the counting passes)" if number == 1 else ""))
        for case in cases:
            note = _run_one(case, available[case["system"]], settings, count=number == 1)
            say(f"  {case['system']:22} {case['scenario']:5} {note}")
        say(f"  round {number} took {time.monotonic() - started:.0f} s")
    for case in cases:
        summarize_case(case)
    return cases
