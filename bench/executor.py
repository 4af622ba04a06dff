"""The local executor's per-task cost, without the scheduler: submit to final event.

    python bench/executor.py                 # a fresh SQLite database in a temporary FLOW_HOME
    python bench/executor.py --db-url postgresql+psycopg://postgres@127.0.0.1/flow_bench_exec
    python bench/executor.py --profile /tmp/child.prof   # cProfile of one forked child

Seeds one DAG run of a DAG file of no-op Python tasks, queues its task instances as the scheduler
would (``state = queued``, ``try_number = 1``), then drives :class:`LocalExecutor` directly:

* one at a time: submit one workload, wait (without polling) for its final event; p50/p90;
* N at once: submit N workloads together, wall time until the last final event.

Every state is persisted (start and finish of each try are committed), each task runs in its own
forked child. Figures are printed, never asserted. A PostgreSQL or MariaDB URL names a database
that is created when missing; the bench's rows are deleted before it starts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DAG_ID = "bench_noop"
RUN_ID = "bench__executor"
FINAL = {"success", "failed", "up_for_retry", "skipped", "refused", "lost"}

DAG_SOURCE = '''
from datetime import datetime
from flow import DAG
from flow.operators import PythonOperator

def noop():
    return None

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1)):
    for i in range({tasks}):
        PythonOperator(task_id=f"t{{i}}", python_callable=noop)
'''


def prepare_environment(home: Path, db_url: str | None) -> str:
    from cryptography.fernet import Fernet

    (home / "dags").mkdir(parents=True, exist_ok=True)
    os.environ["FLOW_HOME"] = str(home)
    os.environ.setdefault("FLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    os.environ["FLOW__CORE__DAGS_FOLDER"] = str(home / "dags")
    url = db_url or f"sqlite:///{home / 'flow.db'}"
    os.environ["FLOW__DATABASE__URL"] = url
    return url


def ensure_database(url: str) -> None:
    """Create the server database named in ``url`` when it does not exist."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from flow.store.session import normalize_url

    parsed = make_url(normalize_url(url))
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return
    admin_db = "postgres" if backend == "postgresql" else "mysql"
    admin = create_engine(parsed.set(database=admin_db), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if backend == "postgresql":
            exists = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :d"),
                                       {"d": parsed.database})
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
        else:
            connection.execute(text(f"CREATE DATABASE IF NOT EXISTS `{parsed.database}`"))
    admin.dispose()


def seed(engine: Any, dag: Any) -> None:
    """A running DAG run with every task instance queued for try 1 (rows of an earlier
    bench on the same database are deleted first)."""
    from sqlalchemy import delete

    from flow.store.models import DagRun, TaskInstance, TaskInstanceTry
    from flow.store.session import session_scope

    when = datetime(2024, 1, 1, tzinfo=UTC)
    with session_scope(engine) as session:
        ids = [row for (row,) in session.execute(
            TaskInstance.__table__.select().with_only_columns(TaskInstance.id)
            .where(TaskInstance.dag_id == DAG_ID))]
        if ids:
            session.execute(delete(TaskInstanceTry)
                            .where(TaskInstanceTry.task_instance_id.in_(ids)))
        session.execute(delete(TaskInstance).where(TaskInstance.dag_id == DAG_ID))
        session.execute(delete(DagRun).where(DagRun.dag_id == DAG_ID))
    with session_scope(engine) as session:
        session.add(DagRun(dag_id=DAG_ID, run_id=RUN_ID, logical_date=when,
                           data_interval_start=when, data_interval_end=when, run_type="manual",
                           state="running", conf={}, start_date=when))
        session.flush()
        session.add_all([TaskInstance(dag_id=DAG_ID, run_id=RUN_ID, task_id=task.task_id,
                                      map_index=-1, max_tries=0, operator=task.task_type,
                                      state="queued", try_number=1) for task in dag.tasks])


def wait_final(executor: Any, count: int, timeout: float = 120.0) -> list[Any]:
    events: list[Any] = []
    deadline = time.monotonic() + timeout
    while sum(e.state in FINAL for e in events) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f"timed out; events so far: {events[-5:]}")
        executor.wait_for_events(left)
        events += executor.events()
    return events


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _worker_cpu(executor: Any) -> tuple[float, float]:
    """Milliseconds of CPU the workers used themselves, and the tries: the workers' fork
    servers with the children they forked and reaped (and any child a worker reaped itself)."""
    ticks = os.sysconf("SC_CLK_TCK")
    own = tries = 0.0
    for pid in executor.worker_pids():
        utime, stime, cutime, cstime = _stat_times(pid)
        own += (utime + stime) / ticks * 1000
        tries += (cutime + cstime) / ticks * 1000
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            for server in handle.read().split():
                tries += sum(_stat_times(int(server))) / ticks * 1000
    return own, tries


def _stat_times(pid: int) -> tuple[int, int, int, int]:
    """A process's utime, stime, cutime and cstime, in clock ticks."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12]), int(fields[13]), int(fields[14])


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", default=None)
    parser.add_argument("--single", type=int, default=60, help="one-at-a-time samples")
    parser.add_argument("--fanout", type=int, default=200, help="tasks submitted at once")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", default=None,
                        help="write a cProfile of one forked child's run to this file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="flow-bench-exec-") as folder:
        home = Path(folder)
        url = prepare_environment(home, args.db_url)
        if args.profile:  # see profile_child/sitecustomize.py
            os.environ["FLOW_BENCH_PROFILE_CHILD"] = os.path.abspath(args.profile)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(args.profile)
            folder = str(Path(__file__).parent / "profile_child")
            os.environ["PYTHONPATH"] = os.pathsep.join(
                [folder, *filter(None, [os.environ.get("PYTHONPATH")])])
        ensure_database(url)

        from flow.builtin.executors.local import LocalExecutor
        from flow.execution.workload import TaskWorkload
        from flow.scheduling.dagbag import load_dag_file
        from flow.store.migrate import upgrade
        from flow.store.session import get_engine

        engine = get_engine(url)
        upgrade(engine)
        total = args.single + args.fanout
        dag_file = home / "dags" / "bench_noop.py"
        dag_file.write_text(DAG_SOURCE.format(dag_id=DAG_ID, tasks=total))
        [dag] = load_dag_file(dag_file).dags
        seed(engine, dag)
        workloads = [TaskWorkload(dag_id=DAG_ID, run_id=RUN_ID, task_id=task.task_id,
                                  try_number=1, dag_file=str(dag_file)) for task in dag.tasks]

        executor = LocalExecutor(parallelism=32, workers=args.workers)
        cpu_before = _cpu_seconds()
        executor.start()
        try:
            # Warm: the workers import the DAG file on first use.
            executor.submit(workloads[0])
            wait_final(executor, 1)
            latencies = []
            for workload in workloads[1:args.single]:
                began = time.perf_counter()
                executor.submit(workload)
                events = wait_final(executor, 1)
                latencies.append((time.perf_counter() - began) * 1000)
                assert events[-1].state == "success", events
            batch = workloads[args.single:]
            began = time.perf_counter()
            for workload in batch:
                executor.submit(workload)
            events = wait_final(executor, len(batch))
            wall = time.perf_counter() - began
            failed = [e for e in events if e.state in FINAL and e.state != "success"]
            worker_cpu = _worker_cpu(executor)
            worker_rss = [_rss_mb(pid) for pid in executor.worker_pids()]
        finally:
            executor.shutdown(wait=True)
        # Load-independent: CPU of this process, the workers and every try (reaped by the
        # workers, which this process reaps at shutdown), per task run.
        cpu_ms = (_cpu_seconds() - cpu_before) / total * 1000
        backend = engine.url.get_backend_name()
        print(f"local executor, {args.workers} workers, {backend}, no-op Python tasks, "
              "every state persisted")
        print(f"  one at a time ({len(latencies)}): submit->success p50 "
              f"{statistics.median(latencies):.1f} ms, p90 {percentile(latencies, 0.9):.1f} ms, "
              f"min {min(latencies):.1f} ms")
        print(f"  {len(batch)} at once: {wall:.2f} s wall, "
              f"{wall / len(batch) * 1000:.1f} ms per task"
              + (f"  ({len(failed)} NOT success: {failed[:3]})" if failed else ""))
        print(f"  CPU per task (executor, workers and tries): {cpu_ms:.1f} ms "
              f"(workers {worker_cpu[0] / total:.1f} ms, tries {worker_cpu[1] / total:.1f} ms); "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"  worker RSS: {', '.join(f'{mb:.0f} MB' for mb in worker_rss)}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
