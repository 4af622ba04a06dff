"""`flow audit verify|prune|tail|export` through flow's command line, the admin-only page and
API route, and a disabled plugin that records nothing while flow keeps working."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import update

from flow_audit import store
from flow_audit.chain import Entry


def flow(*args: str) -> Any:
    from flow.cli.main import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _seed(count: int, when: str | None = None, actor: str = "alice") -> None:
    engine = store.writer_engine()
    try:
        store.append(engine, [Entry("user_action", actor, "variable.update", f"var{n}",
                                    {"n": n}, source="api", remote_addr="10.0.0.1",
                                    **({"recorded_at": when} if when else {}))
                              for n in range(count)], "")
    finally:
        engine.dispose()


def test_verify_says_ok_then_names_the_changed_record(db_url: str) -> None:
    _seed(5)
    ok = flow("audit", "verify")
    assert ok.exit_code == 0 and ok.output.startswith("OK: 5 records verified"), ok.output

    engine = store.writer_engine()
    with engine.begin() as connection:
        connection.execute(update(store.audit_record).where(store.audit_record.c.seq == 2)
                           .values(actor="mallory"))
    engine.dispose()
    bad = flow("audit", "verify")

    assert bad.exit_code == 1
    assert "FAILED at record 2: record 2 (" in bad.output and "'mallory'" in bad.output


def test_prune_keeps_the_chain_verifiable(db_url: str) -> None:
    _seed(3, when="2020-01-01T00:00:00.000000Z")
    _seed(2)

    pruned = flow("audit", "prune", "--before", "2021-01-01", "--yes")
    verified = flow("audit", "verify")

    assert pruned.exit_code == 0, pruned.output
    assert "pruned 3 records; record 3 is now the anchor" in pruned.output
    assert verified.exit_code == 0 and "pruned up to 3" in verified.output, verified.output


def test_prune_refuses_a_date_it_cannot_read(db_url: str) -> None:
    result = flow("audit", "prune", "--before", "last tuesday", "--yes")

    assert result.exit_code == 2 and "'last tuesday' is not a date" in result.output


def test_tail_filters_by_actor_action_and_since(db_url: str) -> None:
    _seed(2, when="2020-01-01T00:00:00.000000Z", actor="old")
    _seed(3, actor="alice")
    _seed(1, actor="bob")

    lines = flow("audit", "tail", "--actor", "alice").output.splitlines()
    recent = flow("audit", "tail", "--since", "2021-01-01", "-n", "2").output.splitlines()
    nothing = flow("audit", "tail", "--action", "dag.pause").output

    assert [line.split("\t")[0] for line in lines] == ["3", "4", "5"]
    assert lines[0].split("\t")[2:6] == ["api", "alice", "variable.update", "var0"]
    assert [line.split("\t")[0] for line in recent] == ["5", "6"]
    assert nothing == ""


def test_tail_follow_prints_records_as_they_arrive(db_url: str) -> None:
    _seed(1)
    env = {**os.environ}
    follower = subprocess.Popen([sys.executable, "-m", "flow.cli.main", "audit", "tail",
                                 "--follow", "--interval", "0.1"], env=env,
                                stdout=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().startswith("1\t")
        _seed(1, actor="later")
        line = follower.stdout.readline()
    finally:
        follower.terminate()
        follower.wait(timeout=30)
    assert line.split("\t")[:4][0] == "2" and "later" in line


def test_export_writes_jsonl_and_csv_with_hashes(db_url: str, tmp_path: Path) -> None:
    _seed(3)
    jsonl = flow("audit", "export", "--format", "jsonl").output.splitlines()
    target = tmp_path / "audit.csv"
    assert flow("audit", "export", "--format", "csv", "-o", str(target)).exit_code == 0

    first = json.loads(jsonl[0])
    assert len(jsonl) == 3
    assert (first["seq"], first["actor"], first["details"]) == (1, "alice", {"n": 0})
    assert first["prev_hash"] == "0" * 64 and len(first["hash"]) == 64
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [row["seq"] for row in rows] == ["1", "2", "3"]
    assert json.loads(rows[2]["details"]) == {"n": 2} and rows[2]["hash"] == json.loads(
        jsonl[2])["hash"]


def test_the_audit_page_and_api_are_for_admins_only(
        browser_as: Callable[[str], tuple[Any, str]], users: dict[str, str],
        app: Any) -> None:
    _seed(2)
    admin, _ = browser_as("admin")
    operator, _ = browser_as("op")

    page = admin.get("/audit/?actor=alice")
    assert page.status_code == 200
    assert page.get_data(as_text=True).count("variable.update") == 2
    assert 'href="/audit/"' in admin.get("/dags").get_data(as_text=True)  # the menu entry
    assert operator.get("/audit/").status_code == 403
    assert 'href="/audit/"' not in operator.get("/dags").get_data(as_text=True)
    assert app.test_client().get("/audit/").status_code == 302  # to the login page

    api = app.test_client()
    listed = api.get("/api/v1/audit/records?actor=alice&limit=1",
                     headers={"Authorization": f"Bearer {users['admin']}"})
    assert listed.status_code == 200
    assert [r["seq"] for r in listed.get_json()["records"]] == [2]
    assert api.get("/api/v1/audit/records",
                   headers={"Authorization": f"Bearer {users['viewer']}"}).status_code == 403
    assert api.get("/api/v1/audit/records").status_code == 401
    bad = api.get("/api/v1/audit/records?since=yesterday",
                  headers={"Authorization": f"Bearer {users['admin']}"})
    assert bad.status_code == 400 and "'since'" in bad.get_json()["detail"]


def test_a_disabled_plugin_records_nothing_and_flow_keeps_working(
        db_url: str, parsed_dag: str) -> None:
    from flow.store.session import make_engine

    env = {**os.environ, "FLOW__CORE__DISABLED_PLUGINS": "audit"}
    for args in (["variables", "set", "region", "eu"], ["dags", "pause", parsed_dag],
                 ["connections", "add", "db", "--conn-uri", "postgresql://u:p@h/d"]):
        result = subprocess.run([sys.executable, "-m", "flow.cli.main", *args], env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    listing = subprocess.run([sys.executable, "-m", "flow.cli.main", "plugins", "list"],
                             env=env, capture_output=True, text=True, timeout=120)
    missing = subprocess.run([sys.executable, "-m", "flow.cli.main", "audit", "verify"],
                             env=env, capture_output=True, text=True, timeout=120)

    engine = make_engine(db_url)
    try:
        assert not store.tables_exist(engine)  # not even created
    finally:
        engine.dispose()
    assert "disabled" in listing.stdout and "audit" in listing.stdout
    assert missing.returncode != 0  # the command is the plugin's: gone with it
