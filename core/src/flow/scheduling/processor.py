"""The DAG processor: parse the DAG folder in child processes and store what each file defines.

How a parse runs, and why:

* **Which files.** Every ``*.py`` file under the DAG folder, recursively, except folders starting
  with ``.`` or ``_``, paths matching a pattern of ``.flowignore`` (glob patterns relative to the
  folder, one a line, ``#`` comments) and files whose bytes contain neither ``dag`` nor ``flow``
  (case-insensitive): a helper module that never mentions either cannot define a DAG, and
  skipping it avoids running its import side effects (the same "safe mode" heuristic Airflow uses).
* **Isolation without an interpreter per file.** The processor imports flow's authoring API once,
  then forks one worker process per CPU. A worker parses the files it is sent one at a time
  (import, serialize the DAGs to JSON, reply on a pipe); the parent never runs user code. Each
  file runs under ``SIGALRM`` set to ``[core] dag_file_processor_timeout``: a file that takes
  longer is reported as an import error naming the timeout, and its worker is replaced by a fresh
  one (the import was cut short, so the worker's state is suspect). A worker stuck where the
  alarm cannot reach it (inside C code) is killed with SIGKILL a grace period later. The other
  files go on. Workers are forked per parse, so a long-lived processor never accumulates DAG
  modules.
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

from sqlalchemy import Engine, delete, select, update
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
    return list(_dag_files(dags_folder, safe_mode))


def _dag_files(dags_folder: str | os.PathLike[str],
               safe_mode: bool = True) -> dict[str, bytes | None]:
    """The DAG files, each with the content safe mode read (None without safe mode)."""
    root = Path(dags_folder).resolve()
    if not root.is_dir():
        return {}
    ignore = _ignore_patterns(root)
    found: dict[str, bytes | None] = {}
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            if ignore and any(fnmatch.fnmatch(os.path.relpath(path, root), pattern)
                              for pattern in ignore):
                continue
            content = None
            if safe_mode:
                content = _content(path)
                if content is None or not _might_define_a_dag_in(content):
                    continue
            found[path] = content
    return found


def _ignore_patterns(root: Path) -> list[str]:
    path = root / IGNORE_FILE
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _content(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _might_define_a_dag_in(content: bytes) -> bool:
    lowered = content.lower()
    return b"dag" in lowered and b"flow" in lowered


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
        listed = _dag_files(self.dags_folder)
        paths = list(listed)
        result = ProcessingResult(files=len(paths))
        stats = {path: _fingerprint(path) for path in paths}
        candidates = [p for p in paths if force or self._fingerprints.get(p) != stats[p]]
        contents = {p: listed[p] or _read(p) for p in candidates}
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
        # Rows are read in a few batched queries and written in one flush: one query per file
        # would dominate the first parse of a large folder.
        now = utcnow()
        path_set = set(paths)
        if not parsed:  # nothing changed: only DAGs whose file vanished need a write
            self._deactivate_vanished_only(session, path_set)
            return
        existing = {row.dag_id: row for row in session.scalars(select(DagModel))}
        claimed: dict[str, str] = {dag_id: row.fileloc for dag_id, row in existing.items()
                                   if row.is_active and row.fileloc in path_set}
        dag_ids = [data["dag_id"] for item in parsed for data in item.dags]
        serialized = {row.dag_id: row for row in _in_chunks(
            session, SerializedDagModel, SerializedDagModel.dag_id, dag_ids)}
        codes = {row.fileloc_hash: row for row in _in_chunks(
            session, DagCodeModel, DagCodeModel.fileloc_hash,
            [fileloc_hash(item.path) for item in parsed])}
        for chunk in _chunks([item.path for item in parsed]):
            session.execute(delete(ImportError_).where(ImportError_.filename.in_(chunk)))
        with session.no_autoflush:
            for item in parsed:
                self._store_file(session, item, contents[item.path], existing, serialized,
                                 codes, claimed, result, now)
        self._deactivate_vanished(session, existing, path_set)

    def _store_file(self, session: Session, item: ParsedFile, content: bytes,
                    existing: dict[str, DagModel], serialized: dict[str, SerializedDagModel],
                    codes: dict[str, DagCodeModel], claimed: dict[str, str],
                    result: ProcessingResult, now: Any) -> None:
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
            self._store_dag(session, data, existing, serialized, now)
            stored_ids.add(data["dag_id"])
        if item.dags or not item.errors:
            # The file loaded: DAGs it used to define and no longer does are gone.
            for dag_id, row in existing.items():
                if row.fileloc == item.path and dag_id not in stored_ids:
                    row.is_active = False
            _store_code(session, codes, item.path, content, item.source_hash, now)
        for error in errors:
            session.add(_import_error_row(item.path, error, now))
        result.errors.extend(errors)
        result.dag_ids.extend(sorted(stored_ids))

    def _store_dag(self, session: Session, data: dict[str, Any], existing: dict[str, DagModel],
                   serialized: dict[str, SerializedDagModel], now: Any) -> None:
        from flow.scheduling.serialization import dag_hash

        version = dag_hash(data)
        dag_id = data["dag_id"]
        row = existing.get(dag_id)
        if row is None:
            paused = data.get("is_paused_upon_creation")
            if paused is None:
                paused = bool(self.config.get("core", "dags_are_paused_at_creation"))
            row = existing[dag_id] = DagModel(dag_id=dag_id, is_paused=bool(paused))
            session.add(row)
        row.fileloc = data["fileloc"]
        row.is_active = True
        row.owners = _owners(data)
        row.tags = list(data.get("tags") or [])
        row.description = data.get("description")
        row.schedule_description = data.get("schedule_summary") or ""
        row.max_active_runs = data.get("max_active_runs")
        row.max_active_tasks = data.get("max_active_tasks")
        row.last_parsed_at = now
        row.dag_hash = version
        stored = serialized.get(dag_id)
        if stored is None:
            stored = serialized[dag_id] = SerializedDagModel(dag_id=dag_id)
            session.add(stored)
        elif stored.dag_hash == version:
            return
        stored.fileloc = data["fileloc"]
        stored.data = data
        stored.dag_hash = version
        stored.last_updated = now

    def _deactivate_vanished_only(self, session: Session, paths: set[str]) -> None:
        """:meth:`_deactivate_vanished` reading only the columns it needs."""
        prefix = self.dags_folder + os.sep
        gone = [dag_id for dag_id, fileloc in session.execute(
            select(DagModel.dag_id, DagModel.fileloc).where(DagModel.is_active.is_(True)))
            if fileloc.startswith(prefix) and fileloc not in paths]
        for chunk in _chunks(gone):
            session.execute(update(DagModel).where(DagModel.dag_id.in_(chunk))
                            .values(is_active=False))
        self._delete_stale_import_errors(session, paths)

    def _deactivate_vanished(self, session: Session, existing: dict[str, DagModel],
                             paths: set[str]) -> None:
        prefix = self.dags_folder + os.sep
        for row in existing.values():
            if row.is_active and row.fileloc.startswith(prefix) and row.fileloc not in paths:
                row.is_active = False
        self._delete_stale_import_errors(session, paths)

    def _delete_stale_import_errors(self, session: Session, paths: set[str]) -> None:
        prefix = self.dags_folder + os.sep
        stale = [path for path in session.scalars(select(ImportError_.filename).distinct())
                 if path.startswith(prefix) and path not in paths]
        if stale:
            session.execute(delete(ImportError_).where(ImportError_.filename.in_(stale)))


def _store_code(session: Session, codes: dict[str, DagCodeModel], path: str, content: bytes,
                source_hash: str, now: Any) -> None:
    key = fileloc_hash(path)
    row = codes.get(key)
    if row is None:
        row = codes[key] = DagCodeModel(fileloc_hash=key, fileloc=path)
        session.add(row)
    if row.source_hash != source_hash:
        row.source_code = content.decode("utf-8", errors="replace")
        row.source_hash = source_hash
        row.last_updated = now


def _chunks(values: list[Any], size: int = 500) -> list[list[Any]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


def _in_chunks(session: Session, model: Any, column: Any, values: list[Any]) -> list[Any]:
    """Rows of ``model`` whose ``column`` is in ``values`` (IN lists kept short)."""
    rows: list[Any] = []
    for chunk in _chunks(values):
        rows.extend(session.scalars(select(model).where(column.in_(chunk))))
    return rows


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
    stored = dict(session.execute(select(DagCodeModel.fileloc, DagCodeModel.source_hash)).all())
    broken = set(session.scalars(select(ImportError_.filename)))
    return {path for path, digest in hashes.items()
            if stored.get(path) == digest and path not in broken}


def _fingerprint(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


# --------------------------------------------------------------------------- child processes

# A worker that outlives a file's timeout by this much (stuck in C code that ignores SIGALRM)
# is killed from outside.
KILL_GRACE = 2.0
# The parent's ends of every live worker's pipes (see _Worker.start).
_PARENT_FDS: set[int] = set()


class _ParseTimeout(BaseException):
    """Raised by SIGALRM inside a worker; a BaseException so a DAG file's ``except Exception``
    cannot swallow it."""


def parse_files(paths: list[str], dags_folder: str, timeout: float,
                parallelism: int) -> list[ParsedFile]:
    """Parse ``paths`` in up to ``parallelism`` worker processes (see the module docstring)."""
    if not paths:
        return []
    _preload()
    pending = list(reversed(paths))
    workers: list[_Worker] = []
    selector = selectors.DefaultSelector()
    results: list[ParsedFile] = []
    try:
        for _ in range(min(parallelism, len(paths))):
            workers.append(_Worker.start(dags_folder, timeout, selector))
        while len(results) < len(paths):
            for worker in workers:
                if worker.current is None and pending:
                    worker.send(pending.pop())
            busy = [w for w in workers if w.current is not None]
            wait = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            for key, _ in selector.select(timeout=wait):
                worker = key.data
                done, finished = worker.read()
                results.extend(done)
                if finished:  # the worker exited (after a timeout, or it died)
                    results.extend(worker.close(killed=False))
                    workers[workers.index(worker)] = _Worker.start(dags_folder, timeout,
                                                                   selector)
            now = time.monotonic()
            for index, worker in enumerate(workers):
                if worker.current is not None and now >= worker.deadline:
                    results.extend(worker.close(killed=True))
                    workers[index] = _Worker.start(dags_folder, timeout, selector)
    finally:
        for worker in workers:
            worker.stop()
        selector.close()
    order = {path: index for index, path in enumerate(paths)}
    return sorted(results, key=lambda item: order[item.path])


def _preload() -> None:
    """Import the authoring API once here, so each forked worker starts with it loaded."""
    for module in ("flow.authoring.dag", "flow.operators", "flow.scheduling.serialization"):
        with contextlib.suppress(ImportError):
            __import__(module)


@dataclass
class _Worker:
    """A forked process that parses the files it is sent, one at a time."""

    pid: int
    requests: int
    replies: int
    timeout: float
    selector: selectors.BaseSelector
    current: str | None = None
    started: float = 0.0
    deadline: float = float("inf")
    buffer: bytes = b""

    @classmethod
    def start(cls, dags_folder: str, timeout: float,
              selector: selectors.BaseSelector) -> _Worker:
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            # Close the other workers' pipe ends this fork inherited: a worker must see EOF
            # when the parent closes its request pipe, whoever else is alive.
            for fd in (request_write, reply_read, *_PARENT_FDS):
                with contextlib.suppress(OSError):
                    os.close(fd)
            _worker_main(dags_folder, timeout, request_read, reply_write)
        os.close(request_read)
        os.close(reply_write)
        _PARENT_FDS.update((request_write, reply_read))
        worker = cls(pid, request_write, reply_read, timeout, selector)
        selector.register(reply_read, selectors.EVENT_READ, worker)
        return worker

    def send(self, path: str) -> None:
        self.current, self.started = path, time.monotonic()
        self.deadline = self.started + self.timeout + KILL_GRACE
        os.write(self.requests, path.encode() + b"\n")

    def read(self) -> tuple[list[ParsedFile], bool]:
        """Parsed files that arrived, and whether the worker has exited."""
        data = os.read(self.replies, 1 << 20)
        if not data:
            return [], True
        self.buffer += data
        done = []
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            done.append(self._parsed(json.loads(line)))
        return done, False

    def _parsed(self, payload: dict[str, Any]) -> ParsedFile:
        item = ParsedFile(payload["path"], "", duration=time.monotonic() - self.started)
        item.dags = payload["dags"]
        item.errors = [DagFileError(**error) for error in payload["errors"]]
        self.current, self.deadline = None, float("inf")
        return item

    def close(self, killed: bool) -> list[ParsedFile]:
        """Stop this worker; the file it was parsing (if any) is reported as an error."""
        path = self.current
        self.stop(kill=killed)
        if path is None:
            return []
        if killed:
            message = _timeout_message(self.timeout)
        else:
            message = "the process parsing this file died; see the DAG processor's log"
        return [ParsedFile(path, "", errors=[DagFileError(path, None, message)],
                           duration=time.monotonic() - self.started)]

    def stop(self, kill: bool = False) -> None:
        if self.requests < 0:
            return
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self.replies)
        os.close(self.requests)  # EOF: an idle worker exits
        os.close(self.replies)
        _PARENT_FDS.difference_update((self.requests, self.replies))
        self.requests = self.replies = -1
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _timeout_message(timeout: float) -> str:
    return (f"importing the file took longer than {timeout:g} seconds "
            "([core] dag_file_processor_timeout) and was stopped; look for a loop or a "
            "blocking call at module level")


def _worker_main(dags_folder: str, timeout: float, requests: int, replies: int) -> None:
    code = 0
    try:
        os.dup2(2, 1)  # a DAG file that prints must not pollute the parent's stdout
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, _on_alarm)
        with os.fdopen(requests, "rb") as lines:
            for line in lines:
                path = line.decode().rstrip("\n")
                timed_out = False
                signal.setitimer(signal.ITIMER_REAL, timeout)
                try:
                    payload = parse_one(path, dags_folder)
                except _ParseTimeout:
                    timed_out = True
                    payload = {"dags": [], "errors": [
                        DagFileError(path, None, _timeout_message(timeout)).to_dict()]}
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                payload["path"] = path
                _write_all(replies, json.dumps(payload).encode() + b"\n")
                if timed_out:
                    # The file's import was cut short somewhere: start the next file in a
                    # fresh worker rather than in this one's half-changed state.
                    break
    except BaseException:  # the parent reports the file as "the process died"
        code = 1
    finally:
        os._exit(code)


def _on_alarm(signum: int, frame: Any) -> None:
    raise _ParseTimeout()


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


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
