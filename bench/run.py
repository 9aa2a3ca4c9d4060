"""`python -m bench.run [--quick] [--only NAME ...]`: run the scenarios, print the table, write JSON.

Owns: the order of the scenarios and the run's lifetime: one Stack (throwaway database, Redis
db, simulator) for the whole run, closed whatever happens. A scenario that fails is reported
(and makes the exit status 1); the others still run. Must not: measure anything itself.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import (
    cpu_bound,
    dashboard_bench,
    embeddings,
    fairness,
    lanes_bench,
    provider_bound,
    run_memory,
    serve_bench,
    storage,
)
from bench.params import FULL, QUICK, Params
from bench.report import Report
from bench.stack import Stack

Scenario = Callable[[Stack, Params, Report], None]

# Submit first (it empties the ledger after itself), the ledger next to last (it counts every
# attempt the others made, and tops up only what is missing), then the dashboard's own fill.
SCENARIOS: dict[str, Scenario] = {
    "submit": storage.run_submit,
    "provider": provider_bound.run,
    "cpu": cpu_bound.run,
    "fairness": fairness.run,
    "memory": storage.run_memory,
    "serve": serve_bench.run,
    "run": run_memory.run,
    "lanes": lanes_bench.run,
    "embeddings": embeddings.run,
    "ledger": storage.run_ledger,
    # after the ledger figure: it adds 1M synthetic attempts the bytes-per-row must not count
    "dashboard": dashboard_bench.run,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller, shorter runs")
    parser.add_argument(
        "--only", action="append", choices=sorted(SCENARIOS), help="run just this (repeatable)"
    )
    parser.add_argument("--out", type=Path, help="JSON path (default bench/results/latest.json)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the process logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = QUICK if args.quick else FULL
    chosen = [name for name in SCENARIOS if not args.only or name in args.only]
    report = Report(mode=params.mode)
    workdir = Path(tempfile.mkdtemp(prefix="llmq-bench-"))
    started = time.monotonic()
    print(f"llmq bench ({params.mode}): {', '.join(chosen)}; logs in {workdir}", flush=True)
    with Stack(workdir) as stack:
        stack.open()
        for name in chosen:
            t0 = time.monotonic()
            print(f"- {name} ...", end=" ", flush=True)
            try:
                SCENARIOS[name](stack, params, report)
                print(f"{time.monotonic() - t0:.0f} s", flush=True)
            except Exception as exc:  # noqa: BLE001 - report it, run the other scenarios
                print("FAILED", flush=True)
                report.errors[name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc(file=sys.stderr)
    report.details["run_seconds"] = time.monotonic() - started
    path = report.write(args.out)
    print()
    print(report.table())
    print(f"\n{time.monotonic() - started:.0f} s; results in {path}")
    if not args.keep_logs and not report.errors:
        _remove(workdir)
    return 1 if report.errors else 0


def _remove(folder: Path) -> None:
    for item in sorted(folder.rglob("*"), reverse=True):
        item.unlink() if item.is_file() else item.rmdir()
    folder.rmdir()


if __name__ == "__main__":
    sys.exit(main())
