"""Secrets read by a process are masked as *** in its log output."""

from __future__ import annotations

import io
import json
import logging
from urllib.parse import quote

import pytest

from flow.secrets.connection import Connection
from flow.secrets.masking import MaskingFilter, mask_secret, masker, redact
from flow.secrets.variable import Variable

CANARY = "canary-Pa55/w0rd"


def _logged(*args: object, exc: BaseException | None = None) -> str:
    """What a handler with a MaskingFilter writes for ``log.warning(*args)``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("flow.test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        if exc is not None:
            try:
                raise exc
            except BaseException:
                logger.exception(*args)
        else:
            logger.warning(*args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_redact_replaces_plain_json_and_url_encoded_forms() -> None:
    secret = 'p@ss "word"/x'
    mask_secret(secret)
    text = f"{secret} | {json.dumps({'pw': secret})} | {quote(secret, safe='')}"
    out = redact(text)
    assert secret not in out and json.dumps(secret)[1:-1] not in out
    assert quote(secret, safe="") not in out
    assert out.count("***") == 3


def test_longest_secret_is_replaced_whole() -> None:
    mask_secret("abcd")
    mask_secret("abcdefgh")
    assert redact("x abcdefgh y") == "x *** y"


def test_values_shorter_than_four_characters_are_not_masked() -> None:
    mask_secret("abc")
    assert redact("abc abc") == "abc abc"
    assert len(masker()) == 0


def test_filter_masks_arguments_and_tracebacks() -> None:
    mask_secret(CANARY)
    output = _logged("connecting with %s", CANARY, exc=RuntimeError(f"login {CANARY} refused"))
    assert CANARY not in output
    assert "connecting with ***" in output and "login *** refused" in output


def test_connection_password_read_by_a_task_is_masked_in_its_log(
        flow_home: object, events: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_CONN_WAREHOUSE", json.dumps(
        {"conn_type": "postgres", "host": "h", "password": CANARY,
         "extra": {"api_token": "canary-extra-token", "region": "eu-west-1"}}))
    conn = Connection.get("warehouse")
    output = _logged("dsn=%s extra=%s", conn.get_uri(), conn.extra)
    assert CANARY not in output
    assert quote(CANARY, safe="") not in output
    assert "canary-extra-token" not in output
    assert "eu-west-1" in output


def test_sensitive_variable_is_masked_and_an_ordinary_one_is_not(
        flow_home: object, events: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_VAR_SERVICE_PASSWORD", "canary-variable")
    monkeypatch.setenv("FLOW_VAR_REGION", "eu-central")
    output = _logged("%s %s", Variable.get("service_password"), Variable.get("region"))
    assert "canary-variable" not in output
    assert "eu-central" in output


def test_sensitive_json_variable_masks_each_string_inside(
        flow_home: object, events: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_VAR_API_SECRETS", json.dumps({"a": "first-secret"}))
    value = Variable.get("api_secrets", deserialize_json=True)
    assert "first-secret" not in _logged("%s", value["a"])
