"""flow.testing's fixtures (flow_env, flow_plugins, register_plugin, dag_files, run_dag).

Imported by name rather than with ``pytest_plugins``, which pytest only honours in the root
conftest of a run (the workspace root, when these tests run from there).
"""

from flow.testing.fixtures import (  # noqa: F401 - fixtures are found by name
    dag_files,
    flow_env,
    flow_plugins,
    register_plugin,
    run_dag,
)
