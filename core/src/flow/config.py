"""flow's configuration: ``$FLOW_HOME/flow.toml``, each key overridable by ``FLOW__SECTION__KEY``.

Every option is declared once in :data:`OPTIONS` with its type, default and description; the
configuration reference in ``docs/`` and ``flow config list`` are generated from that table.
Defaults that depend on FLOW_HOME are computed when read, so tests can point FLOW_HOME anywhere.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flow.exceptions import FlowException


class ConfigError(FlowException):
    """A configuration value is missing, malformed or of the wrong type."""


@dataclass(frozen=True)
class Option:
    section: str
    key: str
    type: type
    default: Any
    description: str
    sensitive: bool = False

    @property
    def env_var(self) -> str:
        return f"FLOW__{self.section.upper()}__{self.key.upper()}"


def flow_home() -> Path:
    return Path(os.environ.get("FLOW_HOME") or Path.home() / "flow").expanduser()


def _home_default(relative: str) -> Callable[[], str]:
    return lambda: str(flow_home() / relative)


def _sqlite_default() -> str:
    return f"sqlite:///{flow_home() / 'flow.db'}"


OPTIONS: tuple[Option, ...] = (
    Option("core", "dags_folder", str, _home_default("dags"), "Folder scanned for DAG files."),
    Option("core", "executor", str, "local", "Name of the executor the scheduler uses."),
    Option("core", "fernet_key", str, "",
           "Fernet key that encrypts connection passwords, extras and variables in the database. "
           "Make one with `flow config generate-fernet-key`.", sensitive=True),
    Option("core", "disabled_plugins", str, "",
           "Comma-separated entry point or distribution names of plugins not to load."),
    Option("core", "enabled_plugins", str, "",
           "Allow-list mode: when set, only these third-party plugins (entry point or distribution "
           "names, comma-separated) are loaded. Essential builtins are always loaded."),
    Option("core", "strict_plugins", bool, False,
           "Make a plugin that fails to load a fatal error (also FLOW_STRICT_PLUGINS=1)."),
    Option("core", "xcom_backend", str, "database", "Name of the XCom backend."),
    Option("core", "max_xcom_size", int, 1_048_576, "Largest XCom value in bytes, as JSON."),
    Option("core", "dag_file_processor_timeout", float, 30.0,
           "Seconds a DAG file may take to import before it is reported as an import error."),
    Option("core", "load_examples", bool, False, "Also load the example DAGs shipped with flow."),
    Option("core", "default_timezone", str, "UTC", "Timezone of naive datetimes in DAG files."),
    Option("core", "dags_are_paused_at_creation", bool, True, "New DAGs start paused."),
    Option("core", "secrets_backends", str, "environment,database",
           "Secrets backends searched in order for connections and variables."),
    Option("core", "parallelism", int, 32,
           "Most task instances running at once per scheduler, across all DAGs."),
    Option("core", "default_pool_slots", int, 128,
           "Slots of the default_pool when flow creates it."),
    Option("core", "default_task_retries", int, 0, "Retries of a task that sets none."),
    Option("core", "task_kill_grace_period", float, 5.0,
           "Seconds between SIGTERM and SIGKILL when a task is stopped (timeout, cancel)."),
    Option("scheduler", "heartbeat_interval", float, 5.0,
           "Seconds between the scheduler's heartbeats in the job table."),
    Option("scheduler", "health_threshold", float, 30.0,
           "A scheduler whose heartbeat is older than this many seconds counts as dead."),
    Option("scheduler", "idle_sleep", float, 1.0,
           "Longest sleep of the scheduler loop when nothing is ready."),
    Option("scheduler", "dag_dir_list_interval", float, 30.0,
           "Seconds between scans of the DAGs folder for new or changed files."),
    Option("scheduler", "max_dagruns_per_loop", int, 20,
           "Most DAG runs created or examined per loop iteration."),
    Option("scheduler", "task_heartbeat_interval", float, 5.0,
           "Seconds between a running task's heartbeats."),
    Option("scheduler", "task_heartbeat_timeout", float, 60.0,
           "A running task whose heartbeat is older than this is a zombie: failed or retried."),
    Option("scheduler", "task_queued_timeout", float, 600.0,
           "A task queued longer than this (its message lost) is re-queued or failed."),
    Option("scheduler", "catchup_by_default", bool, False, "catchup of a DAG that sets none."),
    Option("local_executor", "workers", int, 0,
           "Warm worker processes of the local executor (0: one per two CPUs, at least one)."),
    Option("local_executor", "spare_children", int, 4,
           "Children each worker's fork server keeps forked ahead of the next tries (0: "
           "fork each at its launch)."),
    Option("webserver", "host", str, "127.0.0.1", "Address the web server listens on."),
    Option("webserver", "port", int, 8080, "Port the web server listens on."),
    Option("webserver", "secret_key", str, "",
           "Key that signs session cookies; generated into flow.toml by `flow standalone`.",
           sensitive=True),
    Option("webserver", "base_url", str, "http://127.0.0.1:8080",
           "URL users reach the UI at (links in logs and notifications)."),
    Option("webserver", "session_lifetime_minutes", int, 720, "Minutes a login lasts."),
    Option("webserver", "cookie_secure", bool, False,
           "Send the session cookie over HTTPS only (set behind TLS)."),
    Option("database", "url", str, _sqlite_default,
           "SQLAlchemy URL of the metadata database.", sensitive=True),
    Option("database", "echo", bool, False, "Log every SQL statement (debugging)."),
    Option("logging", "base_log_folder", str, _home_default("logs"),
           "Where task logs are written."),
    Option("logging", "level", str, "INFO", "Log level of flow's own processes."),
)


def _coerce(option: Option, raw: Any, origin: str) -> Any:
    if isinstance(raw, option.type) and not (option.type is int and isinstance(raw, bool)):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        try:
            if option.type is bool:
                if text.lower() in {"1", "true", "yes", "on"}:
                    return True
                if text.lower() in {"0", "false", "no", "off", ""}:
                    return False
                raise ValueError(text)
            return option.type(text)
        except ValueError:
            pass
    if option.type is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    raise ConfigError(
        f"[{option.section}] {option.key} from {origin} must be {option.type.__name__}, got {raw!r}"
    )


class Config:
    """Reads flow.toml once, then answers ``get(section, key)`` with environment overrides."""

    def __init__(self, path: Path | None = None, environ: dict[str, str] | None = None) -> None:
        self.path = path or flow_home() / "flow.toml"
        self._environ = environ if environ is not None else os.environ
        self._file: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                self._file = tomllib.loads(self.path.read_text())
            except tomllib.TOMLDecodeError as err:
                raise ConfigError(f"{self.path}: {err}") from err
        self._options = {(o.section, o.key): o for o in OPTIONS}

    def option(self, section: str, key: str) -> Option:
        try:
            return self._options[(section, key)]
        except KeyError:
            raise ConfigError(f"unknown configuration option [{section}] {key}") from None

    def source(self, section: str, key: str) -> str:
        option = self.option(section, key)
        if option.env_var in self._environ:
            return "env"
        if key in self._file.get(section, {}):
            return "file"
        return "default"

    def get(self, section: str, key: str) -> Any:
        option = self.option(section, key)
        if option.env_var in self._environ:
            return _coerce(option, self._environ[option.env_var], option.env_var)
        if key in self._file.get(section, {}):
            return _coerce(option, self._file[section][key], f"{self.path}")
        default = option.default
        return default() if callable(default) else default

    def getlist(self, section: str, key: str) -> list[str]:
        return [item.strip() for item in str(self.get(section, key)).split(",") if item.strip()]

    def items(self) -> Iterator[tuple[Option, Any]]:
        for option in OPTIONS:
            yield option, self.get(option.section, option.key)

    def strict_plugins(self) -> bool:
        return self._environ.get("FLOW_STRICT_PLUGINS", "") in {"1", "true", "yes"} or bool(
            self.get("core", "strict_plugins")
        )


def load_config() -> Config:
    return Config()
