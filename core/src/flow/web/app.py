"""The Flask application: ``create_app()`` builds the UI, the REST API and plugins' additions.

The web server never imports DAG files: it reads ``serialized_dag`` and ``dag_code`` rows.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import Flask, Response

from flow.web import db, errors, security
from flow.web.menu import Menu

if TYPE_CHECKING:
    from flow.config import Config
    from flow.plugins import PluginManager

log = logging.getLogger(__name__)

# No asset is fetched from elsewhere, and no inline script or style runs.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                           "script-src 'self'; object-src 'none'; frame-ancestors 'none'; "
                           "base-uri 'self'; form-action 'self'")


def create_app(config: Config | None = None, plugins: PluginManager | None = None) -> Flask:
    from flow.config import load_config
    from flow.plugins import current

    config = config or load_config()
    plugins = plugins or current()
    app = Flask("flow.web", template_folder="templates", static_folder="static")
    _configure(app, config)
    app.extensions["flow.config"] = config
    app.extensions["flow.plugins"] = plugins
    app.extensions["flow.menu"] = Menu()
    app.jinja_env.autoescape = True  # every template, whatever its file name
    db.init_app(app)
    errors.init_app(app)
    app.before_request(security.enforce)
    app.after_request(_security_headers)
    _register_blueprints(app)
    _template_globals(app)
    plugins.extend_web(app)
    return app


def _configure(app: Flask, config: Config) -> None:
    secret_key = str(config.get("webserver", "secret_key") or "")
    if not secret_key:
        log.warning("[webserver] secret_key is not set: sessions end when the web server "
                    "restarts; set it (FLOW__WEBSERVER__SECRET_KEY) to keep logins")
        secret_key = secrets.token_hex(32)
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_NAME="flow_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(config.get("webserver", "cookie_secure")),
        PERMANENT_SESSION_LIFETIME=timedelta(
            minutes=int(config.get("webserver", "session_lifetime_minutes"))),
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
        JSON_SORT_KEYS=False,
    )


def _register_blueprints(app: Flask) -> None:
    from flow.web.api import api_blueprint
    from flow.web.views import ui_blueprint

    app.register_blueprint(ui_blueprint)
    app.register_blueprint(api_blueprint, url_prefix="/api/v1")


def _template_globals(app: Flask) -> None:
    from flow.web import formatting

    @app.context_processor
    def globals_() -> dict[str, Any]:
        from flask import url_for

        user = security.current_user()
        menu = [item for item in app.extensions["flow.menu"].items
                if user is not None and user.can(item.role)]
        return {"current_user": user,
                "menu": [(item.label, url_for(item.endpoint)) for item in menu]}

    formatting.register_filters(app)
    # A global, not a context variable: imported macros do not see the context.
    app.jinja_env.globals["csrf_token"] = security.csrf_token


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response
