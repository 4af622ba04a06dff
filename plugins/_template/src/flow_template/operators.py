"""An example operator. DAG files import it directly:
``from flow_template.operators import GreetOperator``."""

from __future__ import annotations

import logging
from typing import Any

from flow import BaseOperator
from flow_template.hooks import DEFAULT_CONN_ID, GreetingHook

log = logging.getLogger(__name__)


class GreetOperator(BaseOperator):
    """Greets ``name`` through the ``conn_id`` greeting connection; the greeting is the task's
    return value, pushed as an XCom."""

    template_fields = ("name",)

    def __init__(self, *, name: str, conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.conn_id = conn_id

    def execute(self, context: dict[str, Any]) -> str:
        greeting = GreetingHook(self.conn_id).greet(self.name)
        log.info(greeting)
        return greeting
