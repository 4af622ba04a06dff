"""The fixtures plugin tests use: isolated home and plugins, register_plugin, run_dag."""

from __future__ import annotations

from typing import Any

from flow import hookimpl
from flow.records import OperatorSpec


class _ExtraOperators:
    @hookimpl
    def flow_operators(self) -> list[OperatorSpec]:
        return [OperatorSpec("FixtureOperator", "flow.operators:EmptyOperator")]


def test_flow_env_points_flow_at_a_migrated_database_in_its_home(flow_env: Any) -> None:
    import os

    from flow.store.migrate import is_current

    assert os.environ["FLOW_HOME"] == str(flow_env.home)
    assert flow_env.database_url.endswith(str(flow_env.home / "flow.db"))
    assert is_current(flow_env.engine)


def test_register_plugin_adds_a_plugin_for_the_test(register_plugin: Any,
                                                    flow_plugins: Any) -> None:
    from flow.plugins import current

    register_plugin(_ExtraOperators(), name="extra")
    assert current() is flow_plugins
    assert "FixtureOperator" in flow_plugins.operators()


def test_run_dag_runs_through_the_sequential_executor_and_returns_final_states(
        dag_files: Any, run_dag: Any) -> None:
    dag = dag_files.dag("""
        from datetime import datetime
        from flow import DAG
        from flow.operators import EmptyOperator, PythonOperator

        def fail():
            raise ValueError("no")

        with DAG("fixture_run", schedule=None, start_date=datetime(2024, 1, 1)):
            ok = EmptyOperator(task_id="ok")
            broken = PythonOperator(task_id="broken", python_callable=fail)
            after = EmptyOperator(task_id="after")
            ok >> broken >> after
        """)
    outcome = run_dag(dag)
    assert outcome.states == {"ok": "success", "broken": "failed", "after": "upstream_failed"}


def test_a_registered_plugin_is_gone_after_teardown(flow_plugins: Any) -> None:
    from flow.testing.environment import PluginRegistrar

    registrar = PluginRegistrar(flow_plugins)
    registrar(_ExtraOperators(), name="extra")
    registrar.unregister_all()  # what the register_plugin fixture does at teardown
    assert "FixtureOperator" not in flow_plugins.operators()
    assert flow_plugins.plugin_info("extra") is None


def test_run_dag_skips_the_branches_a_branching_task_did_not_follow(dag_files: Any,
                                                                      run_dag: Any) -> None:
    dag = dag_files.dag("""
        from datetime import datetime
        from flow import DAG
        from flow.operators import BranchPythonOperator, EmptyOperator

        with DAG("fixture_branch", schedule=None, start_date=datetime(2024, 1, 1)):
            choose = BranchPythonOperator(task_id="choose", python_callable=lambda: "left")
            left, right = EmptyOperator(task_id="left"), EmptyOperator(task_id="right")
            after_right = EmptyOperator(task_id="after_right")
            choose >> [left, right]
            right >> after_right
        """)
    outcome = run_dag(dag)
    assert outcome.states == {"choose": "success", "left": "success", "right": "skipped",
                              "after_right": "skipped"}
