"""Login, logout, and the unauthenticated health check."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, jsonify, redirect, render_template, request, session, url_for

from flow.web import data
from flow.web.db import db
from flow.web.security import access, log_in, remote_addr, safe_next
from flow.web.views import ui_blueprint

log = logging.getLogger(__name__)


def _record(actor: str, action: str, *, in_request_session: bool = False) -> None:
    """Record a login in the request's session (``in_request_session``, committed by the
    caller: a plugin may refuse the login), or a failed login or a logout in a transaction of
    its own, which a plugin cannot refuse: there is nothing to undo, so its veto is logged."""
    from flow.exceptions import ActionVetoed
    from flow.store.event_log import record_user_action

    plugins = current_app.extensions["flow.plugins"]
    details = {"remote_addr": remote_addr()}
    if in_request_session:
        record_user_action(actor, action, actor, details, source="ui", plugins=plugins,
                           session=db())
        return
    try:
        record_user_action(actor, action, actor, details, source="ui", plugins=plugins)
    except ActionVetoed as veto:
        log.warning("plugin %s refused %s of %r, which cannot be undone and stands: %s",
                    veto.plugin, action, actor, veto.reason)


@ui_blueprint.route("/login", methods=["GET", "POST"])
@access(public=True)
def login() -> Any:
    from flow.exceptions import ActionVetoed
    from flow.web.users import authenticate

    next_url = request.values.get("next", "")
    if request.method == "GET":
        return render_template("login.html", next=next_url, error=None)
    username = request.form.get("username", "").strip()[:256]
    user = authenticate(db(), username, request.form.get("password", ""))
    if user is None:
        db().rollback()
        _record(username or "(empty)", "user.login_failed")
        return render_template("login.html", next=next_url,
                               error="Wrong username or password."), 401
    try:
        _record(user.username, "user.login", in_request_session=True)
    except ActionVetoed as veto:
        db().rollback()
        return render_template("login.html", next=next_url, error=str(veto)), 503
    db().commit()
    log_in(user)
    return redirect(safe_next(next_url))


@ui_blueprint.post("/logout")
@access(read="viewer", write="viewer")
def logout() -> Any:
    from flow.web.security import current_user

    user = current_user()
    session.clear()
    if user is not None:
        _record(user.username, "user.logout")
    return redirect(url_for("ui.login"))


@ui_blueprint.get("/")
@access(read="viewer")
def index() -> Any:
    return redirect(url_for("ui.dag_list"))


@ui_blueprint.get("/health")
@access(public=True)
def health() -> Any:
    from flow.store.session import session_scope

    document, status = data.health(session_scope)
    return jsonify(document), status

