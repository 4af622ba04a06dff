"""Timezone helpers: flow stores and compares aware datetimes only."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_timezone(name: str | tzinfo) -> tzinfo:
    """A tzinfo for ``"UTC"``, ``"Europe/Amsterdam"`` or an existing tzinfo."""
    if isinstance(name, tzinfo):
        return name
    if name.upper() == "UTC":
        return UTC
    return ZoneInfo(name)


def make_aware(value: datetime, tz: str | tzinfo = "UTC") -> datetime:
    """``value`` itself if aware, otherwise interpreted in ``tz`` (the DAG's timezone)."""
    if value.tzinfo is not None:
        return value
    return value.replace(tzinfo=parse_timezone(tz))


def parse_datetime(text: str, tz: str | tzinfo = "UTC") -> datetime:
    """Parse an ISO 8601 date or datetime from the CLI or an API; naive means ``tz``."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date or datetime "
                         "(e.g. 2024-01-31 or 2024-01-31T06:00:00+00:00)") from None
    return make_aware(value, tz)
