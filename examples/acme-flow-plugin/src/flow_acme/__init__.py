"""flow-acme: Acme's shared flow operators. Importing it imports nothing heavy."""

from __future__ import annotations

__version__ = "1.4.0"
