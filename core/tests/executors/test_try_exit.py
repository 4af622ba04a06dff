"""A try's process gives way to the others once its task has ended: it exits at a lower
priority, so tearing it down does not compete with the commit of its end and the next try."""

from __future__ import annotations

import os
import time
from pathlib import Path

from executor_helpers import queue
from sqlalchemy import Engine

from flow.execution.supervisor import EXIT_NICENESS, Supervisor
from flow.execution.workload import TaskEvent
from flow.plugins import current
from flow.scheduling.dagbag import load_dag_file


def _state_and_nice(pid: int) -> tuple[str, int]:
    """A process's state letter and nice value, from /proc (a zombie keeps both)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return fields[0], int(fields[16])


def test_a_try_process_exits_at_a_lower_priority_once_its_task_ended(
        engine: Engine, dag_file: Path, flow_home: Path) -> None:
    [dag] = load_dag_file(dag_file).dags
    events: list[TaskEvent] = []
    supervisor = Supervisor(engine=engine, plugins=current(), on_event=events.append,
                            log_folder=str(flow_home / "logs"), spares=0)
    own_nice = os.nice(0)
    try:
        supervisor.launch(queue(engine, dag_file, "misbehaving", "ok"), dag)
        [started] = [e for e in events if e.state == "running"]
        pid = int(started.info["pid"])

        # Not polled meanwhile, the supervisor reaps nothing: the exited child stays a zombie.
        deadline = time.monotonic() + 20
        while (state := _state_and_nice(pid))[0] != "Z":
            assert time.monotonic() < deadline, f"the try's process is still {state[0]}"
            time.sleep(0.01)
        assert state[1] == min(19, own_nice + EXIT_NICENESS)

        deadline = time.monotonic() + 20
        while supervisor.running:
            assert time.monotonic() < deadline
            supervisor.poll(0.1)
        assert [e.state for e in events] == ["running", "success"]
    finally:
        supervisor.terminate_all("the test ended")
        supervisor.close()
