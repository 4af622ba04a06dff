"""The hook contract: every hook documented, grouped, named by its shape, and its reference page
in docs/ generated from the docstrings."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

from flow import _hookdocs, hookspecs

HOOK_NAMES = sorted(name for name in dir(hookspecs) if name.startswith("flow_")
                    and callable(getattr(hookspecs, name)))
HOOKS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "plugins" / "hooks.md"


def test_every_hook_is_in_exactly_one_group():
    groups = [*hookspecs.REGISTRATION_HOOKS, *hookspecs.EXTENSION_HOOKS, *hookspecs.EVENT_HOOKS]

    assert sorted(groups) == HOOK_NAMES
    assert len(groups) == len(set(groups))


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_every_hook_docstring_has_the_required_parts(name):
    _, parts = _hookdocs.docstring_parts(name)
    required = (hookspecs.REGISTRATION_DOCSTRING_PARTS if name in hookspecs.REGISTRATION_HOOKS
                else hookspecs.DOCSTRING_PARTS)

    missing = [part for part in required if not parts.get(part.rstrip(":"))]
    assert not missing, f"{name}'s docstring lacks {missing} (see hookspecs.DOCSTRING_PARTS)"


@pytest.mark.parametrize("name", hookspecs.REGISTRATION_HOOKS)
def test_registration_hooks_are_plural_nouns_returning_lists(name):
    assert name.endswith("s"), name
    assert _hookdocs.signature(name).startswith(f"{name}() -> list[")


@pytest.mark.parametrize("name", hookspecs.EXTENSION_HOOKS)
def test_extension_hooks_receive_one_object_to_extend(name):
    assert re.fullmatch(r"flow_\w+\(\w+: [\w.]+\) -> None", _hookdocs.signature(name)), name


@pytest.mark.parametrize("name", hookspecs.EVENT_HOOKS)
def test_event_hooks_are_a_subject_and_a_past_tense_verb(name):
    assert re.fullmatch(r"flow_[a-z_]+_(changed|accessed|action|started|stopped)", name), name
    assert _hookdocs.signature(name).endswith("-> None")


@pytest.mark.parametrize("name", [n for n in HOOK_NAMES
                                  if "Example" in _hookdocs.docstring_parts(n)[1]])
def test_docstring_examples_run(name):
    parser = doctest.DocTestParser()
    example = _hookdocs.docstring_parts(name)[1]["Example"]
    test = parser.get_doctest(example, {}, f"flow.hookspecs.{name}", "hookspecs.py", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    output: list[str] = []

    runner.run(test, out=output.append)

    assert test.examples, f"{name}'s Example has no doctest lines"
    assert runner.summarize(verbose=False).failed == 0, "".join(output)


def test_hook_reference_page_is_generated_from_the_docstrings():
    expected = _hookdocs.render()

    assert HOOKS_PAGE.read_text() == expected, (
        "docs/plugins/hooks.md is out of date with core/src/flow/hookspecs.py; regenerate it "
        "with: python -m flow._hookdocs > docs/plugins/hooks.md")
