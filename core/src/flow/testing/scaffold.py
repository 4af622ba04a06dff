"""``flow plugins new NAME``: a new plugin package from ``plugins/_template/``.

The template is a working plugin named ``template`` (distribution ``flow-template``, package
``flow_template``); a new package is a copy with those names replaced, so the template is tested
like any plugin and what it generates starts green.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import flow
from flow.exceptions import FlowException

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
_SKIPPED = {"__pycache__", ".pytest_cache", ".nox", "build", "dist"}


class ScaffoldError(FlowException):
    """The name is not usable, the template is missing or the target exists."""


@dataclass(frozen=True)
class PluginNames:
    """The names a plugin called ``name`` gets: ``flow-<name>``, ``flow_<name>``, ``<name>``."""

    name: str

    @property
    def entry_point(self) -> str:
        return self.name.replace("-", "_")

    @property
    def distribution(self) -> str:
        return f"flow-{self.name.replace('_', '-')}"

    @property
    def package(self) -> str:
        return f"flow_{self.entry_point}"

    def apply(self, text: str) -> str:
        text = text.replace("flow-template", self.distribution)
        text = text.replace("flow_template", self.package)
        text = text.replace("template_greeting", f"{self.entry_point}_greeting")
        text = text.replace("TEMPLATE_DEFAULT", f"{self.entry_point.upper()}_DEFAULT")
        text = text.replace("template_default", f"{self.entry_point}_default")
        return re.sub(r"^template = ", f"{self.entry_point} = ", text, flags=re.MULTILINE)


def template_folder() -> Path:
    """``plugins/_template`` of the source tree flow runs from, else the copy packaged in the
    wheel (``flow/_plugin_template``); ``FLOW_PLUGIN_TEMPLATE`` overrides both."""
    override = os.environ.get("FLOW_PLUGIN_TEMPLATE")
    package = Path(flow.__file__).resolve().parent
    candidates = [Path(override)] if override else []
    candidates += [package.parents[2] / "plugins" / "_template", package / "_plugin_template"]
    for candidate in candidates:
        if (candidate / "pyproject.toml").is_file():
            return candidate
    raise ScaffoldError("the plugin template is missing: looked in "
                        + ", ".join(str(c) for c in candidates)
                        + "; set FLOW_PLUGIN_TEMPLATE to a copy of plugins/_template")


def new_plugin(name: str, parent: Path, template: Path | None = None) -> Path:
    """Create ``parent/flow-<name>`` from the template; returns its path."""
    if not _NAME.match(name) or name.startswith("flow"):
        raise ScaffoldError(f"plugin name {name!r} must be lower-case letters and digits, "
                            "words joined by - or _, not starting with 'flow' (e.g. 'acme' "
                            "makes flow-acme)")
    names = PluginNames(name)
    source = template or template_folder()
    target = parent / names.distribution
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another name or --dir")
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if _SKIPPED & set(relative.parts) or path.suffix == ".pyc" or ".egg-info" in str(path):
            continue
        destination = target / names.apply(str(relative))
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in {".py", ".toml", ".md", ".txt", ".cfg"}:
            destination.write_text(names.apply(path.read_text()))
        else:
            shutil.copyfile(path, destination)
    readme = target / "README.md"
    readme.write_text(_readme(names))
    return target


def _readme(names: PluginNames) -> str:
    return f"""# {names.distribution}

A flow plugin, generated with `flow plugins new {names.name}`.

| | |
|---|---|
| distribution | `{names.distribution}` |
| package | `{names.package}` (`src/{names.package}/`) |
| entry point | `{names.entry_point} = "{names.package}.plugin"` in the `flow.plugins` group |

What is where:

- `pyproject.toml` declares the `flow.plugins` entry point, which names `plugin.py`, and depends
  on a compatible range of `flow-core`.
- `src/{names.package}/plugin.py` holds only hookimpls and records: the `GreetOperator`, the
  `{names.entry_point}_greeting` connection type and an event listener. Classes are named by
  import string so that loading the plugin imports nothing heavy.
- `src/{names.package}/hooks.py` is the hook for the connection type; `operators.py` the operator.
- `tests/test_conformance.py` runs flow's conformance suites (`flow.testing`) on the package
  and the operator; `tests/test_plugin.py` tests the plugin itself.

Develop:

```
pip install -e .[test]
pytest tests
flow plugins verify {names.distribution}
```

Check the plugin loads with `flow plugins list`; make load errors fatal while developing with
`FLOW_STRICT_PLUGINS=1`.
"""
