"""flow.serialization: tagged JSON that round-trips the documented extra types, never pickle."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from flow import serialization
from flow.exceptions import SerializationError

ROUND_TRIPS = [
    pytest.param(datetime(2026, 1, 2, 3, 4, 5, 6789, tzinfo=UTC), id="aware-datetime"),
    pytest.param(datetime(2026, 1, 2, 3, 4, 5), id="naive-datetime"),
    pytest.param(datetime(2026, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=-5))), id="offset"),
    pytest.param(date(2026, 2, 28), id="date"),
    pytest.param(time(23, 59, 58, 123), id="time"),
    pytest.param(timedelta(days=-1, seconds=5, microseconds=7), id="timedelta"),
    pytest.param(Decimal("12345678901234567890.000000001"), id="decimal"),
    pytest.param(uuid.UUID("12345678-1234-5678-1234-567812345678"), id="uuid"),
    pytest.param(b"\x00\xffbinary", id="bytes"),
    pytest.param((1, "two", (3.0,)), id="tuple"),
    pytest.param({3, 1, 2}, id="set"),
    pytest.param(frozenset({"a", "b"}), id="frozenset"),
    pytest.param({"__flow_type__": "datetime", "value": "not a tag"}, id="dict-with-tag-key"),
    pytest.param({1: "one", (2, 3): "tuple key", None: 0}, id="non-str-keys"),
    pytest.param({"rows": [[1, 2.5, None, True, "x"]], "nested": {"a": {"b": []}}}, id="plain"),
    pytest.param(float("inf"), id="inf"),
]


@pytest.mark.parametrize("value", ROUND_TRIPS)
def test_supported_types_round_trip_exactly(value: object) -> None:
    text = serialization.dumps({"value": value})
    json.loads(text)  # always valid JSON, even for inf
    restored = serialization.loads(text)["value"]
    assert restored == value
    assert type(restored) is type(value)


def test_aware_datetime_keeps_its_named_zone_and_naive_stays_naive() -> None:
    amsterdam = datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("Europe/Amsterdam"))
    assert serialization.loads(serialization.dumps(amsterdam)).tzinfo == ZoneInfo(
        "Europe/Amsterdam")
    assert serialization.loads(serialization.dumps(datetime(2026, 7, 1))).tzinfo is None


def test_nan_round_trips_as_nan() -> None:
    assert math.isnan(serialization.loads(serialization.dumps(float("nan"))))


def test_dataclass_comes_back_as_a_dict_of_its_fields() -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        when: date

    assert serialization.loads(serialization.dumps(Point(1, date(2026, 1, 1)))) == {
        "x": 1, "when": date(2026, 1, 1)}


def test_enum_is_stored_as_its_value() -> None:
    class Colour(enum.Enum):
        RED = "red"

    assert serialization.loads(serialization.dumps([Colour.RED])) == ["red"]


def test_unsupported_type_error_names_the_type_and_the_path() -> None:
    class Opaque:
        pass

    with pytest.raises(SerializationError) as info:
        serialization.dumps({"rows": [1, 2, 3, Opaque()]})
    message = str(info.value)
    assert "value['rows'][3]" in message
    assert "Opaque" in message


def test_a_value_that_contains_itself_is_refused_clearly() -> None:
    looped: list[object] = []
    looped.append(looped)
    with pytest.raises(SerializationError, match="nested more than"):
        serialization.dumps(looped)


def test_unknown_tag_on_load_is_an_error_not_code() -> None:
    with pytest.raises(SerializationError, match="unknown __flow_type__ 'pickle'"):
        serialization.loads('{"__flow_type__": "pickle", "value": "gASV"}')


def test_invalid_json_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="not valid JSON"):
        serialization.loads("{nope")
