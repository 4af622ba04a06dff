"""The celery executor's per-task overhead and hop latency, on Redis and on RabbitMQ.

    python bench/celery.py                        # every setup, PostgreSQL flow_bench_celery
    python bench/celery.py --setup redis --single 40 --fanout 100
    python bench/celery.py --db-url postgresql+psycopg://postgres@127.0.0.1:5432/flow_bench_celery

For each broker, with two local ``flow celery worker`` processes of concurrency 2 (each its own
session, stopped at the end) and PostgreSQL as the metadata database:

* the broker's own round trip: publish a small message and get it back on one connection,
  median of 200;
* per-task overhead, driving :class:`~flow_celery.executor.CeleryExecutor` directly, as
  ``bench/executor.py`` drives the local executor: one at a time (submit to the final event of a
  no-op try: publish, a worker's pool process, ``flow tasks run``'s supervised child, the
  result's way back), and N at once (wall time per task);
* chain-50 through a real ``flow scheduler`` (``bench/scheduler.py``'s run): the hop latency
  from one task's end to the next one's start, p50 and p99, split at the downstream's queueing.

The result backend is the broker's Redis for Redis (results are pushed to the executor) and
the metadata database for RabbitMQ (the workers NOTIFY, the executor LISTENs); the third
setup is RabbitMQ with Redis results. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, where this file would shadow
# the celery package: import the package first, then the sibling bench modules.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != _HERE]
import celery as _celery_package  # noqa: E402, F401 - the real package, before the folder

sys.path.insert(0, _HERE)

from executor import (  # noqa: E402 - after the sys.path fix above
    DAG_ID,
    DAG_SOURCE,
    RUN_ID,
    ensure_database,
    percentile,
    prepare_environment,
    seed,
    wait_final,
)

BROKERS = {"redis": "redis://127.0.0.1:6379/0",
           "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//"}
# name -> (broker, result backend; "" for the default: the broker's Redis, else the database)
SETUPS = {"redis": ("redis", ""), "rabbitmq": ("rabbitmq", ""),
          "rabbitmq+redis-results": ("rabbitmq", BROKERS["redis"])}
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/flow_bench_celery"


def flow_command() -> list[str]:
    flow = Path(sys.executable).with_name("flow")
    return [str(flow)] if flow.exists() else [sys.executable, "-m", "flow.cli.main"]


@contextlib.contextmanager
def celery_workers(home: Path, count: int, concurrency: int) -> Iterator[list[int]]:
    """``count`` ``flow celery worker`` processes, ready when the block starts."""
    processes = []
    logs = []
    try:
        for number in range(count):
            log = home / f"worker-{number}.log"
            logs.append(log)
            with open(log, "wb") as handle:
                processes.append(subprocess.Popen(
                    [*flow_command(), "celery", "worker", "--concurrency", str(concurrency),
                     "--hostname", f"bench{number}-{uuid.uuid4().hex[:6]}@%h",
                     "--loglevel", "WARNING"],
                    stdout=handle, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 60
        # --loglevel WARNING hides "ready": ping them instead.
        from flow_celery.app import make_app

        app = make_app()
        try:
            while len(app.control.ping(timeout=0.5) or []) < count:
                if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                    raise SystemExit("the workers did not start: "
                                     + " ".join(log.read_text()[-2000:] for log in logs))
        finally:
            app.close()
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def broker_round_trip_ms(url: str, samples: int = 200) -> float:
    """Median of publish + get of a small message on one connection."""
    from kombu import Connection

    name = f"flow-bench-rtt-{uuid.uuid4().hex[:8]}"
    timings = []
    with Connection(url) as connection:
        queue = connection.SimpleQueue(name)
        try:
            for _ in range(samples):
                began = time.perf_counter()
                queue.put({"ping": 1})
                message = queue.get(timeout=5)
                message.ack()
                timings.append((time.perf_counter() - began) * 1000)
        finally:
            queue.close()
            with contextlib.suppress(Exception):
                connection.default_channel.queue_delete(name)
    return statistics.median(timings)


def delete_queue(url: str, name: str) -> None:
    """Leave nothing on the broker (RabbitMQ keeps a durable queue; Redis drops an empty
    list by itself)."""
    from kombu import Connection

    with Connection(url) as connection, contextlib.suppress(Exception):
        connection.default_channel.queue_delete(name)


def executor_figures(home: Path, url: str, single: int, fanout: int) -> dict[str, Any]:
    from flow.execution.workload import TaskWorkload
    from flow.scheduling.dagbag import load_dag_file
    from flow.store.migrate import upgrade
    from flow.store.session import get_engine
    from flow_celery.executor import CeleryExecutor

    engine = get_engine(url)
    upgrade(engine)
    dag_file = home / "dags" / "bench_noop.py"
    dag_file.write_text(DAG_SOURCE.format(dag_id=DAG_ID, tasks=single + fanout))
    [dag] = load_dag_file(dag_file).dags
    seed(engine, dag)
    workloads = [TaskWorkload(dag_id=DAG_ID, run_id=RUN_ID, task_id=task.task_id,
                              try_number=1, dag_file=str(dag_file)) for task in dag.tasks]
    executor = CeleryExecutor(parallelism=32)
    executor.start()
    try:
        for warm in workloads[:4]:  # each pool process imports the DAG file once
            executor.submit(warm)
        wait_final(executor, 4)
        latencies = []
        for workload in workloads[4:single]:
            began = time.perf_counter()
            executor.submit(workload)
            events = wait_final(executor, 1)
            latencies.append((time.perf_counter() - began) * 1000)
            if events[-1].state != "success":
                print(f"    not success: {events[-1]}")
        batch = workloads[single:]
        began = time.perf_counter()
        for workload in batch:
            executor.submit(workload)
        events = wait_final(executor, len(batch))
        wall = time.perf_counter() - began
    finally:
        executor.shutdown(wait=True)
    failed = [e for e in events if e.state != "success" and e.state != "running"]
    return {"p50": statistics.median(latencies), "p90": percentile(latencies, 0.9),
            "batch": len(batch), "wall": wall, "failed": failed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", choices=[*SETUPS, "all"], default="all",
                        help="the broker, and the result backend when not the default")
    parser.add_argument("--db-url", default=DEFAULT_DB)
    parser.add_argument("--single", type=int, default=40, help="one-at-a-time samples")
    parser.add_argument("--fanout", type=int, default=100, help="tries submitted at once")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)

    import scheduler as scheduler_bench

    setups = list(SETUPS) if args.setup == "all" else [args.setup]
    for setup in setups:
        broker, backend = SETUPS[setup]
        with tempfile.TemporaryDirectory(prefix="flow-bench-celery-") as folder:
            home = Path(folder)
            url = prepare_environment(home, args.db_url)
            ensure_database(url)
            os.environ.update({"FLOW__CORE__EXECUTOR": "celery",
                               "FLOW__CELERY__BROKER_URL": BROKERS[broker],
                               "FLOW__CELERY__QUEUE_PREFIX": f"bench-{uuid.uuid4().hex[:8]}-",
                               "FLOW__CELERY__RESULT_BACKEND": backend})
            scheduler_bench.fresh_database(url)
            rtt = broker_round_trip_ms(BROKERS[broker])
            try:
                with celery_workers(home, args.workers, args.concurrency):
                    figures = executor_figures(home, url, args.single, args.fanout)
                    chain = scheduler_bench.run_workload("chain", url, home,
                                                         sample_memory=False)
            finally:
                delete_queue(BROKERS[broker],
                             os.environ["FLOW__CELERY__QUEUE_PREFIX"] + "default")
            results = ("Redis, pushed" if broker == "redis" or backend
                       else "PostgreSQL, LISTEN/NOTIFY")
            print(f"celery executor on {broker} (results: {results}), {args.workers} workers "
                  f"of concurrency {args.concurrency}, PostgreSQL metadata, no-op Python tasks")
            print(f"  broker round trip (publish + get): {rtt:.2f} ms")
            print(f"  one at a time ({args.single - 4}): submit->success p50 "
                  f"{figures['p50']:.1f} ms, p90 {figures['p90']:.1f} ms")
            print(f"  {figures['batch']} at once: {figures['wall']:.2f} s wall, "
                  f"{figures['wall'] / figures['batch'] * 1000:.1f} ms per task"
                  + (f"  ({len(figures['failed'])} NOT success)" if figures["failed"] else ""))
            hops = chain.hops_ms
            queueing = [first for first, _ in chain.hop_parts_ms]
            starting = [second for _, second in chain.hop_parts_ms]
            print(f"  chain-50 through flow scheduler: {chain.wall:.2f} s wall, hop p50 "
                  f"{statistics.median(hops):.1f} ms, p99 {percentile(hops, 0.99):.1f} ms "
                  f"(end->queued p50 {statistics.median(queueing):.1f} ms, queued->start p50 "
                  f"{statistics.median(starting):.1f} ms); states {chain.states}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
