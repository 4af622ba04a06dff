"""DAG runs end to end through a real ``flow scheduler`` process (local executor) on every
metadata database: trigger rules, branches, mapping, retries with backoff, pools, a broken file."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from sqlalchemy import Engine, select

from flow.store.models import DagRun, TaskInstance, TaskInstanceTry
from flow.store.session import session_scope

from .conftest import WriteDag
from .helpers import ledger, run_scheduler_once

FEATURES = """
from datetime import datetime, timedelta
from flow import DAG, task
from flow.operators import BranchPythonOperator, EmptyOperator, PythonOperator


def flaky(ti):
    if ti.try_number == 1:
        raise RuntimeError("first try fails")
    return "ok"


def boom():
    raise RuntimeError("always fails")


def record_failure(context):
    import os

    with open(os.path.join(os.environ["FLOW_HOME"], "run_failed.txt"), "w") as handle:
        handle.write(f"{context['run_id']}: {context['reason']}")


with DAG("features", schedule="@daily", start_date=datetime(2024, 1, 1),
         end_date=datetime(2024, 1, 1), catchup=True, is_paused_upon_creation=False,
         on_failure_callback=record_failure):
    branch = BranchPythonOperator(task_id="branch", python_callable=lambda: "left")
    left, right = EmptyOperator(task_id="left"), EmptyOperator(task_id="right")
    after_right = EmptyOperator(task_id="after_right")
    join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")
    branch >> [left, right]
    right >> after_right
    [left, after_right] >> join

    @task
    def numbers():
        return [1, 2, 3]

    @task
    def double(x):
        return x * 2

    @task
    def total(values):
        return sum(values)

    total(double.expand(x=numbers()))

    retried = PythonOperator(task_id="flaky", python_callable=flaky, retries=2,
                             retry_delay=timedelta(seconds=1), retry_exponential_backoff=True)
    fails = PythonOperator(task_id="fails", python_callable=boom)
    after_fail = EmptyOperator(task_id="after_fail")
    cleanup = EmptyOperator(task_id="cleanup", trigger_rule="all_done")
    fails >> [after_fail, cleanup]
"""


def _tis(engine: Engine) -> dict[tuple[str, int], TaskInstance]:
    with session_scope(engine) as session:
        return {(ti.task_id, ti.map_index): ti for ti in session.scalars(select(TaskInstance))}


def test_trigger_rules_branches_mapping_retries_and_callbacks_end_to_end(
        write_dag: WriteDag, engine: Engine, flow_home: Path) -> None:
    write_dag("features_dag.py", FEATURES)
    output = run_scheduler_once()
    tis = _tis(engine)
    states = {f"{t}[{i}]" if i >= 0 else t: ti.state for (t, i), ti in tis.items()}
    assert states == {
        "branch": "success", "left": "success", "right": "skipped", "after_right": "skipped",
        "join": "success", "numbers": "success", "double[0]": "success",
        "double[1]": "success", "double[2]": "success", "total": "success",
        "flaky": "success", "fails": "failed", "after_fail": "upstream_failed",
        "cleanup": "success"}, output
    assert tis[("flaky", -1)].try_number == 2
    with session_scope(engine) as session:
        [run] = session.scalars(select(DagRun)).all()
        tries = session.scalars(select(TaskInstanceTry).where(
            TaskInstanceTry.task_instance_id == tis[("flaky", -1)].id)
            .order_by(TaskInstanceTry.try_number)).all()
    assert run.state == "failed"  # a leaf (after_fail) did not succeed
    assert [t.state for t in tries] == ["up_for_retry", "success"]
    assert tries[1].start_date is not None and tries[0].end_date is not None
    assert (tries[1].start_date - tries[0].end_date).total_seconds() >= 0.9  # the retry delay
    # The DAG's failure callback ran (in a child process, never in the scheduler).
    recorded = (flow_home / "run_failed.txt").read_text()
    assert recorded.startswith(run.run_id) and "after_fail" in recorded


POOLED = """
from datetime import datetime
from flow import DAG
from flow.operators import PythonOperator
from ledger_task import ledgered

with DAG("pooled", schedule=None, start_date=datetime(2024, 1, 1),
         is_paused_upon_creation=False):
    for i in range(6):
        PythonOperator(task_id=f"t{i}", python_callable=ledgered, op_kwargs={"seconds": 0.3},
                       pool="two", priority_weight=i)
"""


def _most_at_once(rows: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in rows] + [(end, -1) for _, end in rows])
    current = peak = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def test_a_pool_bounds_concurrent_tasks_and_priority_orders_them(
        write_dag: WriteDag, ledger_engine: Engine) -> None:
    from flow.scheduling import actions
    from flow.scheduling.pools import set_pool
    from flow.scheduling.processor import DagProcessor

    write_dag("pooled_dag.py", POOLED)
    DagProcessor(engine=ledger_engine).process()
    with session_scope(ledger_engine) as session:
        set_pool(session, "two", 2)
    actions.trigger_dag_run("pooled", run_id="r", actor="test", source="cli")
    run_scheduler_once(FLOW__CORE__PARALLELISM="8")
    rows = ledger(ledger_engine)
    assert sorted(row.task for row in rows) == [f"t{i}" for i in range(6)]
    assert _most_at_once([(row.started, row.ended) for row in rows]) <= 2
    with session_scope(ledger_engine) as session:
        order = session.execute(select(TaskInstance.task_id, TaskInstance.queued_at)).all()
    first = min(queued_at for _, queued_at in order)
    # The two highest priority weights were queued first, together.
    assert {task for task, queued_at in order if queued_at == first} == {"t5", "t4"}


LIMITED = """
from datetime import datetime
from flow import DAG
from flow.operators import PythonOperator
from ledger_task import ledgered

with DAG("limited", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=2,
         is_paused_upon_creation=False):
    for i in range(6):
        PythonOperator(task_id=f"t{i}", python_callable=ledgered, op_kwargs={"seconds": 0.3})
"""


def test_max_active_tasks_bounds_a_dags_tries_across_its_runs(
        write_dag: WriteDag, ledger_engine: Engine) -> None:
    from flow.scheduling import actions
    from flow.scheduling.processor import DagProcessor

    write_dag("limited_dag.py", LIMITED)
    DagProcessor(engine=ledger_engine).process()
    for run_id in ("r1", "r2"):  # the limit is the DAG's, over all its running runs
        actions.trigger_dag_run("limited", run_id=run_id, actor="test", source="cli")
    run_scheduler_once(FLOW__CORE__PARALLELISM="8")
    rows = ledger(ledger_engine)
    assert len(rows) == 12
    assert _most_at_once([(row.started, row.ended) for row in rows]) == 2


def test_a_broken_dag_file_does_not_stop_good_dags(write_dag: WriteDag, engine: Engine) -> None:
    write_dag("broken_dag.py", "# flow DAG\nfrom flow import DAG\nraise ValueError('broken')\n")
    write_dag("good_dag.py", """
        from datetime import datetime
        from flow import DAG
        from flow.operators import EmptyOperator

        with DAG("good", schedule="@daily", start_date=datetime(2024, 1, 1),
                 end_date=datetime(2024, 1, 2), catchup=True, is_paused_upon_creation=False):
            EmptyOperator(task_id="a")
    """)
    run_scheduler_once()
    with session_scope(engine) as session:
        states = session.scalars(select(DagRun.state).where(DagRun.dag_id == "good")).all()
    assert states == ["success", "success"]


def test_a_backfill_runs_inside_the_scheduler_one_run_at_a_time(
        write_dag: WriteDag, engine: Engine) -> None:
    from datetime import UTC, datetime

    from flow.scheduling.backfill import create_backfill, progress
    from flow.scheduling.processor import DagProcessor

    write_dag("daily_dag.py", """
        from datetime import datetime
        from flow import DAG
        from flow.operators import EmptyOperator

        with DAG("daily", schedule="@daily", start_date=datetime(2024, 1, 1),
                 is_paused_upon_creation=False):
            EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
    """)
    DagProcessor(engine=engine).process()
    create_backfill(engine, "daily", datetime(2024, 1, 1, tzinfo=UTC),
                    datetime(2024, 1, 3, tzinfo=UTC), max_active_runs=1, actor="test")
    run_scheduler_once()
    with session_scope(engine) as session:
        runs = session.scalars(select(DagRun).where(DagRun.backfill_id.is_not(None))
                               .order_by(DagRun.logical_date)).all()
    assert [(r.run_type, r.state) for r in runs] == [("backfill", "success")] * 3
    for earlier, later in itertools.pairwise(runs):
        assert earlier.end_date is not None and later.start_date is not None
        assert earlier.end_date <= later.start_date  # max_active_runs=1
    [row] = progress(engine)
    assert (row["state"], row["success"], row["total"]) == ("completed", 3, 3)


def test_a_run_past_its_dagrun_timeout_fails_and_its_tasks_stop(write_dag: WriteDag,
                                                                 engine: Engine) -> None:
    write_dag("slow_dag.py", """
        import time
        from datetime import datetime, timedelta
        from flow import DAG
        from flow.operators import EmptyOperator, PythonOperator

        with DAG("slow", schedule="@once", start_date=datetime(2024, 1, 1),
                 dagrun_timeout=timedelta(seconds=2), is_paused_upon_creation=False):
            PythonOperator(task_id="sleeps", python_callable=lambda: time.sleep(60)) >> \\
                EmptyOperator(task_id="after")
    """)
    started = time.monotonic()
    run_scheduler_once()
    assert time.monotonic() - started < 40
    tis = _tis(engine)
    with session_scope(engine) as session:
        assert session.scalars(select(DagRun.state)).one() == "failed"
    assert tis[("after", -1)].state == "skipped"
    assert tis[("sleeps", -1)].state in ("failed", "skipped", "up_for_retry")
