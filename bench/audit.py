"""flow-audit's overhead: fanout-200 through ``flow scheduler`` without and with the plugin.

    python bench/audit.py                  # 3 runs each, alternating, a fresh SQLite database
    python bench/audit.py --repeat 5 --db-url postgresql+psycopg://postgres@127.0.0.1:5432/flow_bench

"Without" disables the plugin (``FLOW__CORE__DISABLED_PLUGINS=audit``); "with" records every DAG
run and task instance state change (``FLOW__AUDIT__RECORD_STATE_CHANGES=true``) besides the user
actions. Each run is ``bench/scheduler.py``'s ``run_workload`` (a fresh database, the scheduler as
a subprocess, trigger to success); the runs alternate so drift hits both sides alike. After each
run with the plugin the chain is verified and its records counted. Besides the wall times, the CPU
of the scheduler's whole process tree (scheduler, workers, tries) from its start to its exit is
printed for each side: work the plugin moved out of the timed window would show there. Figures
are printed, never asserted; the target is at most 10% slower.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from executor import ensure_database, prepare_environment
from scheduler import run_workload

TARGET_PERCENT = 10.0


def _configure(with_audit: bool) -> None:
    from flow.plugins import set_current

    if with_audit:
        os.environ.pop("FLOW__CORE__DISABLED_PLUGINS", None)
        os.environ["FLOW__AUDIT__RECORD_STATE_CHANGES"] = "true"
    else:
        os.environ["FLOW__CORE__DISABLED_PLUGINS"] = "audit"
        os.environ.pop("FLOW__AUDIT__RECORD_STATE_CHANGES", None)
    set_current(None)  # this process's plugin manager is built again with the setting
    from flow_audit import recorder

    recorder.reset()


def _chain(url: str) -> tuple[int, bool, str]:
    from flow.store.session import make_engine
    from flow_audit import recorder, store
    from flow_audit.chain import verify

    recorder.recorder().flush()
    engine = make_engine(url)
    try:
        head = store.head(engine)
        verdict = verify(store.walk(engine), head, recorder.settings().hmac_key)
        kinds = [r.kind for r in store.walk(engine)]
    finally:
        engine.dispose()
    return len(kinds), verdict.ok, verdict.message


def _children_cpu() -> float:
    """CPU seconds of this process's reaped children and theirs: the scheduler, its workers and
    their tries, from the scheduler's start to its exit."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", default=None, help="default: a SQLite file in a temp dir")
    parser.add_argument("--repeat", type=int, default=3, help="runs on each side")
    args = parser.parse_args(argv)
    try:
        import flow_audit  # noqa: F401
    except ImportError:
        print("flow-audit is not installed (pip install -e plugins/flow-audit): skipped")
        return
    without: list[float] = []
    with_audit: list[float] = []
    cpu: dict[bool, list[float]] = {False: [], True: []}
    records: list[int] = []
    with tempfile.TemporaryDirectory(prefix="flow-bench-audit-") as folder:
        home = Path(folder)
        url = prepare_environment(home, args.db_url)
        os.environ["FLOW__CORE__EXECUTOR"] = "local"
        ensure_database(url)
        for _ in range(args.repeat):
            for audited in (False, True):
                _configure(audited)
                before = _children_cpu()
                figures = run_workload("fanout", url, home, sample_memory=False)
                cpu[audited].append(_children_cpu() - before)
                for stale in (home / "dags").iterdir():
                    stale.unlink()
                (with_audit if audited else without).append(figures.wall)
                if audited:
                    count, ok, message = _chain(url)
                    records.append(count)
                    if not ok:
                        raise SystemExit(f"the audit chain does not verify: {message}")
    base, audited_median = statistics.median(without), statistics.median(with_audit)
    overhead = (audited_median / base - 1) * 100
    backend = url.split(":", 1)[0].split("+", 1)[0]
    print(f"flow-audit overhead, fanout-200 through flow scheduler (local executor), {backend}, "
          f"{os.cpu_count()} CPUs, median of {args.repeat} runs each")
    rows = [("figure", "value", "target"),
            ("fanout-200 without flow-audit", f"{base:.3f} s", ""),
            ("fanout-200 with flow-audit (state changes)", f"{audited_median:.3f} s", ""),
            ("overhead", f"{overhead:+.1f} %",
             f"<= {TARGET_PERCENT:g} % {'ok' if overhead <= TARGET_PERCENT else 'OVER TARGET'}"),
            ("CPU of the scheduler's process tree per run, without",
             f"{statistics.median(cpu[False]):.2f} s", ""),
            ("CPU of the scheduler's process tree per run, with",
             f"{statistics.median(cpu[True]):.2f} s", ""),
            ("audit records per run (chain verified)", f"{statistics.median(records):.0f}", "")]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
    print("runs without:", ", ".join(f"{w:.3f}" for w in without), "s; with:",
          ", ".join(f"{w:.3f}" for w in with_audit), "s")


if __name__ == "__main__":
    main()
