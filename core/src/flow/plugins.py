"""flow's plugin manager: loading, the typed facade over the hooks, and event dispatch.

Two mechanisms are flow's own because pluggy lacks them:

* **Loading.** Entry points of the ``flow.plugins`` group are read once per manager, each loaded
  inside its own try/except. The core's own plugins are registered first from
  :data:`BUILTIN_PLUGINS`, a fixed list, so the order never depends on the environment. Then the
  registration hooks are called once and their records checked: a plugin that fails to import,
  implements a hook that does not exist (a misspelling), returns something that is not a record,
  or registers a name an earlier plugin already has is unregistered and kept as a *failed* plugin
  with the reason; the rest keep working. ``FLOW_STRICT_PLUGINS=1`` makes any of these fatal.
* **Event dispatch.** Each implementation of an event hook is called separately; an exception is
  logged with ``plugin=<name>`` and the next listener is still called. With no listeners an event
  costs one dictionary lookup. The one exception is on purpose: a ``flow_user_action`` listener
  that raises :class:`~flow.exceptions.ActionVetoed` refuses the action (since 0.2.0).

The manager is an instance that the application builds and passes on. Code that runs deep inside
a task (``Connection.get``) finds the active one through :func:`current`, which the application
sets with :func:`set_current` (or :func:`activate` for a block); tests build fresh managers.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import pluggy

from flow import hookspecs
from flow.exceptions import ActionVetoed, FlowException
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
    import importlib_metadata
    from sqlalchemy.orm import Session

    from flow.config import Config

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "flow.plugins"
CORE_DISTRIBUTION = "flow-core"

# (module, essential), in registration order. Essential builtins cannot be disabled: flow cannot
# restore a serialized DAG without its timetables, nor run a task without an XCom and a secrets
# backend. The module name is also the builtin's entry point name in core/pyproject.toml.
BUILTIN_PLUGINS: tuple[tuple[str, bool], ...] = (
    ("flow.builtin.timetables", True),
    ("flow.builtin.xcom", True),
    ("flow.builtin.secrets", True),
    ("flow.builtin.executors", False),
    ("flow.builtin.operators", False),
)

ACTIVE, DISABLED, FAILED = "active", "disabled", "failed"

# registration hook -> (what its records are called in messages, the record class)
REGISTRIES: dict[str, tuple[str, type[Any]]] = {
    "flow_timetables": ("timetable", TimetableSpec),
    "flow_xcom_backends": ("XCom backend", XComBackendSpec),
    "flow_secrets_backends": ("secrets backend", SecretsBackendSpec),
    "flow_connection_types": ("connection type", ConnectionTypeSpec),
    "flow_executors": ("executor", ExecutorSpec),
    "flow_operators": ("operator", OperatorSpec),
}


class PluginError(FlowException):
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
    def source(self) -> str:
        """``distribution version``, e.g. ``flow-celery 1.2.0``."""
        return f"{self.distribution} {self.version}".strip()

    @property
    def label(self) -> str:
        return f"{self.source} (plugin {self.name})"


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_R = TypeVar("_R", bound=_Named)
_Listener = tuple[str, Callable[..., Any], tuple[str, ...]]


class _PrefixPluginManager(pluggy.PluginManager):
    """Treats every ``flow_*`` callable of a plugin as a hook implementation, marked or not.

    pytest does the same for ``pytest_*``: a misspelled or unmarked hook becomes a loud error
    instead of a function that is silently never called.
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
        self._unknown_hooks: list[str] = []
        self._registries: dict[str, dict[str, Any]] | None = None
        self._owners: dict[str, dict[str, str]] = {}
        self._listener_cache: dict[str, list[_Listener]] = {}
        self._loaded = False
        self._entry_point_reads = 0

    # ----------------------------------------------------------------------------------- loading

    def load(self) -> PluginManager:
        """Register the builtins, then every entry point plugin, then check their records.

        Idempotent: the entry points are read once per manager.
        """
        if self._loaded:
            return self
        self._loaded = True
        disabled = set(self.config.getlist("core", "disabled_plugins"))
        allowed = set(self.config.getlist("core", "enabled_plugins"))
        entry_points = self._entry_points()
        builtin_modules = {module for module, _ in BUILTIN_PLUGINS}
        core_version = next((ep.dist.version for ep in entry_points
                             if ep.value in builtin_modules and ep.dist is not None), None)
        self._load_builtins(disabled, core_version or _fallback_core_version())
        for entry_point in entry_points:
            if entry_point.value not in builtin_modules:
                self._load_entry_point(entry_point, disabled, allowed)
        self._build_registries()
        return self

    def _load_builtins(self, disabled: set[str], version: str) -> None:
        for module_name, essential in BUILTIN_PLUGINS:
            info = PluginInfo(module_name, CORE_DISTRIBUTION, version, builtin=True,
                              essential=essential, module=module_name)
            wants_off = bool({module_name, CORE_DISTRIBUTION} & disabled)
            if wants_off and essential:
                # Saying so beats silently ignoring the setting: the user expects it off.
                log.warning("plugin %s is essential to flow and cannot be disabled; "
                            "remove it from [core] disabled_plugins", module_name)
            elif wants_off:
                self._disable(info, "disabled by [core] disabled_plugins")
                continue
            self._load_one(info, functools.partial(importlib.import_module, module_name))

    def _load_entry_point(self, entry_point: importlib_metadata.EntryPoint,
                          disabled: set[str], allowed: set[str]) -> None:
        dist = entry_point.dist
        info = PluginInfo(
            entry_point.name,
            dist.name if dist is not None else "<unknown distribution>",
            dist.version if dist is not None else "",
            module=entry_point.value,
        )
        if info.name in self._infos:
            self._fail(info, f"entry point name {info.name!r} is already used by "
                             f"{self._infos[info.name].label}")
        elif disabled & {info.name, info.distribution}:
            self._disable(info, "disabled by [core] disabled_plugins")
        elif allowed and not allowed & {info.name, info.distribution}:
            self._disable(info, "not in [core] enabled_plugins")
        else:
            self._load_one(info, entry_point.load)

    def _entry_points(self) -> list[importlib_metadata.EntryPoint]:
        import importlib_metadata

        self._entry_point_reads += 1
        # Sorted so the order of third-party plugins never depends on sys.path order.
        return sorted(importlib_metadata.entry_points(group=ENTRY_POINT_GROUP),
                      key=lambda ep: (ep.name, ep.dist.name if ep.dist else ""))

    def _load_one(self, info: PluginInfo, loader: Callable[[], object]) -> None:
        try:
            plugin = loader()
        except Exception as err:
            self._fail(info, f"import of {info.module} failed: {type(err).__name__}: {err}", err)
            return
        self._register(plugin, info)

    def register(self, plugin: object, name: str | None = None) -> PluginInfo:
        """Register a plugin object (a module, class or instance with ``flow_*`` hooks).

        Tests and applications use this for plugins that are not installed as distributions;
        they come after the builtins and the entry point plugins. The returned info says whether
        it was accepted (``status``) and why not (``reason``).
        """
        self.load()
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        info = PluginInfo(name, "<registered>", "", module=getattr(plugin, "__module__", ""))
        if name in self._infos:
            self._fail(info, f"name {name!r} is already used by {self._infos[name].label}")
            return info
        self._register(plugin, info)
        if info.status == ACTIVE:
            self._build_registries()
        return info

    def _register(self, plugin: object, info: PluginInfo) -> None:
        try:
            self._pm.register(plugin, name=info.name)
        except Exception as err:  # pluggy's validation: wrong argument names, a duplicate
            self._fail(info, f"registration failed: {err}", err)
            return
        unknown = self._find_unknown_hooks(plugin, info)
        if unknown:
            self._pm.unregister(plugin)
            self._fail(info, "; ".join(unknown))
            return
        info.hooks = sorted(caller.name for caller in self._pm.get_hookcallers(plugin) or [])
        self._infos[info.name] = info
        self._listener_cache.clear()

    def unregister(self, name: str) -> None:
        """Remove a plugin, e.g. one a test registered."""
        if self._pm.has_plugin(name):
            self._pm.unregister(name=name)
        self._infos.pop(name, None)
        self._build_registries()

    def _find_unknown_hooks(self, plugin: object, info: PluginInfo) -> list[str]:
        problems = []
        known = [name for name in dir(hookspecs) if name.startswith("flow_")]
        for caller in self._pm.get_hookcallers(plugin) or []:
            if caller.has_spec():
                continue
            close = difflib.get_close_matches(caller.name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problem = f"implements unknown hook {caller.name}{hint}"
            problems.append(problem)
            self._unknown_hooks.append(f"plugin {info.name} from {info.source}: {problem}")
        return problems

    def check_pending(self) -> None:
        """Raise :class:`PluginError` if any plugin implements a hook flow does not define.

        Without strict mode a misspelled hook only fails its own plugin; plugin test suites call
        this to make it fatal. Also checks plugins registered through :attr:`pluggy` directly.
        """
        problems = list(self._unknown_hooks)
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as err:
            problems.append(str(err))
        if problems:
            raise PluginError("; ".join(problems))

    def _disable(self, info: PluginInfo, reason: str) -> None:
        info.status, info.reason = DISABLED, reason
        self._infos[info.name] = info

    def _fail(self, info: PluginInfo, reason: str, error: BaseException | None = None, *,
              conflict: bool = False) -> None:
        info.status, info.reason = FAILED, reason
        holder = self._infos.get(info.name)
        if holder is not None and holder is not info:
            # A second plugin under a taken name: keep both visible, leave the first alone.
            self._infos[f"{info.name} [{info.distribution}]"] = info
        else:
            self._infos[info.name] = info
            if self._pm.has_plugin(info.name):
                self._pm.unregister(name=info.name)
                self._listener_cache.clear()
        message = f"plugin {info.name} from {info.source} failed: {reason}"
        if self.strict:
            kind = PluginConflictError if conflict else PluginError
            raise kind(f"{message} (fatal because of strict plugin mode, FLOW_STRICT_PLUGINS=1 "
                       f"or [core] strict_plugins)") from error
        log.error("%s; flow goes on without it", message)

    # ------------------------------------------------------------------------------- registries

    def _build_registries(self) -> None:
        """Call every registration hook once per plugin, in registration order, and keep the
        records; a plugin whose records are broken or clash with an earlier plugin's fails whole,
        so it is never half active."""
        registries: dict[str, dict[str, Any]] = {hook: {} for hook in REGISTRIES}
        owners: dict[str, dict[str, str]] = {hook: {} for hook in REGISTRIES}
        impls = {(hook, impl.plugin_name): impl for hook in REGISTRIES
                 for impl in getattr(self._pm.hook, hook).get_hookimpls()}
        for info in list(self._infos.values()):
            if info.status != ACTIVE:
                continue
            try:
                records = self._records_of(info, impls, registries, owners)
            except _RecordProblem as problem:
                self._fail(info, problem.reason, problem.__cause__, conflict=problem.conflict)
                continue
            for hook, record in records:
                registries[hook][record.name] = record
                owners[hook][record.name] = info.name
        self._registries, self._owners = registries, owners

    def _records_of(self, info: PluginInfo, impls: dict[tuple[str, str], pluggy.HookImpl],
                    registries: dict[str, dict[str, Any]],
                    owners: dict[str, dict[str, str]]) -> list[tuple[str, Any]]:
        records: list[tuple[str, Any]] = []
        for hook, (kind, record_type) in REGISTRIES.items():
            impl = impls.get((hook, info.name))
            if impl is None:
                continue
            try:
                returned: list[Any] = list(cast("Iterable[Any]", impl.function() or []))
            except Exception as err:
                raise _RecordProblem(f"{hook}() raised {type(err).__name__}: {err}") from err
            seen: set[str] = set()
            for record in returned:
                if not isinstance(record, record_type):
                    raise _RecordProblem(f"{hook}() returned {record!r}, "
                                         f"not a flow.records.{record_type.__name__}")
                if record.name in registries[hook] or record.name in seen:
                    first = self._infos[owners[hook][record.name]] if record.name not in seen \
                        else info
                    raise _RecordProblem(
                        f"{kind} name {record.name!r} is already registered by {first.label}; "
                        f"{info.label} registers it too. Rename one, or disable one with "
                        f"FLOW__CORE__DISABLED_PLUGINS", conflict=True)
                seen.add(record.name)
                records.append((hook, record))
        return records

    def _registry(self, hook: str, record_type: type[_R]) -> dict[str, _R]:
        self.load()
        if self._registries is None:
            self._build_registries()
        registries = self._registries or {}
        return dict(registries[hook])

    def provider(self, hook: str, name: str) -> PluginInfo | None:
        """The plugin that registered ``name`` through registration hook ``hook``
        (e.g. ``provider("flow_executors", "celery")``), for error messages."""
        self._registry(hook, ExecutorSpec)
        owner = self._owners.get(hook, {}).get(name)
        return self._infos.get(owner) if owner else None

    # ---------------------------------------------------------------------------- introspection

    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen: active, disabled and failed; builtins first, in fixed order."""
        self.load()
        return list(self._infos.values())

    def plugin_info(self, name: str) -> PluginInfo | None:
        self.load()
        return self._infos.get(name)

    @property
    def pluggy(self) -> pluggy.PluginManager:
        """The underlying pluggy manager, for tracing and tests; core code uses the facade."""
        return self._pm

    # ---------------------------------------------------------------- registration hooks facade

    def executors(self) -> dict[str, ExecutorSpec]:
        return self._registry("flow_executors", ExecutorSpec)

    def operators(self) -> dict[str, OperatorSpec]:
        return self._registry("flow_operators", OperatorSpec)

    def connection_types(self) -> dict[str, ConnectionTypeSpec]:
        return self._registry("flow_connection_types", ConnectionTypeSpec)

    def xcom_backends(self) -> dict[str, XComBackendSpec]:
        return self._registry("flow_xcom_backends", XComBackendSpec)

    def secrets_backends(self) -> dict[str, SecretsBackendSpec]:
        return self._registry("flow_secrets_backends", SecretsBackendSpec)

    def timetables(self) -> dict[str, TimetableSpec]:
        return self._registry("flow_timetables", TimetableSpec)

    def executor(self, name: str) -> ExecutorSpec:
        return _lookup(self.executors(), name, "executor", "[core] executor")

    def xcom_backend(self, name: str) -> XComBackendSpec:
        return _lookup(self.xcom_backends(), name, "XCom backend", "[core] xcom_backend")

    def secrets_backend(self, name: str) -> SecretsBackendSpec:
        return _lookup(self.secrets_backends(), name, "secrets backend",
                       "[core] secrets_backends")

    def timetable(self, name: str) -> TimetableSpec:
        return _lookup(self.timetables(), name, "timetable", "a serialized DAG's schedule")

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

    def component_started(self, component: str) -> None:
        self._call_each("flow_component_started", {"component": component})

    def component_stopped(self, component: str) -> None:
        self._call_each("flow_component_stopped", {"component": component})

    def user_action(self, actor: str, action: str, target: str, details: dict[str, Any], *,
                    session: Session | None = None) -> None:
        """Tell the ``flow_user_action`` listeners, inside the action's transaction.

        Unlike the other event hooks, a listener may refuse the action by raising
        :class:`~flow.exceptions.ActionVetoed`: it reaches the caller, naming the plugin, and
        the listeners after it are not called. Any other exception is logged and ignored.
        A listener that takes ``transaction`` gets ``session``'s connection inside a savepoint
        of its own, rolled back when the listener raises, so one plugin's failed write never
        spoils the action's transaction (on PostgreSQL a failed statement would abort it).
        """
        kwargs: dict[str, Any] = {"actor": actor, "action": action, "target": target,
                                  "details": details, "transaction": None}
        for plugin_name, function, argnames in self._listeners("flow_user_action"):
            try:
                if "transaction" in argnames and session is not None:
                    with session.begin_nested():
                        function(**{**{name: kwargs[name] for name in argnames},
                                    "transaction": session.connection()})
                else:
                    function(**{name: kwargs[name] for name in argnames})
            except ActionVetoed as veto:
                info = self._infos.get(plugin_name)
                raise veto.refused_by(plugin_name, info.distribution if info else None,
                                      action, target) from veto
            except Exception:
                self._log_listener_error(plugin_name, "flow_user_action")

    def connection_accessed(self, conn_id: str, accessor: dict[str, Any]) -> None:
        self._call_each("flow_connection_accessed", {"conn_id": conn_id, "accessor": accessor})

    def has_listeners(self, hook_name: str) -> bool:
        return bool(self._listeners(hook_name))

    def _listeners(self, hook_name: str) -> list[_Listener]:
        listeners = self._listener_cache.get(hook_name)
        if listeners is None:
            self.load()
            # pluggy's call order: tryfirst ones first, then the last registered first.
            impls = getattr(self._pm.hook, hook_name).get_hookimpls()
            listeners = [(impl.plugin_name, impl.function, tuple(impl.argnames))
                         for impl in reversed(impls)]
            self._listener_cache[hook_name] = listeners
        return listeners

    def _call_each(self, hook_name: str, kwargs: dict[str, Any]) -> None:
        # Not pluggy's hook call: that stops at the first implementation that raises, and one
        # broken listener must never stop scheduling or the others.
        for plugin_name, function, argnames in self._listeners(hook_name):
            try:
                function(**{name: kwargs[name] for name in argnames})
            except Exception:
                self._log_listener_error(plugin_name, hook_name)

    def _log_listener_error(self, plugin_name: str, hook_name: str) -> None:
        info = self._infos.get(plugin_name)
        log.exception("plugin=%s distribution=%s hook=%s raised; flow goes on",
                      plugin_name, info.distribution if info else "?", hook_name)


class _RecordProblem(Exception):
    def __init__(self, reason: str, *, conflict: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.conflict = conflict


def _fallback_core_version() -> str:
    # flow-core is not installed as a distribution (running from a source tree).
    from flow import __version__

    return __version__


def _lookup(records: dict[str, _R], name: str, kind: str, option: str) -> _R:
    try:
        return records[name]
    except KeyError:
        known = ", ".join(sorted(records)) or "none"
        raise UnknownComponentError(
            f"no {kind} named {name!r} is installed (set by {option}); installed: {known}. "
            f"Install the plugin that provides it, or look for one that failed to load with "
            f"`flow plugins list`."
        ) from None


# ------------------------------------------------------------------------- the active manager

_active: ContextVar[PluginManager | None] = ContextVar("flow_plugin_manager", default=None)
_process_manager: PluginManager | None = None
_process_lock = threading.Lock()


def current() -> PluginManager:
    """The plugin manager of the running application.

    The one :func:`activate` set for the current block if any, else the process's (set by the
    application's entry point with :func:`set_current`, or built on first use). A process-wide
    fallback rather than a context variable alone: new threads start with an empty context and
    would each build their own manager.
    """
    global _process_manager
    manager = _active.get()
    if manager is not None:
        return manager
    with _process_lock:
        if _process_manager is None:
            _process_manager = PluginManager().load()
        return _process_manager


@contextlib.contextmanager
def activate(manager: PluginManager) -> Iterator[PluginManager]:
    """Make ``manager`` the one :func:`current` returns inside the block (and its threads'
    copies of the context)."""
    token = _active.set(manager)
    try:
        yield manager
    finally:
        _active.reset(token)


def set_current(manager: PluginManager | None) -> None:
    """Make ``manager`` the process's manager; ``None`` builds a fresh one on next use."""
    global _process_manager
    with _process_lock:
        _process_manager = manager
