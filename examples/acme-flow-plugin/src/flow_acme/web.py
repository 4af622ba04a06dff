"""A page in flow's web UI: Acme's operators and what they do.

A plain Flask blueprint. In flow's web server it sits behind the login like every page (with
``flow.web.access``) and gets a menu entry; in any other Flask app it is just a page.
"""

from __future__ import annotations

from html import escape
from typing import Any

from flask import Blueprint

blueprint = Blueprint("acme", __name__, url_prefix="/acme")


@blueprint.get("/")
def index() -> str:
    from flow_acme.plugin import flow_operators

    rows = "".join(f"<tr><td>{escape(spec.name)}</td><td>{escape(spec.description)}</td></tr>"
                   for spec in flow_operators())
    return (f"<h1>Acme operators</h1><table><tr><th>Operator</th><th>What it does</th></tr>"
            f"{rows}</table>")


def register(app: Any) -> None:
    if "flow.menu" in app.extensions:  # flow's own web server
        from flow.web import access, menu_of

        access(read="viewer")(index)
        menu_of(app).add("Acme", "acme.index")
    app.register_blueprint(blueprint)
