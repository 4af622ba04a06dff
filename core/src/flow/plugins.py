"""flow's plugin manager: loading, the typed facade over the hooks, and event dispatch.

Two mechanisms are flow's own because pluggy lacks them:

* **Loading.** Entry points of the ``flow.plugins`` group are read once per manager, each loaded
  inside its own try/except. A plugin that fails to import, implements a hook that does not exist
  (a misspelling) or registers a name another plugin already has is kept as a *failed* plugin
  with the reason; the rest keep working. ``FLOW_STRICT_PLUGINS=1`` makes any of these fatal.
  The core's own plugins are registered first from :data:`BUILTIN_PLUGINS`, a fixed list, so the
  order never depends on the environment.
* **Event dispatch.** Each implementation of an event hook is called separately; an exception is
  logged with ``plugin=<name>`` and the next listener is still called. With no listeners an event
  costs one dictionary lookup.

The manager is an instance that the application builds and passes on. Code that runs deep inside
a task (``Connection.get``) finds the active one through :func:`current`, which the application
sets with :func:`activate`; tests build fresh managers.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from flow import hookspecs
from flow.records import (
    ConnectionTypeSpec,
    ExecutorSpec,
    OperatorSpec,
    SecretsBackendSpec,
    TimetableSpec,
    XComBackendSpec,
)

if TYPE_CHECKING:
    import click

    from flow.config import Config

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "flow.plugins"
CORE_DISTRIBUTION = "flow-core"

# (module, essential). Essential builtins cannot be disabled: flow cannot restore a serialized
# DAG without its timetables, nor run a task without an XCom and a secrets backend.
BUILTIN_PLUGINS: tuple[tuple[str, bool], ...] = (
    ("flow.builtin.timetables", True),
    ("flow.builtin.xcom", True),
    ("flow.builtin.secrets", True),
    ("flow.builtin.executors", False),
    ("flow.builtin.operators", False),
)

ACTIVE, DISABLED, FAILED = "active", "disabled", "failed"


class PluginError(Exception):
    """A plugin could not be loaded or used; the message names the plugin and distribution."""


class PluginConflictError(PluginError):
    """Two plugins registered the same name; the message names both distributions."""


class UnknownComponentError(PluginError):
    """A configured name (executor, XCom backend, ...) that no plugin registered."""


@dataclass
class PluginInfo:
    """What ``flow plugins list`` shows about one plugin."""

    name: str
    distribution: str
    version: str
    status: str = ACTIVE
    reason: str = ""
    hooks: list[str] = field(default_factory=list)
    builtin: bool = False
    essential: bool = False
    module: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "reason": self.reason,
            "hooks": list(self.hooks),
            "builtin": self.builtin,
            "essential": self.essential,
            "module": self.module,
        }

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version} (plugin {self.name})"


class _PrefixPluginManager(pluggy.PluginManager):
    """Treats every ``flow_*`` callable of a plugin as a hook implementation, marked or not.

    pytest does the same for ``pytest_*``: it turns a misspelled or unmarked hook into a loud
    validation error instead of a function that is silently never called.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("flow_"):
            method = getattr(plugin, name, None)
            if callable(method) and not isinstance(method, type):
                return {
                    "wrapper": False, "hookwrapper": False, "optionalhook": False,
                    "tryfirst": False, "trylast": False, "specname": None,
                }
        return opts


_T = TypeVar("_T")


def _core_version() -> str:
    try:
        from importlib.metadata import version

        return version(CORE_DISTRIBUTION)
    except Exception:
        return "0+unknown"


class PluginManager:
    """Loads flow's plugins and offers one typed method per hook."""

    def __init__(self, config: Config | None = None, *, strict: bool | None = None) -> None:
        if config is None:
            from flow.config import Config

            config = Config()
        self.config = config
        self.strict = config.strict_plugins() if strict is None else strict
        self._pm = _PrefixPluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self._registry_cache: dict[str, dict[str, Any]] = {}
        self._event_cache: dict[str, list[tuple[str, Callable[..., Any], list[str]]]] = {}
        self._loaded = False

    # ----------------------------------------------------------------------------------- loading

    def load(self) -> PluginManager:
        """Register the builtins, then every entry point plugin. Idempotent."""
        if self._loaded:
            return self
        self._loaded = True
        disabled = set(self.config.getlist("core", "disabled_plugins"))
        allowed = set(self.config.getlist("core", "enabled_plugins"))
        version = _core_version()
        for module_name, essential in BUILTIN_PLUGINS:
            info = PluginInfo(module_name, CORE_DISTRIBUTION, version, builtin=True,
                              essential=essential, module=module_name)
            if not essential and (module_name in disabled or CORE_DISTRIBUTION in disabled):
                self._disable(info, "disabled by [core] disabled_plugins")
                continue
            self._load_one(info, lambda m=module_name: importlib.import_module(m))
        builtin_modules = {name for name, _ in BUILTIN_PLUGINS}
        for entry_point in self._entry_points():
            if entry_point.value in builtin_modules:
                continue
            dist = entry_point.dist
            info = PluginInfo(
                entry_point.name,
                dist.name if dist is not None else "<unknown>",
                dist.version if dist is not None else "?",
                module=entry_point.value,
            )
            if info.name in self._infos:
                self._fail(info, f"entry point name {info.name!r} is already used by "
                                 f"{self._infos[info.name].label}")
                continue
            if disabled & {info.name, info.distribution}:
                self._disable(info, "disabled by [core] disabled_plugins")
                continue
            if allowed and not allowed & {info.name, info.distribution}:
                self._disable(info, "not in [core] enabled_plugins")
                continue
            self._load_one(info, entry_point.load)
        return self

    @staticmethod
    def _entry_points() -> list[Any]:
        import importlib_metadata

        return sorted(importlib_metadata.entry_points(group=ENTRY_POINT_GROUP),
                      key=lambda ep: ep.name)

    def _load_one(self, info: PluginInfo, loader: Callable[[], object]) -> None:
        try:
            plugin = loader()
        except Exception as err:
            self._fail(info, f"import failed: {type(err).__name__}: {err}", err)
            return
        self.register(plugin, info)

    def register(self, plugin: object, info: PluginInfo | str | None = None) -> str:
        """Register a plugin object (a module, class or instance with ``flow_*`` hooks).

        Tests and applications use this for plugins that are not installed as distributions.
        A plugin that implements an unknown hook is unregistered again and reported as failed.
        """
        if not isinstance(info, PluginInfo):
            name = info or getattr(plugin, "__name__", None) or type(plugin).__name__
            info = PluginInfo(name, "<registered>", "", module=getattr(plugin, "__module__", ""))
        try:
            self._pm.register(plugin, name=info.name)
        except Exception as err:
            self._fail(info, f"registration failed: {err}", err)
            return info.name
        unknown = self._unknown_hooks(plugin)
        if unknown:
            self._pm.unregister(plugin)
            self._fail(info, "; ".join(unknown))
            return info.name
        info.hooks = sorted(hc.name for hc in self._pm.get_hookcallers(plugin) or [])
        self._infos[info.name] = info
        self._invalidate()
        return info.name

    def unregister(self, name: str) -> None:
        if self._pm.has_plugin(name):
            self._pm.unregister(name=name)
        self._infos.pop(name, None)
        self._invalidate()

    def _unknown_hooks(self, plugin: object) -> list[str]:
        problems = []
        known = [name for name in dir(hookspecs) if name.startswith("flow_")]
        for caller in self._pm.get_hookcallers(plugin) or []:
            if caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not impl.optionalhook:
                    close = difflib.get_close_matches(caller.name, known, n=1)
                    hint = f" (did you mean {close[0]}?)" if close else ""
                    problems.append(f"implements unknown hook {caller.name}{hint}")
        return problems

    def check_pending(self) -> None:
        """Raise if any registered plugin implements a hook flow does not define."""
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as err:
            raise PluginError(str(err)) from err

    def _disable(self, info: PluginInfo, reason: str) -> None:
        info.status, info.reason = DISABLED, reason
        self._infos[info.name] = info

    def _fail(self, info: PluginInfo, reason: str, error: BaseException | None = None) -> None:
        info.status, info.reason = FAILED, reason
        self._infos[info.name] = info
        message = f"plugin {info.name} from {info.distribution} {info.version} failed: {reason}"
        if self.strict:
            raise PluginError(f"{message} (strict plugin mode: FLOW_STRICT_PLUGINS)") from error
        log.error("%s; flow goes on without it", message)

    def _invalidate(self) -> None:
        self._registry_cache.clear()
        self._event_cache.clear()

    # ---------------------------------------------------------------------------- introspection

    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen: active, disabled and failed, builtins first."""
        self.load()
        return list(self._infos.values())

    def plugin_info(self, name: str) -> PluginInfo | None:
        return self._infos.get(name)

    @property
    def pluggy(self) -> pluggy.PluginManager:
        """The underlying pluggy manager, for tracing and tests; core code uses the facade."""
        return self._pm

    # ---------------------------------------------------------------- registration hooks facade

    def _collect(self, hook_name: str, kind: str, record_type: type[_T]) -> dict[str, _T]:
        self.load()
        cached = self._registry_cache.get(hook_name)
        if cached is not None:
            return cached
        owners: dict[str, str] = {}
        records: dict[str, _T] = {}
        caller = getattr(self._pm.hook, hook_name)
        # pluggy calls the last registered first; flow wants registration order (builtins win).
        for impl in reversed(caller.get_hookimpls()):
            info = self._infos.get(impl.plugin_name)
            try:
                returned = impl.function() or []
                items = list(returned)
            except Exception as err:
                if info is not None:
                    self._fail_after_load(info, f"{hook_name}() raised {type(err).__name__}: {err}",
                                          err)
                continue
            for record in items:
                if not isinstance(record, record_type):
                    if info is not None:
                        self._fail_after_load(info, f"{hook_name}() returned {record!r}, "
                                                    f"not a {record_type.__name__}")
                    continue
                name = record.name  # type: ignore[attr-defined]
                if name in records:
                    first = self._infos.get(owners[name])
                    first_label = first.label if first else owners[name]
                    if info is not None:
                        self._fail_after_load(
                            info, f"{kind} name {name!r} is already registered by {first_label}; "
                                  f"{info.label} registers it too. Rename one or disable one "
                                  f"with [core] disabled_plugins.",
                            conflict=True)
                    continue
                owners[name] = impl.plugin_name
                records[name] = record
        self._registry_cache[hook_name] = records
        return records

    def _fail_after_load(self, info: PluginInfo, reason: str,
                         error: BaseException | None = None, *, conflict: bool = False) -> None:
        info.status = FAILED
        info.reason = f"{info.reason}; {reason}" if info.reason else reason
        message = f"plugin {info.name} from {info.distribution} {info.version}: {reason}"
        if self.strict:
            kind = PluginConflictError if conflict else PluginError
            raise kind(message) from error
        log.error(message)

    def executors(self) -> dict[str, ExecutorSpec]:
        return self._collect("flow_executors", "executor", ExecutorSpec)

    def operators(self) -> dict[str, OperatorSpec]:
        return self._collect("flow_operators", "operator", OperatorSpec)

    def connection_types(self) -> dict[str, ConnectionTypeSpec]:
        return self._collect("flow_connection_types", "connection type", ConnectionTypeSpec)

    def xcom_backends(self) -> dict[str, XComBackendSpec]:
        return self._collect("flow_xcom_backends", "XCom backend", XComBackendSpec)

    def secrets_backends(self) -> dict[str, SecretsBackendSpec]:
        return self._collect("flow_secrets_backends", "secrets backend", SecretsBackendSpec)

    def timetables(self) -> dict[str, TimetableSpec]:
        return self._collect("flow_timetables", "timetable", TimetableSpec)

    def executor(self, name: str) -> ExecutorSpec:
        return _lookup(self.executors(), name, "executor", "[core] executor")

    def xcom_backend(self, name: str) -> XComBackendSpec:
        return _lookup(self.xcom_backends(), name, "XCom backend", "[core] xcom_backend")

    def secrets_backend(self, name: str) -> SecretsBackendSpec:
        return _lookup(self.secrets_backends(), name, "secrets backend",
                       "[core] secrets_backends")

    # ------------------------------------------------------------------- extension hooks facade

    def extend_cli(self, cli: click.Group) -> None:
        self._call_each("flow_cli", {"cli": cli})

    def extend_web(self, app: Any) -> None:
        self._call_each("flow_web", {"app": app})

    # ----------------------------------------------------------------------- event hooks facade

    def dag_run_state_changed(self, run: Any, previous: str | None, current: str) -> None:
        self._call_each("flow_dag_run_state_changed",
                        {"run": run, "previous": previous, "current": current})

    def task_instance_state_changed(self, ti: Any, previous: str | None, current: str) -> None:
        self._call_each("flow_task_instance_state_changed",
                        {"ti": ti, "previous": previous, "current": current})

    def user_action(self, actor: str, action: str, target: str, details: dict[str, Any]) -> None:
        self._call_each("flow_user_action",
                        {"actor": actor, "action": action, "target": target, "details": details})

    def connection_accessed(self, conn_id: str, accessor: dict[str, Any]) -> None:
        self._call_each("flow_connection_accessed", {"conn_id": conn_id, "accessor": accessor})

    def has_listeners(self, hook_name: str) -> bool:
        return bool(self._listeners(hook_name))

    def _listeners(self, hook_name: str) -> list[tuple[str, Callable[..., Any], list[str]]]:
        listeners = self._event_cache.get(hook_name)
        if listeners is None:
            self.load()
            impls = getattr(self._pm.hook, hook_name).get_hookimpls()
            listeners = [(impl.plugin_name, impl.function, list(impl.argnames))
                         for impl in reversed(impls)]
            self._event_cache[hook_name] = listeners
        return listeners

    def _call_each(self, hook_name: str, kwargs: dict[str, Any]) -> None:
        for plugin_name, function, argnames in self._listeners(hook_name):
            try:
                function(**{name: kwargs[name] for name in argnames})
            except Exception:
                log.exception("plugin=%s hook=%s raised; flow goes on", plugin_name, hook_name)


def _lookup(records: dict[str, _T], name: str, kind: str, option: str) -> _T:
    try:
        return records[name]
    except KeyError:
        known = ", ".join(sorted(records)) or "none"
        raise UnknownComponentError(
            f"no {kind} named {name!r} is installed (set by {option}); installed: {known}. "
            f"Install the plugin that provides it, or check `flow plugins list` for one that "
            f"failed to load."
        ) from None


# ------------------------------------------------------------------------- the active manager

_active: ContextVar[PluginManager | None] = ContextVar("flow_plugin_manager", default=None)


def current() -> PluginManager:
    """The plugin manager of the running application; built on first use in a bare process."""
    manager = _active.get()
    if manager is None:
        manager = PluginManager().load()
        _active.set(manager)
    return manager


@contextlib.contextmanager
def activate(manager: PluginManager) -> Iterator[PluginManager]:
    """Make ``manager`` the one :func:`current` returns inside the block."""
    token = _active.set(manager)
    try:
        yield manager
    finally:
        _active.reset(token)


def set_current(manager: PluginManager | None) -> None:
    """Make ``manager`` the process's active manager (application entry points call this)."""
    _active.set(manager)
