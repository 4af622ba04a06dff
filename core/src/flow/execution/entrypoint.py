"""The code behind ``flow tasks run --workload JSON``: one try, supervised, and its outcome.

Every executor's workers end here. ``flow tasks run`` calls :func:`run_workload` once in a
process of its own (a Kubernetes pod, the sequential executor); a warm process that runs many
tries one after another (a Celery pool process) calls it with ``warm=True``:

* the DAG file is imported once per process and again only when it changes on disk (as the
  local executor's fork server does), and the database's migration is checked once;
* ``on_event`` hears each of the supervisor's events as it happens: ``running`` once the guarded
  start committed (never for a refused delivery), the final state as soon as the try's end is
  committed, before its child process has finished exiting.

The try itself runs in a child process that a :class:`~flow.execution.supervisor.Supervisor`
forks and watches (guarded start, timeouts, heartbeats, the end committed); ``SIGTERM`` to the
calling process (a Celery revoke, a pod deletion) stops the try the same way.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from flow.execution.workload import TaskEvent, TaskWorkload

# path -> ((mtime_ns, size), the loaded file): the DAG files a warm process imported.
_loaded: dict[str, tuple[tuple[int, int], Any]] = {}
_migration_checked: set[str] = set()


def run_workload(workload: TaskWorkload, *,
                 on_event: Callable[[TaskEvent], None] | None = None,
                 warm: bool = False) -> dict[str, Any]:
    """Run ``workload`` and return its outcome: the JSON object ``flow tasks run`` prints
    (``key``, ``try_number``, ``state``, ``log_path``, ``error``, ``message``). ``state`` is a
    final task instance state, ``refused`` (the try was not queued for it), ``lost`` or
    ``not_found``. When the file has no such DAG or task, ``not_found`` is true and the try is
    failed with the reason (``state`` is then what it became)."""
    from flow.config import load_config
    from flow.execution.supervisor import Supervisor, fail_unstartable, kill_grace_period
    from flow.plugins import current
    from flow.scheduling.dagbag import not_found_reason
    from flow.store.migrate import ensure_current
    from flow.store.session import get_engine

    config = load_config()
    engine = get_engine()
    if not warm or str(engine.url) not in _migration_checked:
        ensure_current(engine)
        _migration_checked.add(str(engine.url))
    outcome: dict[str, Any] = {"key": workload.key.to_dict(), "try_number": workload.try_number}
    log_folder = str(config.get("logging", "base_log_folder"))
    loaded = _load(workload.dag_file, str(config.get("core", "dags_folder")), warm)
    dag = next((d for d in loaded.dags if d.dag_id == workload.dag_id), None)
    if dag is None or workload.task_id not in dag.task_dict:
        message = not_found_reason(workload.dag_file, workload.dag_id, workload.task_id,
                                   dag is not None, [str(e) for e in loaded.errors])
        state = fail_unstartable(engine, workload, message, log_folder, current())
        outcome.update(state=state or "not_found", message=message, not_found=True)
        return outcome

    events: list[TaskEvent] = []

    def record(event: TaskEvent) -> None:
        events.append(event)
        if on_event is not None:
            on_event(event)

    supervisor = Supervisor(engine=engine, plugins=current(), on_event=record,
                            log_folder=log_folder,
                            heartbeat_interval=config.get("scheduler", "task_heartbeat_interval"),
                            kill_grace=kill_grace_period(config))
    previous = signal.signal(signal.SIGTERM, lambda *_: supervisor.terminate_all(
        "its supervisor received SIGTERM"))
    try:
        supervisor.launch(workload, dag)
        while supervisor.running:
            supervisor.poll(None)
        supervisor.close()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return outcome | outcome_of(events[-1])


def outcome_of(final: TaskEvent) -> dict[str, Any]:
    """The outcome fields of a try's final event."""
    info = final.info
    return {"state": final.state, "log_path": info.get("log_path"), "error": info.get("error"),
            "message": info.get("message") or info.get("reason") or ""}


def _load(path: str, dags_folder: str, warm: bool) -> Any:
    """The file's DAGs; in a warm process, imported again only when the file changed since
    the last try here."""
    from flow.scheduling.dagbag import load_dag_file

    if not warm:
        return load_dag_file(path, dags_folder)
    try:
        status = os.stat(path)
        version = (status.st_mtime_ns, status.st_size)
    except OSError:
        version = (-1, -1)
    cached = _loaded.get(path)
    if cached is not None and cached[0] == version and version != (-1, -1):
        return cached[1]
    loaded = load_dag_file(path, dags_folder)
    if not loaded.errors:
        _loaded[path] = (version, loaded)
    return loaded
