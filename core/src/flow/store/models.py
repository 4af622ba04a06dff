"""The metadata database: SQLAlchemy 2.0 typed models.

Every schema change is an Alembic migration in ``flow/store/migrations/versions``; a test compares
these models with the migrated schema so the two never drift.

Unique constraints make the impossible impossible: a DAG run is unique per (dag_id, run_id) and
per (dag_id, logical_date); a task instance per (dag_id, run_id, task_id, map_index); a try per
(task instance, try_number); an XCom per (task instance, key).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from flow.utils.timezone import utcnow

# Deterministic constraint names, so Alembic migrations can address them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 250  # dag_id, task_id, run_id, conn_id: indexable on MySQL utf8mb4 in a composite key


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC on every database (naive on SQLite and MySQL)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the metadata database; "
                             "flow stores timezone-aware datetimes only")
        from datetime import UTC

        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name in {"sqlite", "mysql"} else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        from datetime import UTC

        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


LongText = Text().with_variant(mysql.LONGTEXT(), "mysql")
JsonType = JSON().with_variant(mysql.JSON(), "mysql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DagModel(Base):
    """One row per DAG the DAG processor has seen: what the scheduler and the UI list."""

    __tablename__ = "dag"

    dag_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    fileloc: Mapped[str] = mapped_column(String(2000))
    is_paused: Mapped[bool] = mapped_column(Boolean, default=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    owners: Mapped[str] = mapped_column(String(2000), default="")
    tags: Mapped[list[str]] = mapped_column(JsonType, default=list)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    schedule_description: Mapped[str] = mapped_column(String(1000), default="")
    max_active_runs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_active_tasks: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_dagrun: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    next_dagrun_data_interval_start: Mapped[datetime | None] = mapped_column(UtcDateTime,
                                                                            nullable=True)
    next_dagrun_data_interval_end: Mapped[datetime | None] = mapped_column(UtcDateTime,
                                                                          nullable=True)
    next_dagrun_create_after: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_parsed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    dag_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index(None, "is_paused", "is_active", "next_dagrun_create_after"),)


class SerializedDagModel(Base):
    """The JSON form of a DAG, written by the DAG processor; ``dag_hash`` is the DAG's version."""

    __tablename__ = "serialized_dag"

    dag_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    fileloc: Mapped[str] = mapped_column(String(2000))
    data: Mapped[dict[str, Any]] = mapped_column(JsonType)
    dag_hash: Mapped[str] = mapped_column(String(64))
    last_updated: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DagCodeModel(Base):
    """The source of each DAG file, so the web server shows code without reading DAG files."""

    __tablename__ = "dag_code"

    fileloc_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    fileloc: Mapped[str] = mapped_column(String(2000))
    source_code: Mapped[str] = mapped_column(LongText)
    source_hash: Mapped[str] = mapped_column(String(64))
    last_updated: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DagRun(Base):
    __tablename__ = "dag_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    logical_date: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    data_interval_start: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    data_interval_end: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    run_type: Mapped[str] = mapped_column(String(50))
    state: Mapped[str] = mapped_column(String(50))
    conf: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    dag_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    start_date: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    end_date: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    backfill_id: Mapped[int | None] = mapped_column(
        ForeignKey("backfill.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("dag_id", "run_id"),
        UniqueConstraint("dag_id", "logical_date"),
        Index(None, "state", "dag_id"),
    )


class TaskInstance(Base):
    """The current state of one task (one map index) in one DAG run."""

    __tablename__ = "task_instance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    task_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)
    try_number: Mapped[int] = mapped_column(Integer, default=0)
    max_tries: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str | None] = mapped_column(String(50), nullable=True)
    operator: Mapped[str] = mapped_column(String(1000), default="")
    pool: Mapped[str] = mapped_column(String(256), default="default_pool")
    pool_slots: Mapped[int] = mapped_column(Integer, default=1)
    queue: Mapped[str] = mapped_column(String(256), default="default")
    priority_weight: Mapped[int] = mapped_column(Integer, default=1)
    executor: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    hostname: Mapped[str] = mapped_column(String(1000), default="")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    start_date: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    end_date: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    next_retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    queued_by_job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    external_executor_id: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    rendered_fields: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("dag_id", "run_id", "task_id", "map_index"),
        ForeignKeyConstraint(["dag_id", "run_id"], ["dag_run.dag_id", "dag_run.run_id"],
                             ondelete="CASCADE"),
        Index(None, "state", "pool"),
        Index(None, "dag_id", "task_id", "state"),
    )


class TaskInstanceTry(Base):
    """One row per try of a task instance: its history, and the guard against a double start."""

    __tablename__ = "task_instance_try"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_instance_id: Mapped[int] = mapped_column(
        ForeignKey("task_instance.id", ondelete="CASCADE"))
    try_number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str | None] = mapped_column(String(50), nullable=True)
    hostname: Mapped[str] = mapped_column(String(1000), default="")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    executor: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    start_date: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    end_date: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (UniqueConstraint("task_instance_id", "try_number"),)


class XComModel(Base):
    """A value a task pushed: JSON text (see :mod:`flow.serialization`), never a pickle.

    Keyed by the task instance's id rather than (dag_id, run_id, task_id): three 250-character
    ids already fill MySQL's 3072-byte index limit. The ids are kept as columns for querying.
    """

    __tablename__ = "xcom"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    task_instance_id: Mapped[int] = mapped_column(
        ForeignKey("task_instance.id", ondelete="CASCADE"))
    dag_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    run_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    task_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)
    key: Mapped[str] = mapped_column(String(512))
    value: Mapped[str] = mapped_column(LongText)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("task_instance_id", "key"),
        Index(None, "dag_id", "run_id", "task_id"),
    )


class ConnectionModel(Base):
    """A stored connection; ``password`` and ``extra`` are Fernet tokens, never plain text."""

    __tablename__ = "connection"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conn_id: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)
    conn_type: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    host: Mapped[str | None] = mapped_column(String(500), nullable=True)
    schema: Mapped[str | None] = mapped_column(String(500), nullable=True)
    login: Mapped[str | None] = mapped_column(Text, nullable=True)
    password: Mapped[str | None] = mapped_column(Text, nullable=True)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    extra: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class VariableModel(Base):
    """A stored variable; ``val`` is a Fernet token."""

    __tablename__ = "variable"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)
    val: Mapped[str] = mapped_column(LongText)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class ImportError_(Base):
    """A DAG file that failed to load: file, line and traceback, until it loads again."""

    __tablename__ = "import_error"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    filename: Mapped[str] = mapped_column(String(2000))
    lineno: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(Text)
    stacktrace: Mapped[str] = mapped_column(LongText)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class EventLog(Base):
    """What people and scripts did: the event log the UI shows (``flow_user_action``)."""

    __tablename__ = "event_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dttm: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(500))
    action: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(2000), default="")
    dag_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)

    __table_args__ = (Index(None, "dttm"),)


class Pool(Base):
    """A named number of slots that bounds how many task instances run at once."""

    __tablename__ = "pool"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    slots: Mapped[int] = mapped_column(Integer, default=128)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)


class Job(Base):
    """A long-running flow process (a scheduler) and its heartbeat.

    On SQLite exactly one scheduler may run: a second one finds a live row here and refuses to
    start, naming its host and pid. On PostgreSQL and MySQL several run at once.
    """

    __tablename__ = "job"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_type: Mapped[str] = mapped_column(String(50))
    state: Mapped[str] = mapped_column(String(20))
    hostname: Mapped[str] = mapped_column(String(1000), default="")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    executor: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    start_date: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    end_date: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    latest_heartbeat: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (Index(None, "job_type", "state", "latest_heartbeat"),)


class Backfill(Base):
    """A range of logical dates to run (or re-run) for one DAG, worked off by the scheduler."""

    __tablename__ = "backfill"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    from_date: Mapped[datetime] = mapped_column(UtcDateTime)
    to_date: Mapped[datetime] = mapped_column(UtcDateTime)
    reprocess_behavior: Mapped[str] = mapped_column(String(20), default="none")
    max_active_runs: Mapped[int] = mapped_column(Integer, default=10)
    dag_run_conf: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    state: Mapped[str] = mapped_column(String(20), default="running")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class User(Base):
    """A person who logs in to the web UI or the REST API; the password is a salted hash."""

    __tablename__ = "user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(256), unique=True)
    email: Mapped[str | None] = mapped_column(String(500), nullable=True)
    password_hash: Mapped[str] = mapped_column(String(500))
    role: Mapped[str] = mapped_column(String(20))  # admin | op | viewer
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_login: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ApiToken(Base):
    """A bearer token for the REST API; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(256))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
