"""The event log: what people and scripts did, from the UI, the REST API and the CLI alike.

:func:`record_user_action` writes one ``event_log`` row and tells plugins through
``flow_user_action``. Secrets never reach either: a detail whose name looks sensitive
(password, secret, token, key, ...) becomes ``***``, and every secret the process's masker knows
is replaced inside the other values.
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
    ``target`` (a conn_id, a dag_id, ...), then call ``flow_user_action``.

    With ``session`` the row joins the caller's transaction (flushed, not committed) so the
    action and its record commit together; without one it is committed at once. ``details``
    may name ``dag_id``, ``run_id`` and ``task_id``, which get columns of their own.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    safe = redact_details(details)
    row = EventLog(actor=actor[:500], action=action, source=source, target=target[:2000],
                   dag_id=_text(safe.get("dag_id")), run_id=_text(safe.get("run_id")),
                   task_id=_text(safe.get("task_id")), details=safe)
    if session is not None:
        session.add(row)
        session.flush()
    else:
        with session_scope() as own:
            own.add(row)
    if plugins is None:
        from flow.plugins import current

        plugins = current()
    plugins.user_action(actor, action, target, {**safe, "source": source})
    return row


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
