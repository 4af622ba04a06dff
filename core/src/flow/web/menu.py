"""The navigation menu, and the small API plugins use from ``flow_web(app)`` to add to it."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask


@dataclass(frozen=True)
class MenuItem:
    label: str
    endpoint: str  # a Flask endpoint, e.g. "my_plugin.index"
    role: str = "viewer"  # shown to users with this role or higher


CORE_MENU = (
    MenuItem("DAGs", "ui.dag_list"),
    MenuItem("Connections", "ui.connection_list"),
    MenuItem("Variables", "ui.variable_list"),
    MenuItem("Pools", "ui.pool_list"),
    MenuItem("Plugins", "ui.plugin_list"),
    MenuItem("Event log", "ui.event_log"),
    MenuItem("Users", "ui.user_list", role="admin"),
)


class Menu:
    """The menu of one app: ``flow.web.menu_of(app).add("Reports", "reports.index")``."""

    def __init__(self) -> None:
        self.items: list[MenuItem] = list(CORE_MENU)

    def add(self, label: str, endpoint: str, role: str = "viewer") -> MenuItem:
        from flow.web.users import role_rank

        role_rank(role)
        item = MenuItem(label, endpoint, role)
        self.items.append(item)
        return item


def menu_of(app: Flask) -> Menu:
    menu: Menu = app.extensions["flow.menu"]
    return menu
