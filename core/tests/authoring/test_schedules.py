"""Timetables behind DAG schedules: data intervals, catchup, presets and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flow import DAG
from flow.exceptions import DagDefinitionError
from flow.scheduling.timetables import (
    CronTimetable,
    DataInterval,
    DeltaTimetable,
    NullTimetable,
    OnceTimetable,
    TimeRestriction,
    Timetable,
    create_timetable,
    deserialize_timetable,
)

AMS = ZoneInfo("Europe/Amsterdam")
NYC = ZoneInfo("America/New_York")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def runs(timetable, start, count, catchup=True, now=None, end=None):
    """The first ``count`` scheduled runs, as the scheduler would create them."""
    restriction = TimeRestriction(start, end, catchup)
    last, result = None, []
    for _ in range(count):
        info = timetable.next_dagrun_info(last, restriction, now=now)
        if info is None:
            break
        result.append(info)
        last = info.data_interval
    return result


def test_each_daily_run_covers_the_previous_day_and_runs_when_it_ends():
    daily = create_timetable("@daily", "UTC")
    first, second = runs(daily, utc(2024, 1, 1), 2)
    assert first.data_interval == DataInterval(utc(2024, 1, 1), utc(2024, 1, 2))
    assert first.run_after == utc(2024, 1, 2)
    assert second.data_interval == DataInterval(utc(2024, 1, 2), utc(2024, 1, 3))


def test_a_start_date_between_ticks_starts_at_the_next_tick():
    hourly = create_timetable("@hourly", "UTC")
    [first] = runs(hourly, utc(2024, 1, 1, 10, 30), 1)
    assert first.data_interval == DataInterval(utc(2024, 1, 1, 11), utc(2024, 1, 1, 12))


def test_without_catchup_only_the_latest_complete_interval_runs():
    daily = create_timetable("0 0 * * *", "UTC")
    now = utc(2024, 6, 10, 15, 0)
    [info] = runs(daily, utc(2024, 1, 1), 1, catchup=False, now=now)
    assert info.data_interval == DataInterval(utc(2024, 6, 9), utc(2024, 6, 10))
    # after that run, the next one is the following day, not a backfill
    restriction = TimeRestriction(utc(2024, 1, 1), None, False)
    following = daily.next_dagrun_info(info.data_interval, restriction, now=now)
    assert following.data_interval == DataInterval(utc(2024, 6, 10), utc(2024, 6, 11))


def test_catchup_off_never_goes_before_the_start_date():
    daily = create_timetable("@daily", "UTC")
    [info] = runs(daily, utc(2024, 6, 20), 1, catchup=False, now=utc(2024, 6, 10))
    assert info.data_interval.start == utc(2024, 6, 20)


def test_catchup_off_with_the_real_clock_picks_an_interval_that_already_ended():
    [info] = runs(create_timetable("@hourly", "UTC"), utc(2020, 1, 1), 1, catchup=False)
    now = datetime.now(UTC)
    # the hour may turn between the two clock readings: allow a minute
    assert now - timedelta(hours=1, minutes=1) <= info.data_interval.end <= now


def test_end_date_stops_the_schedule():
    daily = create_timetable("@daily", "UTC")
    assert len(runs(daily, utc(2024, 1, 1), 10, end=utc(2024, 1, 3))) == 3


def test_no_start_date_means_no_scheduled_run():
    assert runs(create_timetable("@daily", "UTC"), None, 1) == []


@pytest.mark.parametrize(("preset", "expected_end"), [
    ("@hourly", utc(2024, 1, 1, 1)),
    ("@daily", utc(2024, 1, 2)),
    ("@weekly", utc(2024, 1, 7)),   # Sunday
    ("@monthly", utc(2024, 2, 1)),
    ("@yearly", utc(2025, 1, 1)),
])
def test_presets(preset, expected_end):
    [info] = runs(create_timetable(preset, "UTC"), utc(2024, 1, 1) if preset != "@weekly"
                  else utc(2023, 12, 31), 1)
    assert info.data_interval.end == expected_end
    assert create_timetable(preset, "UTC").summary == preset


def test_once_runs_a_single_time_at_the_start_date():
    once = create_timetable("@once", "UTC")
    assert isinstance(once, OnceTimetable)
    infos = runs(once, utc(2024, 5, 1), 3)
    assert [i.data_interval for i in infos] == [DataInterval(utc(2024, 5, 1), utc(2024, 5, 1))]


def test_none_never_schedules():
    null = create_timetable(None, "UTC")
    assert isinstance(null, NullTimetable) and not null.can_be_scheduled
    assert runs(null, utc(2024, 1, 1), 1) == []


def test_timedelta_schedule_steps_from_the_start_date():
    every_6h = create_timetable(timedelta(hours=6), "UTC")
    assert isinstance(every_6h, DeltaTimetable)
    infos = runs(every_6h, utc(2024, 1, 1, 1), 2)
    assert [i.data_interval for i in infos] == [
        DataInterval(utc(2024, 1, 1, 1), utc(2024, 1, 1, 7)),
        DataInterval(utc(2024, 1, 1, 7), utc(2024, 1, 1, 13))]
    [latest] = runs(every_6h, utc(2024, 1, 1, 1), 1, catchup=False, now=utc(2024, 1, 3, 2))
    assert latest.data_interval == DataInterval(utc(2024, 1, 2, 19), utc(2024, 1, 3, 1))


def test_manual_runs_get_the_latest_complete_interval():
    daily = create_timetable("@daily", "UTC")
    assert daily.infer_manual_data_interval(utc(2024, 1, 5, 12)) == DataInterval(
        utc(2024, 1, 4), utc(2024, 1, 5))
    assert DeltaTimetable(timedelta(hours=1)).infer_manual_data_interval(
        utc(2024, 1, 5, 12)) == DataInterval(utc(2024, 1, 5, 11), utc(2024, 1, 5, 12))
    assert NullTimetable().infer_manual_data_interval(utc(2024, 1, 5)) == DataInterval(
        utc(2024, 1, 5), utc(2024, 1, 5))


# ---- DST ------------------------------------------------------------------------------------
def test_daily_midnight_in_amsterdam_stays_local_midnight_across_both_dst_changes():
    daily = CronTimetable("0 0 * * *", AMS)
    spring = runs(daily, datetime(2026, 3, 28, tzinfo=AMS), 2)
    assert [i.run_after.astimezone(AMS).hour for i in spring] == [0, 0]
    assert spring[0].data_interval.end == utc(2026, 3, 28, 23)  # 29 March 00:00 CET
    assert spring[1].data_interval.end == utc(2026, 3, 29, 22)  # 30 March 00:00 CEST
    assert spring[1].data_interval.end - spring[1].data_interval.start == timedelta(hours=23)
    autumn = runs(daily, datetime(2026, 10, 25, tzinfo=AMS), 1)[0]
    assert autumn.data_interval.end - autumn.data_interval.start == timedelta(hours=25)


def test_fixed_time_in_a_spring_forward_gap_runs_at_the_shifted_time_once():
    at_0230 = CronTimetable("30 2 * * *", AMS)
    infos = runs(at_0230, datetime(2026, 3, 28, tzinfo=AMS), 3)
    local = [i.data_interval.start.astimezone(AMS) for i in infos]
    assert [(t.day, t.hour, t.minute) for t in local] == [(28, 2, 30), (29, 3, 30), (30, 2, 30)]


def test_fixed_time_in_a_repeated_hour_runs_once():
    at_0130 = CronTimetable("30 1 * * *", NYC)  # 1 November 2026: 01:00-02:00 happens twice
    infos = runs(at_0130, datetime(2026, 10, 31, tzinfo=NYC), 3)
    assert [i.data_interval.start for i in infos] == [
        utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_hourly_schedule_follows_real_time_across_dst_changes():
    hourly = CronTimetable("0 * * * *", NYC)
    # spring forward, 8 March 2026: 02:00 EST jumps to 03:00 EDT
    spring = runs(hourly, utc(2026, 3, 8, 5), 4)
    assert [i.run_after for i in spring] == [utc(2026, 3, 8, h) for h in (6, 7, 8, 9)]
    assert [i.run_after.astimezone(NYC).hour for i in spring] == [1, 3, 4, 5]
    # fall back, 1 November 2026: 01:00 EDT, 01:00 EST, 02:00 EST
    autumn = runs(hourly, utc(2026, 11, 1, 4), 4)
    assert [i.run_after for i in autumn] == [utc(2026, 11, 1, h) for h in (5, 6, 7, 8)]
    assert all(i.data_interval.end - i.data_interval.start == timedelta(hours=1)
               for i in spring + autumn)


def test_every_15_minutes_in_amsterdam_fall_back_has_no_gaps_or_repeats():
    quarter = CronTimetable("*/15 * * * *", AMS)
    infos = runs(quarter, utc(2026, 10, 24, 23), 16)
    ends = [i.run_after for i in infos]
    assert ends == [utc(2026, 10, 24, 23) + timedelta(minutes=15 * k) for k in range(1, 17)]


# ---- errors and serialization -----------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["61 * * * *", "* * *", "@fortnightly", "0 0 * * * *"])
def test_bad_cron_expressions_are_definition_errors(schedule):
    with pytest.raises(DagDefinitionError, match="not a valid cron expression"):
        create_timetable(schedule, "UTC")


def test_unsupported_schedule_type_is_a_definition_error():
    with pytest.raises(DagDefinitionError, match="not supported"):
        create_timetable(42, "UTC")
    with pytest.raises(DagDefinitionError, match="positive"):
        create_timetable(timedelta(0), "UTC")


@pytest.mark.parametrize("timetable", [
    CronTimetable("30 2 * * 1-5", AMS), CronTimetable("@daily", "UTC"),
    DeltaTimetable(timedelta(minutes=90)), OnceTimetable(), NullTimetable(),
])
def test_serialize_round_trip(timetable):
    import json

    data = json.loads(json.dumps(timetable.serialize()))
    restored = deserialize_timetable(timetable.type_name, data)
    assert restored == timetable and restored.summary == timetable.summary


def test_type_names_match_the_builtin_timetable_specs():
    from flow.builtin.timetables import flow_timetables

    specs = {spec.name: spec.load() for spec in flow_timetables()}
    assert specs == {cls.type_name: cls for cls in (
        CronTimetable, DeltaTimetable, OnceTimetable, NullTimetable)}
    assert all(issubclass(cls, Timetable) for cls in specs.values())


def test_a_dag_passes_a_timetable_through():
    custom = DeltaTimetable(timedelta(days=2))
    assert DAG("custom_tt", schedule=custom).timetable is custom
