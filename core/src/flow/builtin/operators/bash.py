"""BashOperator: run a bash command; its last line of output is the XCom."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Container, Mapping
from typing import Any

from flow.authoring.baseoperator import BaseOperator
from flow.exceptions import FlowException, TaskSkipped


class BashCommandFailed(FlowException):
    """The bash command exited with a non-zero code (not one of ``skip_on_exit_code``)."""

    def __init__(self, exit_code: int) -> None:
        self.exit_code = exit_code
        super().__init__(f"Bash command failed: it returned exit code {exit_code}")


class BashOperator(BaseOperator):
    """Run ``bash_command`` with ``bash -c`` in its own process group.

    ``env`` replaces the inherited environment unless ``append_env=True`` merges it over
    os.environ (as in Airflow); with no ``env`` the task inherits os.environ. ``FLOW_CTX_*``
    variables name the DAG, task, run and try. A command ending in ``.sh`` or ``.bash`` names a
    template file in the DAG's folder. An exit code in ``skip_on_exit_code`` (99 by default)
    ends the task as skipped; any other non-zero code fails it.
    """

    template_fields = ("bash_command", "env", "cwd")
    template_fields_renderers = {"bash_command": "bash", "env": "json"}
    template_ext = (".sh", ".bash")
    ui_color = "#f0ede4"

    def __init__(
        self,
        *,
        bash_command: str,
        env: Mapping[str, str] | None = None,
        append_env: bool = False,
        output_encoding: str = "utf-8",
        skip_on_exit_code: int | Container[int] | None = 99,
        cwd: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bash_command = bash_command
        self.env = dict(env) if env is not None else None
        self.append_env = append_env
        self.output_encoding = output_encoding
        if skip_on_exit_code is None:
            skip_on_exit_code = ()
        elif isinstance(skip_on_exit_code, int):
            skip_on_exit_code = (skip_on_exit_code,)
        self.skip_on_exit_code = skip_on_exit_code
        self.cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None

    def prepare_for_execution(self) -> BashOperator:
        clone = super().prepare_for_execution()
        assert isinstance(clone, BashOperator)
        clone._process = None  # a copy runs its own command, never the original's
        return clone

    def get_env(self, context: Mapping[str, Any]) -> dict[str, str]:
        if self.env is None:
            env = dict(os.environ)
        elif self.append_env:
            env = {**os.environ, **self.env}
        else:
            env = dict(self.env)
        env.update(_context_variables(context))
        return {str(k): str(v) for k, v in env.items()}

    def execute(self, context: dict[str, Any]) -> str | None:
        if self.cwd is not None and not os.path.isdir(self.cwd):
            raise FlowException(f"task {self.task_id!r}: cwd {self.cwd!r} is not a directory")
        self.log.info("Running command: %s", self.bash_command)
        # A new session makes the command the leader of its own process group, so on_kill
        # can stop everything it started (pipelines, background jobs) at once.
        self._process = process = subprocess.Popen(
            ["bash", "-c", self.bash_command],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=self.cwd, env=self.get_env(context), start_new_session=True,
        )
        last_line = ""
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode(self.output_encoding, errors="backslashreplace").rstrip("\n")
            last_line = line
            self.log.info("%s", line)
        exit_code = process.wait()
        self.log.info("Command exited with return code %s", exit_code)
        if exit_code in self.skip_on_exit_code:
            raise TaskSkipped(f"Bash command returned exit code {exit_code}: skipping")
        if exit_code != 0:
            raise BashCommandFailed(exit_code)
        return last_line if self.do_xcom_push else None

    def on_kill(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        self.log.info("Sending SIGTERM to the command's process group")
        try:
            os.killpg(os.getpgid(process.pid), signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(os.getpgid(process.pid), signal.SIGKILL)


def _context_variables(context: Mapping[str, Any]) -> dict[str, str]:
    """FLOW_CTX_* variables, for scripts that want to know which task they run as."""
    variables: dict[str, str] = {}
    ti = context.get("ti")
    for name, value in (
        ("DAG_ID", getattr(ti, "dag_id", None)),
        ("TASK_ID", getattr(ti, "task_id", None)),
        ("RUN_ID", context.get("run_id")),
        ("LOGICAL_DATE", context.get("logical_date")),
        ("TRY_NUMBER", getattr(ti, "try_number", None)),
    ):
        if value is not None:
            variables[f"FLOW_CTX_{name}"] = value.isoformat() if hasattr(
                value, "isoformat") else str(value)
    return variables
