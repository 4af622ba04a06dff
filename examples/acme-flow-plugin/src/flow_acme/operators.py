"""Acme's shared operators. DAG files import them directly:
``from flow_acme.operators import AcmeLoadOperator, AcmeRowCountCheckOperator``."""

from __future__ import annotations

import logging
from typing import Any

from flow import BaseOperator
from flow.exceptions import TaskFailedNoRetry

log = logging.getLogger(__name__)

# The hook is imported when a task runs, not with the DAG file: parsing a DAG that uses these
# operators stays cheap, and this module imports cleanly wherever a DAG processor finds it.
DEFAULT_CONN_ID = "acme_warehouse_default"


def _hook(conn_id: str) -> Any:
    from flow_acme.hooks import AcmeWarehouseHook

    return AcmeWarehouseHook(conn_id)


class AcmeLoadOperator(BaseOperator):
    """Append ``rows`` (a list of dicts, or a template that renders to one) to ``table``;
    returns the number of rows loaded."""

    template_fields = ("table", "rows")

    def __init__(self, *, table: str, rows: list[dict[str, Any]] | str,
                 conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table, self.rows, self.conn_id = table, rows, conn_id

    def execute(self, context: dict[str, Any]) -> int:
        if not isinstance(self.rows, list):
            raise TaskFailedNoRetry(f"rows must be a list of objects, got {self.rows!r}")
        loaded = _hook(self.conn_id).append(self.table, self.rows)
        log.info("loaded %d rows into %s", loaded, self.table)
        return loaded


class AcmeRowCountCheckOperator(BaseOperator):
    """Fail (without retries: more tries will not add rows) unless ``table`` has at least
    ``min_rows`` rows; returns the count."""

    template_fields = ("table",)

    def __init__(self, *, table: str, min_rows: int = 1, conn_id: str = DEFAULT_CONN_ID,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table, self.min_rows, self.conn_id = table, min_rows, conn_id

    def execute(self, context: dict[str, Any]) -> int:
        count = len(_hook(self.conn_id).rows(self.table))
        if count < self.min_rows:
            raise TaskFailedNoRetry(f"table {self.table} has {count} rows; at least "
                                    f"{self.min_rows} expected")
        log.info("table %s has %d rows", self.table, count)
        return count
