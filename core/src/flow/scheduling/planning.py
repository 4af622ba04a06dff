"""Deciding what each task instance of a running DAG run does next, from the serialized DAG.

:func:`evaluate_run` looks at one run's task instances and, until nothing changes: skips what a
branch did not follow (the ``__flow_followed__`` XCom, :func:`flow.scheduling.deps.branch_skips`),
applies trigger rules (:func:`flow.scheduling.deps.evaluate_trigger_rule`: ``skipped`` and
``upstream_failed`` propagate down the run at once), holds ``depends_on_past`` tasks until their
previous run's instance succeeded, expands mapped tasks from their upstream XCom, and moves
ready ones ``none -> scheduled`` (queueing is :mod:`flow.scheduling.queueing`'s job). When every
task instance is finished it ends the run: failed if a leaf failed, else success. Each change is
a guarded update; a change someone else made first is simply re-read next time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, bindparam, select, tuple_, update
from sqlalchemy.orm import Session

from flow.execution.runtime import DagRunSnapshot
from flow.scheduling.dagruns import rowcount
from flow.scheduling.deps import (
    FOLLOWED_XCOM_KEY,
    Decision,
    TriggerEvaluation,
    UpstreamStates,
    branch_skips,
    evaluate_trigger_rule,
    successes_it_waits_through,
)
from flow.scheduling.serialization import SerializedDag, SerializedTask
from flow.states import FAILED_TI_STATES, FINISHED_TI_STATES, DagRunState
from flow.states import TaskInstanceState as TIS
from flow.store.models import DagRun, TaskInstance
from flow.utils.timezone import utcnow

log = logging.getLogger(__name__)


TI_TABLE: Table = TaskInstance.__table__  # type: ignore[assignment]
_COLUMNS = ("id", "dag_id", "run_id", "task_id", "map_index", "state", "try_number", "max_tries",
            "operator", "pool", "pool_slots", "queue", "priority_weight", "executor")


# Built once: building a statement costs more than running it, on every evaluation.
_LOAD_TIS = select(*(TI_TABLE.c[name] for name in _COLUMNS)).where(
    TI_TABLE.c.dag_id == bindparam("dag_id"), TI_TABLE.c.run_id == bindparam("run_id"))
_LOAD_RUNS_TIS = select(*(TI_TABLE.c[name] for name in _COLUMNS)).where(
    tuple_(TI_TABLE.c.dag_id, TI_TABLE.c.run_id).in_(bindparam("runs", expanding=True)))
_STATES = select(TI_TABLE.c.id, TI_TABLE.c.state).where(
    TI_TABLE.c.id.in_(bindparam("ids", expanding=True)))
# (from no state, to a finished state) -> the guarded update of many rows
_SET_STATE = {
    (from_none, finished): TI_TABLE.update().where(
        TI_TABLE.c.id.in_(bindparam("ids", expanding=True)),
        TI_TABLE.c.state.is_(None) if from_none else TI_TABLE.c.state == bindparam("previous"),
    ).values(state=bindparam("state"), updated_at=bindparam("now"),
             **({"end_date": bindparam("now")} if finished else {}))
    for from_none in (True, False) for finished in (True, False)}


@lru_cache(maxsize=4096)
def _trigger(rule: str, upstream: UpstreamStates) -> tuple[TriggerEvaluation, int]:
    """The trigger rule's decision, and the upstream successes it waits through, for these
    counts: the same few counts come back for most tasks on every evaluation."""
    evaluation = evaluate_trigger_rule(rule, upstream)
    waits = (successes_it_waits_through(rule, upstream)
             if evaluation.decision == Decision.WAIT else 0)
    return evaluation, waits


@dataclass
class TiRow:
    """The columns of a task instance the evaluation needs; loading ORM objects for every
    task instance of a large run on every event costs more than the evaluation itself."""

    id: int
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    max_tries: int
    operator: str
    pool: str
    pool_slots: int
    queue: str
    priority_weight: int
    executor: str | None


@dataclass(frozen=True)
class RunRow(DagRunSnapshot):
    """A running DAG run as its evaluation and its end need it: its snapshot's columns, its
    row id and end date."""

    id: int = 0
    end_date: datetime | None = None


RUN_COLUMNS = ("dag_id", "run_id", "logical_date", "data_interval_start", "data_interval_end",
               "run_type", "state", "conf", "start_date", "id", "end_date")


@dataclass
class RunOutcome:
    """What one evaluation did: state changes to announce and a final state, if reached."""

    ti_changes: list[tuple[TiRow, str | None, str]] = field(default_factory=list)
    final_state: str | None = None
    reason: str = ""
    cancel: list[TiRow] = field(default_factory=list)
    scheduled: int = 0
    waiting: int = 0  # task instances scheduled or up_for_retry: the queue step has work


def load_task_instances(session: Session,
                        runs: list[tuple[str, str]]) -> dict[tuple[str, str], list[TiRow]]:
    """The task instances of each (dag_id, run_id) in ``runs``: on a database server in one
    query whatever the number of runs (a catch-up evaluates many at once); on SQLite, whose
    planner does not use the index for a list of pairs and which has no round trip to save,
    one indexed query per run."""
    found: dict[tuple[str, str], list[TiRow]] = {key: [] for key in runs}
    if not runs:
        return found
    connection = session.connection()
    if connection.dialect.name == "sqlite" or len(runs) == 1:
        rows = [row for dag_id, run_id in runs
                for row in connection.execute(_LOAD_TIS, {"dag_id": dag_id, "run_id": run_id})]
    else:
        rows = list(connection.execute(_LOAD_RUNS_TIS, {"runs": list(runs)}))
    for row in rows:
        found[(row.dag_id, row.run_id)].append(TiRow(*row))
    return found


class RunEvaluator:
    def __init__(self, session: Session, run: RunRow, dag: SerializedDag, xcom_backend: Any,
                 now: datetime | None = None,
                 known_decisions: dict[str, tuple[tuple[tuple[int, int], ...], Any]] | None
                 = None, tis: list[TiRow] | None = None) -> None:
        self.session, self.run, self.dag = session, run, dag
        self.xcom = xcom_backend
        # task_id -> (the (map_index, try_number) of its successful instances, the branch
        # decision they recorded): kept by the caller from one evaluation of the run to the
        # next, so that only tasks that succeeded since are read.
        self.known_decisions = {} if known_decisions is None else known_decisions
        self.now = now or utcnow()
        self.outcome = RunOutcome()
        # ``tis``: loaded with the other runs' (load_task_instances), else read here.
        self.tis = tis if tis is not None else [TiRow(*row) for row in session.connection().execute(
            _LOAD_TIS, {"dag_id": run.dag_id, "run_id": run.run_id})]
        self._followed: dict[str, Any] | None = None
        # task_id -> upstream successes it can see and still wait, for each task left
        # undecided by the last pass (see RunManager.must_evaluate).
        self.waits_through: dict[str, int] = {}

    def evaluate(self) -> RunOutcome:
        if self._timed_out():
            return self.outcome
        while self._pass():
            pass
        self._finish_if_done()
        self.outcome.waiting = sum(1 for ti in self.tis
                                   if ti.state in (TIS.SCHEDULED, TIS.UP_FOR_RETRY))
        return self.outcome

    # --------------------------------------------------------------------------- one pass

    def _pass(self) -> bool:
        self._pending: dict[tuple[str | None, str], list[TiRow]] = {}
        changed = self._decide()
        return self._apply_pending() or changed

    def _decide(self) -> bool:
        changed = False
        self.waits_through = {}
        by_task: dict[str, list[TiRow]] = {}
        for ti in self.tis:
            by_task.setdefault(ti.task_id, []).append(ti)
        for ti in list(self.tis):
            if ti.state is not None:
                continue
            task = self.dag.task_dict.get(ti.task_id)
            if task is None:
                self._later(ti, TIS.REMOVED)
                continue
            states = [up.state for task_id in task.upstream_task_ids
                      for up in by_task.get(task_id, [])]
            evaluation, waits_through = _trigger(task.trigger_rule,
                                                 UpstreamStates.count(states))
            if evaluation.decision == Decision.WAIT:
                self._waits(task.task_id, waits_through)
                continue
            if evaluation.decision == Decision.SKIP:
                self._later(ti, TIS.SKIPPED)
            elif evaluation.decision == Decision.UPSTREAM_FAILED:
                self._later(ti, TIS.UPSTREAM_FAILED)
            elif self._branch_skipped(task):
                self._later(ti, TIS.SKIPPED)
            elif task.data.get("depends_on_past") and not self._past_allows(task):
                self._waits(task.task_id, 0)
                continue
            elif task.is_mapped and ti.map_index == -1:
                changed |= self._expand(task, ti, by_task)
            else:
                self._later(ti, TIS.SCHEDULED)
        return changed

    def _waits(self, task_id: str, successes: int) -> None:
        known = self.waits_through.get(task_id)
        self.waits_through[task_id] = successes if known is None else min(known, successes)

    def _later(self, ti: TiRow, state: str) -> None:
        self._pending.setdefault((ti.state, state), []).append(ti)

    def _apply_pending(self) -> bool:
        """One guarded UPDATE per (from, to) pair; rows someone else changed first are re-read
        and left alone. True when another pass may decide more: an instance ended (skipped,
        upstream_failed, removed) or was found changed by someone else. One that became
        ``scheduled`` changes no trigger rule's counts, so it alone needs no second pass."""
        changed = False
        connection = self.session.connection()
        for (previous, state), rows in self._pending.items():
            ids = [ti.id for ti in rows]
            statement = _SET_STATE[(previous is None, state in FINISHED_TI_STATES)]
            done = rowcount(connection.execute(statement, {
                "ids": ids, "previous": previous, "state": state, "now": self.now}))
            if done != len(ids):
                changed = True
                current = dict(connection.execute(_STATES, {"ids": ids}).all())
                for ti in rows:
                    if current.get(ti.id) != state:
                        ti.state = current.get(ti.id)
                rows = [ti for ti in rows if current.get(ti.id) == state]
            for ti in rows:
                ti.state = state
                self.outcome.ti_changes.append((ti, previous, state))
            if state == TIS.SCHEDULED:
                self.outcome.scheduled += len(rows)
            else:
                changed |= bool(rows)
        return changed

    def _set(self, ti: TiRow, state: str, reason: str) -> bool:
        previous = ti.state
        changed = rowcount(self.session.connection().execute(
            _SET_STATE[(previous is None, state in FINISHED_TI_STATES)],
            {"ids": [ti.id], "previous": previous, "state": state, "now": self.now}))
        if not changed:
            return False
        ti.state = state
        if state == TIS.SCHEDULED:
            self.outcome.scheduled += 1
        log.debug("%s %s[%d] -> %s: %s", ti.run_id, ti.task_id, ti.map_index, state, reason)
        self.outcome.ti_changes.append((ti, previous, state))
        return True

    # ---------------------------------------------------------------------------- branching

    def _branch_skipped(self, task: SerializedTask) -> bool:
        decisions = self._decisions()
        for upstream_id in task.upstream_task_ids:
            decision = decisions.get(upstream_id)
            if not isinstance(decision, dict):
                continue
            upstream = self.dag.task_dict[upstream_id]
            skipped = branch_skips(decision.get("followed", []),
                                   bool(decision.get("skip_all_downstream")),
                                   upstream.downstream_task_ids,
                                   {t.task_id: t.downstream_task_ids for t in self.dag.tasks})
            if task.task_id in skipped:
                return True
        # A short circuit that skips everything downstream reaches beyond direct children.
        for branch_id, decision in decisions.items():
            if isinstance(decision, dict) and decision.get("skip_all_downstream") and \
                    branch_id not in task.upstream_task_ids:
                reach = branch_skips(decision.get("followed", []), True,
                                     self.dag.task_dict[branch_id].downstream_task_ids,
                                     {t.task_id: t.downstream_task_ids for t in self.dag.tasks})
                if task.task_id in reach:
                    return True
        return False

    def _decisions(self) -> dict[str, Any]:
        """task_id -> the branch decision it recorded (read once per evaluation, and only for
        the tasks whose successful tries are not in ``known_decisions`` yet: a try's decision
        never changes once it succeeded)."""
        if self._followed is None:
            tries: dict[str, list[tuple[int, int]]] = {}
            for ti in self.tis:
                task = self.dag.task_dict.get(ti.task_id)
                if ti.state == TIS.SUCCESS and task is not None and task.downstream_task_ids:
                    tries.setdefault(ti.task_id, []).append((ti.map_index, ti.try_number))
            succeeded = {task_id: tuple(sorted(found)) for task_id, found in tries.items()}
            known = self.known_decisions
            unread = sorted(task_id for task_id, found in succeeded.items()
                            if task_id not in known or known[task_id][0] != found)
            records = self.xcom.get_many(dag_id=self.run.dag_id, run_id=self.run.run_id,
                                         task_ids=unread, key=FOLLOWED_XCOM_KEY,
                                         session=self.session) if unread else []
            read = {record.task_id: record.value for record in records}
            for task_id in unread:
                known[task_id] = (succeeded[task_id], read.get(task_id))
            self._followed = {task_id: known[task_id][1] for task_id in succeeded
                              if known[task_id][1] is not None}
        return self._followed

    # ------------------------------------------------------------------- depends_on_past

    def _past_allows(self, task: SerializedTask) -> bool:
        if self.run.logical_date is None:
            return True
        previous_run = self.session.scalar(
            select(DagRun.run_id).where(DagRun.dag_id == self.run.dag_id,
                                        DagRun.logical_date < self.run.logical_date)
            .order_by(DagRun.logical_date.desc()).limit(1))
        if previous_run is None:
            return True
        states = self.session.scalars(select(TaskInstance.state).where(
            TaskInstance.dag_id == self.run.dag_id, TaskInstance.run_id == previous_run,
            TaskInstance.task_id == task.task_id)).all()
        return all(state in (TIS.SUCCESS, TIS.SKIPPED) for state in states)

    # ------------------------------------------------------------------------------ mapping

    def _expand(self, task: SerializedTask, ti: TiRow,
                by_task: dict[str, list[TiRow]]) -> bool:
        try:
            length = self._map_length(task, by_task)
        except (TypeError, ValueError) as err:
            log.warning("%s: cannot expand mapped task %s: %s", self.run.run_id, task.task_id,
                        err)
            return self._set(ti, TIS.FAILED, f"cannot expand: {err}")
        if length == 0:
            return self._set(ti, TIS.SKIPPED, "expanded to zero task instances")
        changed_result = self.session.execute(
            update(TaskInstance).where(TaskInstance.id == ti.id, TaskInstance.state.is_(None),
                                       TaskInstance.map_index == -1)
            .values(map_index=0, state=TIS.SCHEDULED, updated_at=self.now)
            .execution_options(synchronize_session=False))
        changed = rowcount(changed_result)
        if not changed:
            return False
        ti.map_index, ti.state = 0, TIS.SCHEDULED
        self.outcome.ti_changes.append((ti, None, TIS.SCHEDULED))
        for index in range(1, length):
            row = TaskInstance(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
                               map_index=index, try_number=0, max_tries=ti.max_tries,
                               state=TIS.SCHEDULED, operator=ti.operator, pool=ti.pool,
                               pool_slots=ti.pool_slots, queue=ti.queue,
                               priority_weight=ti.priority_weight, executor=ti.executor)
            self.session.add(row)
            self.session.flush()
            self.tis.append(TiRow(*(getattr(row, name) for name in _COLUMNS)))
        self.outcome.scheduled += length
        log.info("%s: expanded %s to %d task instances", self.run.run_id, task.task_id, length)
        return True

    def _map_length(self, task: SerializedTask, by_task: dict[str, list[TiRow]]) -> int:
        length = 1
        for name, spec in (task.data.get("expand_input") or {}).items():
            if "xcom" in spec:
                source = spec["xcom"]["task_id"]
                mapped_upstream = [t for t in by_task.get(source, []) if t.map_index >= 0]
                if mapped_upstream:
                    size = len(mapped_upstream)
                else:
                    value = self.xcom.get_one(dag_id=self.run.dag_id, run_id=self.run.run_id,
                                              task_id=source, key=spec["xcom"]["key"],
                                              session=self.session)
                    if not isinstance(value, list | tuple | dict):
                        raise TypeError(f"{name!r} maps over the XCom of {source!r}, which is "
                                        f"{type(value).__name__}, not a list or dict")
                    size = len(value)
            else:
                if spec.get("length") is None:
                    raise TypeError(f"{name!r} is not a sized collection")
                size = int(spec["length"])
            length *= size
        return length

    # ------------------------------------------------------------------------ run's end

    def _timed_out(self) -> bool:
        timeout = self.dag.data.get("dagrun_timeout")
        started = self.run.start_date
        if not timeout or started is None or self.now - started < timedelta(seconds=timeout):
            return False
        for ti in self.tis:
            if ti.state in FINISHED_TI_STATES:
                continue
            if ti.state == TIS.RUNNING:
                self.outcome.cancel.append(ti)
            else:
                self._set(ti, TIS.SKIPPED, "the DAG run timed out")
        self.outcome.final_state = DagRunState.FAILED
        self.outcome.reason = f"the run exceeded its dagrun_timeout of {timeout:g} s"
        return True

    def _finish_if_done(self) -> None:
        if any(ti.state not in FINISHED_TI_STATES for ti in self.tis):
            return
        leaves = {task.task_id for task in self.dag.leaves()}
        failed = [ti for ti in self.tis if ti.task_id in leaves and ti.state in FAILED_TI_STATES]
        if failed:
            self.outcome.final_state = DagRunState.FAILED
            self.outcome.reason = "task(s) failed: " + ", ".join(
                sorted({ti.task_id for ti in failed}))
        else:
            self.outcome.final_state = DagRunState.SUCCESS
            self.outcome.reason = "every task finished"
