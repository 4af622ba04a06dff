"""BashOperator runs real bash: output, exit codes, env, cwd, skipping and killing."""

from __future__ import annotations

import os
import threading
import time

import pytest
from authoring.helpers import RecordingTaskInstance

from flow import DAG
from flow.builtin.operators.bash import BashCommandFailed
from flow.exceptions import TaskSkipped
from flow.operators import BashOperator


def _bash(**kwargs) -> BashOperator:
    with DAG("bash_tests"):
        return BashOperator(task_id=kwargs.pop("task_id", "b"), **kwargs)


def _context(**extra):
    return {"ti": RecordingTaskInstance(dag_id="bash_tests", task_id="b", try_number=2),
            "run_id": "manual__1", **extra}


def test_last_line_of_output_is_the_return_value(caplog):
    op = _bash(bash_command='echo "Hello World!"; echo second line')
    with caplog.at_level("INFO", logger="flow.task"):
        assert op.execute(_context()) == "second line"
    assert "Hello World!" in caplog.text


def test_no_return_value_without_xcom_push():
    assert _bash(bash_command="echo x", do_xcom_push=False).execute(_context()) is None


def test_non_zero_exit_fails_with_the_exit_code():
    with pytest.raises(BashCommandFailed, match="exit code 3") as info:
        _bash(bash_command="echo failing; exit 3").execute(_context())
    assert info.value.exit_code == 3


def test_exit_99_skips_by_default_and_the_skip_code_is_configurable():
    with pytest.raises(TaskSkipped):
        _bash(bash_command="exit 99").execute(_context())
    with pytest.raises(TaskSkipped):
        _bash(bash_command="exit 7", skip_on_exit_code=[7, 8]).execute(_context())
    with pytest.raises(BashCommandFailed):
        _bash(bash_command="exit 99", skip_on_exit_code=None).execute(_context())


def test_env_replaces_the_inherited_environment_unless_appended(monkeypatch):
    monkeypatch.setenv("FLOW_TEST_INHERITED", "inherited")
    script = 'echo "${FLOW_TEST_INHERITED:-none}/${OWN:-none}/$FLOW_CTX_TASK_ID"'
    assert _bash(bash_command=script).execute(_context()) == "inherited/none/b"
    assert _bash(bash_command=script, env={"OWN": "own"}).execute(_context()) == "none/own/b"
    assert _bash(bash_command=script, env={"OWN": "own"}, append_env=True).execute(
        _context()) == "inherited/own/b"


def test_context_variables_name_the_dag_run_and_try():
    op = _bash(bash_command='echo "$FLOW_CTX_DAG_ID $FLOW_CTX_RUN_ID $FLOW_CTX_TRY_NUMBER"')
    assert op.execute(_context()) == "bash_tests manual__1 2"


def test_cwd_is_where_the_command_runs(tmp_path):
    (tmp_path / "marker.txt").write_text("here")
    assert _bash(bash_command="cat marker.txt", cwd=str(tmp_path)).execute(_context()) == "here"
    with pytest.raises(Exception, match="is not a directory"):
        _bash(bash_command="true", cwd=str(tmp_path / "missing")).execute(_context())


def test_templated_command_and_env_render_before_running():
    op = _bash(bash_command="echo {{ ds }} $GREETING", env={"GREETING": "{{ params.g }}"},
               params={"g": "hi"})
    runnable = op.prepare_for_execution()
    runnable.render_template_fields({"ds": "2024-01-01", "params": runnable.params})
    assert runnable.execute(_context()) == "2024-01-01 hi"


def test_on_kill_stops_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "child.pid"
    op = _bash(bash_command=f"sleep 60 & echo $! > {pid_file}; wait")
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            op.execute(_context())
        except BaseException as err:  # the task ends with the kill
            outcome["error"] = err

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the command did not start"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    op.on_kill()
    runner.join(timeout=10)
    assert not runner.is_alive()
    assert isinstance(outcome.get("error"), BashCommandFailed)
    deadline = time.monotonic() + 5
    while _alive(child):
        assert time.monotonic() < deadline, "the background child survived on_kill"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead for our purpose
        return stat.read().split()[2] != "Z"
