"""Import one DAG file and collect what it defines: its DAGs, or the errors that stop it.

Each file is imported under a unique module name (derived from its path) so two files called
``etl.py`` in different folders never shadow each other, with the DAG folder on ``sys.path`` so
a DAG file can import its helper modules. Every error names a file and line:

* a SyntaxError: the line of the error;
* an exception while importing: the deepest frame inside the DAG file;
* a :class:`~flow.exceptions.DagDefinitionError`: its own ``filename``/``lineno``;
* a task created in no DAG: where it was created.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flow.exceptions import DagDefinitionError

if TYPE_CHECKING:
    from flow.authoring.dag import DAG


@dataclass(frozen=True)
class DagFileError:
    """Why a DAG file (or one DAG in it) could not be loaded."""

    filename: str
    lineno: int | None
    message: str
    stacktrace: str = ""

    def __str__(self) -> str:
        where = f"{self.filename}:{self.lineno}" if self.lineno else self.filename
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"filename": self.filename, "lineno": self.lineno, "message": self.message,
                "stacktrace": self.stacktrace}


@dataclass
class LoadedFile:
    path: str
    dags: list[DAG] = field(default_factory=list)
    errors: list[DagFileError] = field(default_factory=list)


def not_found_reason(path: str, dag_id: str, task_id: str, dag_found: bool,
                     errors: list[str]) -> str:
    """Why a workload's task cannot run from the file at ``path``: its DAG, or the task, is
    not in it (with the file's import errors, if any)."""
    what = f"task {task_id!r}" if dag_found else f"DAG {dag_id!r}"
    problems = "; ".join(errors)
    return f"{what} not found in {path}" + (f": {problems}" if problems else "")


def module_name_for(path: str) -> str:
    """A module name unique to ``path``: two ``etl.py`` files never share a module."""
    digest = hashlib.sha1(path.encode(), usedforsecurity=False).hexdigest()[:12]
    stem = "".join(ch if ch.isalnum() else "_" for ch in Path(path).stem)
    return f"flow_dagfile_{digest}_{stem}"


def load_dag_file(path: str | os.PathLike[str], dags_folder: str | None = None) -> LoadedFile:
    """Import the file at ``path`` and return its valid DAGs and every error, with file:line."""
    from flow.authoring.collector import collect_definitions

    filename = os.path.abspath(path)
    result = LoadedFile(filename)
    folder = os.path.abspath(dags_folder) if dags_folder else os.path.dirname(filename)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = module_name_for(filename)
    with collect_definitions() as collected:
        try:
            _import(name, filename)
        except SyntaxError as err:
            sys.modules.pop(name, None)
            result.errors.append(DagFileError(
                os.path.abspath(err.filename or filename), err.lineno,
                f"SyntaxError: {err.msg}", _format(err)))
            return result
        except DagDefinitionError as err:
            sys.modules.pop(name, None)
            result.errors.append(_definition_error(err, filename))
            return result
        except (Exception, SystemExit) as err:  # any error in user code is an import error
            sys.modules.pop(name, None)
            result.errors.append(DagFileError(
                filename, _deepest_line_in(err, filename),
                f"{type(err).__name__}: {err}", _format(err)))
            return result
    for message in collected.orphan_errors():
        where, _, text = message.partition(": ")
        file_part, _, line_part = where.rpartition(":")
        result.errors.append(DagFileError(file_part or filename,
                                          int(line_part) if line_part.isdigit() else None, text))
    seen: dict[str, DAG] = {}
    for dag in collected.dags:
        if dag.dag_id in seen:
            result.errors.append(DagFileError(
                filename, getattr(dag, "lineno", None),
                f"dag_id {dag.dag_id!r} is defined twice in this file "
                f"(first at line {getattr(seen[dag.dag_id], 'lineno', '?')})"))
            continue
        try:
            dag.validate()
        except DagDefinitionError as err:
            result.errors.append(_definition_error(err, filename))
            continue
        seen[dag.dag_id] = dag
        result.dags.append(dag)
    return result


def _import(name: str, filename: str) -> None:
    spec = importlib.util.spec_from_file_location(name, filename)
    if spec is None or spec.loader is None:
        raise ImportError(f"{filename} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def _definition_error(err: DagDefinitionError, filename: str) -> DagFileError:
    return DagFileError(err.filename or filename, err.lineno or _deepest_line_in(err, filename),
                        f"{type(err).__name__}: {err.message}", _format(err))


def _deepest_line_in(err: BaseException, filename: str) -> int | None:
    """The line of the innermost traceback frame that belongs to ``filename``."""
    line = None
    for frame in traceback.extract_tb(err.__traceback__):
        if os.path.abspath(frame.filename) == filename:
            line = frame.lineno
    return line


def _format(err: BaseException) -> str:
    # Drop flow's own import machinery frames: the user wants their file's frames.
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if not f.filename.endswith(("dagbag.py", "<frozen importlib._bootstrap>",
                                          "<frozen importlib._bootstrap_external>"))]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames),
             *traceback.format_exception_only(type(err), err)]
    return "".join(lines)
