"""The template context of a running task: ``{{ ds }}``, ``{{ params.x }}``, ``{{ var.value.k }}``.

Keys (as in Airflow): ``ds``, ``ds_nodash``, ``ts``, ``ts_nodash``, ``logical_date``,
``data_interval_start``, ``data_interval_end``, ``run_id``, ``dag``, ``task``, ``ti`` (also
``task_instance``), ``params``, ``var`` (``var.value.KEY``, ``var.json.KEY``), ``conn``
(``conn.CONN_ID``), ``macros``, ``dag_run``, ``map_index``, ``try_number`` and ``conf`` (the run's
conf; flow's configuration is not exposed to templates because it holds secrets).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flow.execution.runtime import DagRunSnapshot, RuntimeTaskInstance


class _VariableAccessor:
    """``var.value.KEY`` / ``var.json.KEY``: reads the variable when the template touches it."""

    def __init__(self, deserialize_json: bool) -> None:
        self._deserialize_json = deserialize_json

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        return self.get(key)

    def get(self, key: str, default: Any = None) -> Any:
        from flow.secrets.variable import Variable

        if default is None:
            return Variable.get(key, deserialize_json=self._deserialize_json)
        return Variable.get(key, default, deserialize_json=self._deserialize_json)

    def __repr__(self) -> str:
        return "<variables>"


class VariablesInContext:
    def __init__(self) -> None:
        self.value = _VariableAccessor(False)
        self.json = _VariableAccessor(True)

    def __repr__(self) -> str:
        return "<var>"


class ConnectionsInContext:
    """``conn.my_db.host``: resolves the connection (and masks its password) when touched."""

    def __getattr__(self, conn_id: str) -> Any:
        if conn_id.startswith("_"):
            raise AttributeError(conn_id)
        return self.get(conn_id)

    def get(self, conn_id: str) -> Any:
        from flow.secrets.connection import Connection

        return Connection.get(conn_id)

    def __repr__(self) -> str:
        return "<conn>"


def build_context(*, dag: Any, task: Any, ti: RuntimeTaskInstance, run: DagRunSnapshot,
                  params: dict[str, Any]) -> dict[str, Any]:
    """Everything a template or ``execute`` may read for this try."""
    from flow.authoring import macros

    logical_date = run.logical_date or run.data_interval_end or run.start_date
    context: dict[str, Any] = {
        "dag": dag,
        "task": task,
        "ti": ti,
        "task_instance": ti,
        "run_id": run.run_id,
        "dag_run": run,
        "logical_date": logical_date,
        "data_interval_start": run.data_interval_start,
        "data_interval_end": run.data_interval_end,
        "params": params,
        "var": VariablesInContext(),
        "conn": ConnectionsInContext(),
        "macros": macros,
        "map_index": ti.map_index,
        "try_number": ti.try_number,
        "conf": dict(run.conf),
    }
    if isinstance(logical_date, datetime):
        context.update({
            "ds": logical_date.strftime("%Y-%m-%d"),
            "ds_nodash": logical_date.strftime("%Y%m%d"),
            "ts": logical_date.isoformat(),
            "ts_nodash": logical_date.strftime("%Y%m%dT%H%M%S"),
        })
    return context
