"""Web server timings at scale: 1,000 DAGs, one DAG of 1,000 tasks with 500 runs.

    python bench/web.py                      # a fresh SQLite database in a temporary FLOW_HOME
    python bench/web.py --db-url postgresql+psycopg://postgres@127.0.0.1/flow_bench

Seeds the database (the big DAG is a real flow DAG, serialized as the DAG processor does), then
times each page in-process through the WSGI app (server time: no network, no browser) and
prints the median of several requests next to the 300 ms target. Figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

TARGET_MS = 300.0
BIG_DAG = "big_dag"


def build_big_dag(tasks: int) -> Any:
    """``tasks`` tasks: a start, 20 chains (each a task group), and an end that joins them."""
    from flow import DAG, TaskGroup
    from flow.operators import EmptyOperator

    with DAG(BIG_DAG, schedule="@daily", start_date=datetime(2024, 1, 1, tzinfo=UTC),
             tags=["bench"]) as dag:
        start = EmptyOperator(task_id="start")
        chains = 20
        ends = []
        for c in range(chains):
            # Spread tasks - 2 over the chains; the first chains take the remainder.
            length = (tasks - 2) // chains + (1 if c < (tasks - 2) % chains else 0)
            with TaskGroup(f"chain_{c}"):
                previous = start
                for i in range(length):
                    task = EmptyOperator(task_id=f"t{i}")
                    previous >> task
                    previous = task
                ends.append(previous)
        end = EmptyOperator(task_id="end")
        for task in ends:
            task >> end
    return dag


def seed(url: str, dags: int, tasks: int, runs: int) -> int:
    from sqlalchemy import insert

    from flow.scheduling.serialization import dag_hash, serialize_dag
    from flow.store import models
    from flow.store.session import get_engine

    engine = get_engine(url)
    dag = build_big_dag(tasks)
    data = serialize_dag(dag)
    now = datetime.now(UTC)
    task_ids = [t["task_id"] for t in data["tasks"]]
    with engine.begin() as connection:
        connection.execute(insert(models.DagModel), [
            {"dag_id": f"dag_{n:04d}", "fileloc": f"/dags/dag_{n:04d}.py", "is_paused": n % 3 == 0,
             "is_active": True, "owners": f"team{n % 7}", "tags": [f"tag{n % 10}"],
             "schedule_description": "@daily", "next_dagrun": now, "dag_hash": None}
            for n in range(dags - 1)]
            + [{"dag_id": BIG_DAG, "fileloc": "/dags/big.py", "is_paused": False,
                "is_active": True, "owners": "bench", "tags": ["bench"],
                "schedule_description": "@daily", "next_dagrun": now,
                "dag_hash": dag_hash(data)}])
        connection.execute(insert(models.SerializedDagModel), [{
            "dag_id": BIG_DAG, "fileloc": "/dags/big.py", "data": data, "dag_hash": dag_hash(data),
            "last_updated": now}])
        connection.execute(insert(models.DagRun), [
            {"dag_id": f"dag_{n:04d}", "run_id": f"scheduled__{r}", "run_type": "scheduled",
             "state": "success", "logical_date": now - timedelta(days=r), "conf": {},
             "created_at": now, "updated_at": now}
            for n in range(dags - 1) for r in range(3)])
        for r in range(runs):
            run_id = f"scheduled__{r:04d}"
            connection.execute(insert(models.DagRun), [{
                "dag_id": BIG_DAG, "run_id": run_id, "run_type": "scheduled",
                "state": "success" if r < runs - 1 else "running",
                "logical_date": now - timedelta(days=runs - r), "conf": {},
                "start_date": now, "end_date": now, "created_at": now, "updated_at": now}])
            connection.execute(insert(models.TaskInstance), [{
                "dag_id": BIG_DAG, "run_id": run_id, "task_id": task_id, "map_index": -1,
                "state": "success", "try_number": 1, "start_date": now, "end_date": now,
                "duration": 1.0, "updated_at": now} for task_id in task_ids])
    return len(task_ids)


def timed(client: Any, path: str, repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
        size = len(response.get_data())
    return statistics.median(times), size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", help="an empty database to seed (default: a temp SQLite)")
    parser.add_argument("--dags", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="flow-bench-web-"))
    os.environ["FLOW_HOME"] = str(home)
    url = args.db_url or f"sqlite:///{home / 'flow.db'}"
    os.environ["FLOW__DATABASE__URL"] = url
    os.environ.setdefault("FLOW__WEBSERVER__SECRET_KEY", "bench")

    from flow.store.migrate import upgrade
    from flow.store.session import get_engine, session_scope
    from flow.web.app import create_app
    from flow.web.users import create_user

    upgrade(get_engine(url))
    started = time.perf_counter()
    task_count = seed(url, args.dags, args.tasks, args.runs)
    print(f"seeded {args.dags} DAGs, {BIG_DAG} with {task_count} tasks and {args.runs} runs "
          f"({args.runs * task_count} task instances) in {time.perf_counter() - started:.1f} s "
          f"on {get_engine(url).dialect.name}")
    with session_scope() as session:
        create_user(session, "bench", "bench password", "viewer")
    app = create_app()
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"username": "bench", "password": "bench password",
                                "csrf_token": token})
    pages = [("DAG list page (100 per page, 1,000 DAGs)", "/dags"),
             ("DAG list API (limit=1000)", "/api/v1/dags?limit=1000"),
             ("grid page", f"/dags/{BIG_DAG}"),
             ("grid data, latest 25 runs x 1,000 tasks", f"/dags/{BIG_DAG}/grid.json"),
             ("graph (1,000 tasks, SVG laid out on the server)", f"/dags/{BIG_DAG}/graph"),
             ("run list page", f"/dags/{BIG_DAG}/runs")]
    worst = 0.0
    for name, path in pages:
        client.get(path)  # warm caches (templates, statement cache)
        median, size = timed(client, path, args.repeat)
        worst = max(worst, median)
        verdict = "ok" if median <= TARGET_MS else "OVER TARGET"
        print(f"{name:<52} {median:8.1f} ms  {size / 1024:8.1f} KiB  "
              f"(target {TARGET_MS:.0f} ms: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
