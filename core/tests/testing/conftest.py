"""flow.testing's own fixtures, for the tests of them (plugin authors enable them with
``pytest_plugins = ["flow.testing.fixtures"]``, which only a root conftest may do)."""

from flow.testing.fixtures import (  # noqa: F401 - fixtures are found by name
    dag_files,
    flow_env,
    flow_plugins,
    register_plugin,
    run_dag,
)
