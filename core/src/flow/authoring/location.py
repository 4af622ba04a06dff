"""Where in the user's code a DAG, task or dependency was defined.

Every definition error names a file and line, so constructors record the first frame outside
flow's own package. This runs for every task a DAG file creates: it walks a few frames and does
nothing else.
"""

from __future__ import annotations

import os
import sys

_FLOW_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# Frames of these stdlib helpers sit between flow and the user's code (decorators, `with`).
_PASS_THROUGH = ("contextlib.py", "functools.py")


def user_location(depth: int = 1) -> tuple[str, int]:
    """(absolute file, line) of the innermost frame that is not flow's own code."""
    frame = sys._getframe(depth)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_FLOW_PACKAGE_DIR) and not filename.endswith(_PASS_THROUGH):
            return _absolute(filename), frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>", 0


_absolute_cache: dict[str, str] = {}


def _absolute(filename: str) -> str:
    path = _absolute_cache.get(filename)
    if path is None:
        path = filename if filename.startswith("<") else os.path.abspath(filename)
        _absolute_cache[filename] = path
    return path
