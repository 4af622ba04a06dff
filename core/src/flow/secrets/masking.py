"""Keeping secrets out of logs: the process's masker and a logging filter that applies it.

Every connection password, sensitive connection extra and sensitive variable that a process
reads is registered with :func:`mask_secret`; :class:`MaskingFilter` on a log handler then
replaces each occurrence with ``***`` in the message, its arguments and any traceback.

What is replaced, for each registered secret:

* the secret itself, its JSON-escaped form (as it appears inside a JSON document) and its
  URL-encoded forms (as it appears in a connection URI or a query string);
* longest first, so a secret that contains another is replaced whole;
* only values of at least :data:`MIN_SECRET_LENGTH` (4) characters: masking ``"1"`` or
  ``"yes"`` would blank out ordinary output while protecting nothing.

The masker is per-process state, like logging's configuration: one module-level object,
reset by :func:`reset_masker` (tests).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET_LENGTH = 4

# A connection extra or variable whose name contains one of these is treated as a secret.
SENSITIVE_WORDS = ("password", "passwd", "secret", "token", "key", "private", "credential")


_SENSITIVE = re.compile("|".join(SENSITIVE_WORDS))


def is_sensitive_name(name: str) -> bool:
    return _SENSITIVE.search(name.lower()) is not None


_URL_PASSWORD = re.compile(r"(?P<head>[a-z0-9+.\-]+://[^:/@\s]*:)(?P<secret>[^@\s]*)@", re.I)


def mask_url_password(text: str) -> str:
    """``text`` with the password of every URL in it (``scheme://user:password@host``)
    replaced by ``***``: for settings shown whole, such as a broker or database URL."""
    return _URL_PASSWORD.sub(lambda match: f"{match.group('head')}{MASK}@", text)


class SecretsMasker:
    """The set of secrets this process knows, and the replacement of them in text."""

    def __init__(self) -> None:
        self._patterns: set[str] = set()
        self._regex: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, secret: Any) -> None:
        """Mask ``secret`` (a str; a dict or list adds each string inside) from now on."""
        if isinstance(secret, dict):
            for value in secret.values():
                self.add(value)
            return
        if isinstance(secret, list | tuple | set):
            for value in secret:
                self.add(value)
            return
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            return
        variants = {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret)}
        new = {v for v in variants if len(v) >= MIN_SECRET_LENGTH} - self._patterns
        if new:
            with self._lock:
                self._patterns |= new
                self._regex = None

    def redact(self, text: str) -> str:
        """``text`` with every known secret replaced by ``***``."""
        if not self._patterns or not text:
            return text
        regex = self._regex
        if regex is None:
            with self._lock:
                ordered = sorted(self._patterns, key=len, reverse=True)
                regex = self._regex = re.compile("|".join(map(re.escape, ordered)))
        return regex.sub(MASK, text)

    def redact_value(self, value: Any) -> Any:
        """A copy of ``value`` (dicts, lists, strings) with secrets and sensitive keys masked."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: (MASK if isinstance(k, str) and is_sensitive_name(k) and v not in (None, "")
                        else self.redact_value(v)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        return value

    def __len__(self) -> int:
        return len(self._patterns)


_masker = SecretsMasker()


def masker() -> SecretsMasker:
    """The process's masker."""
    return _masker


def reset_masker() -> None:
    """Forget every registered secret (tests; a fresh task process starts empty anyway)."""
    global _masker
    _masker = SecretsMasker()


def mask_secret(secret: Any) -> None:
    """Mask ``secret`` in every log line this process writes from now on."""
    _masker.add(secret)


def redact(text: str) -> str:
    return _masker.redact(text)


class MaskingFilter(logging.Filter):
    """A ``logging.Filter`` for handlers: masks secrets in the message and the traceback.

    The record's message is rendered once (``msg % args``) and replaced by its redacted form,
    so a secret passed as an argument is caught too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        current = masker()
        if not len(current):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string: leave it to the handler to report
            return True
        record.msg, record.args = current.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = current.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = current.redact(record.stack_info)
        return True
