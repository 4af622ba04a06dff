"""``dag.cli()``: ``python my_dag.py --help`` lists the commands for that one DAG.

The commands are the ``flow dags``/``flow tasks`` ones, bound to the DAG object the file
built, so nothing is looked up in the DAG folder: ``list-tasks``, ``test [LOGICAL_DATE]
[--conf JSON]``, ``test-task TASK_ID [LOGICAL_DATE]`` and ``show [--dot]``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from flow.cli.output import echo_rows, output_option


def build_dag_cli(dag: Any) -> click.Group:
    """A click group whose commands act on ``dag``."""

    @click.group(name=dag.dag_id, help=f"Commands for DAG {dag.dag_id!r} ({dag.fileloc}).",
                 context_settings={"help_option_names": ["-h", "--help"]})
    def group() -> None:
        pass

    @group.command("list-tasks")
    @click.option("--tree", is_flag=True, help="Show the tasks as a tree of dependencies.")
    @output_option
    def list_tasks(tree: bool, output: str) -> None:
        """List the DAG's tasks in dependency order."""
        from flow.cli.tasks import task_rows, tree_lines

        if tree:
            click.echo("\n".join(tree_lines(dag)))
        else:
            echo_rows(task_rows(dag), output)

    @group.command("test")
    @click.argument("logical_date", required=False)
    @click.option("--conf", "conf_text", metavar="JSON", help="The run's conf.")
    @click.option("--no-wait-retries", is_flag=True,
                  help="Retry failed tasks at once instead of waiting out their retry delay.")
    @click.option("--show-logs", is_flag=True, help="Also print each task's log.")
    def test(logical_date: str | None, conf_text: str | None, no_wait_retries: bool,
             show_logs: bool) -> None:
        """Run one DAG run in this process and print each task's state."""
        from flow.cli.dags import echo_test_result, parse_conf, parse_logical_date, run_test

        result = run_test(dag, parse_logical_date(logical_date), parse_conf(conf_text),
                          not no_wait_retries, show_logs)
        echo_test_result(result)
        sys.exit(0 if result.ok else 1)

    @group.command("test-task")
    @click.argument("task_id")
    @click.argument("logical_date", required=False)
    @click.option("--map-index", type=int, default=-1, show_default=True)
    def test_task(task_id: str, logical_date: str | None, map_index: int) -> None:
        """Run one task once, ignoring its dependencies; its log goes to stdout."""
        from flow.cli.dags import parse_logical_date
        from flow.cli.tasks import test_one_task

        test_one_task(dag, task_id, parse_logical_date(logical_date), map_index)

    @group.command("show")
    @click.option("--dot", is_flag=True, help="Print the graph in Graphviz dot format.")
    def show(dot: bool) -> None:
        """Show the tasks and their dependencies."""
        from flow.cli.dags import graph_dot, graph_lines

        click.echo(graph_dot(dag) if dot else "\n".join(graph_lines(dag)))

    return group


def run_dag_cli(dag: Any, argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the command; exits the process."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    build_dag_cli(dag).main(args=list(argv) if argv is not None else sys.argv[1:],
                            prog_name=sys.argv[0] if argv is None else dag.dag_id)
