"""DAG callbacks (``on_success_callback`` / ``on_failure_callback``) in a child process.

The scheduler never imports DAG files, so when a run ends and its DAG declares a callback, the
scheduler starts ``python -m flow.scheduling.callbacks REQUEST`` and goes on scheduling; the
child imports the DAG's file, calls the callbacks with the run's context and exits. A callback
that raises is logged with the DAG's id; it never changes the run's state.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

log = logging.getLogger(__name__)


def start_dag_callback(fileloc: str, dag_id: str, run_id: str, state: str,
                       reason: str) -> subprocess.Popen[bytes]:
    request = json.dumps({"fileloc": fileloc, "dag_id": dag_id, "run_id": run_id,
                          "state": state, "reason": reason})
    return subprocess.Popen([sys.executable, "-m", "flow.scheduling.callbacks", request],
                            stdin=subprocess.DEVNULL, start_new_session=True)


def run_dag_callback(request: dict[str, Any]) -> int:
    from sqlalchemy import select

    from flow.execution.runtime import DagRunSnapshot
    from flow.scheduling.dagbag import load_dag_file
    from flow.store.models import DagRun
    from flow.store.session import session_scope

    loaded = load_dag_file(request["fileloc"])
    dag = next((d for d in loaded.dags if d.dag_id == request["dag_id"]), None)
    if dag is None:
        log.error("callback of %s: the DAG is not in %s any more", request["dag_id"],
                  request["fileloc"])
        return 1
    with session_scope() as session:
        row = session.scalars(select(DagRun).where(DagRun.dag_id == dag.dag_id,
                                                   DagRun.run_id == request["run_id"])).first()
        if row is None:
            return 1
        run = DagRunSnapshot.from_row(row)
    name = "on_success_callback" if request["state"] == "success" else "on_failure_callback"
    callbacks = getattr(dag, name, None) or []
    context = {"dag": dag, "dag_run": run, "run_id": run.run_id, "reason": request["reason"],
               "params": dag.params.resolve(run.conf or {})}
    failed = 0
    for callback in callbacks if isinstance(callbacks, list | tuple) else [callbacks]:
        try:
            callback(context)
        except Exception:
            failed += 1
            log.exception("%s %r of DAG %s raised; the run's state stays %s", name, callback,
                          dag.dag_id, request["state"])
    return 1 if failed else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run_dag_callback(json.loads(sys.argv[1])))
