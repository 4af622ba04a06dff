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


class ActionVetoed(FlowException):
    """A plugin refused a user action from its ``flow_user_action`` hook; the action was rolled
    back and nothing of it was committed.

    A plugin raises it with the reason only (``raise ActionVetoed("the audit trail cannot be
    written")``); flow adds the plugin, its distribution, the action and its target before the
    caller sees it. The web UI shows the message, the REST API answers 503 with it, the CLI
    prints it and exits 1.

    Since: 0.2.0
    """

    status = 503

    def __init__(self, reason: str, *, plugin: str | None = None,
                 distribution: str | None = None, action: str | None = None,
                 target: str | None = None) -> None:
        self.reason = reason
        self.plugin = plugin
        self.distribution = distribution
        self.action = action
        self.target = target
        super().__init__(reason)

    def refused_by(self, plugin: str, distribution: str | None, action: str,
                   target: str) -> ActionVetoed:
        """The same refusal, naming who refused what."""
        return ActionVetoed(self.reason, plugin=plugin, distribution=distribution,
                            action=action, target=target)

    def __str__(self) -> str:
        if self.plugin is None:
            return self.reason
        who = f"plugin {self.plugin!r}" + (f" ({self.distribution})" if self.distribution
                                            else "")
        what = f"{self.action} of {self.target!r}" if self.target else str(self.action)
        return f"{what} was refused by {who} and nothing was changed: {self.reason}"
