"""``python -m benchmarks``: run every case, print the tables, optionally write JSON."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.report import add_ratios, memory_table, scenario_label, summarize, throughput_table
from benchmarks.runner import Settings, WorkerError, pin_workers, probe, run_case, run_memory
from benchmarks.systems import SYSTEMS


def machine_info() -> dict[str, Any]:
    """CPU count and model, Python and kernel versions."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), model)
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="3 short repetitions per case, D with 20 calls/conn (< 3 minutes)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--systems", help=f"comma-separated subset of: {', '.join(SYSTEMS)}")
    parser.add_argument("--scenarios", default="ABCD", help="subset of the scenarios A, B, C, D (default ABCD)")
    parser.add_argument("--reps", type=int, help="repetitions per case (default 5, quick 3)")
    parser.add_argument("--duration", type=float, help="seconds per repetition of A, B, C (default 1.5, quick 0.5)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin the server worker to CPU 1 and the client worker to CPU 0"
    )
    return parser.parse_args(argv)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings(reps=3, duration=0.5, warmup=0.2, d_calls=20) if args.quick else Settings()
    if args.reps:
        settings.reps = args.reps
    if args.duration:
        settings.duration = args.duration
    return settings


def _say(text: str) -> None:
    print(text, flush=True)


def _probe_all(names: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    available, skipped = {}, {}
    for name in names:
        info = probe(name)
        if "skip" in info:
            skipped[name] = info["skip"]
            _say(f"SKIP {name}: {info['skip']}")
        else:
            available[name] = info
    return available, skipped


def _run_cases(available: dict[str, dict[str, Any]], scenarios: str, settings: Settings) -> list[dict[str, Any]]:
    cases = []
    order = list(SYSTEMS)
    for name, info in available.items():
        for scenario in info["scenarios"]:
            if scenario not in scenarios:
                continue
            case: dict[str, Any] = {"system": name, "scenario": scenario, "order": order.index(name)}
            case["in_process"] = info["in_process"]
            case["label"] = scenario_label(scenario, settings.d_calls)
            started = time.monotonic()
            try:
                case.update(summarize(run_case(name, info, scenario, settings)["reps"]))
                errors = f", {case['errors']} errors ({case['first_error']})" if case["errors"] else ""
                _say(f"  {name:22} {scenario}: {case['calls_per_s']:>10,.0f} calls/s{errors}")
            except WorkerError as exc:
                case["error"] = str(exc)
                _say(f"  {name:22} {scenario}: FAILED {exc}")
            case["wall_seconds"] = round(time.monotonic() - started, 1)
            cases.append(case)
    return cases


def _run_memory(available: dict[str, dict[str, Any]], settings: Settings) -> dict[str, dict[str, Any]]:
    memory: dict[str, dict[str, Any]] = {}
    for name, info in available.items():
        if not info["memory"]:
            continue
        try:
            memory[name] = run_memory(name, info, settings)
            _say(f"  {name:22} memory measured")
        except WorkerError as exc:
            memory[name] = {"error": str(exc)}
            _say(f"  {name:22} memory: FAILED {exc}")
    return memory


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; return the exit status (0 unless no case ran)."""
    args = parse_args(argv)
    settings = _settings(args)
    pinned = pin_workers(not args.no_pin)
    names = [n.strip() for n in args.systems.split(",")] if args.systems else list(SYSTEMS)
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        print(f"unknown systems: {', '.join(unknown)}", file=sys.stderr)
        return 2
    started = time.monotonic()
    machine = machine_info()
    _say(
        f"rpcengine benchmarks, {datetime.date.today()}: {machine['cpus']} CPUs, {machine['cpu_model']}, "
        f"Python {machine['python']}; load {machine['load_average_at_start'][0]:.2f}; "
        f"{settings.reps} reps x {settings.duration} s, D {settings.d_calls} calls/conn; "
        + ("server pinned to CPU 1, client to CPU 0" if pinned else "not pinned")
    )
    load = machine["load_average_at_start"][0]
    if load > 0.25 * (machine["cpus"] or 1):
        _say(f"WARNING: load average {load:.2f} before starting: other processes compete for the CPUs")
    available, skipped = _probe_all(names)
    cases = _run_cases(available, args.scenarios.upper(), settings)
    add_ratios(cases)
    memory = {} if args.no_memory else _run_memory(available, settings)
    _say(
        "\nThroughput (calls/s: median of the repetitions, min-max; ratio = median / raw-tcp median of the same"
        " scenario, (ws x) = / raw-ws median; CPU us per call, medians)\n"
    )
    _say(throughput_table(cases))
    if memory:
        _say(
            "\nMemory (bytes; idle conn: server-side delta / connections; pending req: client-side delta / requests)\n"
        )
        _say(memory_table(memory))
    for name, reason in skipped.items():
        _say(f"\nskipped {name}: {reason}")
    for case in cases:
        if case.get("error") or case.get("errors"):
            _say(f"\n{case['system']} {case['scenario']}: {case.get('error') or case['first_error']}")
    elapsed = time.monotonic() - started
    _say(f"\ntotal time {elapsed:.0f} s")
    if args.json:
        result = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": machine,
            "settings": vars(settings),
            "cases": cases,
            "memory": memory,
            "skipped": skipped,
            "seconds": round(elapsed, 1),
            "load_average_at_end": os.getloadavg(),
        }
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if any("calls_per_s" in c for c in cases) else 1
