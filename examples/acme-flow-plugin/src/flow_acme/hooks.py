"""The hook for ``acme_warehouse`` connections.

Acme's warehouse, as far as this example goes, is a folder with one JSON-lines file per table
(``<host>/<schema>/<table>.jsonl``): real enough to run in any test, simple enough to read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flow import BaseHook


class AcmeWarehouseHook(BaseHook):
    """Reads and appends rows of warehouse tables."""

    @property
    def folder(self) -> Path:
        connection = self.connection
        if not connection.host:
            raise ValueError(f"connection {connection.conn_id!r} has no host (the warehouse "
                             "folder)")
        return Path(connection.host) / (connection.schema or "public")

    def _table(self, table: str) -> Path:
        if not table.replace("_", "").isalnum():
            raise ValueError(f"table name {table!r} must be letters, digits and underscores")
        return self.folder / f"{table}.jsonl"

    def append(self, table: str, rows: list[dict[str, Any]]) -> int:
        path = self._table(table)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            for row in rows:
                handle.write(json.dumps(row, sort_keys=True) + "\n")
        return len(rows)

    def rows(self, table: str) -> list[dict[str, Any]]:
        path = self._table(table)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def tables(self) -> list[str]:
        return sorted(path.stem for path in self.folder.glob("*.jsonl"))

    def test_connection(self) -> tuple[bool, str]:
        try:
            folder = self.folder
        except ValueError as err:
            return False, str(err)
        if not folder.parent.is_dir():
            return False, f"warehouse folder {folder.parent} does not exist"
        return True, f"warehouse at {folder.parent}"
