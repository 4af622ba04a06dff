"""``Variable``: small named values, looked up like connections (``FLOW_VAR_<KEY>``, then the
database, then plugin backends); stored Fernet-encrypted. A variable whose key contains
password, secret, token, key, private or credential is masked in logs once it is read."""

from __future__ import annotations

import json
from typing import Any

from flow.exceptions import VariableNotFound
from flow.secrets.masking import is_sensitive_name, mask_secret


class _NotSet:
    def __repr__(self) -> str:
        return "NOTSET"


NOTSET: Any = _NotSet()


class Variable:
    """Read and write variables: ``Variable.get("key")``, ``Variable.set("key", value)``."""

    @classmethod
    def get(cls, key: str, default: Any = NOTSET, deserialize_json: bool = False) -> Any:
        """The value of ``key`` from the configured backends, or ``default``.

        Raises :class:`VariableNotFound` naming the key and the backends searched when there is
        no default. ``deserialize_json`` parses the stored text as JSON.
        """
        from flow.secrets.backends import configured_backends

        backends = configured_backends()
        for backend in backends:
            raw = backend.get_variable(key)
            if raw is None:
                continue
            value = json.loads(raw) if deserialize_json else raw
            if is_sensitive_name(key):
                mask_secret(raw)
                if deserialize_json:
                    mask_secret(value)
            return value
        if default is not NOTSET:
            return default
        searched = ", ".join(backend.describe() for backend in backends) or "no backends"
        raise VariableNotFound(
            f"variable {key!r} not found; searched: {searched}. Set it with "
            f"`flow variables set {key} VALUE` or FLOW_VAR_{key.upper()}.")

    @classmethod
    def set(cls, key: str, value: Any, description: str | None = None,
            serialize_json: bool = False) -> None:
        """Store ``value`` (a str, or anything JSON-able with ``serialize_json``) in the
        metadata database, encrypted. :class:`FernetKeyMissing` when no key is configured."""
        from flow.secrets.database import save_variable

        if serialize_json:
            text = json.dumps(value)
        elif isinstance(value, str):
            text = value
        else:
            raise TypeError(f"variable {key!r}: value is a {type(value).__name__}; pass a str "
                            "or serialize_json=True")
        save_variable(key, text, description)

    @classmethod
    def delete(cls, key: str) -> bool:
        """Remove ``key`` from the metadata database; False if it was not there."""
        from flow.secrets.database import delete_variable

        return delete_variable(key)
