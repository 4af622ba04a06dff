"""`flow standalone` from an installed flow-core wheel: sets FLOW_HOME up with the example DAGs
the wheel ships, serves the UI, runs every example DAG, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import site
import socket
import sqlite3
import subprocess
import sys
import tomllib
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest

from flow.cli.standalone import EXAMPLE_CONNECTION_URI, examples_folder
from flow.web.users import check_password

from .helpers import wait_for

CORE = Path(__file__).resolve().parents[2]
EXAMPLES = CORE.parent / "examples"
EXAMPLE_PASSWORD = "s3cr3t-demo"
FINISHED = {"success", "failed"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """flow-core built as a wheel, as `pip install ./core` builds it."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(dist), str(CORE)],
                   check=True, capture_output=True, text=True)
    (built,) = dist.glob("flow_core-*.whl")
    return built


@pytest.fixture(scope="module")
def installed_flow(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `flow` script of a new venv with that wheel installed (not editable)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # Third-party dependencies come from this interpreter's site-packages, so the test needs
    # no index; flow-core itself is the wheel, installed into the venv.
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_parent_site.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True,
                   text=True)
    return venv / "bin" / "flow"


def test_the_wheel_ships_every_example_dag_and_no_plugin_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    shipped = {name.removeprefix("flow/example_dags/") for name in names
               if name.startswith("flow/example_dags/")}
    expected = {path.name for path in EXAMPLES.glob("*.py")}
    assert expected, f"no example DAGs in {EXAMPLES}"
    assert shipped == expected, (
        f"missing from the wheel: {sorted(expected - shipped)} (core/hatch_build.py bundles "
        f"examples/*.py); unexpected: {sorted(shipped - expected)}")
    assert not [name for name in names if "acme" in name]


def test_a_wheel_built_from_the_sdist_ships_the_same_examples_and_plugin_template(
        wheel: Path, tmp_path: Path) -> None:
    """What `python -m build` and `pip install flow-core-*.tar.gz` do: the sdist, then a wheel
    from the unpacked sdist, where ../examples and ../plugins do not exist."""
    import tarfile

    backend = "import sys, hatchling.build as b; print(b.build_{}(sys.argv[1]))"
    sdist_name = subprocess.run([sys.executable, "-c", backend.format("sdist"), str(tmp_path)],
                                cwd=CORE, check=True, capture_output=True, text=True)
    with tarfile.open(tmp_path / sdist_name.stdout.strip().splitlines()[-1]) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    [unpacked] = (tmp_path / "unpacked").iterdir()
    out = tmp_path / "from_sdist"
    wheel_name = subprocess.run([sys.executable, "-c", backend.format("wheel"), str(out)],
                                cwd=unpacked, capture_output=True, text=True)
    assert wheel_name.returncode == 0, wheel_name.stderr

    def bundled(path: Path) -> set[str]:
        with zipfile.ZipFile(path) as archive:
            return {name for name in archive.namelist()
                    if name.startswith(("flow/example_dags/", "flow/_plugin_template/"))}

    from_sdist = bundled(out / wheel_name.stdout.strip().splitlines()[-1])
    assert from_sdist == bundled(wheel)
    assert {n.removeprefix("flow/example_dags/") for n in from_sdist
            if n.startswith("flow/example_dags/")} == {p.name for p in EXAMPLES.glob("*.py")}


def test_an_editable_install_takes_the_examples_from_the_checkout() -> None:
    assert examples_folder() == EXAMPLES


def test_standalone_from_the_wheel_runs_every_example_and_stops_on_ctrl_c(
        installed_flow: Path, tmp_path: Path) -> None:
    home = tmp_path / "fresh_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOW_")}
    env.update(FLOW_HOME=str(home), FLOW__SCHEDULER__IDLE_SLEEP="0.2")
    port = _free_port()
    process = subprocess.Popen([str(installed_flow), "standalone", "--port", str(port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    children: dict[int, str] = {}
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/login"), 60, "the web UI")
        config = tomllib.loads((home / "flow.toml").read_text())
        assert len(config["core"]["fernet_key"]) == 44 and config["webserver"]["secret_key"]
        assert oct((home / "flow.toml").stat().st_mode & 0o777) == "0o600"
        examples = sorted(p.name for p in (home / "dags").iterdir())
        assert examples == sorted(p.name for p in EXAMPLES.glob("*.py"))
        dag_ids = wait_for(lambda: _parsed_dag_ids(home, len(examples)), 60,
                           "every example DAG parsed")
        token = subprocess.run([str(installed_flow), "users", "token", "create", "admin",
                                "--name", "test"], env=env, capture_output=True, text=True,
                               check=True).stdout.strip()
        api = f"http://127.0.0.1:{port}/api/v1"
        for dag_id in dag_ids:
            _call(f"{api}/dags/{dag_id}", token, "PATCH", {"is_paused": False})
            _call(f"{api}/dags/{dag_id}/dagRuns", token, "POST", {})
        runs = wait_for(lambda: _finished_runs(home, len(dag_ids)), 120,
                        "a finished run of every example")
        assert runs == {dag_id: "success" for dag_id in dag_ids}, _failed_tasks(home)
        children = _descendants(process.pid)
        assert children, "the local executor's workers should be running"
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    wait_for(lambda: not _alive(children), 5, f"the children of flow standalone {children}")
    _assert_printed_where_things_are(output, home, port)
    _assert_job_ended_and_password_hashed(home, output)
    _assert_connection_password_never_in_plain_text(home)


def _assert_printed_where_things_are(output: str, home: Path, port: int) -> None:
    assert f"copied {len(list(EXAMPLES.glob('*.py')))} example DAG(s)" in output, output
    assert f"FLOW_HOME:   {home}" in output
    assert f"task logs:   {home / 'logs'}" in output
    assert f"web UI:      http://127.0.0.1:{port}" in output
    assert "flow standalone stopped" in output


def _assert_job_ended_and_password_hashed(home: Path, output: str) -> None:
    with sqlite3.connect(home / "flow.db") as connection:
        jobs = connection.execute("SELECT state, end_date FROM job").fetchall()
        (password_hash,) = connection.execute(
            "SELECT password_hash FROM user WHERE username = 'admin'").fetchone()
    assert len(jobs) == 1 and jobs[0][0] == "success" and jobs[0][1] is not None
    # the generated admin password is printed once, and is the one stored (as a hash only)
    printed = re.findall(r"admin password: (\S+)", output)
    assert len(printed) == 1, output
    assert check_password(password_hash, printed[0])
    assert printed[0] not in password_hash
    assert not any(printed[0] in p.read_text(errors="replace")
                   for p in home.rglob("*") if p.is_file() and p.suffix != ".db")


def _assert_connection_password_never_in_plain_text(home: Path) -> None:
    """The example connection is stored encrypted, and its task log shows *** instead."""
    assert EXAMPLE_PASSWORD in EXAMPLE_CONNECTION_URI
    with sqlite3.connect(home / "flow.db") as connection:
        (stored,) = connection.execute(
            "SELECT password FROM connection WHERE conn_id = 'example_api'").fetchone()
    assert stored and stored.startswith("gAAAA")  # a Fernet token
    (log,) = (home / "logs").glob("dag_id=example_connections/*/*/attempt=1.log")
    assert "with password ***" in log.read_text()
    leaks = [p for p in home.rglob("*") if p.is_file() and EXAMPLE_PASSWORD.encode()
             in p.read_bytes()]
    assert not leaks


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


def _call(url: str, token: str, method: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in {200, 201}, (url, response.status)


def _query(home: Path, sql: str) -> list[Any]:
    try:
        with sqlite3.connect(home / "flow.db") as connection:
            return connection.execute(sql).fetchall()
    except sqlite3.Error:
        return []


def _parsed_dag_ids(home: Path, files: int) -> list[str]:
    """The DAG ids, once a DAG of each example file is stored and none failed to import."""
    errors = _query(home, "SELECT filename, message FROM import_error")
    assert not errors, errors
    rows = _query(home, "SELECT dag_id, fileloc FROM dag")
    return sorted(d for d, _ in rows) if len({f for _, f in rows}) == files else []


def _finished_runs(home: Path, dags: int) -> dict[str, str]:
    rows = _query(home, "SELECT dag_id, state FROM dag_run")
    return dict(rows) if len(rows) == dags and all(s in FINISHED for _, s in rows) else {}


def _failed_tasks(home: Path) -> str:
    """The failed task instances and the end of each one's log, for a failure message."""
    lines = []
    for dag_id, task_id, state in _query(home, "SELECT dag_id, task_id, state FROM "
                                               "task_instance WHERE state != 'success'"):
        lines.append(f"{dag_id}.{task_id}: {state}")
        for log in (home / "logs").glob(f"dag_id={dag_id}/*/task_id={task_id}/*.log"):
            lines.append(log.read_text(errors="replace")[-1500:])
    return "\n".join(lines)


def _descendants(pid: int) -> dict[int, str]:
    """pid -> start time of every process below ``pid`` (a pid alone could be reused)."""
    parents: dict[int, int] = {}
    started: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = int(stat.parent.name)
        parents[child], started[child] = int(fields[1]), fields[19]
    found: dict[int, str] = {}
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found.update((child, started[child]) for child in frontier)
    return found


def _alive(processes: dict[int, str]) -> list[int]:
    """Those of ``processes`` still running (a zombie, dead but not yet reaped, is not)."""
    alive = []
    for pid, start in processes.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[19] == start and fields[0] != "Z":
            alive.append(pid)
    return alive
