"""`flow standalone` sets FLOW_HOME up, serves the UI, schedules, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

from flow.web.users import check_password

from .helpers import wait_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_standalone_creates_home_serves_the_ui_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    home = tmp_path / "fresh_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOW_")}
    env.update(FLOW_HOME=str(home), FLOW__SCHEDULER__IDLE_SLEEP="0.2")
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "flow.cli.main", "standalone", "--port",
                                str(port)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/login"), 60, "the web UI")
        config = tomllib.loads((home / "flow.toml").read_text())
        assert len(config["core"]["fernet_key"]) == 44 and config["webserver"]["secret_key"]
        assert oct((home / "flow.toml").stat().st_mode & 0o777) == "0o600"
        assert (home / "dags" / "example_branching.py").exists()
        wait_for(lambda: _dag_ids(home), 60, "parsed example DAGs")
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert f"web UI:      http://127.0.0.1:{port}" in output
    assert f"task logs:   {home / 'logs'}" in output
    assert "flow standalone stopped" in output
    with sqlite3.connect(home / "flow.db") as connection:
        jobs = connection.execute("SELECT state, end_date FROM job").fetchall()
        (password_hash,) = connection.execute(
            "SELECT password_hash FROM user WHERE username = 'admin'").fetchone()
    assert len(jobs) == 1 and jobs[0][0] == "success" and jobs[0][1] is not None
    # the generated admin password is printed once, and is the one stored (as a hash only)
    printed = re.search(r"admin password: (\S+)", output)
    assert printed is not None, output
    assert check_password(password_hash, printed.group(1))
    assert printed.group(1) not in password_hash
    assert not any(printed.group(1) in p.read_text(errors="replace")
                   for p in home.rglob("*") if p.is_file() and p.suffix != ".db")


def _dag_ids(home: Path) -> list[str]:
    try:
        with sqlite3.connect(home / "flow.db") as connection:
            return [row[0] for row in connection.execute("SELECT dag_id FROM dag")]
    except sqlite3.Error:
        return []
