"""A local executor worker rehearses a try's output capture before it forks: that must leave
nothing behind in the worker (its streams, its loggers, its files)."""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import pytest

from flow.builtin.executors.local_worker import _rehearse_try_output


def test_the_rehearsal_leaves_the_workers_streams_loggers_and_files_as_they_were(
        capfd: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    root = logging.getLogger()
    before = (sys.stdout, sys.stderr, list(root.handlers), root.level,
              logging.getLogger("flow.task").level)

    _rehearse_try_output()

    assert (sys.stdout, sys.stderr, list(root.handlers), root.level,
            logging.getLogger("flow.task").level) == before
    assert list(tmp_path.iterdir()) == []  # the scratch log is gone
    out, err = capfd.readouterr()
    assert "rehearsal" not in out + err
