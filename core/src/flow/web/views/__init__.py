"""The server-rendered pages (Jinja, autoescaped)."""

from __future__ import annotations

from flask import Blueprint

ui_blueprint = Blueprint("ui", __name__)

# The page modules declare their routes on ``ui_blueprint`` when imported.
from flow.web.views import admin, auth, dag, dags, task  # noqa: E402, F401

__all__ = ["ui_blueprint"]
