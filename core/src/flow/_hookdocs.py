"""Render ``docs/plugins/hooks.md`` from the hookspec docstrings in :mod:`flow.hookspecs`.

The docstrings are the one source; the page is a generated copy that a test compares with this
module's output, so the two never drift. Regenerate with::

    python -m flow._hookdocs > docs/plugins/hooks.md
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from flow import hookspecs

GROUPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Registration hooks", hookspecs.REGISTRATION_HOOKS,
     "Called once per process when the plugin manager loads. Each returns a list of records "
     "from `flow.records`; a record may name its class as an import string, resolved on first "
     "use. A name that an earlier plugin already registered fails the later plugin, naming "
     "both distributions."),
    ("Extension hooks", hookspecs.EXTENSION_HOOKS,
     "Receive a narrow object to extend. An exception is logged with the plugin's name."),
    ("Event hooks", hookspecs.EVENT_HOOKS,
     "Called by the core at lifecycle points. Each implementation is called on its own; an "
     "exception is logged with `plugin=<name>` and never reaches the caller or the other "
     "listeners, except the one a `flow_user_action` listener raises on purpose to refuse an "
     "action (`flow.exceptions.ActionVetoed`). An implementation may accept any subset of the "
     "arguments."),
)

_PART = re.compile(r"^(When|Returns|Veto|Must not|Since|Example):\s*(.*)$")


def hook_function(name: str) -> Callable[..., Any]:
    function: Callable[..., Any] = getattr(hookspecs, name)
    return function


def signature(name: str) -> str:
    """``flow_cli(cli: click.Group) -> None``, with the annotations as written."""
    sig = inspect.signature(hook_function(name))
    params = ", ".join(
        f"{p.name}: {p.annotation}" if p.annotation is not inspect.Parameter.empty else p.name
        for p in sig.parameters.values())
    returns = sig.return_annotation
    return f"{name}({params}) -> {returns if returns is not inspect.Signature.empty else 'None'}"


def docstring_parts(name: str) -> tuple[str, dict[str, str]]:
    """The summary (text before the first part) and each part's text, keyed by part name."""
    doc = inspect.getdoc(hook_function(name)) or ""
    summary: list[str] = []
    parts: dict[str, list[str]] = {}
    current: list[str] = summary
    for line in doc.splitlines():
        match = _PART.match(line)
        if match:
            current = parts.setdefault(match.group(1), [])
            if match.group(2):
                current.append(match.group(2))
        else:
            current.append(line)
    return ("\n".join(summary).strip(),
            {part: "\n".join(lines).strip("\n") for part, lines in parts.items()})


def example_code(example: str) -> str:
    """The doctest of an Example part as plain code: prompts stripped, outputs as comments."""
    code = []
    for line in inspect.cleandoc(example).splitlines():
        if line.startswith((">>> ", "... ")):
            code.append(line[4:])
        elif line in (">>>", "..."):
            code.append("")
        elif line.strip():
            code[-1] += f"  # -> {line.strip()}"
    return "\n".join(code)


def _prose(text: str) -> str:
    # Sphinx roles in the docstrings read as plain code on the page.
    text = re.sub(r":(?:class|mod|func|meth):`([^`]+)`", r"`\1`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", " ".join(text.split()))


def render_hook(name: str) -> str:
    summary, parts = docstring_parts(name)
    lines = [f"### `{name}`", "", "```python", signature(name), "```", "", _prose(summary), ""]
    for part in ("When", "Returns", "Veto", "Must not", "Since"):
        if part in parts:
            lines += [f"**{part}:** {_prose(parts[part])}", ""]
    if "Example" in parts:
        lines += ["**Example** (in your `plugin.py`):", "", "```python",
                  example_code(parts["Example"]), "```", ""]
    return "\n".join(lines)


def render() -> str:
    intro = inspect.cleandoc(hookspecs.__doc__ or "").split("\n\n")[0]
    out = [
        "# Hook reference",
        "",
        "<!-- Generated from core/src/flow/hookspecs.py by "
        "`python -m flow._hookdocs > docs/plugins/hooks.md`. Do not edit by hand. -->",
        "",
        _prose(intro),
        "",
        "Every hook's documentation has the same parts: **When** it is called and from which "
        "process, what it **Returns**, what it **Must not** do, the version it appeared in "
        "(**Since**), and for registration hooks an **Example**. See "
        "[writing plugins](writing-plugins.md) and the [compatibility policy](compatibility.md).",
        "",
    ]
    for title, names, description in GROUPS:
        out += [f"## {title}", "", description, ""]
        out += [f"- [`{name}`](#{name})" for name in names]
        out.append("")
        out += [render_hook(name) for name in names]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
