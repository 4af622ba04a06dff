"""The event log: what people and scripts did, from the UI, the REST API and the CLI alike.

:func:`record_user_action` writes one ``event_log`` row and tells plugins through
``flow_user_action``, both in the action's transaction, where a plugin may refuse the action
(:class:`~flow.exceptions.ActionVetoed`). Secrets never reach either: a detail whose name looks
sensitive (password, secret, token, key, ...) becomes ``***``, and every secret the process's
masker knows is replaced inside the other values.
"""

from __future__ import annotations

import getpass
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from flow.secrets.masking import masker
from flow.store.models import EventLog
from flow.store.session import session_scope

if TYPE_CHECKING:
    from flow.plugins import PluginManager

log = logging.getLogger(__name__)

SOURCES = ("ui", "api", "cli", "scheduler", "task")


def os_user() -> str:
    """The operating-system user running this process: the actor of CLI actions."""
    try:
        return getpass.getuser()
    except Exception:  # no USER variable and no passwd entry (some containers)
        return "unknown"


def redact_details(details: dict[str, Any] | None) -> dict[str, Any]:
    redacted = masker().redact_value(dict(details or {}))
    assert isinstance(redacted, dict)
    return redacted


def record_user_action(actor: str, action: str, target: str,
                       details: dict[str, Any] | None = None, *, source: str,
                       plugins: PluginManager | None = None,
                       session: Session | None = None) -> EventLog:
    """Record that ``actor`` did ``action`` (``"connection.create"``, ``"dag.pause"``) to
    ``target`` (a conn_id, a dag_id, ...), and call ``flow_user_action`` in the same
    transaction.

    With ``session`` the row joins the caller's transaction (flushed, not committed): call it
    after the action's changes and before the commit, so the action and its record commit
    together. Without one, the row is written in a transaction of its own.

    A listener may refuse the action: then :class:`~flow.exceptions.ActionVetoed` (naming the
    plugin) is raised here, and the caller must roll back (``session_scope`` does). Every
    other exception of a listener is logged and ignored. ``details`` may name ``dag_id``,
    ``run_id`` and ``task_id``, which get columns of their own.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if plugins is None:
        from flow.plugins import current

        plugins = current()
    if session is not None:
        return _record(session, actor, action, target, details, source, plugins)
    with session_scope() as own:
        return _record(own, actor, action, target, details, source, plugins)


def _record(session: Session, actor: str, action: str, target: str,
            details: dict[str, Any] | None, source: str, plugins: PluginManager) -> EventLog:
    safe = redact_details(details)
    row = EventLog(actor=actor[:500], action=action, source=source, target=target[:2000],
                   dag_id=_text(safe.get("dag_id")), run_id=_text(safe.get("run_id")),
                   task_id=_text(safe.get("task_id")), details=safe)
    session.add(row)
    session.flush()
    plugins.user_action(actor, action, target, {**safe, "source": source}, session=session)
    return row


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
