"""Write DAG files for a test and load them the way a task runner does.

Executors run tasks in other processes, which find the DAG by its file (the workload's
``dag_file``), so a test DAG that an executor runs must live in a file in the dags folder.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any


class DagFileError(AssertionError):
    """A test DAG file did not load; the message has the file and the loader's errors."""


class DagFiles:
    """The ``dag_files`` fixture: ``dag_files.dag(source)`` writes ``source`` into the dags
    folder and returns the one DAG it defines; ``dag_files.dags(source)`` returns all of them."""

    _counter = itertools.count(1)

    def __init__(self, dags_folder: Path) -> None:
        self.dags_folder = dags_folder

    def write(self, source: str, name: str | None = None) -> Path:
        name = name or f"test_dag_{next(self._counter)}.py"
        path = self.dags_folder / name
        path.write_text(textwrap.dedent(source).lstrip())
        return path

    def dags(self, source: str, name: str | None = None) -> dict[str, Any]:
        from flow.scheduling.dagbag import load_dag_file

        path = self.write(source, name)
        loaded = load_dag_file(path, str(self.dags_folder))
        if loaded.errors:
            problems = "\n".join(str(error) for error in loaded.errors)
            raise DagFileError(f"{path} did not load:\n{problems}")
        return {dag.dag_id: dag for dag in loaded.dags}

    def dag(self, source: str, name: str | None = None) -> Any:
        found = self.dags(source, name)
        if len(found) != 1:
            raise DagFileError(f"expected one DAG in the source, found {sorted(found) or 'none'}")
        return next(iter(found.values()))
