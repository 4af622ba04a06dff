"""Task logs: one file per try, holding the operator's logging and the task's stdout/stderr.

Layout (under ``[logging] base_log_folder``, default ``$FLOW_HOME/logs``)::

    dag_id=D/run_id=R/task_id=T[/map_index=M]/attempt=N.log

While a try runs, a handler on the root logger writes every record of level INFO and above to
that file (so ``logging.info`` in a ``@task`` function and an operator's ``self.log`` both land
there), and ``sys.stdout``/``sys.stderr`` are replaced by writers that log each line. Every line
passes the secrets masker (:class:`flow.secrets.masking.MaskingFilter`), so a password the task
read is written as ``***``. Handlers that were on the root logger before keep printing only what
they printed before.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

LOG_FORMAT = "[%(asctime)s] {%(name)s} %(levelname)s - %(message)s"
# Looked up once per process: each lookup takes logging's lock.
_TASK_LOG = logging.getLogger("flow.task")
_STDOUT_LOG = logging.getLogger("flow.task.stdout")
_STDERR_LOG = logging.getLogger("flow.task.stderr")


def log_path(base_folder: str | Path, dag_id: str, run_id: str, task_id: str, map_index: int,
             try_number: int) -> Path:
    path = Path(base_folder) / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        path = path / f"map_index={map_index}"
    return path / f"attempt={try_number}.log"


def base_log_folder() -> str:
    from flow.config import load_config

    return str(load_config().get("logging", "base_log_folder"))


class _LineWriter(io.TextIOBase):
    """A text stream that sends each complete line to a logger.

    A partial line is held only up to ``MAX_PENDING`` characters, then logged as it is: a task
    that writes megabytes without a newline costs bounded memory, not its whole output.
    """

    MAX_PENDING = 65536

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self._logger = logger
        self._level = level
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if "\n" not in text and len(self._buffer) + len(text) < self.MAX_PENDING:
            self._buffer += text
            return len(text)
        lines = (self._buffer + text).split("\n")
        self._buffer = lines.pop()
        for line in lines:
            self._logger.log(self._level, line.rstrip("\r"))
        if len(self._buffer) >= self.MAX_PENDING:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            line, self._buffer = self._buffer, ""
            self._logger.log(self._level, line)


def _masking_filter() -> logging.Filter | None:
    try:
        from flow.secrets.masking import MaskingFilter
    except ImportError:  # the secrets package is optional for bare unit tests
        return None
    return MaskingFilter()


def _handler(stream_or_path: TextIO | Path) -> logging.Handler:
    if isinstance(stream_or_path, Path):
        stream_or_path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(stream_or_path, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream_or_path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    masking = _masking_filter()
    if masking is not None:
        handler.addFilter(masking)
    return handler


# The handler of the tries a supervisor's forked child runs: built once in the process they are
# forked from (see flow.builtin.executors.local_worker), pointed at each try's log stream.
_try_handler: list[logging.StreamHandler[TextIO]] = []


def _opened_log_handler(output: TextIO) -> logging.Handler:
    if not _try_handler:
        _try_handler.append(_handler(output))  # type: ignore[arg-type]
    handler = _try_handler[0]
    handler.stream = output  # the previous try's stream is not this process's to flush
    return handler


@contextlib.contextmanager
def capture_task_output(path: Path | str, echo: TextIO | None = None,
                        output: TextIO | None = None) -> Iterator[Path | str]:
    """Write the task's logging and output to ``path`` (and to ``echo``, e.g. the terminal).

    ``output``, when given, is ``path`` already open for appending (a supervised try's child,
    whose standard output and error are that file): written to as it is, with a handler built
    once per process rather than once per try."""
    root = logging.root
    previous_level = root.level
    quieted = [(h, h.level) for h in root.handlers if h.level < previous_level]
    for handler, _ in quieted:
        handler.setLevel(previous_level)
    handlers = [_opened_log_handler(output) if output is not None else _handler(Path(path))]
    if echo is not None:
        handlers.append(_handler(echo))
    for handler in handlers:
        root.addHandler(handler)
    # setLevel empties the cache of every logger (and, in a forked child, copies their pages):
    # only when the level changes.
    if previous_level > logging.INFO or previous_level == logging.NOTSET:
        root.setLevel(logging.INFO)
    task_logger = _TASK_LOG
    task_level = task_logger.level
    if task_level != logging.NOTSET:
        task_logger.setLevel(logging.NOTSET)
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = _LineWriter(_STDOUT_LOG, logging.INFO)
    sys.stderr = _LineWriter(_STDERR_LOG, logging.INFO)
    try:
        yield path
    finally:
        for writer in (sys.stdout, sys.stderr):
            writer.flush()
        sys.stdout, sys.stderr = stdout, stderr
        if task_logger.level != task_level:
            task_logger.setLevel(task_level)
        if root.level != previous_level:
            root.setLevel(previous_level)
        for handler in handlers:
            root.removeHandler(handler)
            if output is not None and handler is handlers[0]:
                handler.flush()
                handler.stream = None  # type: ignore[attr-defined]  # kept for the next try
            else:
                handler.close()
        for handler, level in quieted:
            handler.setLevel(level)
