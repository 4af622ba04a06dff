"""Jinja filters: dates, durations and state colours, the same on every page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask

STATES = ("success", "failed", "running", "queued", "scheduled", "up_for_retry",
          "upstream_failed", "skipped", "removed", "none")


def fmt_datetime(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def state_class(state: str | None) -> str:
    state = state or "none"
    return f"s-{state if state in STATES else 'none'}"


def run_duration(run: Any) -> float | None:
    if run.start_date is None:
        return None
    end = run.end_date
    if end is None:
        from flow.utils.timezone import utcnow

        end = utcnow()
    return float((end - run.start_date).total_seconds())


def register_filters(app: Flask) -> None:
    app.jinja_env.filters.update(dt=fmt_datetime, duration=fmt_duration,
                                 state_class=state_class)
    app.jinja_env.globals.update(run_duration=run_duration, STATES=STATES)
