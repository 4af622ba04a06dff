"""Who may do what: login, roles, CSRF and the access rule every route declares.

Every request passes :func:`enforce` before its view runs. A view declares its rule with
:func:`access` (the role needed to read, the role needed to change, or ``public``); a view that
declares nothing — a plugin's, say — still needs a login, any role to read and admin to change,
so forgetting a declaration never opens a route.

Browsers authenticate with the session cookie, scripts with ``Authorization: Bearer <token>``.
A state-changing request authenticated by the cookie must carry the session's CSRF token (form
field ``csrf_token`` or header ``X-CSRF-Token``); a bearer token is not sent by the browser on
its own, so bearer requests need none.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Response, current_app, g, redirect, request, session, url_for

from flow.web.users import AuthenticatedUser, password_fingerprint, user_for_token

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Access:
    read: str = "viewer"
    write: str = "admin"
    public: bool = False

    def role_for(self, method: str) -> str:
        return self.read if method in SAFE_METHODS else self.write


DEFAULT_ACCESS = Access()
PUBLIC = Access(public=True)


def access(read: str = "viewer", write: str = "admin", *, public: bool = False
           ) -> Callable[[F], F]:
    """Declare who may call a view: ``read`` for GET/HEAD, ``write`` for other methods."""
    rule = Access(read, write, public)

    def decorate(view: F) -> F:
        view.flow_access = rule  # type: ignore[attr-defined]
        return view

    return decorate


def access_of(endpoint: str | None) -> Access:
    if endpoint is None:
        return DEFAULT_ACCESS
    if endpoint == "static" or endpoint.endswith(".static"):
        return PUBLIC  # CSS and JS of the login page; nothing secret is shipped as a static file
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "flow_access", DEFAULT_ACCESS)


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def csrf_token() -> str:
    """The session's CSRF token (made on first use); templates put it in every form."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def _csrf_ok() -> bool:
    expected = session.get("csrf")
    given = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    return bool(expected) and hmac.compare_digest(str(expected), str(given))


def current_user() -> AuthenticatedUser | None:
    user: AuthenticatedUser | None = g.get("user")
    return user


def _load_user() -> tuple[AuthenticatedUser | None, str]:
    """The user of this request and how they authenticated ("bearer", "session" or "")."""
    from flow.store.models import User
    from flow.web.db import db

    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        user = user_for_token(db(), header[7:].strip())
        db().commit()  # last_used_at
        return (_authenticated(user) if user else None), "bearer"
    user_id = session.get("user_id")
    if user_id is None:
        return None, ""
    row = db().get(User, user_id)
    if row is None or not row.active or session.get("pw") != password_fingerprint(
            row.password_hash):
        session.clear()
        return None, ""
    return _authenticated(row), "session"


def _authenticated(row: Any) -> AuthenticatedUser:
    return AuthenticatedUser(row.id, row.username, row.role)


def enforce() -> Response | None:
    """The before-request check: login, role and CSRF (see the module docstring)."""
    if "\x00" in request.path or any("\x00" in v for v in request.args.values()):
        from flow.web.errors import problem

        # No database stores a NUL inside text (PostgreSQL refuses it): say so, not 500.
        return problem(400, "Bad Request", "the URL contains a NUL character; remove it")
    rule = access_of(request.endpoint)
    if rule.public and request.endpoint is not None:
        if request.method not in SAFE_METHODS and not _csrf_ok():
            return _csrf_refused()
        return None
    user, how = _load_user()
    g.user = user
    if user is None:
        return _unauthenticated(bearer=how == "bearer")
    if request.endpoint is None:
        return None  # let the 404 through, after the login check
    role = rule.role_for(request.method)
    if not user.can(role):
        from flow.web.errors import forbidden

        return forbidden(role)
    if how == "session" and request.method not in SAFE_METHODS and not _csrf_ok():
        return _csrf_refused()
    return None


def _unauthenticated(*, bearer: bool) -> Response:
    from flow.web.errors import problem

    if is_api_request() or bearer:
        detail = ("the bearer token is unknown, expired or belongs to an inactive user; make a "
                  "new one with `flow users token create USER`" if bearer else
                  "log in, or send 'Authorization: Bearer <token>' (make a token with "
                  "`flow users token create USER`)")
        response = problem(401, "Authentication required", detail)
        response.headers["WWW-Authenticate"] = 'Bearer realm="flow"'
        return response
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("ui.login", next=target))  # type: ignore[return-value]


def _csrf_refused() -> Response:
    from flow.web.errors import problem

    return problem(400, "CSRF token missing or wrong",
                   "the form is stale or came from another site: reload the page and try again")


def safe_next(target: str | None) -> str:
    """Where to go after login: a local path only, never another site (no open redirect)."""
    default = url_for("ui.dag_list")
    if not target:
        return default
    target = target.replace("\\", "/")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if any(ord(ch) < 32 for ch in target):
        return default
    return target


def log_in(user: Any) -> None:
    """Start a fresh session (a new CSRF token too, so a planted session is useless)."""
    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    session["pw"] = password_fingerprint(user.password_hash)
    csrf_token()


def remote_addr() -> str:
    return request.remote_addr or ""
