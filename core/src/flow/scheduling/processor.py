"""The DAG processor: parse the DAG folder in child processes and store what each file defines.

How a parse runs, and why:

* **Which files.** Every ``*.py`` file under the DAG folder, recursively, except folders starting
  with ``.`` or ``_``, paths matching a pattern of ``.flowignore`` (glob patterns relative to the
  folder, one a line, ``#`` comments) and files whose bytes contain neither ``dag`` nor ``flow``
  (case-insensitive): a helper module that never mentions either cannot define a DAG, and
  skipping it avoids running its import side effects (the same "safe mode" heuristic Airflow uses).
* **Isolation without an interpreter per file.** The processor imports flow's authoring API once,
  then forks one child per file, up to one child per CPU at a time. A child imports the file,
  serializes its DAGs to JSON, writes them to a pipe and exits; the parent never runs user code.
  A child that outlives ``[core] dag_file_processor_timeout`` is killed with SIGKILL and the file is
  reported as an import error naming the timeout; the other files go on.
* **Only what changed.** A long-lived processor remembers each file's (mtime, size); a new
  process compares the file's SHA-256 with the stored ``dag_code`` row. Unchanged files that
  loaded cleanly are not parsed again.

The result is written in one transaction: ``dag``, ``serialized_dag`` (with the hash that is the
DAG's version), ``dag_code`` and ``import_error`` rows. A file that loads again clears its import
errors; DAGs whose file vanished, or that a file no longer defines, become inactive. New DAGs
start paused per the DAG's ``is_paused_upon_creation``, else ``[core] dags_are_paused_at_creation``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import selectors
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from flow.scheduling.dagbag import DagFileError
from flow.store.models import DagCodeModel, DagModel, ImportError_, SerializedDagModel
from flow.utils.timezone import utcnow

IGNORE_FILE = ".flowignore"


@dataclass
class ParsedFile:
    """What a child process reported for one file."""

    path: str
    source_hash: str
    dags: list[dict[str, Any]] = field(default_factory=list)
    errors: list[DagFileError] = field(default_factory=list)
    duration: float = 0.0

    @property
    def failed_to_import(self) -> bool:
        return bool(self.errors) and not self.dags


@dataclass
class ProcessingResult:
    files: int = 0
    parsed: list[str] = field(default_factory=list)
    dag_ids: list[str] = field(default_factory=list)
    errors: list[DagFileError] = field(default_factory=list)
    duration: float = 0.0


def list_dag_files(dags_folder: str | os.PathLike[str], safe_mode: bool = True) -> list[str]:
    """Absolute paths of the DAG files in ``dags_folder``, sorted (see the module docstring)."""
    root = Path(dags_folder).resolve()
    if not root.is_dir():
        return []
    ignore = _ignore_patterns(root)
    found: list[str] = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            if any(fnmatch.fnmatch(relative, pattern) for pattern in ignore):
                continue
            if safe_mode and not _might_define_a_dag(path):
                continue
            found.append(path)
    return found


def _ignore_patterns(root: Path) -> list[str]:
    path = root / IGNORE_FILE
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _might_define_a_dag(path: str) -> bool:
    try:
        content = Path(path).read_bytes().lower()
    except OSError:
        return False
    return b"dag" in content and b"flow" in content


def _source_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def fileloc_hash(fileloc: str) -> str:
    return hashlib.sha256(fileloc.encode()).hexdigest()


class DagProcessor:
    """Parses a DAG folder into the metadata database; keep one around to re-parse cheaply."""

    def __init__(self, dags_folder: str | os.PathLike[str] | None = None, *,
                 engine: Engine | None = None, timeout: float | None = None,
                 parallelism: int | None = None, config: Any = None) -> None:
        if config is None:
            from flow.config import load_config

            config = load_config()
        self.config = config
        self.dags_folder = str(Path(dags_folder or config.get("core", "dags_folder")).resolve())
        self.timeout = float(timeout if timeout is not None
                             else config.get("core", "dag_file_processor_timeout"))
        self.parallelism = parallelism or max(1, len(os.sched_getaffinity(0)))
        self._engine = engine
        self._fingerprints: dict[str, tuple[int, int]] = {}

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from flow.store.session import get_engine

            self._engine = get_engine()
        return self._engine

    def process(self, force: bool = False) -> ProcessingResult:
        """Parse the files that changed (all with ``force``) and store the outcome."""
        started = time.monotonic()
        paths = list_dag_files(self.dags_folder)
        result = ProcessingResult(files=len(paths))
        stats = {path: _fingerprint(path) for path in paths}
        candidates = [p for p in paths if force or self._fingerprints.get(p) != stats[p]]
        contents = {p: _read(p) for p in candidates}
        hashes = {p: _source_hash(c) for p, c in contents.items()}
        with self._session() as session:
            if not force:
                unchanged = _unchanged_in_db(session, hashes)
                candidates = [p for p in candidates if p not in unchanged]
        parsed = parse_files(candidates, self.dags_folder, self.timeout, self.parallelism)
        for item in parsed:
            item.source_hash = hashes[item.path]
        with self._session() as session:
            self._store(session, parsed, contents, paths, result)
        for path in paths:
            self._fingerprints[path] = stats[path]
        result.parsed = [item.path for item in parsed]
        result.duration = time.monotonic() - started
        return result

    @contextlib.contextmanager
    def _session(self) -> Any:
        from flow.store.session import session_scope

        with session_scope(self.engine) as session:
            yield session

    def _store(self, session: Session, parsed: list[ParsedFile], contents: dict[str, bytes],
               paths: list[str], result: ProcessingResult) -> None:
        now = utcnow()
        existing = {row.dag_id: row for row in session.scalars(select(DagModel))}
        claimed: dict[str, str] = {dag_id: row.fileloc for dag_id, row in existing.items()
                                   if row.is_active and row.fileloc in set(paths)}
        for item in parsed:
            session.execute(delete(ImportError_).where(ImportError_.filename == item.path))
            errors = list(item.errors)
            stored_ids: set[str] = set()
            for data in item.dags:
                owner = claimed.get(data["dag_id"])
                if owner is not None and owner != item.path:
                    errors.append(DagFileError(
                        item.path, data.get("lineno"),
                        f"dag_id {data['dag_id']!r} is already defined in {owner}; "
                        "DAG ids must be unique across the DAG folder"))
                    continue
                claimed[data["dag_id"]] = item.path
                self._store_dag(session, data, existing, now)
                stored_ids.add(data["dag_id"])
            if item.dags or not item.errors:
                # The file loaded: DAGs it used to define and no longer does are gone.
                for dag_id, row in existing.items():
                    if row.fileloc == item.path and dag_id not in stored_ids:
                        row.is_active = False
                self._store_code(session, item.path, contents[item.path], item.source_hash, now)
            for error in errors:
                session.add(_import_error_row(item.path, error, now))
            result.errors.extend(errors)
            result.dag_ids.extend(sorted(stored_ids))
        self._deactivate_vanished(session, existing, set(paths))

    def _store_dag(self, session: Session, data: dict[str, Any], existing: dict[str, DagModel],
                   now: Any) -> None:
        from flow.scheduling.serialization import dag_hash

        version = dag_hash(data)
        row = existing.get(data["dag_id"])
        if row is None:
            paused = data.get("is_paused_upon_creation")
            if paused is None:
                paused = bool(self.config.get("core", "dags_are_paused_at_creation"))
            row = DagModel(dag_id=data["dag_id"], is_paused=bool(paused))
            session.add(row)
            existing[data["dag_id"]] = row
        row.fileloc = data["fileloc"]
        row.is_active = True
        row.owners = _owners(data)
        row.tags = list(data.get("tags") or [])
        row.description = data.get("description")
        row.schedule_description = data.get("schedule_summary") or ""
        row.max_active_runs = data.get("max_active_runs")
        row.max_active_tasks = data.get("max_active_tasks")
        row.last_parsed_at = now
        if row.dag_hash != version or session.get(SerializedDagModel, data["dag_id"]) is None:
            serialized = session.get(SerializedDagModel, data["dag_id"])
            if serialized is None:
                serialized = SerializedDagModel(dag_id=data["dag_id"])
                session.add(serialized)
            serialized.fileloc = data["fileloc"]
            serialized.data = data
            serialized.dag_hash = version
            serialized.last_updated = now
        row.dag_hash = version

    @staticmethod
    def _store_code(session: Session, path: str, content: bytes, source_hash: str,
                    now: Any) -> None:
        key = fileloc_hash(path)
        row = session.get(DagCodeModel, key)
        if row is None:
            row = DagCodeModel(fileloc_hash=key, fileloc=path)
            session.add(row)
        if row.source_hash != source_hash:
            row.source_code = content.decode("utf-8", errors="replace")
            row.source_hash = source_hash
            row.last_updated = now

    def _deactivate_vanished(self, session: Session, existing: dict[str, DagModel],
                             paths: set[str]) -> None:
        prefix = self.dags_folder + os.sep
        for row in existing.values():
            if row.is_active and row.fileloc.startswith(prefix) and row.fileloc not in paths:
                row.is_active = False
        stale = [path for path in session.scalars(select(ImportError_.filename).distinct())
                 if path.startswith(prefix) and path not in paths]
        if stale:
            session.execute(delete(ImportError_).where(ImportError_.filename.in_(stale)))


def _owners(data: dict[str, Any]) -> str:
    owners = {t.get("owner") for t in data.get("tasks", []) if t.get("owner")}
    if data.get("owner"):
        owners.add(data["owner"])
    return ",".join(sorted(owners))


def _import_error_row(path: str, error: DagFileError, now: Any) -> ImportError_:
    message = error.message
    lineno = error.lineno
    if error.filename != path:
        # The error is in a module the DAG file imports: say where.
        location = f"{error.filename}:{error.lineno}" if error.lineno else error.filename
        message, lineno = f"{location}: {message}", None
    return ImportError_(filename=path, lineno=lineno, message=message,
                        stacktrace=error.stacktrace or message, timestamp=now)


def _unchanged_in_db(session: Session, hashes: dict[str, str]) -> set[str]:
    """Files whose stored code has the same hash and that have no import error."""
    if not hashes:
        return set()
    stored = {row.fileloc: row.source_hash for row in session.scalars(select(DagCodeModel))}
    broken = set(session.scalars(select(ImportError_.filename)))
    return {path for path, digest in hashes.items()
            if stored.get(path) == digest and path not in broken}


def _fingerprint(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


# --------------------------------------------------------------------------- child processes


def parse_files(paths: list[str], dags_folder: str, timeout: float,
                parallelism: int) -> list[ParsedFile]:
    """Parse each file in a forked child, ``parallelism`` at a time, killing those that time out."""
    _preload()
    pending = list(reversed(paths))
    running: dict[int, _Child] = {}
    selector = selectors.DefaultSelector()
    results: list[ParsedFile] = []
    try:
        while pending or running:
            while pending and len(running) < parallelism:
                child = _Child.start(pending.pop(), dags_folder, timeout)
                running[child.fd] = child
                selector.register(child.fd, selectors.EVENT_READ)
            wait = max(0.0, min(c.deadline for c in running.values()) - time.monotonic())
            for key, _ in selector.select(timeout=wait):
                child = running[key.fd]  # type: ignore[index]
                if child.read():
                    selector.unregister(child.fd)
                    del running[child.fd]
                    results.append(child.finish())
            now = time.monotonic()
            for fd, child in list(running.items()):
                if now >= child.deadline:
                    selector.unregister(fd)
                    del running[fd]
                    results.append(child.kill())
    finally:
        for fd, child in running.items():
            selector.unregister(fd)
            child.kill()
        selector.close()
    order = {path: index for index, path in enumerate(paths)}
    return sorted(results, key=lambda item: order[item.path])


def _preload() -> None:
    """Import the authoring API once here, so each forked child starts with it loaded."""
    for module in ("flow.authoring.dag", "flow.operators", "flow.scheduling.serialization"):
        with contextlib.suppress(ImportError):
            __import__(module)


@dataclass
class _Child:
    pid: int
    fd: int
    path: str
    deadline: float
    timeout: float
    started: float
    chunks: list[bytes] = field(default_factory=list)

    @classmethod
    def start(cls, path: str, dags_folder: str, timeout: float) -> _Child:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            _child_main(path, dags_folder, write_fd)
        os.close(write_fd)
        now = time.monotonic()
        return cls(pid, read_fd, path, now + timeout, timeout, now)

    def read(self) -> bool:
        """Read what is available; True once the child closed its end."""
        data = os.read(self.fd, 1 << 16)
        if data:
            self.chunks.append(data)
            return False
        return True

    def finish(self) -> ParsedFile:
        os.close(self.fd)
        _, status = os.waitpid(self.pid, 0)
        item = ParsedFile(self.path, "", duration=time.monotonic() - self.started)
        try:
            payload = json.loads(b"".join(self.chunks))
        except ValueError:
            code = os.waitstatus_to_exitcode(status)
            item.errors.append(DagFileError(self.path, None, f"the process parsing this file "
                                                             f"died (exit code {code})"))
            return item
        item.dags = payload["dags"]
        item.errors = [DagFileError(**error) for error in payload["errors"]]
        return item

    def kill(self) -> ParsedFile:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        message = (f"importing the file took longer than {self.timeout:g} seconds "
                   "([core] dag_file_processor_timeout) and was stopped; look for a loop or "
                   "a blocking call at module level")
        return ParsedFile(self.path, "", errors=[DagFileError(self.path, None, message)],
                          duration=time.monotonic() - self.started)


def _child_main(path: str, dags_folder: str, write_fd: int) -> None:
    code = 0
    try:
        os.dup2(2, 1)  # a DAG file that prints must not pollute the parent's stdout
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        payload = json.dumps(parse_one(path, dags_folder)).encode()
        view = memoryview(payload)
        while view:
            written = os.write(write_fd, view)
            view = view[written:]
    except BaseException:  # the parent reports a child that wrote nothing
        code = 1
    finally:
        os._exit(code)


def parse_one(path: str, dags_folder: str) -> dict[str, Any]:
    """Import one file and serialize its DAGs: the work of one child, JSON-ready."""
    from flow.scheduling.dagbag import load_dag_file
    from flow.scheduling.serialization import serialize_dag

    loaded = load_dag_file(path, dags_folder)
    dags, errors = [], [error.to_dict() for error in loaded.errors]
    for dag in loaded.dags:
        try:
            dags.append(serialize_dag(dag))
        except Exception as err:
            errors.append(DagFileError(path, getattr(dag, "lineno", None),
                                       f"DAG {dag.dag_id!r} cannot be serialized: {err}").to_dict())
    return {"dags": dags, "errors": errors}
