"""Configuration: flow.toml in FLOW_HOME, overridden by FLOW__SECTION__KEY variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow.config import Config, ConfigError, flow_home


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_value_is_read_from_flow_toml(tmp_path):
    toml = write_toml(tmp_path / "flow.toml", '[core]\nexecutor = "sequential"\n'
                                              "max_xcom_size = 2048\n")

    config = Config(path=toml, environ={})

    assert config.get("core", "executor") == "sequential"
    assert config.get("core", "max_xcom_size") == 2048
    assert config.source("core", "executor") == "file"


def test_environment_variable_wins_over_the_file(tmp_path):
    toml = write_toml(tmp_path / "flow.toml", '[core]\nexecutor = "sequential"\n')

    config = Config(path=toml, environ={"FLOW__CORE__EXECUTOR": "celery"})

    assert config.get("core", "executor") == "celery"
    assert config.source("core", "executor") == "env"


def test_environment_values_are_coerced_to_the_option_type(tmp_path):
    config = Config(path=tmp_path / "none.toml", environ={
        "FLOW__CORE__MAX_XCOM_SIZE": "4096", "FLOW__CORE__LOAD_EXAMPLES": "yes",
        "FLOW__CORE__DAG_FILE_PROCESSOR_TIMEOUT": "2.5"})

    assert config.get("core", "max_xcom_size") == 4096
    assert config.get("core", "load_examples") is True
    assert config.get("core", "dag_file_processor_timeout") == 2.5


def test_bad_environment_value_names_the_option_and_the_variable(tmp_path):
    config = Config(path=tmp_path / "none.toml",
                    environ={"FLOW__CORE__MAX_XCOM_SIZE": "a lot"})

    with pytest.raises(ConfigError, match=r"\[core\] max_xcom_size from "
                                          r"FLOW__CORE__MAX_XCOM_SIZE must be int.*'a lot'"):
        config.get("core", "max_xcom_size")


def test_bad_file_value_names_the_option_and_the_file(tmp_path):
    toml = write_toml(tmp_path / "flow.toml", '[core]\nload_examples = "maybe"\n')

    with pytest.raises(ConfigError, match=r"\[core\] load_examples from .*flow\.toml must be "
                                          r"bool"):
        Config(path=toml, environ={}).get("core", "load_examples")


def test_malformed_flow_toml_names_the_file(tmp_path):
    toml = write_toml(tmp_path / "flow.toml", "[core\nexecutor = 1\n")

    with pytest.raises(ConfigError, match=r"flow\.toml"):
        Config(path=toml, environ={})


def test_unknown_option_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"\[core\] executr"):
        Config(path=tmp_path / "none.toml", environ={}).get("core", "executr")


def test_flow_home_defaults_to_flow_in_the_home_folder(monkeypatch):
    monkeypatch.delenv("FLOW_HOME", raising=False)

    assert flow_home() == Path.home() / "flow"


def test_paths_default_under_flow_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOW_HOME", str(tmp_path / "home"))

    config = Config(environ={})

    assert config.path == tmp_path / "home" / "flow.toml"
    assert config.get("core", "dags_folder") == str(tmp_path / "home" / "dags")
    assert config.get("database", "url") == f"sqlite:///{tmp_path / 'home' / 'flow.db'}"


def test_comma_separated_options_read_as_lists(tmp_path):
    config = Config(path=tmp_path / "none.toml",
                    environ={"FLOW__CORE__DISABLED_PLUGINS": " acme, flow-beta ,,"})

    assert config.getlist("core", "disabled_plugins") == ["acme", "flow-beta"]


def test_strict_plugins_from_the_flow_strict_plugins_variable(tmp_path):
    assert Config(path=tmp_path / "none.toml", environ={"FLOW_STRICT_PLUGINS": "1"}) \
        .strict_plugins()
    assert not Config(path=tmp_path / "none.toml", environ={}).strict_plugins()
