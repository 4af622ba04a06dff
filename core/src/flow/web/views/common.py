"""Helpers of the pages: the acting user, flashing an action's outcome, safe redirects back."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request
from werkzeug.wrappers import Response

from flow.web.security import current_user, remote_addr, safe_next


def ui_action_kwargs() -> dict[str, Any]:
    user = current_user()
    assert user is not None
    from flask import current_app

    return {"actor": user.username, "source": "ui", "remote_addr": remote_addr(),
            "plugins": current_app.extensions["flow.plugins"]}


def back(default: str) -> Response:
    """Back to the page the form came from (a local path only), else ``default``."""
    target = request.form.get("next") or ""
    return redirect(safe_next(target) if target else default)


def run_action(func: Any, *args: Any, success: str, **kwargs: Any) -> Any:
    """Call one of flow.scheduling.actions, flashing its outcome or its error's message."""
    from flow.exceptions import FlowException
    from flow.web.errors import ApiError

    try:
        result = func(*args, **kwargs, **ui_action_kwargs())
    except (FlowException, ApiError) as err:
        flash(str(err.detail if isinstance(err, ApiError) else err), "error")
        return None
    flash(success, "success")
    return result
