"""Wake the schedulers of this machine at once after a user action, instead of letting the
change wait for their next look at the database.

A scheduler sleeps only when it has nothing to do, waiting on its executor's events and on a
wake-up socket (:class:`Waker`): a Unix datagram socket in the abstract namespace named after
its process and job (``flow-scheduler-<pid>-<job id>``). What a person does (trigger a run,
unpause a DAG, clear or mark task instances) lands in the database from another process: the
CLI, the web server, ``flow dags trigger``. After committing such an action,
:func:`wake_schedulers` sends one datagram to each scheduler of this machine whose job is alive,
and that scheduler runs a loop iteration at once.

Schedulers on other machines are not woken: they see the change at their next look, at most
``[scheduler] idle_sleep`` later. A wake-up that cannot be delivered is dropped; it is never an
error of the action.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
from typing import Any


def _address(pid: int, job_id: int) -> bytes:
    return f"\0flow-scheduler-{pid}-{job_id}".encode()


def wake_schedulers(engine: Any = None) -> int:
    """Wake the live schedulers of this machine; returns how many were reached."""
    try:
        return _wake(engine)
    except Exception:  # a wake-up is an optimisation: the schedulers look anyway
        return 0


def _wake(engine: Any) -> int:
    from sqlalchemy import select as sql_select

    from flow.store.models import Job
    from flow.store.session import get_engine, session_scope

    with session_scope(engine or get_engine()) as session:
        jobs = session.execute(sql_select(Job.id, Job.pid).where(
            Job.job_type == "scheduler", Job.state == "running",
            Job.hostname == socket.gethostname())).all()
    if not jobs:
        return 0
    reached = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for job_id, pid in jobs:
            if pid is None:
                continue
            with contextlib.suppress(OSError):  # not listening (gone, or not this flow)
                sender.sendto(b"\0", _address(pid, job_id))
                reached += 1
    return reached


class Waker:
    """A scheduler's wake-up socket; :meth:`wait` sleeps until it, or another descriptor, is
    readable."""

    def __init__(self, job_id: int) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        self.listening = True
        try:
            self.socket.bind(_address(os.getpid(), job_id))
        except OSError:  # taken: woken by nobody, the scheduler still looks every idle_sleep
            self.listening = False

    def wait(self, other: int, timeout: float) -> bool:
        """Until ``other`` or the wake-up socket is readable, or ``timeout`` seconds; True when
        woken up (the socket is drained)."""
        with contextlib.suppress(InterruptedError):
            select.select([other, self.socket], [], [], timeout)
        woken = False
        with contextlib.suppress(BlockingIOError, OSError):
            while self.socket.recv(64):
                woken = True
        return woken

    def close(self) -> None:
        self.socket.close()
