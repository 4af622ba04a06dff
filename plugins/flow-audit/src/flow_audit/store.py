"""The audit tables in the metadata database, and the only code that writes them.

``audit_record`` holds the chain; ``audit_chain_head`` one row with the last record's position
and hash. Every append locks that row first (``SELECT ... FOR UPDATE`` on PostgreSQL and
MariaDB; ``BEGIN IMMEDIATE`` on SQLite, which takes the database's write lock), so two writers
(schedulers, the web server, the CLI, task processes) never both extend the same record: the
chain cannot fork. The tables are flow-audit's own: they are created on first use, not by
flow's migrations.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import DBAPIError, IntegrityError

from flow_audit.chain import (
    GENESIS,
    Entry,
    Record,
    algorithm,
    anchor_for,
    seal,
    utc_timestamp,
)

log = logging.getLogger(__name__)

metadata = MetaData()

audit_record = Table(
    "audit_record", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
    Column("recorded_at", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", String(250), nullable=False),
    Column("action", String(100), nullable=False),
    Column("source", String(20), nullable=False),
    Column("remote_addr", String(100), nullable=False),
    Column("target", String(2000), nullable=False),
    Column("details", Text().with_variant(mysql.MEDIUMTEXT(), "mysql"), nullable=False),
    Column("alg", String(16), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("record_hash", String(64), nullable=False),
    Index("ix_audit_record_recorded_at", "recorded_at"),
    Index("ix_audit_record_actor", "actor"),
    Index("ix_audit_record_action", "action"),
)

audit_chain_head = Table(
    "audit_chain_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("record_hash", String(64), nullable=False),
)

HEAD_ID = 1
_ready: set[int] = set()  # id() of engines whose tables are known to exist
_ready_lock = threading.Lock()


class AuditStoreError(Exception):
    """The audit tables could not be read or written."""


def writer_engine() -> Engine:
    """A new engine for appends. On SQLite every transaction starts with ``BEGIN IMMEDIATE``
    (pysqlite otherwise begins lazily, and two writers that both read the head first would
    deadlock on the upgrade to a write lock)."""
    from flow.plugin_support import new_metadata_engine

    engine = new_metadata_engine()
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    return engine


def ensure_tables(engine: Engine) -> None:
    """Create the tables and the head row when missing (once per engine and process)."""
    if id(engine) in _ready:
        return
    with _ready_lock:
        if id(engine) in _ready:
            return
        for attempt in range(5):
            try:
                metadata.create_all(engine, checkfirst=True)
                break
            except DBAPIError:
                # Another process created a table between the check and the CREATE.
                if attempt == 4:
                    raise
        try:
            with engine.begin() as connection:
                if connection.scalar(select(func.count()).select_from(audit_chain_head)) == 0:
                    connection.execute(insert(audit_chain_head).values(
                        id=HEAD_ID, seq=0, record_hash=GENESIS))
        except IntegrityError:
            pass  # another process inserted the head row first
        _ready.add(id(engine))


def forget_engine(engine: Engine) -> None:
    _ready.discard(id(engine))


def tables_exist(engine: Engine) -> bool:
    from sqlalchemy import inspect

    return bool(inspect(engine).has_table("audit_chain_head"))


def _lock_head(connection: Connection) -> tuple[int, str]:
    statement = select(audit_chain_head.c.seq, audit_chain_head.c.record_hash).where(
        audit_chain_head.c.id == HEAD_ID)
    if connection.dialect.name != "sqlite":  # SQLite: BEGIN IMMEDIATE holds the lock already
        statement = statement.with_for_update()
    row = connection.execute(statement).one_or_none()
    if row is None:
        raise AuditStoreError("the audit chain head row is missing: the audit tables were "
                              "tampered with; run `flow audit verify`")
    return int(row.seq), str(row.record_hash)


def _prepare(entries: Sequence[Entry], key: str) -> list[tuple[Entry, str]]:
    """Each entry with its content JSON: the work that does not need the chain's lock."""
    alg = algorithm(key)
    return [(entry, entry.content_json(alg)) for entry in entries]


def _append_locked(connection: Connection, head: tuple[int, str],
                   prepared: Sequence[tuple[Entry, str]], key: str) -> list[Record]:
    seq, previous = head
    records = []
    for entry, content_json in prepared:
        seq += 1
        record = seal(seq, previous, entry, key, content_json)
        records.append(record)
        previous = record.record_hash
    if records:
        connection.execute(insert(audit_record),
                           [_row(r, e.details_json) for r, (e, _) in zip(records, prepared,
                                                                          strict=True)])
        connection.execute(update(audit_chain_head).where(audit_chain_head.c.id == HEAD_ID)
                           .values(seq=seq, record_hash=previous))
    return records


def append(engine: Engine, entries: Sequence[Entry], key: str) -> list[Record]:
    """Append ``entries`` in order, in one transaction, after the chain's current head."""
    ensure_tables(engine)
    prepared = _prepare(entries, key)
    with engine.begin() as connection:
        return _append_locked(connection, _lock_head(connection), prepared, key)


def append_within(connection: Connection, entries: Sequence[Entry], key: str) -> list[Record]:
    """Append ``entries`` in the caller's open transaction (a user action's, for ``[audit]
    fail_closed``): they commit with it or not at all. Never commits or rolls back."""
    _ensure_tables_within(connection)
    return _append_locked(connection, _lock_head(connection), _prepare(entries, key), key)


def _ensure_tables_within(connection: Connection) -> None:
    from sqlalchemy import inspect

    engine = connection.engine
    if id(engine) in _ready:
        return
    inspector = inspect(connection)
    if all(inspector.has_table(table.name) for table in metadata.sorted_tables):
        _ready.add(id(engine))
        return
    if connection.dialect.name in {"mysql", "mariadb"}:
        # MariaDB commits the open transaction at a CREATE TABLE: create them beside it.
        ensure_tables(engine)
        return
    # SQLite and PostgreSQL roll DDL back with the transaction. On SQLite it must be this
    # transaction: it holds the database's write lock, another connection would wait for it.
    metadata.create_all(connection, checkfirst=True)
    if connection.scalar(select(func.count()).select_from(audit_chain_head)) == 0:
        connection.execute(insert(audit_chain_head).values(id=HEAD_ID, seq=0,
                                                           record_hash=GENESIS))


def _row(record: Record, details_json: str | None = None) -> dict[str, Any]:
    from flow_audit.chain import canonical_json

    return {"seq": record.seq, "recorded_at": record.recorded_at, "kind": record.kind,
            "actor": record.actor, "action": record.action, "source": record.source,
            "remote_addr": record.remote_addr, "target": record.target,
            "details": details_json or canonical_json(record.details), "alg": record.alg,
            "prev_hash": record.prev_hash, "record_hash": record.record_hash}


def to_record(row: Any) -> Record:
    return Record(int(row.seq), row.recorded_at, row.kind, row.actor, row.action, row.source,
                  row.remote_addr, row.target, json.loads(row.details), row.alg, row.prev_hash,
                  row.record_hash)


def head(engine: Engine) -> tuple[int, str]:
    with engine.connect() as connection:
        row = connection.execute(select(audit_chain_head.c.seq, audit_chain_head.c.record_hash)
                                 .where(audit_chain_head.c.id == HEAD_ID)).one_or_none()
    return (0, GENESIS) if row is None else (int(row.seq), str(row.record_hash))


def walk(engine: Engine, *, up_to: int | None = None, batch: int = 2000) -> Iterator[Record]:
    """Every record in ``seq`` order (up to ``up_to``), read in batches."""
    after = -1
    while True:
        statement = select(audit_record).where(audit_record.c.seq > after)
        if up_to is not None:
            statement = statement.where(audit_record.c.seq <= up_to)
        with engine.connect() as connection:
            rows = connection.execute(statement.order_by(audit_record.c.seq).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            yield to_record(row)
        after = int(rows[-1].seq)


def query(engine: Engine, *, actor: str | None = None, action: str | None = None,
          kind: str | None = None, since: str | None = None, after_seq: int | None = None,
          up_to: int | None = None, limit: int | None = None, offset: int = 0,
          newest_first: bool = False) -> list[Record]:
    statement = select(audit_record)
    if actor:
        statement = statement.where(audit_record.c.actor == actor)
    if action:
        statement = statement.where(audit_record.c.action == action)
    if kind:
        statement = statement.where(audit_record.c.kind == kind)
    if since:
        statement = statement.where(audit_record.c.recorded_at >= since)
    if after_seq is not None:
        statement = statement.where(audit_record.c.seq > after_seq)
    if up_to is not None:
        statement = statement.where(audit_record.c.seq <= up_to)
    order = audit_record.c.seq.desc() if newest_first else audit_record.c.seq
    statement = statement.order_by(order)
    if limit is not None:
        statement = statement.limit(limit).offset(offset)
    with engine.connect() as connection:
        return [to_record(row) for row in connection.execute(statement)]


def prune(engine: Engine, before: str, actor: str, key: str) -> tuple[int, Record | None]:
    """Delete the longest run of oldest records all recorded before ``before`` and replace the
    last of them by an anchor; record the prune itself at the chain's end. Returns the number
    of records deleted and the anchor."""
    ensure_tables(engine)
    with engine.begin() as connection:
        head_now = _lock_head(connection)
        first = connection.execute(select(audit_record).order_by(audit_record.c.seq)
                                   .limit(1)).one_or_none()
        if first is None:
            return 0, None
        newer = connection.scalar(select(func.min(audit_record.c.seq))
                                  .where(audit_record.c.recorded_at >= before))
        last_pruned = int(newer) - 1 if newer is not None else head_now[0]
        if last_pruned <= int(first.seq):
            return 0, None  # nothing, or only the present anchor, is older
        row = connection.execute(select(audit_record)
                                 .where(audit_record.c.seq == last_pruned)).one()
        count = int(connection.scalar(select(func.count()).select_from(audit_record)
                                      .where(audit_record.c.seq <= last_pruned)) or 0)
        first_seq = int(first.seq)
        if first.kind == "anchor":  # an earlier prune: its range is pruned again
            first_seq = int(json.loads(first.details).get("pruned_seqs", [first_seq])[0])
        anchor = anchor_for(to_record(row), count, first_seq, before, actor, key)
        connection.execute(delete(audit_record).where(audit_record.c.seq <= last_pruned))
        connection.execute(insert(audit_record), [_row(anchor)])
        _append_locked(connection, head_now, _prepare([Entry(
            "user_action", actor, "audit.prune", f"before {before}",
            {"before": before, "pruned_records": count, "anchor_seq": anchor.seq},
            source="cli", recorded_at=utc_timestamp())], key), key)
        return count, anchor
