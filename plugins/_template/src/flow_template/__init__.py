"""flow-template: an example flow plugin. Importing it imports nothing heavy."""

from __future__ import annotations

__version__ = "0.1.0"
