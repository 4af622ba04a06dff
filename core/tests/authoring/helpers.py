"""Helpers for authoring tests: run a DAG file as the DAG processor would, and a recording
stand-in for the run-time task instance (the execution layer's object is tested there)."""

from __future__ import annotations

import runpy
import textwrap
from pathlib import Path
from typing import Any

from flow.authoring.collector import Collected, collect_definitions


def write_dag_file(tmp_path: Path, source: str, name: str = "my_dag.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def import_dag_file(path: Path) -> Collected:
    with collect_definitions() as collected:
        runpy.run_path(str(path), run_name=f"flow_dag_{path.stem}")
    return collected


def line_of(path: Path, marker: str) -> int:
    """1-based line number of the first line containing ``marker``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if marker in line:
            return number
    raise AssertionError(f"{marker!r} not in {path}")


class RecordingTaskInstance:
    """What operators call on ``context["ti"]``: XCom pulls from a dict, branch decisions kept."""

    def __init__(self, xcoms: dict[tuple[str, str], Any] | None = None,
                 dag_id: str = "d", task_id: str = "t", try_number: int = 1) -> None:
        self.xcoms = xcoms or {}
        self.followed: list[tuple[list[str], bool]] = []
        self.dag_id, self.task_id, self.try_number = dag_id, task_id, try_number
        self.map_index = -1

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.xcoms.get((task_ids, key))

    def follow_branches(self, task_ids: list[str], skip_all_downstream: bool = False) -> None:
        self.followed.append((list(task_ids), skip_all_downstream))
