"""``flow config``: show the effective configuration and make a Fernet key.

``flow config list --output markdown`` prints the option reference in docs/configuration.md.
"""

from __future__ import annotations

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


def options_markdown() -> str:
    """The option reference as a Markdown table (docs/configuration.md)."""
    lines = ["| option | type | default | environment variable | description |",
             "|---|---|---|---|---|"]
    for option in OPTIONS:
        if callable(option.default):
            default = "(computed, see description)"
            if option.key in {"dags_folder", "base_log_folder"}:
                default = f"`$FLOW_HOME/{'dags' if option.key == 'dags_folder' else 'logs'}`"
            elif option.key == "url":
                default = "`sqlite:///$FLOW_HOME/flow.db`"
        else:
            default = f"`{option.default!r}`" if option.default != "" else "(empty)"
        description = option.description.replace("|", "\\|")
        if option.sensitive:
            description += " *Sensitive: shown as `***`.*"
        lines.append(f"| `[{option.section}] {option.key}` | {option.type.__name__} | {default} "
                     f"| `{option.env_var}` | {description} |")
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
