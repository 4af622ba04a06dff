"""`flow acme tables` and the Acme page reach users through flow's hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner
from flask import Flask


def test_flow_acme_tables_lists_tables_with_row_counts(warehouse: Path) -> None:
    from flow.cli.main import cli

    (warehouse / "public").mkdir()
    (warehouse / "public" / "orders.jsonl").write_text('{"id": 1}\n{"id": 2}\n')

    result = CliRunner().invoke(cli, ["acme", "tables"])

    assert result.exit_code == 0, result.output
    assert result.output == "orders\t2\n"


def test_the_acme_page_lists_the_operators(flow_plugins: Any) -> None:
    app = Flask(__name__)
    flow_plugins.extend_web(app)

    page = app.test_client().get("/acme/")

    assert page.status_code == 200
    assert "AcmeLoadOperator" in page.text and "AcmeRowCountCheckOperator" in page.text
