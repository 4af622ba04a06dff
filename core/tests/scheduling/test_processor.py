"""The DAG processor: child processes per file, import errors with file and line, the rows it
writes on every metadata database, and re-parsing only what changed."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from flow.config import Config
from flow.scheduling.processor import DagProcessor, list_dag_files
from flow.store.models import DagCodeModel, DagModel, ImportError_, SerializedDagModel
from flow.store.session import get_engine, session_scope

GOOD = """
from datetime import datetime
from flow import DAG
from flow.operators import EmptyOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
"""


@pytest.fixture
def engine(db_url: str) -> Engine:
    return get_engine(db_url)


@pytest.fixture
def dags(flow_home: Path) -> Path:
    return flow_home / "dags"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _rows(engine: Engine, model: Any) -> list[Any]:
    with session_scope(engine) as session:
        return list(session.scalars(select(model)).all())


def _processor(dags: Path, engine: Engine, **kwargs: Any) -> DagProcessor:
    return DagProcessor(dags, engine=engine, config=Config(), **kwargs)


def test_good_dags_are_stored_while_broken_files_are_recorded(dags: Path,
                                                              engine: Engine) -> None:
    _write(dags, "good_dag.py", GOOD.format(dag_id="good"))
    _write(dags, "syntax_dag.py", "# flow dag\nx = (\n")
    _write(dags, "raises_dag.py", "# flow dag\nimport os\n\nos.environ['NO_SUCH_VARIABLE_X']\n")
    _write(dags, "loops_dag.py", "# flow dag\nwhile True:\n    pass\n")
    started = time.monotonic()
    result = _processor(dags, engine, timeout=1.0).process()
    assert time.monotonic() - started < 10
    assert result.dag_ids == ["good"]
    errors = {Path(row.filename).name: row for row in _rows(engine, ImportError_)}
    assert set(errors) == {"syntax_dag.py", "raises_dag.py", "loops_dag.py"}
    assert errors["syntax_dag.py"].lineno == 2
    assert errors["syntax_dag.py"].message.startswith("SyntaxError")
    assert errors["raises_dag.py"].lineno == 4
    assert "KeyError: 'NO_SUCH_VARIABLE_X'" in errors["raises_dag.py"].message
    assert "raises_dag.py" in errors["raises_dag.py"].stacktrace
    assert "longer than 1 seconds" in errors["loops_dag.py"].message
    assert "dag_file_processor_timeout" in errors["loops_dag.py"].message
    [serialized] = _rows(engine, SerializedDagModel)
    assert serialized.dag_id == "good" and len(serialized.dag_hash) == 64
    assert [t["task_id"] for t in serialized.data["tasks"]] == ["a", "b"]
    [code] = _rows(engine, DagCodeModel)
    assert "EmptyOperator" in code.source_code


def test_a_cycle_is_recorded_with_file_and_line(dags: Path, engine: Engine) -> None:
    _write(dags, "cycle_dag.py", """
        from datetime import datetime
        from flow import DAG
        from flow.operators import EmptyOperator
        dag = DAG("cyclic", schedule=None, start_date=datetime(2024, 1, 1))
        a = EmptyOperator(task_id="a", dag=dag)
        b = EmptyOperator(task_id="b", dag=dag)
        a >> b >> a
    """)
    _processor(dags, engine).process()
    [error] = _rows(engine, ImportError_)
    assert error.lineno == 8
    assert "cycle: a -> b -> a" in error.message


def test_fixing_a_file_clears_its_import_error(dags: Path, engine: Engine) -> None:
    path = _write(dags, "fixme_dag.py", "# flow dag\nx = (\n")
    processor = _processor(dags, engine)
    processor.process()
    assert len(_rows(engine, ImportError_)) == 1
    path.write_text(GOOD.format(dag_id="fixed"))
    result = processor.process()
    assert result.dag_ids == ["fixed"]
    assert _rows(engine, ImportError_) == []


def test_dags_whose_file_vanished_become_inactive(dags: Path, engine: Engine) -> None:
    path = _write(dags, "gone_dag.py", GOOD.format(dag_id="gone"))
    _write(dags, "stays_dag.py", GOOD.format(dag_id="stays"))
    processor = _processor(dags, engine)
    processor.process()
    path.unlink()
    processor.process()
    active = {row.dag_id: row.is_active for row in _rows(engine, DagModel)}
    assert active == {"gone": False, "stays": True}


def test_new_dags_start_paused_per_config_and_per_dag(dags: Path, engine: Engine,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "false")
    _write(dags, "default_dag.py", GOOD.format(dag_id="follows_config"))
    _write(dags, "paused_dag.py", GOOD.format(dag_id="own_choice").replace(
        'schedule=None,', 'schedule=None, is_paused_upon_creation=True,'))
    _processor(dags, engine).process()
    paused = {row.dag_id: row.is_paused for row in _rows(engine, DagModel)}
    assert paused == {"follows_config": False, "own_choice": True}


def test_unchanged_files_are_not_parsed_again(dags: Path, engine: Engine) -> None:
    for index in range(3):
        _write(dags, f"dag_{index}.py", GOOD.format(dag_id=f"dag_{index}"))
    first = _processor(dags, engine).process()
    assert len(first.parsed) == 3
    # A new processor (a new process) compares content hashes with the stored code.
    fresh = _processor(dags, engine)
    assert fresh.process().parsed == []
    _write(dags, "dag_1.py", GOOD.format(dag_id="dag_1") + "\n# edited\n")
    assert [Path(p).name for p in fresh.process().parsed] == ["dag_1.py"]
    assert fresh.process().parsed == []


def test_a_dag_id_defined_in_two_files_is_an_import_error(dags: Path, engine: Engine) -> None:
    _write(dags, "a_dag.py", GOOD.format(dag_id="twice"))
    _write(dags, "b_dag.py", GOOD.format(dag_id="twice"))
    _processor(dags, engine).process()
    [error] = _rows(engine, ImportError_)
    assert Path(error.filename).name == "b_dag.py"
    assert "already defined in" in error.message and "a_dag.py" in error.message


def test_files_that_cannot_define_a_dag_or_are_ignored_are_not_parsed(dags: Path) -> None:
    _write(dags, "helper.py", "VALUE = 1\n")
    _write(dags, "real_dag.py", GOOD.format(dag_id="real"))
    (dags / "scratch").mkdir()
    _write(dags / "scratch", "draft_dag.py", GOOD.format(dag_id="draft"))
    _write(dags, ".flowignore", "# drafts\nscratch/*\n")
    assert [Path(p).name for p in list_dag_files(dags)] == ["real_dag.py"]


def test_a_file_that_kills_its_process_or_ignores_the_alarm_does_not_stop_the_others(
        dags: Path, engine: Engine) -> None:
    _write(dags, "a_good_dag.py", GOOD.format(dag_id="first"))
    _write(dags, "b_exits_dag.py", "# flow dag\nimport os\nos._exit(3)\n")
    _write(dags, "c_stubborn_dag.py", "# flow dag\nimport signal\n"
                                      "signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                                      "while True:\n    pass\n")
    _write(dags, "d_good_dag.py", GOOD.format(dag_id="last"))
    result = _processor(dags, engine, timeout=0.5, parallelism=1).process()
    assert result.dag_ids == ["first", "last"]
    errors = {Path(row.filename).name: row.message for row in _rows(engine, ImportError_)}
    assert "died" in errors["b_exits_dag.py"]
    assert "longer than 0.5 seconds" in errors["c_stubborn_dag.py"]
