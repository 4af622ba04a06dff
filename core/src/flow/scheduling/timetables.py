"""Timetables: when a DAG runs, and which data interval each run covers.

A scheduled run covers the data interval ``[previous tick, tick)`` and runs once the interval
has ended (``run_after == data_interval.end``). Cron schedules are evaluated in the DAG's
timezone and converted to UTC, so a ``0 0 * * *`` DAG in Europe/Amsterdam runs at local
midnight all year, and its intervals are 23 or 25 hours long across DST changes.

DST rules (those of cron itself): a fixed-hour schedule (``30 2 * * *``) whose local time does
not exist on the spring-forward day runs at the shifted time (03:30), and runs once on the
fall-back day (the first 02:30). A schedule whose hour field is a wildcard (``0 * * * *``,
``*/15 */2 * * *``) follows real time: it runs in both repeated hours and never twice at the
same instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, ClassVar

from flow.exceptions import DagDefinitionError
from flow.utils.timezone import parse_timezone, utcnow

PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
# The largest shift between a local wall clock and real time at a DST change, with margin.
_DST_WINDOW = timedelta(hours=3)


@dataclass(frozen=True)
class DataInterval:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class DagRunInfo:
    run_after: datetime
    data_interval: DataInterval

    @classmethod
    def interval(cls, start: datetime, end: datetime) -> DagRunInfo:
        return cls(run_after=end, data_interval=DataInterval(start, end))


@dataclass(frozen=True)
class TimeRestriction:
    """``earliest``: the DAG's start_date; ``latest``: its end_date; and its catchup."""

    earliest: datetime | None
    latest: datetime | None
    catchup: bool


def timezone_name(tz: tzinfo) -> str:
    key = getattr(tz, "key", None)
    if key:
        return str(key)
    offset = tz.utcoffset(None)
    if offset is None or offset == timedelta(0):
        return "UTC"
    return str(tz)  # a fixed offset: "UTC+05:30"


def timezone_from_name(name: str) -> tzinfo:
    if name.startswith("UTC") and len(name) > 3:
        sign = -1 if name[3] == "-" else 1
        hours, _, minutes = name[4:].partition(":")
        return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))
    return parse_timezone(name)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"timetables need aware datetimes, got naive {value!r}")
    return value.astimezone(UTC)


class Timetable:
    """Base of every timetable; plugins subclass it and register a TimetableSpec."""

    type_name: ClassVar[str] = ""
    can_be_scheduled: ClassVar[bool] = True
    summary: str = ""
    description: str = ""

    def next_dagrun_info(self, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction, *,
                         now: datetime | None = None) -> DagRunInfo | None:
        """The next scheduled run after ``last_automated_data_interval``, or None.

        ``now`` (default: the current time) matters only when catchup is off: then the
        first run is the latest interval that has already ended.
        """
        raise NotImplementedError

    def infer_manual_data_interval(self, run_after: datetime) -> DataInterval:
        """The data interval of a run triggered by hand at ``run_after``."""
        return DataInterval(_utc(run_after), _utc(run_after))

    def serialize(self) -> dict[str, Any]:
        return {}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.serialize() == self.serialize()

    def __hash__(self) -> int:
        return hash((type(self), repr(sorted(self.serialize().items()))))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.summary!r})"


class NullTimetable(Timetable):
    """``schedule=None``: runs only when triggered."""

    type_name = "null"
    can_be_scheduled = False
    summary = "None"
    description = "Never, external triggers only"

    def next_dagrun_info(self, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction, *,
                         now: datetime | None = None) -> DagRunInfo | None:
        return None


class OnceTimetable(Timetable):
    """``schedule="@once"``: one run at the start_date."""

    type_name = "once"
    summary = "@once"
    description = "Once, as soon as possible"

    def next_dagrun_info(self, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction, *,
                         now: datetime | None = None) -> DagRunInfo | None:
        if last_automated_data_interval is not None or restriction.earliest is None:
            return None
        start = _utc(restriction.earliest)
        if restriction.latest is not None and start > _utc(restriction.latest):
            return None
        return DagRunInfo.interval(start, start)


class DeltaTimetable(Timetable):
    """``schedule=timedelta(...)``: intervals of that length, starting at the start_date."""

    type_name = "delta"

    def __init__(self, delta: timedelta) -> None:
        if not isinstance(delta, timedelta) or delta <= timedelta(0):
            raise DagDefinitionError(f"schedule timedelta must be positive, got {delta!r}")
        self.delta = delta
        self.summary = str(delta)
        self.description = f"Every {delta}"

    def next_dagrun_info(self, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction, *,
                         now: datetime | None = None) -> DagRunInfo | None:
        earliest = _utc(restriction.earliest) if restriction.earliest else None
        if last_automated_data_interval is not None:
            start = _utc(last_automated_data_interval.end)
        elif earliest is not None:
            start = earliest
        else:
            return None
        if not restriction.catchup:
            current = _utc(now or utcnow())
            anchor = earliest or start
            if current - anchor >= self.delta:
                periods = (current - anchor) // self.delta
                start = max(start, anchor + (periods - 1) * self.delta)
        if restriction.latest is not None and start > _utc(restriction.latest):
            return None
        return DagRunInfo.interval(start, start + self.delta)

    def infer_manual_data_interval(self, run_after: datetime) -> DataInterval:
        end = _utc(run_after)
        return DataInterval(end - self.delta, end)

    def serialize(self) -> dict[str, Any]:
        return {"delta": self.delta.total_seconds()}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> DeltaTimetable:
        return cls(timedelta(seconds=data["delta"]))


class CronTimetable(Timetable):
    """A cron expression (or preset such as ``@daily``) in ``timezone``."""

    type_name = "cron"

    def __init__(self, cron: str, timezone: str | tzinfo = "UTC") -> None:
        from croniter import croniter

        self.summary = cron
        expression = PRESETS.get(cron.strip(), cron.strip())
        if not croniter.is_valid(expression) or len(expression.split()) != 5:
            raise DagDefinitionError(
                f"{cron!r} is not a valid cron expression: use five fields "
                "(minute hour day-of-month month day-of-week, e.g. '30 2 * * *') or a preset "
                f"({', '.join(['@once', *PRESETS])})")
        self.expression = expression
        self.timezone = parse_timezone(timezone)
        self._wildcard_hours = "*" in expression.split()[1]
        self.description = f"cron '{expression}' in {timezone_name(self.timezone)}"

    # ---- ticks -----------------------------------------------------------------------------
    def _instants(self, naive: datetime) -> list[datetime]:
        """The UTC instants at which local wall time ``naive`` matches the schedule."""
        first = naive.replace(tzinfo=self.timezone, fold=0)
        if first.astimezone(UTC).astimezone(self.timezone).replace(tzinfo=None) != naive:
            return [first.astimezone(UTC)]  # in a spring-forward gap: the shifted instant
        second = naive.replace(tzinfo=self.timezone, fold=1).astimezone(UTC)
        first = first.astimezone(UTC)
        if second != first and self._wildcard_hours:
            return [first, second]  # a repeated hour: real-time schedules run in both
        return [first]

    def _search(self, after: datetime, forward: bool) -> datetime:
        from croniter import croniter

        local = after.astimezone(self.timezone).replace(tzinfo=None)
        naive = croniter(self.expression, local).get_next(datetime) if forward else \
            croniter(self.expression, local).get_prev(datetime)
        candidate = self._instants(naive)[0 if forward else -1]
        if self._offset_stable(after) and self._offset_stable(candidate) and (
                candidate > after if forward else candidate < after):
            return candidate
        return self._search_across_transition(after, local, forward)

    def _offset_stable(self, instant: datetime) -> bool:
        """No DST change within the window around ``instant``."""
        before = (instant - _DST_WINDOW).astimezone(self.timezone).utcoffset()
        return before == (instant + _DST_WINDOW).astimezone(self.timezone).utcoffset()

    def _search_across_transition(self, after: datetime, local: datetime,
                                  forward: bool) -> datetime:
        """Near a DST change wall time and real time disagree: try every tick whose wall time
        lies within the window, and keep the nearest real instant."""
        from croniter import croniter

        window = _DST_WINDOW if forward else -_DST_WINDOW
        it = croniter(self.expression, local - window)
        best: datetime | None = None
        bound: datetime | None = None
        while True:
            naive = it.get_next(datetime) if forward else it.get_prev(datetime)
            if bound is not None and (naive > bound if forward else naive < bound):
                assert best is not None
                return best
            for instant in self._instants(naive):
                if (instant > after) if forward else (instant < after):
                    if best is None or (instant < best if forward else instant > best):
                        best = instant
                    if bound is None:
                        bound = naive + window

    def next_tick(self, after: datetime) -> datetime:
        """The first tick strictly after ``after`` (UTC)."""
        return self._search(_utc(after), forward=True)

    def previous_tick(self, before: datetime) -> datetime:
        """The last tick strictly before ``before`` (UTC)."""
        return self._search(_utc(before), forward=False)

    def _align_back(self, value: datetime) -> datetime:
        """``value`` if it is a tick, else the tick before it."""
        value = _utc(value)
        tick = self.previous_tick(value + timedelta(microseconds=1))
        return tick

    def _align_forward(self, value: datetime) -> datetime:
        value = _utc(value)
        return self.next_tick(value - timedelta(microseconds=1))

    # ---- runs ------------------------------------------------------------------------------
    def next_dagrun_info(self, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction, *,
                         now: datetime | None = None) -> DagRunInfo | None:
        earliest = self._align_forward(restriction.earliest) if restriction.earliest else None
        if last_automated_data_interval is not None:
            start = self._align_back(last_automated_data_interval.end)
            if earliest is not None:
                start = max(start, earliest)
        elif earliest is not None:
            start = earliest
        else:
            return None
        if not restriction.catchup:
            # Only the latest interval that has already ended: [tick before last, last tick].
            latest_end = self._align_back(now or utcnow())
            start = max(start, self.previous_tick(latest_end))
        if restriction.latest is not None and start > _utc(restriction.latest):
            return None
        return DagRunInfo.interval(start, self.next_tick(start))

    def infer_manual_data_interval(self, run_after: datetime) -> DataInterval:
        end = self._align_back(run_after)
        return DataInterval(self.previous_tick(end), end)

    def serialize(self) -> dict[str, Any]:
        return {"expression": self.summary, "timezone": timezone_name(self.timezone)}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> CronTimetable:
        return cls(data["expression"], timezone_from_name(data["timezone"]))


def create_timetable(schedule: Any, timezone: str | tzinfo = "UTC") -> Timetable:
    """The timetable for a DAG's ``schedule=``; DagDefinitionError for one flow cannot use."""
    if schedule is None:
        return NullTimetable()
    if isinstance(schedule, Timetable):
        return schedule
    if isinstance(schedule, timedelta):
        return DeltaTimetable(schedule)
    if isinstance(schedule, str):
        if schedule.strip() == "@once":
            return OnceTimetable()
        return CronTimetable(schedule, timezone)
    raise DagDefinitionError(
        f"schedule {schedule!r} is not supported: use None, a cron expression or preset "
        "('@daily'), a timedelta or a Timetable")


BUILTIN_TIMETABLES: dict[str, type[Timetable]] = {
    cls.type_name: cls for cls in (CronTimetable, DeltaTimetable, OnceTimetable, NullTimetable)
}


def deserialize_timetable(type_name: str, data: dict[str, Any]) -> Timetable:
    """A builtin timetable from ``type_name`` and its ``serialize()`` output."""
    try:
        cls = BUILTIN_TIMETABLES[type_name]
    except KeyError:
        raise ValueError(f"unknown builtin timetable {type_name!r}; plugin timetables are "
                         "found through their TimetableSpec") from None
    return cls.deserialize(data)
