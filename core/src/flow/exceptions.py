"""Exceptions a user can act on: each message says what failed, where, and what to do."""

from __future__ import annotations


class FlowException(Exception):
    """Base of flow's own exceptions."""


class DagDefinitionError(FlowException):
    """A DAG is malformed. ``filename`` and ``lineno`` point at the line that made it so."""

    def __init__(self, message: str, filename: str | None = None, lineno: int | None = None):
        self.message = message
        self.filename = filename
        self.lineno = lineno
        where = f"{filename}:{lineno}: " if filename and lineno else (
            f"{filename}: " if filename else "")
        super().__init__(f"{where}{message}")


class DagCycleError(DagDefinitionError):
    """The DAG has a cycle; the message names the tasks in it."""


class DuplicateTaskIdError(DagDefinitionError):
    """Two tasks in one DAG share a task_id."""


class ParamValidationError(DagDefinitionError):
    """A Param's value does not satisfy its JSON schema."""


class TaskSkipped(FlowException):
    """Raise inside a task to end it as skipped."""


class TaskFailedNoRetry(FlowException):
    """Raise inside a task to fail it at once, without the retries it has left."""


class TaskTimeout(FlowException):
    """The task ran longer than its ``execution_timeout``."""


class ConnectionNotFound(FlowException, KeyError):
    """No secrets backend knows the conn_id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "connection not found"


class VariableNotFound(FlowException, KeyError):
    """No secrets backend knows the variable key."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "variable not found"


class SerializationError(FlowException, TypeError):
    """A value cannot be stored as JSON (XCom, conf, params): the message names its type."""


class XComTooLarge(FlowException, ValueError):
    """An XCom value is larger than ``[core] max_xcom_size``."""


class FernetKeyMissing(FlowException):
    """A secret was about to be stored with no Fernet key configured."""
