"""Builtin plugin: the core's executors."""

from __future__ import annotations

from flow.hookspecs import hookimpl
from flow.records import ExecutorSpec


@hookimpl
def flow_executors() -> list[ExecutorSpec]:
    return [
        ExecutorSpec("local", "flow.builtin.executors.local:LocalExecutor",
                     "Warm worker processes that fork a child per task; the default."),
        ExecutorSpec("sequential", "flow.builtin.executors.sequential:SequentialExecutor",
                     "Runs one task at a time, each in its own `flow tasks run` process."),
    ]
