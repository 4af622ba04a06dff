"""JSON for values that cross a process boundary: XComs, DAG run conf, params. Never pickle.

Plain JSON values (str, int, float, bool, None, lists, dicts with str keys) are written as they
are. Other supported types are written as a *tagged object* ``{"__flow_type__": TAG, ...}``:

============  =================================================  ===============================
type          stored as                                          loaded as
============  =================================================  ===============================
datetime      ISO 8601 (with offset if aware; ``tz`` holds an    the same datetime, aware or
              IANA zone name when the tzinfo is a ZoneInfo)      naive as it was
date, time    ISO 8601                                           date, time
timedelta     ``[days, seconds, microseconds]``                  timedelta
Decimal       its exact string                                   Decimal
UUID          its string                                         UUID
bytes         base64 (bytearray and memoryview too)              bytes
tuple         list                                               tuple
set           list (sorted when the items allow it)              set
frozenset     list                                               frozenset
dict          ``[[key, value], ...]`` when a key is not a str,   the same dict
              or a key is the tag key itself (so such a dict
              round-trips instead of being read as a tag)
float         ``"nan"``, ``"inf"``, ``"-inf"`` (not valid JSON    float
              otherwise)
dataclass     its class path and fields                          a **dict** of its fields
Enum          its value, untagged                                the plain value
============  =================================================  ===============================

Dataclasses and enums do not come back as their classes on purpose: loading a value must never
import or run code named by the data. Anything else raises :class:`SerializationError` naming
the type and where it is inside the value, e.g. ``value['rows'][3]``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import enum
import json
import math
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flow.exceptions import SerializationError

TAG = "__flow_type__"
_MAX_DEPTH = 200


def dumps(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON text; :class:`SerializationError` for a type flow cannot store."""
    return json.dumps(encode(value), indent=indent, allow_nan=False, ensure_ascii=False,
                      separators=None if indent else (",", ":"))


def loads(text: str | bytes) -> Any:
    """The value that :func:`dumps` wrote."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SerializationError(f"not valid JSON: {err}") from err
    return decode(data)


def encode(value: Any, path: str = "value") -> Any:
    """``value`` as plain JSON-compatible data (what :func:`dumps` writes)."""
    return _encode(value, path, 0)


def _encode(value: Any, path: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise SerializationError(f"{path} is nested more than {_MAX_DEPTH} levels deep "
                                 "(a value that contains itself?)")
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return value
    if kind is float:
        if math.isfinite(value):
            return value
        return {TAG: "float", "value": str(value)}
    if kind is list:
        return [_encode(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if kind is dict:
        return _encode_dict(value, path, depth)
    if isinstance(value, enum.Enum):
        return _encode(value.value, path, depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {TAG: "dataclass", "class": f"{cls.__module__}.{cls.__qualname__}",
                "value": _encode_dict(fields, path, depth)}
    encoder = _ENCODERS.get(kind) or _find_encoder(value)
    if encoder is None:
        raise SerializationError(
            f"{path} is a {kind.__module__}.{kind.__qualname__}, which flow cannot store as "
            "JSON; convert it to a str, number, list, dict or one of the types listed in "
            "flow.serialization")
    return encoder(value, path, depth)


def _encode_dict(value: dict[Any, Any], path: str, depth: int) -> Any:
    if all(type(k) is str for k in value) and TAG not in value:
        return {k: _encode(v, f"{path}[{k!r}]", depth + 1) for k, v in value.items()}
    items = [[_encode(k, f"{path} key {k!r}", depth + 1), _encode(v, f"{path}[{k!r}]", depth + 1)]
             for k, v in value.items()]
    return {TAG: "dict", "value": items}


def _encode_datetime(value: datetime, path: str, depth: int) -> Any:
    encoded: dict[str, Any] = {TAG: "datetime", "value": value.isoformat()}
    if isinstance(value.tzinfo, ZoneInfo):
        encoded["tz"] = value.tzinfo.key
    return encoded


def _encode_collection(tag: str) -> Callable[[Any, str, int], Any]:
    def encode_items(value: Any, path: str, depth: int) -> Any:
        items = list(value)
        if tag in {"set", "frozenset"}:
            with contextlib.suppress(TypeError):  # mixed types: keep iteration order
                items = sorted(items)
        return {TAG: tag,
                "value": [_encode(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(items)]}
    return encode_items


def _tagged(tag: str, convert: Callable[[Any], Any]) -> Callable[[Any, str, int], Any]:
    return lambda value, path, depth: {TAG: tag, "value": convert(value)}


_ENCODERS: dict[type, Callable[[Any, str, int], Any]] = {
    datetime: _encode_datetime,
    date: _tagged("date", date.isoformat),
    time: _tagged("time", time.isoformat),
    timedelta: _tagged("timedelta", lambda v: [v.days, v.seconds, v.microseconds]),
    Decimal: _tagged("decimal", str),
    uuid.UUID: _tagged("uuid", str),
    bytes: _tagged("bytes", lambda v: base64.b64encode(v).decode("ascii")),
    bytearray: _tagged("bytes", lambda v: base64.b64encode(bytes(v)).decode("ascii")),
    memoryview: _tagged("bytes", lambda v: base64.b64encode(bytes(v)).decode("ascii")),
    tuple: _encode_collection("tuple"),
    set: _encode_collection("set"),
    frozenset: _encode_collection("frozenset"),
}


def _find_encoder(value: Any) -> Callable[[Any, str, int], Any] | None:
    """Subclasses of the supported types (a pendulum DateTime, a namedtuple) by their base."""
    for base, encoder in _ENCODERS.items():
        if isinstance(value, base):
            return encoder
    return None


def decode(data: Any) -> Any:
    """The value that :func:`encode` produced."""
    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict):
        return data
    tag = data.get(TAG)
    if tag is None:
        return {k: decode(v) for k, v in data.items()}
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise SerializationError(f"unknown {TAG} {tag!r}; written by a newer flow?")
    try:
        return decoder(data)
    except SerializationError:
        raise
    except (KeyError, TypeError, ValueError, ArithmeticError) as err:
        raise SerializationError(f"malformed {tag} value {data!r}: {err}") from err


def _decode_datetime(data: dict[str, Any]) -> datetime:
    value = datetime.fromisoformat(data["value"])
    if "tz" in data:
        value = value.astimezone(ZoneInfo(data["tz"]))
    return value


_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "datetime": _decode_datetime,
    "date": lambda d: date.fromisoformat(d["value"]),
    "time": lambda d: time.fromisoformat(d["value"]),
    "timedelta": lambda d: timedelta(days=d["value"][0], seconds=d["value"][1],
                                     microseconds=d["value"][2]),
    "decimal": lambda d: Decimal(d["value"]),
    "uuid": lambda d: uuid.UUID(d["value"]),
    "bytes": lambda d: base64.b64decode(d["value"], validate=True),
    "tuple": lambda d: tuple(decode(d["value"])),
    "set": lambda d: set(decode(d["value"])),
    "frozenset": lambda d: frozenset(decode(d["value"])),
    "float": lambda d: float(d["value"]),
    "dict": lambda d: {_hashable(decode(k)): decode(v) for k, v in d["value"]},
    "dataclass": lambda d: decode(d["value"]),
}


def _hashable(key: Any) -> Any:
    # A list key can only come from a hand-written document; say so rather than fail obscurely.
    if isinstance(key, list | dict | set):
        raise TypeError(f"dict key {key!r} is not hashable")
    return key
