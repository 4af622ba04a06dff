"""The grid of one DAG: the latest runs by its tasks, each cell a state.

The payload grows with the cells shown (tasks by runs on screen), never with the runs stored:
one query takes the latest ``limit`` runs, one more their task instances. A cell's state is a
single letter (:data:`STATE_CODES`); a task group's row holds the state that matters most among
its tasks, and a mapped task's cell the same over its map indexes plus a count per state.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from flow.store import models
from flow.web.serializers import iso

STATE_CODES = {"success": "S", "failed": "F", "running": "R", "queued": "Q", "scheduled": "D",
               "up_for_retry": "Y", "upstream_failed": "U", "skipped": "K", "removed": "X",
               None: "-"}
NO_INSTANCE = " "
# The state a group or a mapped task shows: the first of these any of its members is in.
PRECEDENCE = ("failed", "upstream_failed", "up_for_retry", "running", "queued", "scheduled",
              None, "skipped", "success", "removed")
ACTIVE_RUN_STATES = ("queued", "running")


def summarize(states: list[str | None]) -> str | None:
    present = set(states)
    for state in PRECEDENCE:
        if state in present:
            return state
    return None


def rows_of(serialized: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows in display order: each group before its tasks, nested by depth."""
    tasks = {t["task_id"]: t for t in serialized.get("tasks", [])}
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()

    def walk(group: dict[str, Any] | None, depth: int, parent: str | None) -> None:
        if group is None:
            return
        for task_id in group.get("tasks", []):
            if task_id in tasks and task_id not in seen:
                seen.add(task_id)
                rows.append({"id": task_id, "label": task_id.rsplit(".", 1)[-1] if parent
                             else task_id, "depth": depth, "group": False, "parent": parent,
                             "mapped": bool(tasks[task_id].get("is_mapped"))})
        for child in group.get("groups", []):
            group_id = child.get("group_id") or ""
            rows.append({"id": group_id, "label": group_id.rsplit(".", 1)[-1], "depth": depth,
                         "group": True, "parent": parent, "mapped": False})
            walk(child, depth + 1, group_id)

    walk(serialized.get("task_group"), 0, None)
    for task_id, task in tasks.items():  # tasks no group lists (older serializations)
        if task_id not in seen:
            rows.append({"id": task_id, "label": task_id, "depth": 0, "group": False,
                         "parent": None, "mapped": bool(task.get("is_mapped"))})
    return rows


def grid_data(session: Session, dag_id: str, serialized: dict[str, Any], limit: int = 25
              ) -> dict[str, Any]:
    runs = list(session.execute(
        select(models.DagRun.run_id, models.DagRun.state, models.DagRun.logical_date,
               models.DagRun.run_type, models.DagRun.start_date, models.DagRun.end_date)
        .where(models.DagRun.dag_id == dag_id).order_by(models.DagRun.id.desc()).limit(limit)))
    runs.reverse()  # oldest on the left
    column = {run.run_id: i for i, run in enumerate(runs)}
    cells: dict[str, list[list[str | None]]] = defaultdict(lambda: [[] for _ in runs])
    if runs:
        ti = models.TaskInstance
        for run_id, task_id, state in session.execute(
                select(ti.run_id, ti.task_id, ti.state).where(
                    ti.dag_id == dag_id, ti.run_id.in_(list(column)))):
            cells[task_id][column[run_id]].append(state)
    rows = rows_of(serialized)
    members = _group_members(rows)
    out_rows = []
    for row in rows:
        task_ids = members.get(row["id"], []) if row["group"] else [row["id"]]
        codes, summaries = [], []
        for index in range(len(runs)):
            states = [s for task_id in task_ids for s in cells[task_id][index]] \
                if task_ids else []
            codes.append(STATE_CODES.get(summarize(states), "-") if states else NO_INSTANCE)
            if row["mapped"]:
                counts = Counter(s or "none" for s in states)
                summaries.append(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        out = {**row, "states": "".join(codes)}
        if row["mapped"]:
            out["summaries"] = summaries
        out_rows.append(out)
    return {"dag_id": dag_id,
            "runs": [{"run_id": r.run_id, "state": r.state, "logical_date": iso(r.logical_date),
                      "run_type": r.run_type, "start_date": iso(r.start_date),
                      "end_date": iso(r.end_date)} for r in runs],
            "rows": out_rows,
            "codes": {code: state or "none" for state, code in STATE_CODES.items()},
            "in_progress": any(r.state in ACTIVE_RUN_STATES for r in runs)}


def _group_members(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """group id -> every task id inside it, at any depth."""
    parent_of = {row["id"]: row["parent"] for row in rows}
    members: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if row["group"]:
            continue
        parent = row["parent"]
        while parent is not None:
            members[parent].append(row["id"])
            parent = parent_of.get(parent)
    return members
