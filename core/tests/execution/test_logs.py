"""Capturing a try's output: to a path, or to a log file its process already holds open."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from flow.execution.logs import capture_task_output
from flow.secrets.masking import mask_secret, reset_masker


def test_tries_captured_into_open_files_each_write_only_to_their_own(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers = list(root.handlers)
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    try:
        mask_secret("hunter2-secret")
        with open(first, "a", encoding="utf-8") as output, \
                capture_task_output(first, None, output):
            logging.getLogger("flow.task").info("one %s", "hunter2-secret")
            print("printed by the first")
        with open(second, "a", encoding="utf-8") as output, \
                capture_task_output(second, None, output):
            logging.getLogger("flow.task.operators.X").warning("two")
            print("printed by the second", file=sys.stderr)
    finally:
        reset_masker()

    one, two = first.read_text(), second.read_text()
    assert "{flow.task} INFO - one ***" in one and "hunter2" not in one
    assert "{flow.task.stdout} INFO - printed by the first" in one
    assert "two" not in one and "printed by the second" not in one
    assert "{flow.task.operators.X} WARNING - two" in two
    assert "{flow.task.stderr} INFO - printed by the second" in two
    assert "one" not in two
    assert root.handlers == handlers


def test_a_capture_into_a_path_makes_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "dag_id=d" / "run_id=r" / "task_id=t" / "attempt=1.log"
    with capture_task_output(path):
        logging.getLogger("flow.task").info("made")
    assert "{flow.task} INFO - made" in path.read_text()
