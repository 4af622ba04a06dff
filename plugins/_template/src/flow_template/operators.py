"""An example operator. DAG files import it directly:
``from flow_template.operators import GreetOperator``."""

from __future__ import annotations

import logging
from typing import Any

from flow import BaseOperator

log = logging.getLogger(__name__)


class GreetOperator(BaseOperator):
    """Greets ``name``; the greeting is the task's return value, pushed as an XCom."""

    template_fields = ("name",)

    def __init__(self, *, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name

    def execute(self, context: dict[str, Any]) -> str:
        greeting = f"Hello, {self.name}!"
        log.info(greeting)
        return greeting
