"""THE contract between flow and its plugins: every hook the core calls.

Three shapes, and the name tells which:

* registration hooks are plural nouns and return a list of records (:mod:`flow.records`);
* extension hooks receive a narrow object to extend (``flow_cli(cli)``, ``flow_web(app)``);
* event hooks are a subject plus a past-tense verb and return nothing.

Every docstring has the same parts: **When**, **Returns**, **Must not**, **Since**, and for
registration hooks an **Example**. ``docs/plugins/hooks.md`` is generated from them
(``python -m flow._hookdocs``) and a test fails when a part is missing.

Core code never calls ``pm.hook`` directly: it goes through the typed facade in
:mod:`flow.plugins`, which also isolates event listeners from each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from sqlalchemy import Connection

    from flow.records import (
        ConnectionTypeSpec,
        ExecutorSpec,
        OperatorSpec,
        SecretsBackendSpec,
        TimetableSpec,
        XComBackendSpec,
    )

PROJECT_NAME = "flow"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

# The parts every hook docstring must have (checked by core/tests/test_hookspecs.py).
DOCSTRING_PARTS = ("When:", "Returns:", "Must not:", "Since:")
REGISTRATION_DOCSTRING_PARTS = (*DOCSTRING_PARTS, "Example:")


# --------------------------------------------------------------------------------------------
# Registration hooks: called once per process when the plugin manager starts.
# --------------------------------------------------------------------------------------------


@hookspec
def flow_executors() -> list[ExecutorSpec]:
    """Executors this plugin supplies.

    When: once per process, when the plugin manager loads (in the scheduler, a task runner,
    the web server, ``flow plugins list``, the conformance suite: every process that builds
    one). The records are used when ``[core] executor`` is resolved.

    Returns: a list of :class:`flow.records.ExecutorSpec`. Each ``name`` must be unique across
    all installed plugins; ``[core] executor`` selects one by name. Give the class as an import
    string so that listing executors imports nothing heavy.

    Must not: import the executor's dependencies (Celery, the Kubernetes client) at module level
    of ``plugin.py``; start threads or connect anywhere; return the same name as another plugin
    (flow names both distributions; the plugin registered first keeps the name, builtins
    before third-party plugins, and the other plugin fails whole).

    Since: 0.1.0

    Example:
        >>> from flow import hookimpl
        >>> from flow.records import ExecutorSpec
        >>> @hookimpl
        ... def flow_executors():
        ...     return [ExecutorSpec(name="acme", cls="acme_flow.executor:AcmeExecutor")]
        >>> [spec.name for spec in flow_executors()]
        ['acme']
    """
    raise NotImplementedError


@hookspec
def flow_operators() -> list[OperatorSpec]:
    """Operators this plugin supplies, for the catalog in the UI, the docs and conformance suite.

    When: once per process, when the plugin manager loads. DAG files import operators
    directly; this hook only makes them discoverable (UI catalog, docs, conformance suite).

    Returns: a list of :class:`flow.records.OperatorSpec` whose ``name`` is unique across plugins
    (by convention the class name).

    Must not: import heavy client libraries at module level of ``plugin.py``; instantiate the
    operators.

    Since: 0.1.0

    Example:
        >>> from flow import hookimpl
        >>> from flow.records import OperatorSpec
        >>> @hookimpl
        ... def flow_operators():
        ...     return [OperatorSpec(name="AcmeOperator", cls="acme_flow.operators:AcmeOperator")]
        >>> [spec.name for spec in flow_operators()]
        ['AcmeOperator']
    """
    raise NotImplementedError


@hookspec
def flow_connection_types() -> list[ConnectionTypeSpec]:
    """Connection types this plugin supplies: conn_type, label, form fields and hook class.

    When: once per process, when the plugin manager loads; used by the web UI's connection
    form, ``flow connections add --conn-type`` and a connection test.

    Returns: a list of :class:`flow.records.ConnectionTypeSpec`; ``conn_type`` is unique across
    plugins and is the scheme of the connection's URI form.

    Must not: connect to the external system; mark a field that carries a secret as not
    ``sensitive`` (sensitive fields are write-only in the UI and masked in logs).

    Since: 0.1.0

    Example:
        >>> from flow import hookimpl
        >>> from flow.records import ConnectionField, ConnectionTypeSpec
        >>> @hookimpl
        ... def flow_connection_types():
        ...     return [ConnectionTypeSpec(
        ...         conn_type="acme", label="Acme API", hook="acme_flow.hooks:AcmeHook",
        ...         fields=(ConnectionField("host", "Base URL", required=True),
        ...                 ConnectionField("password", "API token", sensitive=True)))]
        >>> [(spec.conn_type, spec.fields[1].sensitive) for spec in flow_connection_types()]
        [('acme', True)]
    """
    raise NotImplementedError


@hookspec
def flow_xcom_backends() -> list[XComBackendSpec]:
    """XCom backends this plugin supplies; ``[core] xcom_backend`` selects one by name.

    When: once per process, when the plugin manager loads; the class is imported when a task
    runner or the web server first reads or writes an XCom.

    Returns: a list of :class:`flow.records.XComBackendSpec`. The class implements
    :class:`flow.execution.xcom.BaseXComBackend` (``set``, ``get_many``, ``clear``).

    Must not: pickle values (XComs are JSON with flow's documented extra types); connect at
    import time.

    Since: 0.1.0

    Example:
        >>> from flow import hookimpl
        >>> from flow.records import XComBackendSpec
        >>> @hookimpl
        ... def flow_xcom_backends():
        ...     return [XComBackendSpec(name="s3", cls="acme_flow.xcom:S3XComBackend")]
        >>> [spec.name for spec in flow_xcom_backends()]
        ['s3']
    """
    raise NotImplementedError


@hookspec
def flow_secrets_backends() -> list[SecretsBackendSpec]:
    """Secrets backends this plugin supplies, searched for connections and variables.

    When: once per process, when the plugin manager loads; the classes are imported the first
    time a connection or variable is looked up. The backends named in
    ``[core] secrets_backends`` are searched in that order.

    Returns: a list of :class:`flow.records.SecretsBackendSpec`. The class implements
    :class:`flow.secrets.backends.BaseSecretsBackend` (``get_connection``, ``get_variable``).

    Must not: log or cache secret values in plain text; raise for a missing id (return None).

    Since: 0.1.0

    Example:
        >>> from flow import hookimpl
        >>> from flow.records import SecretsBackendSpec
        >>> @hookimpl
        ... def flow_secrets_backends():
        ...     return [SecretsBackendSpec(name="vault", cls="acme_flow.vault:VaultBackend")]
        >>> [spec.name for spec in flow_secrets_backends()]
        ['vault']
    """
    raise NotImplementedError


@hookspec
def flow_timetables() -> list[TimetableSpec]:
    """Timetable classes this plugin supplies, usable as a DAG's ``schedule``.

    When: once per process, when the plugin manager loads; the class is imported when a
    serialized DAG is restored (scheduler, web server) and its timetable is found by name.

    Returns: a list of :class:`flow.records.TimetableSpec`; the class implements
    :class:`flow.scheduling.timetables.Timetable` and serializes to JSON.

    Must not: depend on the wall clock at construction time; perform I/O.

    Since: 0.1.0

    Example:
        >>> from flow import hookimpl
        >>> from flow.records import TimetableSpec
        >>> @hookimpl
        ... def flow_timetables():
        ...     return [TimetableSpec(name="workdays", cls="acme_flow.timetables:Workdays")]
        >>> [spec.name for spec in flow_timetables()]
        ['workdays']
    """
    raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Extension hooks: receive a narrow object to extend.
# --------------------------------------------------------------------------------------------


@hookspec
def flow_cli(cli: click.Group) -> None:
    """Add click commands or groups to the ``flow`` command line (e.g. ``flow celery worker``).

    When: in the ``flow`` CLI process, once, when a command that is not a core command is looked
    up or ``flow --help`` lists commands.

    Returns: nothing; call ``cli.add_command(...)``.

    Must not: replace or remove a core command; import heavy dependencies before the command
    actually runs (keep imports inside the command function so ``flow --help`` stays fast).

    Since: 0.1.0

    Example:
        >>> import click
        >>> from flow import hookimpl
        >>> @hookimpl
        ... def flow_cli(cli):
        ...     @cli.group()
        ...     def acme():
        ...         "Acme's commands."
        ...     @acme.command()
        ...     def sync():
        ...         from acme_flow.sync import run  # imported only when the command runs
        ...         run()
        >>> group = click.Group()
        >>> flow_cli(group)
        >>> sorted(group.commands)
        ['acme']
    """
    raise NotImplementedError


@hookspec
def flow_web(app: Any) -> None:
    """Add Flask blueprints and menu entries to the web server.

    When: in the web server process, once, while the Flask application is built.

    Returns: nothing; call ``app.register_blueprint(...)`` and the menu API of
    :mod:`flow.web`.

    Must not: import or execute DAG files (the web server never does); add routes without the
    login requirement; expose secrets.

    Since: 0.1.0
    """
    raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Event hooks: called by the core at lifecycle points. Each implementation is called separately;
# an exception is logged with the plugin's name and never stops the caller.
# --------------------------------------------------------------------------------------------


@hookspec
def flow_dag_run_state_changed(run: Any, previous: str | None, current: str) -> None:
    """A DAG run moved from state ``previous`` to ``current``.

    When: right after the change is committed to the metadata database, in the process that made
    it (the scheduler, ``flow dags test``, the web server or the CLI). ``run`` is a detached
    snapshot with ``dag_id``, ``run_id``, ``logical_date``, ``run_type``, ``state`` and ``conf``.

    Returns: nothing.

    Must not: block (hand slow work to a thread or queue); raise (it is logged and ignored);
    mutate ``run`` or write the run's state.

    Since: 0.1.0
    """
    raise NotImplementedError


@hookspec
def flow_task_instance_state_changed(ti: Any, previous: str | None, current: str) -> None:
    """A task instance moved from state ``previous`` to ``current``.

    When: right after the change is committed, in the process that made it (scheduler, task
    runner, web server, CLI). ``ti`` is a detached snapshot with ``dag_id``, ``run_id``,
    ``task_id``, ``map_index``, ``try_number`` and ``state``.

    Returns: nothing.

    Must not: block: it sits on the critical path of every task; raise (it is logged and
    ignored); mutate ``ti`` or write task state.

    Since: 0.1.0
    """
    raise NotImplementedError


@hookspec
def flow_user_action(actor: str, action: str, target: str, details: dict[str, Any],
                     transaction: Connection | None) -> None:
    """A person or script did something: trigger, pause, clear, mark, connection and variable
    changes, user management, login, failed login.

    When: as the action takes effect, in the process that served it (the web server, the REST
    API or the CLI): inside the action's database transaction, after its changes were made and
    before they are committed; for a failed login or a logout, with nothing else to commit.
    ``details`` holds ``source`` ("ui", "api" or "cli"), ``remote_addr`` where known, and the
    action's parameters with every secret value already replaced by ``***``.
    ``transaction`` (since 0.2.0; take it only if you need it) is the SQLAlchemy
    ``Connection`` of that transaction, inside a savepoint of this listener's own: rows a
    plugin writes to its own tables through it commit with the action or not at all.

    Returns: nothing.

    Veto: raise :class:`flow.exceptions.ActionVetoed` with the reason to refuse the action
    (since 0.2.0). flow rolls the whole action back, and the user sees the reason with the
    plugin's name: the web UI shows it, the REST API answers 503 (problem+json), the CLI exits
    1. The listeners after the refusing one are not called; those before it were, so a plugin
    that refuses by policy should be ``@hookimpl(tryfirst=True)``, and a listener that must
    hear only of committed actions writes through ``transaction``. A failed login or a logout
    cannot be refused: its veto is logged. Any other exception is logged and ignored, as for
    every event hook.

    Must not: block the request; raise anything but ``ActionVetoed`` on purpose; commit, roll
    back or close ``transaction``, or write flow's own tables through it; put ``details``
    anywhere that is less protected than the event log without keeping secrets out.

    Since: 0.1.0; ``transaction`` and the veto since 0.2.0.
    """
    raise NotImplementedError


@hookspec
def flow_connection_accessed(conn_id: str, accessor: dict[str, Any]) -> None:
    """A task (or a CLI command) read connection ``conn_id``.

    When: in the process that read it, each time a connection is resolved through the secrets
    backends. ``accessor`` names who read it: ``dag_id``, ``run_id``, ``task_id``, ``map_index``
    and ``try_number`` for a task, or ``{"source": "cli"}``.

    Returns: nothing.

    Must not: read the connection again (it would recurse); log its password; block.

    Since: 0.1.0
    """
    raise NotImplementedError


@hookspec
def flow_component_started(component: str) -> None:
    """A long-lived flow process is about to take on work.

    When: once per process and component, after the plugins are loaded and before the first
    run, try or request: ``"scheduler"`` (``flow scheduler``, ``flow standalone``),
    ``"local_worker"`` (each worker process of the local executor, before it forks any try) and
    ``"webserver"`` (``flow webserver``, ``flow standalone``). One process may host two
    components (``flow standalone``: the scheduler and the web server), so a listener that
    prepares process-wide state should do it once. This is the place to pay a listener's
    first-use costs (reading settings, opening a connection, creating tables) before the
    work it would otherwise delay begins; in a local worker, what it loads is shared by every
    try forked from it.

    Returns: nothing.

    Must not: block for long (the component waits for it); raise (it is logged and ignored);
    start work that must survive a fork in a local worker: a thread does not, and a try is a
    forked child of it.

    Since: 0.2.0
    """
    raise NotImplementedError


@hookspec
def flow_component_stopped(component: str) -> None:
    """A long-lived flow process stopped taking on work and is about to exit cleanly.

    When: once per ``flow_component_started`` call, after the component's last state change
    was committed and announced (the scheduler after its executor shut down, a local worker
    after its last try ended), before the process exits. The last moment to write what a
    listener buffered. Not called when the process is killed (``SIGKILL``) or crashes.

    Returns: nothing.

    Must not: block for more than a few seconds (shutdown waits for it); raise (it is logged
    and ignored).

    Since: 0.2.0
    """
    raise NotImplementedError


REGISTRATION_HOOKS = (
    "flow_executors",
    "flow_operators",
    "flow_connection_types",
    "flow_xcom_backends",
    "flow_secrets_backends",
    "flow_timetables",
)
EXTENSION_HOOKS = ("flow_cli", "flow_web")
EVENT_HOOKS = (
    "flow_dag_run_state_changed",
    "flow_task_instance_state_changed",
    "flow_user_action",
    "flow_connection_accessed",
    "flow_component_started",
    "flow_component_stopped",
)
