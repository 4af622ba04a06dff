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


@contextlib.contextmanager
def capture_task_output(path: Path, echo: TextIO | None = None) -> Iterator[Path]:
    """Write the task's logging and output to ``path`` (and to ``echo``, e.g. the terminal)."""
    root = logging.getLogger()
    previous_level = root.level
    quieted = [(h, h.level) for h in root.handlers if h.level < previous_level]
    for handler, _ in quieted:
        handler.setLevel(previous_level)
    handlers = [_handler(path)]
    if echo is not None:
        handlers.append(_handler(echo))
    for handler in handlers:
        root.addHandler(handler)
    # setLevel empties the cache of every logger (and, in a forked child, copies their pages):
    # only when the level changes.
    if previous_level > logging.INFO or previous_level == logging.NOTSET:
        root.setLevel(logging.INFO)
    task_logger = logging.getLogger("flow.task")
    task_level = task_logger.level
    if task_level != logging.NOTSET:
        task_logger.setLevel(logging.NOTSET)
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = _LineWriter(logging.getLogger("flow.task.stdout"), logging.INFO)
    sys.stderr = _LineWriter(logging.getLogger("flow.task.stderr"), logging.INFO)
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
            handler.close()
        for handler, level in quieted:
            handler.setLevel(level)
