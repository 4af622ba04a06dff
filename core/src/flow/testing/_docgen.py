"""Generate documentation pages from the code, so the docs cannot drift from it.

    python -m flow.testing._docgen cli            the CLI reference, from the click commands
    python -m flow.testing._docgen capabilities   the conformance suites' tests and capabilities

The documentation site's build (``docs/_gen/hooks.py``) calls these; nothing generated here is
committed.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import click

SUITES = ("ExecutorConformance", "OperatorConformance", "XComBackendConformance",
          "SecretsBackendConformance", "TimetableConformance", "PluginPackageConformance")


def cli_reference() -> str:
    """Every ``flow`` command with its usage, help and options (plugins' commands excluded)."""
    from flow.cli.main import cli

    out = ["# CLI reference", "",
           "<!-- Generated from the click commands by `python -m flow.testing._docgen cli`. -->",
           "", "Every command of `flow`, as `flow COMMAND --help` prints it. Plugins add their "
           "own commands (`flow_cli`); `flow --help` lists those too.", ""]
    context = click.Context(cli, info_name="flow")
    _command(cli, context, ["flow"], out, core_only=True)
    return "\n".join(out).rstrip() + "\n"


def _command(command: click.Command, context: click.Context, path: list[str], out: list[str],
             core_only: bool = False) -> None:
    name = " ".join(path)
    if len(path) > 1:
        out += [f"{'#' * min(len(path), 4)} `{name}`", ""]
    help_text = inspect.cleandoc(command.help or "").strip()
    if help_text:
        out += [help_text, ""]
    usage = " ".join(command.collect_usage_pieces(context))
    out += ["```", f"{name} {usage}".rstrip(), "```", ""]
    options = [param for param in command.get_params(context)
               if isinstance(param, click.Option) and param.name != "help"]
    if options:
        out += ["| option | description |", "|---|---|"]
        for option in options:
            record = option.get_help_record(context)
            if record:
                flags, text = record
                out.append(f"| `{flags}` | {text.replace('|', '/')} |")
        out.append("")
    if isinstance(command, click.Group):
        names = command.list_commands(context)
        if core_only:
            from flow.cli.main import CORE_COMMANDS

            names = [n for n in names if n in CORE_COMMANDS]
        for sub_name in names:
            try:
                sub = command.get_command(context, sub_name)
            except ImportError as err:
                # A command whose module is missing from this build: said on the page, not
                # dropped silently.
                out += [f"{'#' * min(len(path) + 1, 4)} `{name} {sub_name}`", "",
                        f"Not available in this build ({type(err).__name__}: {err}).", ""]
                continue
            if sub is None or sub.hidden:
                continue
            sub_context = click.Context(sub, info_name=sub_name, parent=context)
            _command(sub, sub_context, [*path, sub_name], out)


def capabilities_reference() -> str:
    """Each suite's tests, with the capability each needs and the version that added it."""
    import flow.testing as testing
    from flow.testing.capabilities import CAPABILITIES

    out = ["# Conformance tests and capabilities", "",
           "<!-- Generated from flow.testing by `python -m flow.testing._docgen capabilities`. "
           "-->", "",
           "A test that needs a capability your suite subclass does not claim is skipped, "
           "naming it. Tests without a capability must pass for every component.", ""]
    for suite_name in SUITES:
        suite: Any = getattr(testing, suite_name)
        kind = suite.flow_suite
        out += [f"## `{suite_name}`", "", _first_paragraph(suite), ""]
        capabilities = CAPABILITIES.get(kind, {})
        if capabilities:
            out += ["| capability | claiming it promises |", "|---|---|"]
            out += [f"| `{name}` | {text} |" for name, text in capabilities.items()]
            out.append("")
        out += ["| test | needs | since |", "|---|---|---|"]
        for test_name, function in sorted(inspect.getmembers(suite, inspect.isfunction)):
            if not test_name.startswith("test_"):
                continue
            marks = getattr(function, "pytestmark", [])
            needs = [n for m in marks if m.name == "flow_capability" for n in m.args]
            since = next((m.args[0] for m in marks if m.name == "flow_since"), "")
            out.append(f"| `{test_name}` | {', '.join(needs) or '—'} | {since} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _first_paragraph(obj: Any) -> str:
    module = sys.modules[obj.__module__]
    text = inspect.cleandoc(module.__doc__ or "")
    return text.split("\n\n")[0].replace("\n", " ")


def main(argv: list[str]) -> int:
    pages = {"cli": cli_reference, "capabilities": capabilities_reference}
    if len(argv) != 1 or argv[0] not in pages:
        print(f"usage: python -m flow.testing._docgen {{{','.join(pages)}}}", file=sys.stderr)
        return 2
    print(pages[argv[0]](), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
