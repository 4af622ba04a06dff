"""The builtin sequential executor passes the executor suite, strictly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flow.testing import ExecutorConformance


class TestSequentialExecutor(ExecutorConformance):
    # One child process per try: isolation and cancel (terminate the child). No parallelism
    # beyond one, no adoption: a new instance cannot see the old one's children.
    claims = {"cancel", "isolation", "timeouts", "parallelism"}
    distribution = "flow-core"

    @pytest.fixture
    def executor_factory(self) -> Callable[[int], Any]:
        from flow.builtin.executors.sequential import SequentialExecutor

        return lambda parallelism: SequentialExecutor(parallelism=parallelism)
