"""`flow plugins verify` errors name what is wrong."""

from __future__ import annotations

from click.testing import CliRunner

from flow.cli.main import cli


def test_verify_of_a_distribution_that_is_not_installed_says_so() -> None:
    result = CliRunner().invoke(cli, ["plugins", "verify", "flow-no-such-plugin"])
    assert result.exit_code == 1
    assert "distribution 'flow-no-such-plugin' is not installed" in result.output
    assert "pip install -e" in result.output


def test_new_refuses_a_name_that_would_not_make_a_package(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["plugins", "new", "Bad Name!", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "plugin name 'Bad Name!' must be lower-case letters and digits" in result.output
    assert list(tmp_path.iterdir()) == []


def test_new_refuses_to_overwrite_an_existing_folder(tmp_path) -> None:
    (tmp_path / "flow-acme").mkdir()
    result = CliRunner().invoke(cli, ["plugins", "new", "acme", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "already exists" in result.output
