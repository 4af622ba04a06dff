"""The plugin module the ``flow.plugins`` entry point names: only hookimpls.

Each event hook turns its arguments into an :class:`~flow_audit.chain.Entry` and hands it to
the process's recorder, which writes it off the caller's path; with ``[audit] fail_closed`` a
user action's record is written in the action's own transaction instead, and refuses the action
when it cannot be. The component hooks open the recorder's tables as a scheduler, worker or web
server starts, and write what is buffered as it stops. Loading the plugin imports neither
SQLAlchemy nor click's commands nor Flask.
"""

from __future__ import annotations

import logging
from typing import Any

from flow import hookimpl
from flow_audit import _process  # noqa: F401 - notices forks from the moment the plugin loads

log = logging.getLogger(__name__)


@hookimpl
def flow_user_action(actor: str, action: str, target: str, details: dict[str, Any],
                     transaction: Any) -> None:
    from flow_audit.chain import Entry
    from flow_audit.recorder import recorder

    rest = {key: value for key, value in details.items()
            if key not in {"source", "remote_addr"}}
    entry = Entry("user_action", actor, action, target, rest,
                  source=str(details.get("source") or ""),
                  remote_addr=str(details.get("remote_addr") or ""))
    audit = recorder()
    if audit.settings.fail_closed:
        audit.record_within(transaction, entry)  # ActionVetoed when it cannot be written
    else:
        audit.add(entry, urgent=True)


@hookimpl
def flow_connection_accessed(conn_id: str, accessor: dict[str, Any]) -> None:
    from flow_audit.chain import Entry
    from flow_audit.recorder import recorder

    current = recorder()
    if not current.settings.record_connection_access:
        return
    if "task_id" in accessor:
        actor, source = f"{accessor.get('dag_id')}/{accessor.get('task_id')}", "task"
    else:
        actor, source = str(accessor.get("actor") or accessor.get("source") or ""), \
            str(accessor.get("source") or "")
    current.add(Entry("connection_accessed", actor, "connection.accessed", conn_id,
                      dict(accessor), source=source))


@hookimpl
def flow_task_instance_state_changed(ti: Any, previous: str | None, current: str) -> None:
    from flow_audit.recorder import recorder

    audit = recorder()
    if not audit.settings.record_state_changes:
        return
    from flow_audit.chain import Entry

    map_index = getattr(ti, "map_index", -1)
    target = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}" + (f"[{map_index}]" if map_index >= 0
                                                          else "")
    audit.add(Entry("task_instance_state", "flow", "task_instance.state_changed", target,
                    {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id,
                     "map_index": map_index, "try_number": getattr(ti, "try_number", None),
                     "previous": previous, "current": current}, plain=True))


@hookimpl
def flow_dag_run_state_changed(run: Any, previous: str | None, current: str) -> None:
    from flow_audit.recorder import recorder

    audit = recorder()
    if not audit.settings.record_state_changes:
        return
    from flow_audit.chain import Entry

    logical_date = getattr(run, "logical_date", None)
    audit.add(Entry("dag_run_state", "flow", "dag_run.state_changed",
                    f"{run.dag_id}/{run.run_id}",
                    {"dag_id": run.dag_id, "run_id": run.run_id,
                     "run_type": str(getattr(run, "run_type", "") or ""),
                     "logical_date": logical_date.isoformat() if logical_date else None,
                     "previous": previous, "current": current}))


@hookimpl
def flow_component_started(component: str) -> None:
    # The scheduler, a local worker or the web server: read [audit] and open the tables now,
    # not at the first state change of the first run (tens of milliseconds, per process).
    from flow_audit.recorder import recorder

    recorder().prepare()


@hookimpl
def flow_component_stopped(component: str) -> None:
    from flow_audit.recorder import recorder

    audit = recorder()
    if not audit.flush(audit.settings.shutdown_timeout):
        log.error("flow-audit: %d audit record(s) not yet written as the %s stops: %s",
                  audit.pending(), component, audit.stats.last_error or "the write is slow")


@hookimpl
def flow_cli(cli: Any) -> None:
    from flow_audit.cli import audit

    cli.add_command(audit)


@hookimpl
def flow_web(app: Any) -> None:
    from flow_audit.web import register

    register(app)
