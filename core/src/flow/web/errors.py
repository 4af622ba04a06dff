"""Errors as ``application/problem+json`` (RFC 9457) for the API, as a page for the UI."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, render_template, request
from werkzeug.exceptions import HTTPException

from flow.exceptions import ActionVetoed

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


class ApiError(Exception):
    """Raised by a view to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": "about:blank", "status": status, "title": title, "detail": detail, **extra}
    if not request.path.startswith("/api/") and request.accept_mimetypes.accept_html \
            and not request.headers.get("Authorization"):
        html = render_template("error.html", status=status, title=title, detail=detail)
        return Response(html, status=status, mimetype="text/html")
    return Response(json.dumps(body), status=status, mimetype=PROBLEM)


def forbidden(role: str) -> Response:
    return problem(403, "Forbidden",
                   f"this needs the {role!r} role or higher; ask an admin to change your role "
                   "(`flow users create --role`)")


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return problem(error.status, error.title, error.detail)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        detail = error.description or ""
        if status == 404:
            detail = f"nothing at {request.path}; check the URL"
        elif status == 405:
            detail = f"{request.method} is not allowed on {request.path}"
        response = problem(status, error.name, detail)
        if status == 405 and getattr(error, "valid_methods", None):
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(ActionVetoed)
    def vetoed(error: ActionVetoed) -> Response:
        # The action's changes were never committed; the request's session may still hold them.
        from flow.web.db import db

        db().rollback()
        return problem(503, "Action refused", str(error))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        from flow.exceptions import FlowException

        status = getattr(error, "status", None)
        if isinstance(error, FlowException) and isinstance(status, int) and 400 <= status < 500:
            titles = {400: "Bad Request", 404: "Not Found", 409: "Conflict"}
            return problem(status, titles.get(status, "Request refused"), str(error))
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return problem(500, "Internal Server Error",
                       "flow failed to answer; the web server's log has the traceback")
