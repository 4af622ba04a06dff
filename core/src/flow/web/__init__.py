"""flow's web UI and REST API (Flask). Plugins extend it from ``flow_web(app)``::

    from flow.web import access, menu_of

    bp = Blueprint("reports", __name__)

    @bp.get("/reports")
    @access(read="viewer")
    def index(): ...

    def flow_web(app):
        app.register_blueprint(bp)
        menu_of(app).add("Reports", "reports.index")

A plugin's route needs a login like every other; without ``@access`` it is readable by any
role and changeable by admins only.
"""

from __future__ import annotations

from flow.web.menu import Menu, MenuItem, menu_of
from flow.web.security import access, current_user

__all__ = ["Menu", "MenuItem", "access", "current_user", "menu_of"]
