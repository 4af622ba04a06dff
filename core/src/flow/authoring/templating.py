"""Jinja rendering of template fields, in a sandbox.

The environment is a ``jinja2.sandbox.SandboxedEnvironment`` with ``StrictUndefined``: a typo in
a template fails the task instead of rendering an empty string, and templates cannot reach
Python internals (``''.__class__.__mro__`` raises SecurityError). Template files (a field ending
in one of the operator's ``template_ext``) are read from the DAG's folder and its
``template_searchpath``. jinja2 is imported on first use.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flow.authoring.xcom_arg import ResolvableArg

if TYPE_CHECKING:
    from jinja2 import Environment

    from flow.authoring.dag import DAG


def make_environment(dag: DAG | None = None) -> Environment:
    """The sandboxed environment for ``dag``'s templates, with its macros and filters."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    searchpath = []
    if dag is not None:
        searchpath = [dag.folder, *dag.template_searchpath]
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(searchpath or [os.getcwd()]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        cache_size=0 if dag is None else 400,
    )
    env.filters.update(_FILTERS)
    if dag is not None:
        env.globals.update(dag.user_defined_macros)
        env.filters.update(dag.user_defined_filters)
    return env


class LazyEnvironment:
    """``dag``'s template environment, built on first use and then kept on the DAG: a task
    whose fields hold no template never builds one, and the tries of a warm worker's forked
    children share the one their worker built."""

    def __init__(self, dag: DAG | None) -> None:
        self._dag = dag
        self._env: Environment | None = None

    def get(self) -> Environment:
        if self._env is None:
            dag = self._dag
            if dag is None:
                self._env = make_environment(None)
            else:
                self._env = getattr(dag, "_template_env", None)
                if self._env is None:
                    self._env = make_environment(dag)
                    with contextlib.suppress(AttributeError):
                        dag._template_env = self._env  # type: ignore[union-attr]
        return self._env

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


def render(value: Any, context: Mapping[str, Any], jinja_env: Environment,
           template_ext: Sequence[str] = ()) -> Any:
    """``value`` with every string rendered, recursing into lists, tuples, sets and dict values.

    A string ending in one of ``template_ext`` names a template file to render instead.
    XComArgs and DAG params are resolved from the context; other objects pass through.
    """
    if isinstance(value, str):
        if template_ext and value.endswith(tuple(template_ext)):
            return jinja_env.get_template(value).render(**context)
        if "{{" not in value and "{%" not in value and "{#" not in value:
            return value
        return jinja_env.from_string(value).render(**context)
    if isinstance(value, ResolvableArg):
        return value.resolve(context)
    if isinstance(value, tuple):
        if hasattr(value, "_fields"):  # a namedtuple keeps its type
            return type(value)(*(render(v, context, jinja_env, template_ext) for v in value))
        return tuple(render(v, context, jinja_env, template_ext) for v in value)
    if isinstance(value, list):
        return [render(v, context, jinja_env, template_ext) for v in value]
    if isinstance(value, (set, frozenset)):
        return type(value)(render(v, context, jinja_env, template_ext) for v in value)
    if isinstance(value, dict):
        return {k: render(v, context, jinja_env, template_ext) for k, v in value.items()}
    return value


def _ds_filter(value: Any) -> str:
    return str(value.strftime("%Y-%m-%d"))


def _ds_nodash_filter(value: Any) -> str:
    return str(value.strftime("%Y%m%d"))


def _ts_filter(value: Any) -> str:
    return str(value.isoformat())


_FILTERS = {"ds": _ds_filter, "ds_nodash": _ds_nodash_filter, "ts": _ts_filter}
