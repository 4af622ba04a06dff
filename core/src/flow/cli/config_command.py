"""``flow config``: show the effective configuration and make a Fernet key.

``flow config list --output markdown`` prints the option reference in docs/configuration.md.
"""

from __future__ import annotations

import os
from typing import Any

import click

from flow.cli.output import echo_rows
from flow.config import OPTIONS, Config, ConfigError, Option, load_config

MASK = "***"


def _shown(option: Option, value: Any) -> Any:
    if option.sensitive and value not in ("", None):
        if (option.section, option.key) == ("database", "url"):
            # The URL is useful to see; only its password is secret.
            from sqlalchemy.engine import make_url

            try:
                return make_url(str(value)).render_as_string(hide_password=True)
            except Exception:
                return MASK
        return MASK
    return value


def config_rows(config: Config, section: str | None = None) -> list[dict[str, Any]]:
    """One row per option: section, key, value (secrets as ***), source, env var."""
    rows = []
    for option in OPTIONS:
        if section and option.section != section:
            continue
        rows.append({
            "section": option.section,
            "key": option.key,
            "value": _shown(option, config.get(option.section, option.key)),
            "source": config.source(option.section, option.key),
            "env_var": option.env_var,
        })
    return rows


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _documented_default(option: Option) -> str:
    """The default as a reader sees it: computed defaults in terms of ``$FLOW_HOME``."""
    default = option.default
    if callable(default):
        saved = os.environ.get("FLOW_HOME")
        os.environ["FLOW_HOME"] = "$FLOW_HOME"
        try:
            default = default()
        finally:
            if saved is None:
                del os.environ["FLOW_HOME"]
            else:
                os.environ["FLOW_HOME"] = saved
    return f"`{_toml_literal(default)}`"


def options_markdown() -> str:
    """The option reference as a Markdown table (pasted into docs/configuration.md)."""
    lines = ["| option | type | default | environment variable | description |",
             "|---|---|---|---|---|"]
    for option in OPTIONS:
        description = option.description.replace("|", "\\|")
        if option.sensitive:
            description += " *Sensitive: `flow config list` hides it.*"
        lines.append(f"| `[{option.section}] {option.key}` | {option.type.__name__} "
                     f"| {_documented_default(option)} | `{option.env_var}` | {description} |")
    return "\n".join(lines)


@click.group()
def config() -> None:
    """Show the configuration and make a Fernet key."""


@config.command("list")
@click.option("--output", "-o", type=click.Choice(["table", "json", "yaml", "markdown"]),
              default="table", show_default=True,
              help="Output format; markdown prints the option reference for the docs.")
@click.option("--section", help="Only this section (core, database, logging).")
def list_(output: str, section: str | None) -> None:
    """Every option with its value and where it came from (default, file or env)."""
    if output == "markdown":
        click.echo(options_markdown())
        return
    sections = sorted({o.section for o in OPTIONS})
    if section and section not in sections:
        raise click.BadParameter(f"no section {section!r}; sections: {', '.join(sections)}",
                                 param_hint="--section")
    try:
        rows = config_rows(load_config(), section)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    echo_rows(rows, output, columns=["section", "key", "value", "source"]
              if output == "table" else None)


@config.command()
@click.argument("section")
@click.argument("key")
@click.option("--reveal", is_flag=True, help="Print a sensitive value instead of ***.")
def get(section: str, key: str, reveal: bool) -> None:
    """Print the value of one option."""
    try:
        cfg = load_config()
        option = cfg.option(section, key)
        value = cfg.get(section, key)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    click.echo(value if reveal else _shown(option, value))


@config.command("generate-fernet-key")
def generate_fernet_key() -> None:
    """Print a new Fernet key for [core] fernet_key."""
    from flow.secrets.fernet import generate_key

    click.echo(generate_key())
