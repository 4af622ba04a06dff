"""Importing one DAG file: its DAGs, or errors that name the file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

from flow.scheduling.dagbag import load_dag_file, module_name_for

HEADER = ("from datetime import datetime\nfrom flow import DAG\n"
          "from flow.operators import EmptyOperator\n")


def _write(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def test_a_good_file_yields_its_dags(tmp_path: Path) -> None:
    path = _write(tmp_path, "good.py", """
        with DAG("one", schedule=None, start_date=datetime(2024, 1, 1)):
            EmptyOperator(task_id="a")
        with DAG("two", schedule=None, start_date=datetime(2024, 1, 1)):
            EmptyOperator(task_id="b")
    """)
    loaded = load_dag_file(path)
    assert [dag.dag_id for dag in loaded.dags] == ["one", "two"]
    assert loaded.errors == []
    assert loaded.dags[0].fileloc == str(path)


def test_a_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.py", "x = (\n")
    [error] = load_dag_file(path).errors
    assert error.filename == str(path)
    assert error.lineno == 4
    assert error.message.startswith("SyntaxError")


def test_an_exception_names_the_deepest_line_in_the_dag_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "raises.py", """
        def helper():
            return {}["missing"]

        helper()
    """)
    [error] = load_dag_file(path).errors
    assert (error.filename, error.lineno) == (str(path), 6)
    assert error.message == "KeyError: 'missing'"
    assert "raises.py" in error.stacktrace and "dagbag.py" not in error.stacktrace


def test_a_cycle_is_reported_with_file_line_and_the_tasks_in_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "cycle.py", """
        dag = DAG("cyclic", schedule=None, start_date=datetime(2024, 1, 1))
        a = EmptyOperator(task_id="a", dag=dag)
        b = EmptyOperator(task_id="b", dag=dag)
        a >> b
        b >> a
    """)
    [error] = load_dag_file(path).errors
    assert (error.filename, error.lineno) == (str(path), 9)
    assert "cycle: a -> b -> a" in error.message


def test_a_duplicate_task_id_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "dup.py", """
        with DAG("dup", schedule=None, start_date=datetime(2024, 1, 1)):
            EmptyOperator(task_id="same")
            EmptyOperator(task_id="same")
    """)
    [error] = load_dag_file(path).errors
    assert (error.filename, error.lineno) == (str(path), 7)
    assert "same" in error.message


def test_a_task_in_no_dag_is_an_error_naming_where_it_was_created(tmp_path: Path) -> None:
    path = _write(tmp_path, "orphan.py", """
        with DAG("fine", schedule=None, start_date=datetime(2024, 1, 1)):
            EmptyOperator(task_id="inside")
        EmptyOperator(task_id="outside")
    """)
    loaded = load_dag_file(path)
    assert [dag.dag_id for dag in loaded.dags] == ["fine"]
    [error] = loaded.errors
    assert (error.filename, error.lineno) == (str(path), 7)
    assert "'outside' belongs to no DAG" in error.message


def test_a_dag_file_can_import_helpers_from_the_dag_folder(tmp_path: Path) -> None:
    (tmp_path / "shared_names.py").write_text("TASK = 'from_helper'\n")
    path = _write(tmp_path, "uses_helper.py", """
        from shared_names import TASK
        with DAG("helped", schedule=None, start_date=datetime(2024, 1, 1)):
            EmptyOperator(task_id=TASK)
    """)
    [dag] = load_dag_file(path, str(tmp_path)).dags
    assert dag.task_ids == ["from_helper"]


def test_files_with_the_same_name_in_different_folders_get_different_modules(
        tmp_path: Path) -> None:
    assert module_name_for(str(tmp_path / "a" / "etl.py")) != module_name_for(
        str(tmp_path / "b" / "etl.py"))
