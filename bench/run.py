"""flow's benchmarks: run every registered benchmark and print its figures.

    python bench/run.py                 # all benchmarks, default repetitions
    python bench/run.py startup --runs 30 --json

A benchmark is a function registered with :func:`benchmark`; it returns a list of
:class:`Figure`. Later workloads (DAG files in ``bench/workloads/``, scheduler throughput, task
latency) register the same way. Figures are printed, never asserted: a target is shown next to
the figure it applies to.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

WORKLOADS = Path(__file__).parent / "workloads"


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: float | None = None  # the figure must stay below it
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return "ok" if self.value < self.target else "OVER TARGET"


@dataclass
class Options:
    runs: int


Benchmark = Callable[[Options], list[Figure]]
BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(name: str) -> Callable[[Benchmark], Benchmark]:
    def register(function: Benchmark) -> Benchmark:
        BENCHMARKS[name] = function
        return function

    return register


def median_wall_ms(command: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    """Median wall time of ``runs`` fresh processes, after one warm-up run (disk cache, .pyc)."""
    environ = {**os.environ, **(env or {})}
    subprocess.run(command, env=environ, check=True, capture_output=True)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=environ, check=True, capture_output=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _flow_command() -> list[str]:
    script = Path(sys.executable).with_name("flow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "flow.cli.main"]


@benchmark("startup")
def startup(options: Options) -> list[Figure]:
    """Interpreter start, ``import flow`` and ``flow --help`` in fresh processes."""
    python = sys.executable
    baseline = median_wall_ms([python, "-c", "pass"], options.runs)
    import_flow = median_wall_ms([python, "-c", "import flow"], options.runs)
    flow_help = median_wall_ms([*_flow_command(), "--help"], options.runs)
    note = f"median of {options.runs} fresh processes, interpreter start included"
    return [
        Figure("python -c pass", baseline, "ms", note="baseline"),
        Figure("import flow", import_flow, "ms", target=150, note=note),
        Figure("flow --help", flow_help, "ms", target=300, note=note),
    ]


def _script(name: str) -> list[Figure]:
    """Benchmarks with their own report (they seed databases and print tables themselves)."""
    import subprocess

    subprocess.run([sys.executable, str(Path(__file__).parent / name)], check=True)
    return []


@benchmark("executor")
def local_executor(options: Options) -> list[Figure]:
    """The local executor alone: submit to final event, one at a time and 200 at once."""
    return _script("executor.py")


@benchmark("scheduler")
def scheduler(options: Options) -> list[Figure]:
    """fanout-200, chain-50 through `flow scheduler` (local executor), parse-1000, limits."""
    return _script("scheduler.py")


@benchmark("web")
def web(options: Options) -> list[Figure]:
    """Server time of the DAG list, grid and graph with 1,000 DAGs and 500 runs of 1,000 tasks."""
    return _script("web.py")


BENCHMARKS["audit"] = lambda options: _script("audit.py")  # flow-audit: fanout-200 without/with


def _print_table(figures: list[tuple[str, Figure]]) -> None:
    rows = [("benchmark", "figure", "value", "target", "", "note")]
    rows += [(bench, f.name, f"{f.value:.1f} {f.unit}",
              f"< {f.target:g} {f.unit}" if f.target is not None else "", f.verdict, f.note)
             for bench, f in figures]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--runs", type=int, default=15, help="repetitions per figure")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    options = Options(runs=args.runs)
    figures = [(name, figure) for name in args.names or list(BENCHMARKS)
               for figure in BENCHMARKS[name](options)]
    if args.json:
        print(json.dumps([{"benchmark": name, **asdict(figure), "verdict": figure.verdict}
                          for name, figure in figures], indent=2))
    else:
        _print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
