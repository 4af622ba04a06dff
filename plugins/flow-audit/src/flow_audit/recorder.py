"""Getting records into the chain without slowing what they record.

A hook only puts an :class:`~flow_audit.chain.Entry` in this process's buffer (a lock and a
list append). A writer thread appends the buffer in batches: at once for a user action, else
when ``[audit] batch_size`` records wait or ``[audit] flush_interval`` seconds passed. At a
clean exit the buffer is written before the process ends (``atexit``).

A forked child (where a try runs its operator under the local executor) ends with
``os._exit``, which runs no ``atexit`` handler, and its parent's writer thread does not exist in
it; nothing tells it that it is about to end. There each record is written before the hook
returns; records the parent buffered before the fork are the parent's to write. Such records are
few (a task's connection reads): the state changes come from the long-lived processes.

A failed write is logged and counted (``stats()``), and retried with a growing pause; the
buffer keeps at most ``[audit] max_buffer`` records, dropping (and counting) the oldest.
Nothing here raises into the hook that called it, but for one case: with ``[audit]
fail_closed``, a user action's record is written in the action's own transaction
(:meth:`Recorder.record_within`), and when it cannot be, ``ActionVetoed`` refuses the action.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from flow_audit.chain import Entry
from flow_audit.settings import AuditSettings

log = logging.getLogger(__name__)

@dataclass
class Stats:
    written: int = 0
    failed_writes: int = 0
    dropped: int = 0
    last_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"written": self.written, "failed_writes": self.failed_writes,
                "dropped": self.dropped, "last_error": self.last_error}


class Recorder:
    """This process's buffer and writer."""

    def __init__(self, settings: AuditSettings, *, forked: bool = False) -> None:
        self.settings = settings
        self.forked = forked
        self.stats = Stats()
        self._buffer: list[Entry] = []
        self._in_flight = 0
        self._urgent = False
        self._closed = False
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._engine: Any = None
        self._failures_in_a_row = 0
        self._write_lock = threading.Lock()  # one append at a time from this process
        self.pid = os.getpid()

    # ------------------------------------------------------------------------------ hooks

    def add(self, entry: Entry, *, urgent: bool = False) -> None:
        """Buffer ``entry``; ``urgent`` (a user action) wakes the writer at once. In a forked
        child it is written before this returns."""
        self._start_over_if_forked()
        with self._condition:
            if len(self._buffer) >= self.settings.max_buffer:
                self._buffer.pop(0)
                self.stats.dropped += 1
                if self.stats.dropped == 1 or self.stats.dropped % 1000 == 0:
                    log.error("audit buffer full (%d records): %d records dropped so far",
                              self.settings.max_buffer, self.stats.dropped)
            self._buffer.append(entry)
            if not self.forked:
                self._urgent = self._urgent or urgent
                self._start_writer()
                if urgent or len(self._buffer) >= self.settings.batch_size:
                    self._condition.notify_all()
                return
        self._write_pending()

    def record_within(self, transaction: Any, entry: Entry) -> None:
        """``[audit] fail_closed``: append a user action's record in the action's transaction
        (``transaction``, from ``flow_user_action``), so both commit or neither; raise
        :class:`flow.exceptions.ActionVetoed` when it cannot be written, and flow rolls the
        action back. Not buffered, and not behind the writer's lock: on SQLite that writer may
        be waiting for the very write lock this transaction holds."""
        from flow.exceptions import ActionVetoed
        from flow_audit import store

        self._start_over_if_forked()
        try:
            if transaction is None:  # a caller with no transaction: a commit of our own
                store.append(self._engine_for_writes(), [entry], self.settings.hmac_key)
            else:
                store.append_within(transaction, [entry], self.settings.hmac_key)
        except Exception as err:
            summary = _summary(err)
            with self._condition:
                self.stats.failed_writes += 1
                self.stats.last_error = summary
            log.error("flow-audit could not write the record of %s, so [audit] fail_closed "
                      "refuses it (%d failed writes so far): %s", entry.action,
                      self.stats.failed_writes, summary)
            if transaction is not None:
                store.forget_engine(transaction.engine)  # check the tables again next time
            raise ActionVetoed(
                f"its audit record cannot be written ({type(err).__name__}) and [audit] "
                "fail_closed = true refuses what cannot be recorded; the log of this "
                "process says why, `flow audit verify` checks the chain") from err
        with self._condition:
            self.stats.written += 1

    def prepare(self) -> None:
        """Pay the first write's costs now: the engine, the tables and a pooled connection
        (``flow_component_started``), rather than in the middle of the work being recorded.
        A failure is logged; the first write tries again."""
        self._start_over_if_forked()
        if self.forked:
            return  # a try's child writes its few records itself, when it has any
        try:
            from flow_audit import store

            store.ensure_tables(self._engine_for_writes())
        except Exception as err:
            log.warning("flow-audit could not prepare its tables; the first record will try "
                        "again: %s", _summary(err))
            if self._engine is not None:
                from flow_audit import store

                store.forget_engine(self._engine)

    # ------------------------------------------------------------------------------ writing

    def _start_writer(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="flow-audit-writer",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._buffer and not self._closed:
                    self._condition.wait()
                if not self._buffer and self._closed:
                    return
                deadline = time.monotonic() + self.settings.flush_interval
                while (not self._urgent and not self._closed
                       and len(self._buffer) < self.settings.batch_size):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._condition.wait(remaining)
                self._urgent = False
            if not self._write_pending():
                if self._closed:
                    return  # close() tries once more and counts what is left
                pause = min(5.0, 0.1 * 2 ** min(self._failures_in_a_row, 6))
                with self._condition:
                    self._condition.wait(pause)

    def _write_pending(self) -> bool:
        """Append everything buffered; on failure put it back in front. True if written."""
        with self._write_lock:
            with self._condition:
                batch, self._buffer = self._buffer, []
                self._in_flight = len(batch)
            if not batch:
                return True
            try:
                from flow_audit import store

                store.append(self._engine_for_writes(), batch, self.settings.hmac_key)
            except Exception as err:
                self._failed(batch, err)
                return False
            with self._condition:
                self.stats.written += len(batch)
                self._in_flight = 0
                self._failures_in_a_row = 0
                self._condition.notify_all()
            return True

    def _failed(self, batch: list[Entry], err: Exception) -> None:
        with self._condition:
            self._buffer[:0] = batch
            self._in_flight = 0
            self._failures_in_a_row += 1
            self.stats.failed_writes += 1
            self.stats.last_error = _summary(err)
            overflow = len(self._buffer) - self.settings.max_buffer
            if overflow > 0:
                del self._buffer[:overflow]
                self.stats.dropped += overflow
            self._condition.notify_all()
        log.error("flow-audit could not write %d audit record(s) (%d failed writes so far, "
                  "%d records waiting): %s", len(batch), self.stats.failed_writes,
                  len(self._buffer), self.stats.last_error)
        if self._engine is not None:
            from flow_audit import store

            store.forget_engine(self._engine)  # check the tables again next time

    def _engine_for_writes(self) -> Any:
        if self._engine is None:
            from flow_audit.store import writer_engine

            self._engine = writer_engine()
        return self._engine

    # --------------------------------------------------------------------------- control

    def pending(self) -> int:
        self._start_over_if_forked()
        with self._condition:
            return len(self._buffer) + self._in_flight

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything buffered; True when nothing is left within ``timeout``."""
        self._start_over_if_forked()
        if self.forked or self._thread is None or not self._thread.is_alive():
            return self._write_pending() and self.pending() == 0
        deadline = time.monotonic() + timeout
        with self._condition:
            self._urgent = True
            self._condition.notify_all()
            while self._buffer or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(min(remaining, 0.05))
                if self._failures_in_a_row:
                    return False
        return True

    def close(self) -> None:
        """Write what is left (up to ``[audit] shutdown_timeout``) and stop the writer."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(self.settings.shutdown_timeout)
        if self.pending() and not self._write_pending():
            left = self.pending()
            self.stats.dropped += left
            log.error("flow-audit: %d audit record(s) could not be written before exit: %s",
                      left, self.stats.last_error)
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _start_over_if_forked(self) -> None:
        """In a forked child, start over: the parent's buffer, thread and connections are the
        parent's. Done at the child's first use rather than at the fork, which most children
        (a try each) would pay for and never use."""
        if self.pid == os.getpid():
            return
        self.forked = True
        self.pid = os.getpid()
        self._condition = threading.Condition()
        self._write_lock = threading.Lock()
        self._buffer, self._in_flight, self._urgent = [], 0, False
        self._thread = None
        self.stats = Stats()
        if self._engine is not None:
            self._engine.dispose(close=False)  # the parent's connections stay open for it
            from flow_audit import store

            store.forget_engine(self._engine)
            self._engine = None


def _summary(err: Exception) -> str:
    # The error's type and first line only: a driver message can quote a statement's
    # parameters, which are the records themselves.
    first_line = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
    return f"{type(err).__name__}: {first_line}"


_recorder: Recorder | None = None
_lock = threading.Lock()


def recorder() -> Recorder:
    """The process's recorder, configured from ``[audit]`` on first use."""
    global _recorder
    current = _recorder
    if current is not None:
        return current
    with _lock:
        if _recorder is None:
            from flow_audit import _process

            _recorder = Recorder(AuditSettings.load(), forked=_process.forked)
        return _recorder


def settings() -> AuditSettings:
    return recorder().settings


def reset() -> None:
    """Write and stop this process's recorder; the next event reads ``[audit]`` again."""
    global _recorder
    with _lock:
        current, _recorder = _recorder, None
    if current is not None:
        current.close()


def after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork


def _close_at_exit() -> None:
    current = _recorder
    if current is not None and current.pid == os.getpid():
        current.close()


atexit.register(_close_at_exit)
