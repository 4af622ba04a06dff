"""MkDocs hooks: the reference pages generated from the code at build time.

* ``reference/cli.md`` from the click commands, ``plugins/conformance-tests.md`` from the suites
  (both :mod:`flow.testing._docgen`), ``plugins/records.md`` from :mod:`flow.records`;
* ``plugins/packages/<name>.md`` for each plugin package (``plugins/flow-*`` and
  ``examples/*-flow-plugin``): its README, then its ``tests/test_conformance.py`` included
  verbatim through ``pymdownx.snippets``;
* nav entries whose page another part of flow has not written yet are left out of the nav (and
  said so in the build log), so the site builds while they are being written.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("mkdocs.hooks.flow")


def plugin_packages() -> dict[str, Path]:
    """page name -> package folder, for every plugin package with a README."""
    found = {path.name.removeprefix("flow-"): path for path in sorted(ROOT.glob("plugins/flow-*"))}
    found.update({path.name.removesuffix("-flow-plugin"): path
                  for path in sorted(ROOT.glob("examples/*-flow-plugin"))})
    found["template"] = ROOT / "plugins" / "_template"
    return {name: path for name, path in found.items() if (path / "README.md").exists()}


def package_page(name: str, folder: Path) -> str:
    readme = (folder / "README.md").read_text()
    relative = folder.relative_to(ROOT)
    page = [readme.rstrip(), "", f"*Source: `{relative}/`*", ""]
    conformance = folder / "tests" / "test_conformance.py"
    if conformance.exists():
        page += ["## Its conformance tests", "",
                 f"`{relative}/tests/test_conformance.py`, verbatim:", "",
                 "```python", f'--8<-- "{relative}/tests/test_conformance.py"', "```", ""]
    return "\n".join(page)


def packages_index(packages: dict[str, Path]) -> str:
    lines = ["# Plugin packages", "",
             "Every plugin package in this repository, from its README. Each has a "
             "`tests/test_conformance.py`, shown on its page exactly as it is in the repository.",
             ""]
    lines += [f"- [{name}]({name}.md): `{folder.relative_to(ROOT)}/`"
              for name, folder in packages.items()]
    return "\n".join(lines) + "\n"


def records_page() -> str:
    from flow import records

    out = ["# Records", "",
           "<!-- Generated from flow.records at build time. -->", "",
           inspect.cleandoc(records.__doc__ or ""), "",
           "Registration hooks return lists of these frozen dataclasses. A class may be given as "
           "an object or as an import string `\"package.module:ClassName\"`, resolved on first "
           "use (`record.load()`), so loading a plugin imports nothing heavy.", ""]
    for name in ("ExecutorSpec", "OperatorSpec", "ConnectionTypeSpec", "ConnectionField",
                 "XComBackendSpec", "SecretsBackendSpec", "TimetableSpec"):
        cls: Any = getattr(records, name)
        out += [f"## `{name}`", "", inspect.cleandoc(cls.__doc__ or ""), "",
                "| field | type | default |", "|---|---|---|"]
        for field in dataclasses.fields(cls):
            default = "required"
            if field.default is not dataclasses.MISSING:
                default = f"`{field.default!r}`"
            elif field.default_factory is not dataclasses.MISSING:
                default = f"`{field.default_factory()!r}`"
            kind = str(field.type).replace("|", "or")
            out.append(f"| `{field.name}` | `{kind}` | {default} |")
        out.append("")
    return "\n".join(out)


def rest_api_pages() -> dict[str, str]:
    """The endpoint list and the OpenAPI document itself, from the REST API's declarations."""
    import json

    from flow.web.api.dags import openapi

    document = openapi()
    out = ["# REST API endpoints", "",
           "<!-- Generated from the REST API's route declarations at build time. -->", "",
           f"Every endpoint of the REST API ({document['info'].get('title', 'flow')} "
           f"{document['info'].get('version', '')}). The machine-readable OpenAPI "
           f"{document['openapi']} document is [openapi.json](openapi.json); a running web "
           "server serves the same at `/api/v1/openapi.json`.", ""]
    by_tag: dict[str, list[str]] = {}
    for path, operations in sorted(document["paths"].items()):
        for method, operation in operations.items():
            tag = (operation.get("tags") or ["Other"])[0]
            summary = str(operation.get("summary", "")).replace("|", "/")
            by_tag.setdefault(tag, []).append(f"| `{method.upper()}` | `{path}` | {summary} |")
    for tag, rows in sorted(by_tag.items()):
        out += [f"## {tag}", "", "| method | path | what it does |", "|---|---|---|", *rows, ""]
    return {"reference/rest-api-endpoints.md": "\n".join(out),
            "reference/openapi.json": json.dumps(document, indent=2, sort_keys=True) + "\n"}


def generated_pages() -> dict[str, str]:
    from flow.testing._docgen import capabilities_reference, cli_reference

    pages = {
        **rest_api_pages(),
        "reference/cli.md": cli_reference(),
        "plugins/conformance-tests.md": capabilities_reference(),
        "plugins/records.md": records_page(),
    }
    packages = plugin_packages()
    pages["plugins/packages/index.md"] = packages_index(packages)
    for name, folder in packages.items():
        pages[f"plugins/packages/{name}.md"] = package_page(name, folder)
    return pages


def on_files(files: Files, config: Any) -> Files:
    for path, content in generated_pages().items():
        files.append(File.generated(config, path, content=content))
    return files


def on_config(config: Any) -> Any:
    docs = Path(config["docs_dir"])
    generated = set(generated_pages())
    config["nav"] = _present(config["nav"], docs, generated)
    return config


def _present(nav: list[Any], docs: Path, generated: set[str]) -> list[Any]:
    kept: list[Any] = []
    for entry in nav:
        title, target = next(iter(entry.items()))
        if target == "plugins/packages/index.md":  # a section with a page per package
            kept.append({title: [target] + [{name: f"plugins/packages/{name}.md"}
                                            for name in plugin_packages()]})
        elif isinstance(target, list):
            kept.append({title: _present(target, docs, generated)})
        elif (docs / target).exists() or target in generated:
            kept.append(entry)
        else:
            log.info("nav: %s (%s) is not written yet; left out of this build", title, target)
    return kept
