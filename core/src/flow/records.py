"""The frozen records that registration hooks return.

A record names what a plugin supplies and the class that implements it. The class may be given as
an object or as an import string ``"package.module:ClassName"``; an import string is resolved on
first use, so loading a plugin imports nothing heavy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


class RecordError(ValueError):
    """A record is malformed: empty name, bad import string, unresolvable class."""


def resolve_import_string(target: str) -> Any:
    """Import ``"package.module:Attribute"`` (or ``"package.module.Attribute"``) and return it."""
    module_name, sep, attribute = target.partition(":")
    if not sep:
        module_name, _, attribute = target.rpartition(".")
    if not module_name or not attribute:
        raise RecordError(f"{target!r} is not an import string like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise RecordError(f"cannot import {target!r}: {type(err).__name__}: {err}") from err
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise RecordError(f"{module_name!r} has no attribute {attribute!r}") from None
    return obj


def _load_class(target: str, owner: str) -> type:
    try:
        obj = resolve_import_string(target)
    except RecordError as err:
        raise RecordError(f"{owner}: {err}. Check the plugin that provides it "
                          "(`flow plugins list`).") from err.__cause__
    if not isinstance(obj, type):
        raise RecordError(f"{owner}: {target!r} is {type(obj).__name__}, not a class")
    return obj


@dataclass(frozen=True)
class _ClassRecord:
    """Shared shape: a unique ``name`` and the implementing class (object or import string)."""

    name: str
    cls: type | str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise RecordError(f"{type(self).__name__} needs a non-empty name, got {self.name!r}")
        if isinstance(self.cls, str) and ":" not in self.cls and "." not in self.cls:
            raise RecordError(f"{type(self).__name__} {self.name!r}: {self.cls!r} is not an "
                              "import string like 'package.module:ClassName'")

    def load(self) -> type:
        """The implementing class, imported now if it was given as an import string.

        Raises :class:`RecordError` naming the record and the import string.
        """
        if isinstance(self.cls, str):
            return _load_class(self.cls, f"{type(self).__name__} {self.name!r}")
        return self.cls

    @property
    def import_path(self) -> str:
        if isinstance(self.cls, str):
            return self.cls
        return f"{self.cls.__module__}:{self.cls.__qualname__}"


@dataclass(frozen=True)
class ExecutorSpec(_ClassRecord):
    """An executor: ``name`` is what ``[core] executor`` selects (e.g. "local", "celery")."""

    description: str = ""


@dataclass(frozen=True)
class OperatorSpec(_ClassRecord):
    """An operator for the catalog in the UI, the docs and the conformance suite."""

    description: str = ""


@dataclass(frozen=True)
class ConnectionField:
    """One field of a connection form: ``name`` is a Connection attribute or an extra key."""

    name: str
    label: str
    sensitive: bool = False
    required: bool = False
    placeholder: str = ""


@dataclass(frozen=True)
class ConnectionTypeSpec:
    """A connection type: ``conn_type`` as in URIs, and the hook class that uses it."""

    conn_type: str
    label: str
    hook: type | str | None = None
    fields: tuple[ConnectionField, ...] = field(default_factory=tuple)
    description: str = ""

    def __post_init__(self) -> None:
        if not self.conn_type or not self.conn_type.replace("_", "").replace("-", "").isalnum():
            raise RecordError(f"ConnectionTypeSpec needs an alphanumeric conn_type, "
                              f"got {self.conn_type!r}")

    @property
    def name(self) -> str:
        return self.conn_type

    def load_hook(self) -> type | None:
        if isinstance(self.hook, str):
            return _load_class(self.hook, f"ConnectionTypeSpec {self.conn_type!r}")
        return self.hook


@dataclass(frozen=True)
class XComBackendSpec(_ClassRecord):
    """An XCom backend: ``name`` is what ``[core] xcom_backend`` selects."""

    description: str = ""


@dataclass(frozen=True)
class SecretsBackendSpec(_ClassRecord):
    """A secrets backend for connections and variables, named in ``[core] secrets_backends``."""

    description: str = ""


@dataclass(frozen=True)
class TimetableSpec(_ClassRecord):
    """A timetable class that DAGs may use as ``schedule=`` and the serializer can restore."""

    description: str = ""


Record = (ExecutorSpec | OperatorSpec | ConnectionTypeSpec | XComBackendSpec | SecretsBackendSpec
          | TimetableSpec)
