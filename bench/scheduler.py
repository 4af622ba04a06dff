"""The scheduler end to end: trigger-to-success through ``flow scheduler``, hop latency, memory
and DAG parsing.

    python bench/scheduler.py                       # every workload, a fresh SQLite database
    python bench/scheduler.py --workload chain --repeat 3
    python bench/scheduler.py --db-url postgresql+psycopg://postgres@127.0.0.1:5432/flow_bench

Workloads (``bench/workloads/``): fanout-200 (start, 200 independent no-op tasks, join),
chain-50 (50 no-op tasks in a chain), xcom-chain-50 (the same chain, each task reading the
previous one's return value) and parse-1000 (1000 generated files of 10 tasks each);
and ``idle``: the CPU of ``flow scheduler`` and its workers over 30 s with flow's example DAGs
loaded and nothing to run.
For fanout and the chains, each repetition uses a fresh FLOW_HOME with the workload as its only
DAG file and the local executor: the folder is parsed, the DAG unpaused, ``flow scheduler``
started as a subprocess and, once it is idle, a run is triggered; the wall time runs from the
trigger to the run's ``end_date`` as the scheduler committed it (the bench looks at the row every
50 ms and samples nothing else meanwhile: on two cores its own work would slow what it
measures). The CPU the run cost, read from /proc before the trigger and once it ended, is
printed per task and by role: the scheduler, its workers, the tries (the workers' children) and
the database server's processes. Peak
memory is taken in a second run of each repetition: it sums the scheduler and every descendant
(workers, tries, parse processes), sampled every 50 ms from /proc: PSS, which counts a page
shared by several processes once in all (a forked try shares most of its worker's), is the
memory they hold in total and what the target is checked against; the sum of their RSS, which
counts each shared page again in every process, is printed beside it. With ``--repeat`` each
figure is the median over the runs, each run's value after it. Figures are printed, never
asserted. A server database named in ``--db-url`` is created when missing; each repetition
empties it first (``downgrade`` is not used: tables are dropped and migrated again).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from executor import ensure_database, percentile, prepare_environment
from workloads.parse_1000 import write_dag_files

WORKLOADS = Path(__file__).parent / "workloads"
DAGS = {"fanout": ("fanout_200.py", "bench_fanout_200"), "chain": ("chain_50.py", "bench_chain_50"),
        "xcom": ("xcom_chain_50.py", "bench_xcom_chain_50")}
LABELS = {"fanout": "fanout-200", "chain": "chain-50", "xcom": "xcom-chain-50"}
ACTOR = "bench"
IDLE_SECONDS = 30.0  # how long the idle scheduler's CPU is measured
IDLE_SETTLE = 5.0  # seconds after it first looked idle, before the measurement starts


@dataclass
class RunFigures:
    wall: float
    tasks: int
    hops_ms: list[float]
    peak_rss_mb: float
    peak_pss_mb: float
    states: dict[str, int] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # role -> CPU over the run
    # Each hop in two: the upstream's end to the downstream's queueing (the end's commit, the
    # event, the scheduler's step up to its queueing), and that to the downstream's start.
    hop_parts_ms: list[tuple[float, float]] = field(default_factory=list)


def _stat_ticks(pid: int) -> tuple[str, list[int]]:
    """A process's name and its utime, stime, cutime, cstime (clock ticks)."""
    with open(f"/proc/{pid}/stat") as handle:
        text = handle.read()
    fields = text.rsplit(")", 1)[1].split()
    return text[text.index("(") + 1:text.rindex(")")], [int(f) for f in fields[11:15]]


def role_ticks(scheduler: int) -> dict[str, int]:
    """CPU clock ticks so far by role: the scheduler (with the parse processes it waited for),
    the executor's workers, the tries (the workers' children, live and reaped), and the
    database server's processes (PostgreSQL, MariaDB; none for SQLite)."""
    ticks = {"scheduler": 0, "workers": 0, "tries": 0, "database": 0}
    pending = [(scheduler, "scheduler")]
    while pending:
        pid, role = pending.pop()
        try:
            _, (utime, stime, cutime, cstime) = _stat_ticks(pid)
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                worker = b"local_worker" in handle.read()
        except OSError:
            continue
        if role == "scheduler" and worker:
            role = "workers"
        ticks[role] += utime + stime
        ticks["scheduler" if role == "scheduler" else "tries"] += cutime + cstime
        pending += [(child, "tries" if role != "scheduler" else role)
                    for child in _children(pid)]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                name, (utime, stime, _, _) = _stat_ticks(int(entry))
                if name in ("postgres", "mariadbd", "mysqld"):
                    ticks["database"] += utime + stime
    return ticks


# ------------------------------------------------------------------------------ process tree


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


def _memory_kb(pid: int) -> tuple[int, int]:
    """RSS and PSS of one process: RSS counts pages shared with the forking parent in every
    child again; PSS divides each shared page among its sharers, so its sum is the real total."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def tree_memory_mb(root: int) -> tuple[float, float]:
    rss = pss = 0
    pending = [root]
    while pending:
        pid = pending.pop()
        one_rss, one_pss = _memory_kb(pid)
        rss, pss = rss + one_rss, pss + one_pss
        pending += _children(pid)
    return rss / 1024, pss / 1024


def tree_cpu_ticks(root: int, *, reaped: bool = False) -> int:
    """CPU clock ticks of ``root`` and its descendants; with ``reaped``, also of the children
    they waited for (a parse process, a try that ended)."""
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15 if reaped else 13])
        except OSError:
            pass
        pending += _children(pid)
    return total


class PeakRss:
    """Samples the memory of a process tree every 50 ms in a thread; ``peak`` and ``peak_pss``
    are the highest sums of RSS and PSS."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak = self.peak_pss = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss, pss = tree_memory_mb(self.root)
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------------- database


def fresh_database(url: str) -> Any:
    """An engine on an empty, migrated database."""
    from sqlalchemy import MetaData
    from sqlalchemy.engine import make_url

    from flow.store.migrate import upgrade
    from flow.store.session import dispose_engines, get_engine

    dispose_engines()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
    engine = get_engine(url)
    if parsed.get_backend_name() != "sqlite":
        metadata = MetaData()
        metadata.reflect(engine)
        metadata.drop_all(engine)
    upgrade(engine)
    return engine


def wait_idle(pid: int, engine: Any, timeout: float = 30.0) -> None:
    """Until the scheduler has its job row and its process tree spent no CPU for 0.5 s."""
    from sqlalchemy import select

    from flow.store.models import Job
    from flow.store.session import session_scope

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(engine) as session:
            if session.scalars(select(Job.id).where(Job.job_type == "scheduler",
                                                    Job.state == "running")).first():
                break
        time.sleep(0.05)
    else:
        raise SystemExit("the scheduler did not start within 30 s")
    quiet_since, ticks = time.monotonic(), tree_cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = tree_cpu_ticks(pid)
        if now != ticks:
            quiet_since, ticks = time.monotonic(), now
        elif time.monotonic() - quiet_since >= 0.5:
            return
    raise SystemExit("the scheduler did not become idle within 30 s")


@contextlib.contextmanager
def scheduler_process(home: Path, engine: Any) -> Iterator[subprocess.Popen[bytes]]:
    """``flow scheduler`` as a subprocess (output in ``home/scheduler.log``), idle when the
    block starts and stopped (SIGTERM) when it ends."""
    flow = Path(sys.executable).with_name("flow")
    command = [str(flow)] if flow.exists() else [sys.executable, "-m", "flow.cli.main"]
    log = (home / "scheduler.log").open("w")
    scheduler = subprocess.Popen([*command, "scheduler"], stdout=log, stderr=log)
    try:
        wait_idle(scheduler.pid, engine)
        yield scheduler
    finally:
        scheduler.send_signal(signal.SIGTERM)
        try:
            scheduler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            scheduler.kill()
            scheduler.wait()
        log.close()


def idle_cpu_percent(url: str, home: Path, seconds: float = IDLE_SECONDS) -> float:
    """CPU of the scheduler and its workers, in % of one core, over ``seconds`` with flow's
    example DAGs loaded (paused, as new DAGs start) and nothing to run: the heartbeat, the DAG
    folder's re-parse every ``dag_dir_list_interval`` and the periodic checks."""
    from flow.cli.standalone import examples_folder
    from flow.store.session import dispose_engines

    dags = home / "dags"
    for example in sorted(examples_folder().glob("*.py")):
        shutil.copy(example, dags / example.name)
    engine = fresh_database(url)
    try:
        with scheduler_process(home, engine) as scheduler:
            time.sleep(IDLE_SETTLE)  # past the start's last steps (workers' warm-up, spares)
            before = tree_cpu_ticks(scheduler.pid, reaped=True)
            time.sleep(seconds)
            used = tree_cpu_ticks(scheduler.pid, reaped=True) - before
    finally:
        for stale in dags.iterdir():
            stale.unlink()
        dispose_engines()
    return used / os.sysconf("SC_CLK_TCK") / seconds * 100


def run_workload(name: str, url: str, home: Path, *, sample_memory: bool) -> RunFigures:
    """One triggered run of ``name`` through a ``flow scheduler`` subprocess.

    The wall time runs from just before the trigger to the run's ``end_date`` as the scheduler
    committed it, and the run's row is looked at only every 50 ms: on two cores, a poll every
    few milliseconds (or the memory sampler) would take CPU from the scheduler it measures. So
    memory is measured in a run of its own (``sample_memory``), whose wall time is not used.
    """
    from datetime import UTC, datetime

    from sqlalchemy import select

    from flow.scheduling.actions import set_paused, trigger_dag_run
    from flow.scheduling.processor import DagProcessor
    from flow.store.models import DagRun, TaskInstance
    from flow.store.session import dispose_engines, session_scope

    filename, dag_id = DAGS[name]
    dags = home / "dags"
    shutil.copy(WORKLOADS / filename, dags / filename)
    engine = fresh_database(url)
    DagProcessor(dags, engine=engine).process()
    set_paused(dag_id, False, actor=ACTOR, source="cli")
    from flow.scheduling.dagbag import load_dag_file

    [dag] = load_dag_file(dags / filename).dags
    edges = [(up, task.task_id) for task in dag.tasks for up in task.upstream_task_ids]

    with scheduler_process(home, engine) as scheduler:
        memory = PeakRss(scheduler.pid) if sample_memory else contextlib.nullcontext()
        with memory:
            before = role_ticks(scheduler.pid) if not sample_memory else {}
            began = datetime.now(UTC)
            run = trigger_dag_run(dag_id, actor=ACTOR, source="cli")
            ended = select(DagRun.state, DagRun.end_date).where(DagRun.dag_id == dag_id,
                                                                 DagRun.run_id == run.run_id)
            deadline = time.monotonic() + 120
            with engine.connect() as connection:
                while True:
                    time.sleep(0.05)
                    state, end_date = connection.execute(ended).one()
                    connection.rollback()
                    if state in ("success", "failed"):
                        after = role_ticks(scheduler.pid) if not sample_memory else {}
                        break
                    if time.monotonic() > deadline or scheduler.poll() is not None:
                        raise SystemExit(f"{name}: run still {state}; "
                                         f"see {home / 'scheduler.log'}")
            wall = (end_date - began).total_seconds()
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    cpu_ms = {role: (after[role] - before[role]) * tick_ms for role in before}
    with session_scope(engine) as session:
        rows = session.execute(select(TaskInstance.task_id, TaskInstance.state,
                                      TaskInstance.queued_at, TaskInstance.start_date,
                                      TaskInstance.end_date)
                               .where(TaskInstance.dag_id == dag_id,
                                      TaskInstance.run_id == run.run_id)).all()
    dispose_engines()
    by_id = {row.task_id: row for row in rows}
    states: dict[str, int] = {}
    for row in rows:
        states[str(row.state)] = states.get(str(row.state), 0) + 1
    hops = [(by_id[down].start_date - by_id[up].end_date).total_seconds() * 1000
            for up, down in edges
            if by_id[up].end_date is not None and by_id[down].start_date is not None]
    parts = [((by_id[down].queued_at - by_id[up].end_date).total_seconds() * 1000,
              (by_id[down].start_date - by_id[down].queued_at).total_seconds() * 1000)
             for up, down in edges
             if by_id[up].end_date is not None and by_id[down].queued_at is not None
             and by_id[down].start_date is not None]
    if state != "success":
        print(f"  {name}: the run ended {state}: {states}")
    peak = (memory.peak, memory.peak_pss) if isinstance(memory, PeakRss) else (0.0, 0.0)
    return RunFigures(wall, len(rows), hops, *peak, states, cpu_ms, parts)


# ------------------------------------------------------------------------------------- parse


def parse_figures(url: str, home: Path) -> tuple[float, float, int]:
    """First parse of 1000 generated files and a re-parse with nothing changed, each by a new
    DagProcessor (as a restarted scheduler would)."""
    from flow.scheduling.processor import DagProcessor
    from flow.store.session import dispose_engines

    folder = home / "parse"
    write_dag_files(folder)
    engine = fresh_database(url)
    first = DagProcessor(folder, engine=engine).process()
    if len(first.parsed) != 1000:
        print(f"  parse-1000: {len(first.parsed)} files parsed of {first.files}")
    again = DagProcessor(folder, engine=engine).process()
    dispose_engines()
    return first.duration, again.duration, len(again.parsed)


# ------------------------------------------------------------------------------------ limits


def fork_exit_ms(samples: int = 200) -> float:
    """fork + exit + wait of this (warm, flow imported) process."""
    timings = []
    for _ in range(samples):
        began = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        timings.append((time.perf_counter() - began) * 1000)
    return statistics.median(timings)


def log_file_us(home: Path, samples: int = 200) -> float:
    """Making a try's log folder and creating its file, as each try of a new task does, in
    this run's ``FLOW_HOME``. What the file system charges for it depends on its recent past:
    ext4 without a journal, allocating an inode, checks and passes over each free one deleted
    less than a minute ago (six, while its block is not written back), so near many files just
    deleted (a test run, a benchmark's cleanup) this took 1 ms against 40 us elsewhere on the
    same disk. Nothing is deleted here."""
    folder = home / "logs" / "bench-limit"
    folder.mkdir(parents=True, exist_ok=True)
    timings = []
    for i in range(samples):
        began = time.perf_counter()
        os.mkdir(folder / f"task_id={i}")
        os.close(os.open(folder / f"task_id={i}" / "attempt=1.log",
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        timings.append((time.perf_counter() - began) * 1e6)
    return statistics.median(timings)


def sqlite_commit_ms(folder: Path, samples: int = 200) -> float:
    connection = sqlite3.connect(folder / "commit.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    timings = []
    for i in range(samples):
        began = time.perf_counter()
        connection.execute("BEGIN")
        connection.execute("INSERT INTO t (v) VALUES (?)", (str(i),))
        connection.execute("COMMIT")
        timings.append((time.perf_counter() - began) * 1000)
    connection.close()
    return statistics.median(timings)


def server_commit_ms(url: str, samples: int = 200) -> float:
    from sqlalchemy import text

    from flow.store.session import make_engine

    engine = make_engine(url)
    with engine.connect() as connection:
        connection.execute(text("DROP TABLE IF EXISTS bench_commit"))
        connection.execute(text("CREATE TABLE bench_commit (id SERIAL PRIMARY KEY, v TEXT)"))
        connection.commit()
        timings = []
        for i in range(samples):
            began = time.perf_counter()
            connection.execute(text("INSERT INTO bench_commit (v) VALUES (:v)"), {"v": str(i)})
            connection.commit()
            timings.append((time.perf_counter() - began) * 1000)
        connection.execute(text("DROP TABLE bench_commit"))
        connection.commit()
    engine.dispose()
    return statistics.median(timings)


# -------------------------------------------------------------------------------------- main


def _row(figure: str, value: str, target: str, ok: bool | None) -> tuple[str, str, str, str]:
    verdict = "" if ok is None else ("ok" if ok else "OVER TARGET")
    return figure, value, target, verdict


def _print(rows: list[tuple[str, str, str, str]]) -> None:
    rows = [("figure", "value", "target", ""), *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _workload_rows(name: str, runs: list[RunFigures],
                   memory_runs: list[RunFigures]) -> list[tuple[str, str, str, str]]:
    """The figures of one workload: times from ``runs``, memory from ``memory_runs``; medians
    over the runs, each run's value after them when there are several."""
    label = LABELS[name]

    def each(values: list[float], fmt: str) -> str:
        return "" if len(values) < 2 else " (" + ", ".join(fmt.format(v) for v in values) + ")"

    walls = [r.wall for r in runs]
    wall = statistics.median(walls)
    per_task = statistics.median(r.wall / r.tasks * 1000 for r in runs)
    p50s = [statistics.median(r.hops_ms) for r in runs]
    p99 = statistics.median(percentile(r.hops_ms, 0.99) for r in runs)
    ended_queued = statistics.median(statistics.median(a for a, _ in r.hop_parts_ms)
                                     for r in runs)
    queued_started = statistics.median(statistics.median(b for _, b in r.hop_parts_ms)
                                       for r in runs)
    pss = [r.peak_pss_mb for r in memory_runs]
    rss = statistics.median(r.peak_rss_mb for r in memory_runs)
    fanout, chain = name == "fanout", name == "chain"
    return [
        _row(f"{label} trigger-to-success", f"{wall:.2f} s" + each(walls, "{:.2f}"),
             "<= 0.5 s" if fanout else "", wall <= 0.5 if fanout else None),
        _row(f"{label} per-task overhead", f"{per_task:.1f} ms", "", None),
        _row(f"{label} CPU per task: scheduler / workers / tries / database",
             " / ".join(f"{statistics.median(r.cpu_ms[role] / r.tasks for r in runs):.1f}"
                        for role in ("scheduler", "workers", "tries", "database")) + " ms",
             "", None),
        _row(f"{label} hop p50 / p99",
             f"{statistics.median(p50s):.1f} / {p99:.1f} ms" + each(p50s, "{:.1f}"),
             "p50 <= 5 ms" if chain else "",
             statistics.median(p50s) <= 5 if chain else None),
        _row(f"{label} hop p50 in two: end -> queued / queued -> start",
             f"{ended_queued:.1f} / {queued_started:.1f} ms", "", None),
        _row(f"{label} peak memory, PSS (scheduler tree)",
             f"{statistics.median(pss):.0f} MB" + each(pss, "{:.0f}"), "<= 150 MB",
             statistics.median(pss) <= 150),
        _row(f"{label} peak RSS sum (shared pages counted again)", f"{rss:.0f} MB", "", None),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", default=None, help="default: a SQLite file in a temp dir")
    parser.add_argument("--workload",
                        choices=["fanout", "chain", "xcom", "parse", "idle", "all"],
                        default="all")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of each workload")
    args = parser.parse_args(argv)
    names = (["fanout", "chain", "xcom", "parse", "idle"] if args.workload == "all"
             else [args.workload])
    rows: list[tuple[str, str, str, str]] = []

    with tempfile.TemporaryDirectory(prefix="flow-bench-sched-") as folder:
        home = Path(folder)
        url = prepare_environment(home, args.db_url)
        os.environ["FLOW__CORE__EXECUTOR"] = "local"
        ensure_database(url)
        backend = url.split(":", 1)[0].split("+", 1)[0]
        # The machine's limits first, while this process is as small as a worker (after
        # parse-1000 it holds a thousand DAG modules, and a fork copies their page tables).
        limits = [_row("limit: fork + exit, warm process", f"{fork_exit_ms():.2f} ms", "", None),
                  _row("limit: SQLite commit (WAL)", f"{sqlite_commit_ms(home):.2f} ms", "",
                       None),
                  _row("limit: a try's log folder and file, made", f"{log_file_us(home):.0f} us",
                       "", None)]
        if backend == "postgresql":
            limits.append(_row("limit: PostgreSQL commit", f"{server_commit_ms(url):.2f} ms",
                               "", None))
        for name in names:
            if name == "idle":
                idle = idle_cpu_percent(url, home)
                rows.append(_row(f"idle CPU, scheduler + workers ({IDLE_SECONDS:g} s, example "
                                 "DAGs)", f"{idle:.2f} % of a core", "< 1 %", idle < 1))
                continue
            if name == "parse":
                parses = [parse_figures(url, home) for _ in range(args.repeat)]
                first = statistics.median(p[0] for p in parses)
                again = statistics.median(p[1] for p in parses)
                rows.append(_row("parse-1000 first parse", f"{first:.2f} s", "<= 3 s",
                                 first <= 3))
                rows.append(_row("parse-1000 re-parse, nothing changed",
                                 f"{again:.3f} s ({max(p[2] for p in parses)} files parsed)",
                                 "<= 0.2 s", again <= 0.2))
                continue
            runs, memory_runs = [], []
            for _ in range(args.repeat):
                for sampled, into in ((False, runs), (True, memory_runs)):
                    into.append(run_workload(name, url, home, sample_memory=sampled))
                    for stale in (home / "dags").iterdir():
                        stale.unlink()
            rows += _workload_rows(name, runs, memory_runs)
        rows += limits
    print(f"flow scheduler, local executor, {backend}, {os.cpu_count()} CPUs, "
          "every state persisted, each try in its own forked process")
    _print(rows)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
