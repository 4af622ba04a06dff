"""One try in a Celery pool process: what ``flow tasks run --workload`` does, kept warm.

The steps are those of :func:`flow.cli.tasks.run_workload`, with the same core parts: the DAG
file loaded, the try launched in a supervised child process by a
:class:`~flow.execution.supervisor.Supervisor` (guarded start, timeouts, heartbeats, the end
committed), ``SIGTERM`` stopping the try. Three differences, because a pool process runs many
tries one after another and the scheduler waits on each try's outcome:

* the DAG file is imported once per pool process and again only when it changes on disk (as
  the local executor's fork server does), and the database's migration is checked once;
* ``on_started`` is called once the try has started (the guarded start committed), never for a
  refused delivery;
* ``on_ended`` is called with the outcome as soon as the try's end is committed, before the
  child process has finished exiting: the scheduler hears of it a few milliseconds sooner.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from flow.execution.workload import TaskEvent, TaskWorkload

FINAL = frozenset({"success", "failed", "up_for_retry", "skipped", "refused", "lost"})

# path -> ((mtime_ns, size), the LoadedFile): this pool process's imported DAG files.
_loaded: dict[str, tuple[tuple[int, int], Any]] = {}
_migration_checked: set[str] = set()


def run_try(workload: TaskWorkload, on_started: Callable[[], None],
            on_ended: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Run ``workload`` and return its outcome (the JSON object ``flow tasks run`` prints)."""
    from flow.config import load_config
    from flow.execution.supervisor import Supervisor, fail_unstartable, kill_grace_period
    from flow.plugins import current
    from flow.scheduling.dagbag import not_found_reason
    from flow.store.migrate import ensure_current
    from flow.store.session import get_engine

    config = load_config()
    engine = get_engine()
    if str(engine.url) not in _migration_checked:
        ensure_current(engine)
        _migration_checked.add(str(engine.url))
    outcome: dict[str, Any] = {"key": workload.key.to_dict(), "try_number": workload.try_number}
    log_folder = str(config.get("logging", "base_log_folder"))
    loaded = _load(workload.dag_file, str(config.get("core", "dags_folder")))
    dag = next((d for d in loaded.dags if d.dag_id == workload.dag_id), None)
    if dag is None or workload.task_id not in dag.task_dict:
        message = not_found_reason(workload.dag_file, workload.dag_id, workload.task_id,
                                   dag is not None, [str(e) for e in loaded.errors])
        state = fail_unstartable(engine, workload, message, log_folder, current())
        outcome.update(state=state or "not_found", message=message)
        return outcome

    events: list[TaskEvent] = []

    def on_event(event: TaskEvent) -> None:
        events.append(event)
        if event.state == "running":
            on_started()
        elif event.state in FINAL and event.state != "refused":
            on_ended(_outcome(outcome, event))

    supervisor = Supervisor(engine=engine, plugins=current(), on_event=on_event,
                            log_folder=log_folder,
                            heartbeat_interval=config.get("scheduler", "task_heartbeat_interval"),
                            kill_grace=kill_grace_period(config))
    # A Celery revoke (terminate) sends SIGTERM to this pool process: stop the try with it.
    previous = signal.signal(signal.SIGTERM, lambda *_: supervisor.terminate_all(
        "its supervisor received SIGTERM (the Celery task was revoked)"))
    try:
        supervisor.launch(workload, dag)
        while supervisor.running:
            supervisor.poll(None)
        supervisor.close()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return _outcome(outcome, events[-1])


def _outcome(outcome: dict[str, Any], final: TaskEvent) -> dict[str, Any]:
    info = final.info
    return {**outcome, "state": final.state, "log_path": info.get("log_path"),
            "error": info.get("error"),
            "message": info.get("message") or info.get("reason") or ""}


def _load(path: str, dags_folder: str) -> Any:
    """The file's DAGs, imported again only when the file changed since the last try here."""
    from flow.scheduling.dagbag import load_dag_file

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
