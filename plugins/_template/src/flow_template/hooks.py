"""A hook for the plugin's own connection type (``template_greeting``).

A connection of that type comes from ``FLOW_CONN_<ID>`` (e.g.
``{"conn_type": "template_greeting", "host": "greetings.example.com", "password": "...",
"extra": {"salutation": "Howdy"}}``), the database or a
secrets backend; its password (the API key) is masked in logs once read.
"""

from __future__ import annotations

from flow import BaseHook

DEFAULT_CONN_ID = "template_default"


class GreetingHook(BaseHook):
    """Builds greetings the way the configured service says to."""

    def salutation(self) -> str:
        return str(self.connection.extra_dejson.get("salutation") or "Hello")

    def greet(self, name: str) -> str:
        return f"{self.salutation()}, {name}!"

    def test_connection(self) -> tuple[bool, str]:
        if not self.connection.host:
            return False, f"connection {self.connection.conn_id!r} has no host"
        return True, f"greetings from {self.connection.host}"
