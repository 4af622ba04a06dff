"""Builtin plugin: the timetables every DAG schedule maps to (essential)."""

from __future__ import annotations

from flow.hookspecs import hookimpl
from flow.records import TimetableSpec


@hookimpl
def flow_timetables() -> list[TimetableSpec]:
    return [
        TimetableSpec("cron", "flow.scheduling.timetables:CronTimetable",
                      "A cron expression in the DAG's timezone."),
        TimetableSpec("delta", "flow.scheduling.timetables:DeltaTimetable",
                      "A fixed timedelta between runs."),
        TimetableSpec("once", "flow.scheduling.timetables:OnceTimetable", "A single run."),
        TimetableSpec("null", "flow.scheduling.timetables:NullTimetable",
                      "No schedule: manual triggers only."),
    ]
