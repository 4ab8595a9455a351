"""``python -m benchmarks``: run every case, print the tables, optionally write JSON."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.base import SCENARIOS
from benchmarks.machine import machine_info
from benchmarks.report import (
    add_ratios,
    cost_table,
    memory_table,
    submit_sentence,
    submit_summary,
    submit_table,
    throughput_table,
)
from benchmarks.rounds import run_rounds
from benchmarks.runner import ROOT, Settings, WorkerError, pin_workers, probe, run_memory
from benchmarks.systems import SYSTEMS
from benchmarks.targets import evaluate, targets_table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="short repetitions (0.4 s), D with 20 calls/conn, 300 idle connections"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--systems", help=f"comma-separated subset of: {', '.join(SYSTEMS)}")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of the scenarios {', '.join(SCENARIOS)} (default all; 'ABD' also works;"
        " S and S8 are submit() from 1 and 8 plain threads, compared with A: run them with A, e.g. A,S,S8)",
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5; ratios are medians over them)")
    parser.add_argument("--reps", type=int, help="timed repetitions per case in each round (default 1)")
    parser.add_argument(
        "--duration", type=float, help="seconds per repetition of A, S, S8, B, Bpool, C, C1 (default 1.5)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin the server worker to CPU 1 and the client worker to CPU 0"
    )
    parser.add_argument(
        "--broker",
        action="store_true",
        help="run only the Redis broker rows (python -m benchmarks.broker; --quick applies)",
    )
    return parser.parse_args(argv)


def _settings(args: argparse.Namespace) -> Settings:
    quick = Settings(duration=0.4, warmup=0.2, d_calls=20, idle_connections=300, count_duration=0.2)
    settings = quick if args.quick else Settings()
    if args.rounds:
        settings.rounds = args.rounds
    if args.reps:
        settings.reps = args.reps
    if args.duration:
        settings.duration = args.duration
    return settings


def parse_scenarios(text: str) -> list[str]:
    """``"A,Bpool,C1"`` -> the named scenarios; a token that is not one is read letter by letter (``"ABD"``)."""
    chosen: list[str] = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        names = [token] if token in SCENARIOS else list(token.upper())
        for name in names:
            if name not in SCENARIOS:
                raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
            chosen.append(name)
    return chosen


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
            for scenario, reason in info.get("scenario_skips", {}).items():
                skipped[f"{name} {scenario}"] = reason
                _say(f"SKIP {name} {scenario}: {reason}")
    return available, skipped


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
    if args.broker:
        from benchmarks.broker import main as broker_main

        return broker_main(
            ["--quick"] * args.quick + ["--json", args.json] * bool(args.json) + ["--no-pin"] * args.no_pin
        )
    settings = _settings(args)
    pinned = pin_workers(not args.no_pin)
    names = [n.strip() for n in args.systems.split(",")] if args.systems else list(SYSTEMS)
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        print(f"unknown systems: {', '.join(unknown)}", file=sys.stderr)
        return 2
    try:
        scenarios = parse_scenarios(args.scenarios)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    started = time.monotonic()
    machine = machine_info(ROOT)
    _say(
        f"rpcengine benchmarks, {datetime.date.today()}: {machine['cpus']} CPUs, {machine['cpu_model']}, "
        f"Python {machine['python']}; commit {machine['commit']}; load {machine['load_average_at_start'][0]:.2f}; "
        f"{settings.rounds} rounds x {settings.reps} rep x {settings.duration} s, D {settings.d_calls} calls/conn; "
        + ("server pinned to CPU 1, client to CPU 0" if pinned else "not pinned")
    )
    load = machine["load_average_at_start"][0]
    if load > 0.25 * (machine["cpus"] or 1):
        _say(f"WARNING: load average {load:.2f} before starting: other processes compete for the CPUs")
    available, skipped = _probe_all(names)
    cases = run_rounds(available, scenarios, settings, _say)
    add_ratios(cases)
    memory = {} if args.no_memory else _run_memory(available, settings)
    _say(
        f"\nThroughput (calls/s: median over {settings.rounds} rounds, min-max; each ratio = median over the rounds"
        " of calls/s / the baseline's calls/s in the same round; vs raw-tcp: B's is the batching client;"
        " other ratios: plain = raw-tcp-plain, unix = raw-unix, ws = raw-ws, mprpc)\n"
    )
    _say(throughput_table(cases))
    _say(
        "\nPer call, per side (CPU us: median over the rounds; greenlet switches and Python calls: counted in a"
        " separate untimed pass of round 1; loopback's figures are both ends in one process)\n"
    )
    _say(cost_table(cases))
    submit = submit_summary(cases)
    if submit:
        _say(
            "\nsubmit() from plain threads (S, S8: a HubThread in the client process holds one TCP engine) against"
            " request() on the hub (A of the same system, same rounds); us/call = 1e6 / calls/s (medians over the"
            " rounds; S8: time per call at its throughput), vs A and extra us/call: per-round medians; client CPU:"
            " all the client's threads; thread CPUs: the affinity read in the hub and calling threads\n"
        )
        _say(submit_table(submit))
        sentence = submit_sentence(submit)
        if sentence:
            _say(f"\n{sentence}")
    if memory:
        _say(
            "\nMemory (bytes; idle conn: server-side delta / connections; pending req: client-side delta / requests)\n"
        )
        _say(memory_table(memory))
    for name, reason in skipped.items():
        _say(f"\nskipped {name}: {reason}")
    for case in cases:
        for error in case["round_errors"]:
            _say(f"\n{case['system']} {case['scenario']}: round failed: {error}")
        if case.get("errors"):
            _say(f"\n{case['system']} {case['scenario']}: {case['errors']} failed calls, first: {case['first_error']}")
    targets = evaluate(cases, memory)
    _say("\nTargets of issue #11 (this run)\n")
    _say(targets_table(targets))
    elapsed = time.monotonic() - started
    _say(f"\ntotal time {elapsed:.0f} s")
    if args.json:
        result = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": machine,
            "settings": vars(settings),
            "cases": cases,
            "memory": memory,
            "targets": targets,
            "submit": submit,
            "skipped": skipped,
            "seconds": round(elapsed, 1),
            "load_average_at_end": os.getloadavg(),
        }
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if any("calls_per_s" in c for c in cases) else 1
