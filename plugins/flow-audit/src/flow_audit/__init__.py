"""flow-audit: a tamper-evident audit trail of flow's user actions, connection reads and,
optionally, state changes. Importing it imports nothing heavy."""

from __future__ import annotations

__version__ = "0.1.0"
