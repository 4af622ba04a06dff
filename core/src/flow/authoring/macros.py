"""``macros`` in templates: ``{{ macros.ds_add(ds, 7) }}``, ``{{ macros.datetime.now() }}``.

The standard modules (datetime, timedelta, json, uuid, random, time) are exposed as in Airflow.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import date, datetime, timedelta

__all__ = ["date", "datetime", "ds_add", "ds_format", "json", "random", "time", "timedelta",
           "uuid"]


def ds_add(ds: str, days: int) -> str:
    """``ds_add("2024-01-31", 1)`` -> ``"2024-02-01"``; days may be negative."""
    if not days:
        return str(ds)
    return (datetime.strptime(str(ds), "%Y-%m-%d") + timedelta(days=days)).strftime("%Y-%m-%d")


def ds_format(ds: str, input_format: str, output_format: str) -> str:
    """``ds_format("2024-01-31", "%Y-%m-%d", "%d/%m/%Y")`` -> ``"31/01/2024"``."""
    return datetime.strptime(str(ds), input_format).strftime(output_format)


def datetime_diff_for_humans(dt: datetime, since: datetime | None = None) -> str:
    """"3 hours ago" / "in 2 days" relative to ``since`` (now by default)."""
    since = since or datetime.now(dt.tzinfo)
    seconds = (dt - since).total_seconds()
    amount = abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if amount >= size or unit == "second":
            count = int(amount // size)
            text = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"in {text}" if seconds > 0 else f"{text} ago"
    return "now"  # pragma: no cover
