"""EmptyOperator: a task that does nothing, to join or fan out branches."""

from __future__ import annotations

from typing import Any

from flow.authoring.baseoperator import BaseOperator


class EmptyOperator(BaseOperator):
    """Does nothing; it succeeds as soon as its trigger rule lets it run."""

    ui_color = "#e8f7e4"

    def execute(self, context: dict[str, Any]) -> None:
        return None


# Airflow's former name, kept so existing DAG files run unchanged.
DummyOperator = EmptyOperator
