"""What a plugin may use of flow's runtime beyond the hooks: its own configuration section and
the metadata database.

A plugin that keeps state (an audit trail, a report cache) needs two things the hooks do not
hand it, and reaching into ``flow.config`` or ``flow.store`` for them would tie it to the
core's internals::

    from flow.plugin_support import metadata_engine, plugin_settings

    settings = plugin_settings("audit")           # [audit] of flow.toml, FLOW__AUDIT__* wins
    if settings.get_bool("record_state_changes", False): ...
    engine = metadata_engine()                     # the configured metadata database

A plugin's tables live next to flow's in the metadata database but are the plugin's own: it
creates them (flow's migrations neither create nor check them) and names them with its own
prefix (``audit_record``), never one of flow's table names.

Since: 0.1.0
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flow.config import ConfigError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from flow.config import Config

__all__ = ["PluginSettings", "metadata_engine", "metadata_url", "new_metadata_engine",
           "plugin_settings"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class PluginSettings:
    """The ``[section]`` table of ``flow.toml``, each key overridable by ``FLOW__SECTION__KEY``.

    The getters convert and raise :class:`flow.config.ConfigError` naming the file or the
    variable that holds a value of the wrong type.
    """

    def __init__(self, section: str, values: dict[str, tuple[Any, str]]) -> None:
        self.section = section
        self._values = values  # key -> (raw value, where it came from)

    def source(self, key: str) -> str | None:
        """Where ``key`` was set (a variable name or the file), or None for the default."""
        found = self._values.get(key)
        return found[1] if found else None

    def get_str(self, key: str, default: str) -> str:
        raw, origin = self._values.get(key, (default, ""))
        if not isinstance(raw, str):
            raise self._wrong(key, raw, origin, "a string")
        return raw

    def get_bool(self, key: str, default: bool) -> bool:
        raw, origin = self._values.get(key, (default, ""))
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise self._wrong(key, raw, origin, "true or false")

    def get_int(self, key: str, default: int) -> int:
        raw, origin = self._values.get(key, (default, ""))
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        try:
            return int(str(raw).strip())
        except ValueError:
            raise self._wrong(key, raw, origin, "an integer") from None

    def get_float(self, key: str, default: float) -> float:
        raw, origin = self._values.get(key, (default, ""))
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        try:
            return float(str(raw).strip())
        except ValueError:
            raise self._wrong(key, raw, origin, "a number") from None

    def _wrong(self, key: str, raw: Any, origin: str, wanted: str) -> ConfigError:
        return ConfigError(f"[{self.section}] {key} from {origin or 'the default'} must be "
                           f"{wanted}, got {raw!r}")


def plugin_settings(section: str, config: Config | None = None) -> PluginSettings:
    """A plugin's own configuration section (read when called: call it once and keep it).

    ``config`` defaults to the process's configuration (``$FLOW_HOME/flow.toml`` and the
    environment); give a :class:`flow.config.Config` to read another file or environment.
    """
    from flow.config import Config

    config = config or Config()
    values: dict[str, tuple[Any, str]] = {}
    path = Path(config.path)
    if path.exists():
        try:
            table = tomllib.loads(path.read_text()).get(section, {})
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: {err}") from err
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section}] must be a table, got {table!r}")
        values.update({str(key): (value, str(path)) for key, value in table.items()})
    # Config keeps the environment it was built with (tests give their own).
    environ = getattr(config, "_environ", os.environ)
    prefix = f"FLOW__{section.upper()}__"
    for name, value in environ.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            values[name[len(prefix):].lower()] = (value, name)
    return PluginSettings(section, values)


def metadata_url() -> str:
    """The SQLAlchemy URL of the metadata database (``[database] url``); it may hold a
    password: never log or show it."""
    from flow.config import load_config

    return str(load_config().get("database", "url"))


def metadata_engine() -> Engine:
    """The process's shared engine on the metadata database (the one flow itself uses)."""
    from flow.store.session import get_engine

    return get_engine()


def new_metadata_engine() -> Engine:
    """A new engine on the metadata database with a pool of its own, for a plugin that writes
    from a background thread or must configure its connections (the caller disposes it).

    SQLite connections get flow's settings (WAL, busy timeout); server databases pre-ping."""
    from flow.store.session import make_engine

    return make_engine(metadata_url())
