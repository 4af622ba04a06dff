"""What a supervised try asks its supervisor instead of the metadata database.

A try's process (see :mod:`flow.execution.supervisor`) has two pipes to its supervisor: it
writes JSON lines on its result pipe (the try's end) and reads them on its command pipe (its
workload, the go, the committed state). Over the same pipes it sends requests, one at a time,
and reads each answer before it goes on: ``{"request": "xcom_get", ...}`` is answered with
``{"value": ...}`` or ``{"error": "..."}``. The supervisor answers from its own pooled
connection, so a try that reads its upstream tasks' XComs neither connects to the database nor
runs the ORM in its own process: in a forked child, that first connection and the cold query
path copied thousands of the worker's pages, about 18 ms of CPU per try.

The same goes for the database secrets backend: ``{"request": "variable_get", "key": ...}``
and ``{"request": "connection_get", "conn_id": ...}`` are answered with the stored variable and
the decrypted connection (:func:`ask`), so a try that uses a hook does not connect either.

The supervisor listens until the try's end is reported, and after it, until the process
exits, when the try has callbacks to run. When it is gone (the try outlived its worker) or no
longer listens, :class:`SupervisorGone` is raised and the caller reads the database itself, as
an unsupervised try does.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from typing import Any


class SupervisorGone(Exception):
    """The supervisor cannot answer any more: read the database directly."""


class Lines:
    """Blocking JSON lines from a file descriptor (a child's command pipe)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def next(self) -> dict[str, Any] | None:
        while b"\n" not in self.buffer:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        value = json.loads(line.decode())  # (bytes would have their encoding detected first)
        return value if isinstance(value, dict) else None


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class SupervisorChannel:
    """A supervised try's requests to its supervisor (in the try's process)."""

    def __init__(self, result_fd: int, commands: Lines) -> None:
        self.result_fd = result_fd
        self.commands = commands
        self.open = True

    def request(self, op: str, **arguments: Any) -> Any:
        """Send one request and wait for its answer; its ``value``, or :class:`SupervisorGone`,
        or a :class:`RuntimeError` with the supervisor's error.

        Only the try's main thread asks (another thread gets :class:`SupervisorGone` and reads
        the database): one exchange at a time, and only the main thread may ignore the
        ``SIGPIPE`` of a supervisor that died. An exchange cut short (the task's timeout
        raised in the middle of it) closes the channel, since its answer would be read as the
        next one's."""
        if not self.open or threading.current_thread() is not threading.main_thread():
            raise SupervisorGone(op)
        previous = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        answer: dict[str, Any] | None = None
        try:
            write_all(self.result_fd, (json.dumps({"request": op, **arguments}) + "\n").encode())
            answer = self.commands.next()
        except OSError:
            answer = None
        except BaseException:
            self.open = False
            raise
        finally:
            signal.signal(signal.SIGPIPE, previous)
        if answer is None or ("value" not in answer and "error" not in answer):
            self.open = False
            raise SupervisorGone(op)
        if "error" in answer:
            raise RuntimeError(f"the supervisor could not answer {op}: {answer['error']}")
        return answer["value"]

    def ask(self, op: str, **arguments: Any) -> tuple[bool, Any]:
        """``(True, answer)``, or ``(False, None)`` when the supervisor cannot be asked."""
        try:
            return True, self.request(op, **arguments)
        except SupervisorGone:
            return False, None

    def close(self) -> None:
        """No more requests: the try's end is reported (the pipes then carry the state)."""
        self.open = False

    def install(self) -> None:
        """Make this the channel :func:`ask` uses in this process (a try's own process)."""
        global _current
        _current = self


_current: SupervisorChannel | None = None


def ask(op: str, **arguments: Any) -> tuple[bool, Any]:
    """``(True, answer)`` from the supervisor of the try running in this process, or
    ``(False, None)`` when there is none to ask (the caller reads the database itself)."""
    return (False, None) if _current is None else _current.ask(op, **arguments)
