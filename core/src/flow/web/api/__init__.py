"""The REST API under ``/api/v1``: JSON in and out, errors as problem documents."""

from __future__ import annotations

from flask import Blueprint

from flow.web.api.registry import ApiRegistry

api_blueprint = Blueprint("api", __name__)
routes = ApiRegistry(api_blueprint)

# The resource modules declare their routes on ``routes`` when imported.
from flow.web.api import admin, dags, runs, task_instances  # noqa: E402, F401

__all__ = ["api_blueprint", "routes"]
