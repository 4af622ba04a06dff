"""The builtin local executor passes the executor suite, strictly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flow.testing import ExecutorConformance


class TestLocalExecutor(ExecutorConformance):
    # Warm workers fork a supervised child per try. A new instance cannot reach the old
    # instance's workers, so it does not claim adoption.
    claims = {"cancel", "isolation", "timeouts", "parallelism"}
    distribution = "flow-core"

    @pytest.fixture
    def executor_factory(self) -> Callable[[int], Any]:
        from flow.builtin.executors.local import LocalExecutor

        return lambda parallelism: LocalExecutor(parallelism=parallelism)
